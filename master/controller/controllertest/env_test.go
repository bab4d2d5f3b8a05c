package controllertest_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/master/controller/controllertest"
	"skiff/master/podstatus"
	"skiff/master/registry"
)

func TestClock(t *testing.T) {
	e := controllertest.NewEnv(t)
	if !e.Now().Equal(controllertest.Epoch) || !e.Client.Time().Equal(controllertest.Epoch) {
		t.Fatalf("a new world starts at %v, want the epoch", e.Now())
	}
	e.Advance(time.Minute)
	if got := e.Client.Time(); !got.Equal(controllertest.Epoch.Add(time.Minute)) {
		t.Fatalf("the client reads %v after a minute", got)
	}
	live := controllertest.NewLiveEnv(t)
	if d := time.Since(live.Client.Time()); d < 0 || d > time.Minute {
		t.Fatalf("a live world's clock is %v off the wall clock", d)
	}
}

func TestSchedulerAndAgent(t *testing.T) {
	e := controllertest.NewEnv(t)
	ready := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ready", Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	e.CreatePod(ready)
	if p := e.Pod("default", "ready"); !podstatus.Ready(p) || p.Status.Phase != corev1.PodRunning {
		t.Fatalf("CreatePod did not report the status: %+v", p.Status)
	}
	e.Create(pods(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}})
	e.Schedule(controllertest.OnNode("n2"))
	e.Agent()
	if p := e.Pod("default", "new"); p.Spec.NodeName != "n2" || !podstatus.Ready(p) {
		t.Fatalf("the new pod was not bound and started: %+v", p)
	}
	if err := e.Client.Delete(t.Context(), pods(), e.Pod("default", "ready"), ""); err != nil {
		t.Fatal(err)
	}
	e.Agent()
	if p := e.Pod("default", "ready"); p != nil {
		t.Fatalf("the agent left a deleted pod: %+v", p.ObjectMeta)
	}
}

func pods() *registry.Resource { return registry.Lookup("", "v1", "pods") }

package statefulset

import (
	"context"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/registry"
)

// TestRunner drives the controller through controller.Runner: an OrderedReady set comes up
// in order, rolls out a template change, and writes Kubernetes' events.
func TestRunner(t *testing.T) {
	store := controllertest.New()
	client := &controller.Client{Store: store}
	f := &fixture{t: t, store: store, client: client, now: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	rec := controller.NewRecorder(client, "statefulset-controller", nil)
	runner := &controller.Runner{Name: "statefulset", Reconciler: New(client, rec), Store: store, Resync: 200 * time.Millisecond}
	stopped := make(chan struct{}, 2)
	go func() { rec.Run(ctx); stopped <- struct{}{} }()
	go func() { runner.Run(ctx); stopped <- struct{}{} }()
	defer func() { cancel(); <-stopped; <-stopped }()

	f.addSet(statefulSet("web", 3))
	rolledOut := func(image string) func() bool {
		return func() bool {
			f.schedule()
			f.agent()
			s := f.set("web")
			st := s.Status
			if st.ObservedGeneration != s.Generation || st.ReadyReplicas != 3 || st.UpdatedReplicas != 3 || st.CurrentRevision != st.UpdateRevision {
				return false
			}
			for _, p := range f.allPods() {
				if p.Spec.Containers[0].Image != image {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, "three ready replicas", rolledOut("busybox:1"))
	f.changeSet("web", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "busybox:2" })
	waitFor(t, "the rollout", rolledOut("busybox:2"))

	want := []string{"create Pod web-0 in StatefulSet web successful", "create Pod web-1 in StatefulSet web successful",
		"create Pod web-2 in StatefulSet web successful", "delete Pod web-2 in StatefulSet web successful"}
	waitFor(t, "events", func() bool {
		evs, _ := controller.List[*corev1.Event](client.State(), registry.Lookup("", "v1", "events"), "default", nil)
		var got []string
		for _, ev := range evs {
			if ev.InvolvedObject.Name == "web" && (ev.Reason == "SuccessfulCreate" || ev.Reason == "SuccessfulDelete") {
				got = append(got, ev.Message)
			}
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

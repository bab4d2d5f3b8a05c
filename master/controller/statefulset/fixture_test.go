package statefulset

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/objects"
)

// fixture is a store, a fake clock, the controller under test, and a simulated scheduler
// and agent that tests step by hand.
type fixture struct {
	t      *testing.T
	store  *controllertest.Store
	client *controller.Client
	now    time.Time
	r      controller.Reconciler
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, store: controllertest.New(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.client = &controller.Client{Store: f.store, Now: func() time.Time { return f.now }}
	f.r = New(f.client, nil)
	return f
}

func (f *fixture) ctx() context.Context { return context.Background() }

func statefulSet(name string, replicas int32, mutate ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: "svc",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
			},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func (f *fixture) addSet(s *appsv1.StatefulSet) {
	f.t.Helper()
	if err := f.client.Create(f.ctx(), statefulSets, s); err != nil {
		f.t.Fatalf("create statefulset: %v", err)
	}
}

func (f *fixture) set(name string) *appsv1.StatefulSet {
	f.t.Helper()
	s, err := controller.Get[*appsv1.StatefulSet](f.client.State(), statefulSets, "default", name)
	if err != nil || s == nil {
		f.t.Fatalf("get statefulset %s: %v", name, err)
	}
	return s
}

func (f *fixture) changeSet(name string, mutate func(*appsv1.StatefulSet)) {
	f.t.Helper()
	s := f.set(name)
	mutate(s)
	if err := f.client.Update(f.ctx(), statefulSets, s, true); err != nil {
		f.t.Fatalf("update statefulset: %v", err)
	}
}

func (f *fixture) scale(name string, n int32) {
	f.changeSet(name, func(s *appsv1.StatefulSet) { s.Spec.Replicas = &n })
}

// reconcile runs one pass; a RequeueAfter is returned to the caller as a duration.
func (f *fixture) reconcile(name string) time.Duration {
	f.t.Helper()
	err := f.r.Reconcile(f.ctx(), objects.Key(statefulSets, "default", name))
	var later controller.RequeueAfter
	if errors.As(err, &later) {
		return time.Duration(later)
	}
	if err != nil {
		f.t.Fatalf("reconcile %s: %v", name, err)
	}
	return 0
}

func (f *fixture) allPods() []*corev1.Pod {
	f.t.Helper()
	ps, err := controller.List[*corev1.Pod](f.client.State(), pods, "default", nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return ps
}

func (f *fixture) pod(name string) *corev1.Pod {
	f.t.Helper()
	p, err := controller.Get[*corev1.Pod](f.client.State(), pods, "default", name)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// updatePod writes p; a concurrent write (in the Runner test) just loses, as it would
// against the API server.
func (f *fixture) updatePod(p *corev1.Pod) {
	f.t.Helper()
	if err := f.client.Update(f.ctx(), pods, p, false); err != nil && !controller.IsStale(err) {
		f.t.Fatalf("update pod %s: %v", p.Name, err)
	}
}

// schedule binds every unbound pod to node n1.
func (f *fixture) schedule() {
	f.t.Helper()
	for _, p := range f.allPods() {
		if p.Spec.NodeName == "" && p.DeletionTimestamp == nil {
			p.Spec.NodeName = "n1"
			f.updatePod(p)
		}
	}
}

// agent removes pods being deleted and starts bound pending pods (Running and Ready).
func (f *fixture) agent() {
	f.t.Helper()
	for _, p := range f.allPods() {
		switch {
		case p.DeletionTimestamp != nil:
			f.remove(p)
		case p.Spec.NodeName != "" && p.Status.Phase == corev1.PodPending:
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(f.now)}}
			f.updatePod(p)
		}
	}
}

func (f *fixture) remove(p *corev1.Pod) {
	f.t.Helper()
	rev, _ := objects.ParseRV(p.ResourceVersion)
	if _, err := f.client.Commit(f.ctx(), fsm.Delete(objects.Key(pods, p.Namespace, p.Name), rev)); err != nil && !controller.IsStale(err) {
		f.t.Fatalf("remove pod %s: %v", p.Name, err)
	}
}

// settle runs controller, scheduler and agent until nothing changes.
func (f *fixture) settle(name string) {
	f.t.Helper()
	for range 50 {
		before := f.store.Entries()
		f.reconcile(name)
		f.schedule()
		f.agent()
		if f.store.Entries() == before {
			return
		}
	}
	f.t.Fatalf("statefulset %s did not settle", name)
}

// podNames lists the pods, marking terminating ones with a trailing "~".
func (f *fixture) podNames() []string {
	var out []string
	for _, p := range f.allPods() {
		n := p.Name
		if p.DeletionTimestamp != nil {
			n += "~"
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

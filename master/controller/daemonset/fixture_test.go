package daemonset

import (
	"context"
	"errors"
	"sort"
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

func node(name string, mutate ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	for _, m := range mutate {
		m(n)
	}
	return n
}

func taint(key string, effect corev1.TaintEffect) func(*corev1.Node) {
	return func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Effect: effect}) }
}

func label(k, v string) func(*corev1.Node) {
	return func(n *corev1.Node) {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}
}

func (f *fixture) addNode(n *corev1.Node) {
	f.t.Helper()
	if err := f.client.Create(f.ctx(), nodes, n); err != nil {
		f.t.Fatalf("create node %s: %v", n.Name, err)
	}
}

func (f *fixture) changeNode(name string, mutate func(*corev1.Node)) {
	f.t.Helper()
	n, err := controller.Get[*corev1.Node](f.client.State(), nodes, "", name)
	if err != nil || n == nil {
		f.t.Fatalf("get node %s: %v", name, err)
	}
	mutate(n)
	if err := f.client.Update(f.ctx(), nodes, n, true); err != nil {
		f.t.Fatalf("update node %s: %v", name, err)
	}
}

func (f *fixture) removeNode(name string) {
	f.t.Helper()
	if _, err := f.client.Commit(f.ctx(), fsm.Delete(objects.Key(nodes, "", name), 0)); err != nil {
		f.t.Fatalf("delete node %s: %v", name, err)
	}
}

func daemonSet(name string, mutate ...func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
			},
		},
	}
	for _, m := range mutate {
		m(ds)
	}
	return ds
}

func (f *fixture) addDaemonSet(ds *appsv1.DaemonSet) {
	f.t.Helper()
	if err := f.client.Create(f.ctx(), daemonSets, ds); err != nil {
		f.t.Fatalf("create daemonset: %v", err)
	}
}

func (f *fixture) daemonSet(name string) *appsv1.DaemonSet {
	f.t.Helper()
	ds, err := controller.Get[*appsv1.DaemonSet](f.client.State(), daemonSets, "default", name)
	if err != nil || ds == nil {
		f.t.Fatalf("get daemonset %s: %v", name, err)
	}
	return ds
}

func (f *fixture) changeDaemonSet(name string, mutate func(*appsv1.DaemonSet)) {
	f.t.Helper()
	ds := f.daemonSet(name)
	mutate(ds)
	if err := f.client.Update(f.ctx(), daemonSets, ds, true); err != nil {
		f.t.Fatalf("update daemonset: %v", err)
	}
}

// reconcile runs one pass; a RequeueAfter is returned to the caller as a duration.
func (f *fixture) reconcile(name string) time.Duration {
	f.t.Helper()
	err := f.r.Reconcile(f.ctx(), objects.Key(daemonSets, "default", name))
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

// updatePod writes p; a concurrent write (in the Runner test) just loses, as it would
// against the API server.
func (f *fixture) updatePod(p *corev1.Pod) {
	f.t.Helper()
	if err := f.client.Update(f.ctx(), pods, p, false); err != nil && !controller.IsStale(err) {
		f.t.Fatalf("update pod %s: %v", p.Name, err)
	}
}

// schedule binds every unbound pod to the node its affinity pins it to, as the scheduler
// does with daemon pods.
func (f *fixture) schedule() {
	f.t.Helper()
	for _, p := range f.allPods() {
		if p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
			continue
		}
		if n := targetNode(p); n != "" {
			p.Spec.NodeName = n
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
			rev, _ := objects.ParseRV(p.ResourceVersion)
			if _, err := f.client.Commit(f.ctx(), fsm.Delete(objects.Key(pods, p.Namespace, p.Name), rev)); err != nil && !controller.IsStale(err) {
				f.t.Fatalf("remove pod %s: %v", p.Name, err)
			}
		case p.Spec.NodeName != "" && p.Status.Phase == corev1.PodPending:
			setRunning(p, f.now)
			f.updatePod(p)
		}
	}
}

func setRunning(p *corev1.Pod, now time.Time) {
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now)}}
}

// settle runs controller, scheduler and agent until nothing changes.
func (f *fixture) settle(name string) {
	f.t.Helper()
	for range 30 {
		before := f.store.Entries()
		f.reconcile(name)
		f.schedule()
		f.agent()
		if f.store.Entries() == before {
			return
		}
	}
	f.t.Fatalf("daemonset %s did not settle", name)
}

// nodesWithPods lists the nodes that have a live (not terminating) pod, sorted.
func (f *fixture) nodesWithPods() []string {
	var out []string
	for _, p := range f.allPods() {
		if p.DeletionTimestamp == nil {
			out = append(out, targetNode(p))
		}
	}
	sort.Strings(out)
	return out
}

func fsmWatchNodes(f *fixture) fsm.WatchOptions {
	return fsm.WatchOptions{Resource: objects.StoreResource(nodes), From: f.client.State().Revision()}
}

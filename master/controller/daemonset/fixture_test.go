package daemonset

import (
	"context"
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

// fixture is the controller under test in a controllertest world, whose scheduler and
// agents tests step by hand.
type fixture struct {
	*controllertest.Env
	r controller.Reconciler
}

func newFixture(t *testing.T) *fixture {
	return withController(controllertest.NewEnv(t), nil)
}

// withController puts a DaemonSet controller recording through rec into env.
func withController(env *controllertest.Env, rec *controller.Recorder) *fixture {
	return &fixture{Env: env, r: New(env.Client, rec)}
}

func node(name string, mutate ...func(*corev1.Node)) *corev1.Node {
	// Ready, as an agent reports its node; tests that need another state mutate it.
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
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

func (f *fixture) addNode(n *corev1.Node) { f.Create(nodes, n) }

func (f *fixture) changeNode(name string, mutate func(*corev1.Node)) {
	controllertest.Change(f.Env, nodes, "", name, mutate)
}

func (f *fixture) removeNode(name string) {
	f.T.Helper()
	if _, err := f.Client.Commit(context.Background(), fsm.Delete(objects.Key(nodes, "", name), 0)); err != nil {
		f.T.Fatalf("delete node %s: %v", name, err)
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

func (f *fixture) addDaemonSet(ds *appsv1.DaemonSet) { f.Create(daemonSets, ds) }

func (f *fixture) daemonSet(name string) *appsv1.DaemonSet {
	return controllertest.Get[*appsv1.DaemonSet](f.Env, daemonSets, "default", name)
}

func (f *fixture) changeDaemonSet(name string, mutate func(*appsv1.DaemonSet)) {
	controllertest.Change(f.Env, daemonSets, "default", name, mutate)
}

// reconcile runs one pass; a RequeueAfter is returned to the caller as a duration.
func (f *fixture) reconcile(name string) time.Duration {
	f.T.Helper()
	return f.Reconcile(f.r, objects.Key(daemonSets, "default", name))
}

// schedule binds every unbound pod to the node its affinity pins it to, as the scheduler
// does with daemon pods.
func (f *fixture) schedule() { f.Schedule(targetNode) }

// settle runs controller, scheduler and agent until nothing changes.
func (f *fixture) settle(name string) {
	f.T.Helper()
	for range 30 {
		before := f.Store.Entries()
		f.reconcile(name)
		f.schedule()
		f.Agent()
		if f.Store.Entries() == before {
			return
		}
	}
	f.T.Fatalf("daemonset %s did not settle", name)
}

// nodesWithPods lists the nodes that have a live (not terminating) pod, sorted.
func (f *fixture) nodesWithPods() []string {
	var out []string
	for _, p := range f.Pods("default") {
		if p.DeletionTimestamp == nil {
			out = append(out, targetNode(p))
		}
	}
	sort.Strings(out)
	return out
}

func fsmWatchNodes(f *fixture) fsm.WatchOptions {
	return fsm.WatchOptions{Resource: objects.StoreResource(nodes), From: f.Client.State().Revision()}
}

func notReady(n *corev1.Node) {
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}
}

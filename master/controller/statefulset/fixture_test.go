package statefulset

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// withController puts a StatefulSet controller recording through rec into env.
func withController(env *controllertest.Env, rec *controller.Recorder) *fixture {
	return &fixture{Env: env, r: New(env.Client, rec)}
}

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

func (f *fixture) addSet(s *appsv1.StatefulSet) { f.Create(statefulSets, s) }

func (f *fixture) set(name string) *appsv1.StatefulSet {
	return controllertest.Get[*appsv1.StatefulSet](f.Env, statefulSets, "default", name)
}

func (f *fixture) changeSet(name string, mutate func(*appsv1.StatefulSet)) {
	controllertest.Change(f.Env, statefulSets, "default", name, mutate)
}

func (f *fixture) scale(name string, n int32) {
	f.changeSet(name, func(s *appsv1.StatefulSet) { s.Spec.Replicas = &n })
}

// reconcile runs one pass; a RequeueAfter is returned to the caller as a duration.
func (f *fixture) reconcile(name string) time.Duration {
	f.T.Helper()
	return f.Reconcile(f.r, objects.Key(statefulSets, "default", name))
}

// schedule binds every unbound pod to node n1.
func (f *fixture) schedule() { f.Schedule(controllertest.OnNode("n1")) }

// settle runs controller, scheduler and agent until nothing changes.
func (f *fixture) settle(name string) {
	f.T.Helper()
	for range 50 {
		before := f.Store.Entries()
		f.reconcile(name)
		f.schedule()
		f.Agent()
		if f.Store.Entries() == before {
			return
		}
	}
	f.T.Fatalf("statefulset %s did not settle", name)
}

// podNames lists the pods, marking terminating ones with a trailing "~".
func (f *fixture) podNames() []string {
	var out []string
	for _, p := range f.Pods("default") {
		n := p.Name
		if p.DeletionTimestamp != nil {
			n += "~"
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

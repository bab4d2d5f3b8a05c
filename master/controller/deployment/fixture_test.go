package deployment

import (
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/controller/replicaset"
	"skiff/master/objects"
	"skiff/master/podstatus"
)

// fixture runs the Deployment and ReplicaSet controllers by hand in a controllertest world,
// and plays the scheduler and the agents.
type fixture struct {
	*controllertest.Env
	dc  *Controller
	rsc *replicaset.Controller
	// check, when set, runs after every single reconcile.
	check func()
	// requeue is the last delay the Deployment controller asked for.
	requeue time.Duration
}

func newFixture(t *testing.T) *fixture {
	return withControllers(controllertest.NewEnv(t), nil)
}

// withControllers puts both controllers into env, the Deployment controller recording
// through rec.
func withControllers(env *controllertest.Env, rec *controller.Recorder) *fixture {
	return &fixture{Env: env, dc: New(env.Client, rec), rsc: replicaset.New(env.Client, nil)}
}

func ptr[T any](v T) *T { return &v }

func podTemplate(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

func (f *fixture) create(replicas int32, mutate func(*appsv1.Deployment)) {
	f.T.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: podTemplate("web:1"),
		},
	}
	if mutate != nil {
		mutate(d)
	}
	f.Create(deployments, d)
}

// update changes the Deployment's spec as the API server would (bumping its generation).
func (f *fixture) update(mutate func(*appsv1.Deployment)) {
	controllertest.Change(f.Env, deployments, "default", "web", mutate)
}

func (f *fixture) deployment() *appsv1.Deployment {
	return controllertest.Get[*appsv1.Deployment](f.Env, deployments, "default", "web")
}

// replicaSets lists the ReplicaSets by revision.
func (f *fixture) replicaSets() []*appsv1.ReplicaSet {
	f.T.Helper()
	list, err := controller.List[*appsv1.ReplicaSet](f.Client.State(), replicaSets, "default", nil)
	if err != nil {
		f.T.Fatal(err)
	}
	sort.Sort(byRevision(list))
	return list
}

func (f *fixture) pods() []*corev1.Pod { return f.Pods("default") }

// counts returns the active pods and the available (active and ready) ones.
func (f *fixture) counts() (total, available int32) {
	for _, p := range f.pods() {
		if podstatus.Active(p) {
			total++
			if podstatus.Ready(p) {
				available++
			}
		}
	}
	return total, available
}

func (f *fixture) reconcileDeployment() {
	f.T.Helper()
	f.requeue = f.Reconcile(f.dc, objects.Key(deployments, "default", "web"))
	if f.check != nil {
		f.check()
	}
}

func (f *fixture) reconcileReplicaSets() {
	f.T.Helper()
	for _, rs := range f.replicaSets() {
		f.Reconcile(f.rsc, objects.Key(replicaSets, rs.Namespace, rs.Name))
		if f.check != nil {
			f.check()
		}
	}
}

// settle runs both controllers until neither writes anything more.
func (f *fixture) settle() {
	f.T.Helper()
	for i := 0; i < 50; i++ {
		before := f.Store.Entries()
		f.reconcileDeployment()
		f.reconcileReplicaSets()
		if f.Store.Entries() == before {
			return
		}
	}
	f.T.Fatal("controllers never settled")
}

// schedule binds every unbound pod, as the scheduler would.
func (f *fixture) schedule() { f.Schedule(controllertest.OnNode("n1")) }

// makeReady marks up to n bound, unready pods running and ready (n < 0: all), as their
// agent would, and returns how many it marked.
func (f *fixture) makeReady(n int) int {
	marked := 0
	for _, p := range f.pods() {
		if marked == n {
			break
		}
		if !podstatus.Active(p) || p.Spec.NodeName == "" || podstatus.Ready(p) {
			continue
		}
		f.Start(p)
		marked++
	}
	return marked
}

// reap removes pods being deleted, as their agent does once they stopped.
func (f *fixture) reap() int {
	n := 0
	for _, p := range f.pods() {
		if p.DeletionTimestamp == nil {
			continue
		}
		f.RemovePod(p)
		n++
	}
	return n
}

// converge drives the rollout to its end: controllers, scheduler, agents (readying at most
// perStep pods a round), until kubectl rollout status would say it is done.
func (f *fixture) converge(perStep int) {
	f.T.Helper()
	for i := 0; i < 200; i++ {
		f.settle()
		if rolloutDone(f.deployment()) && f.reap() == 0 {
			return
		}
		f.schedule()
		f.reap()
		f.makeReady(perStep)
		f.Advance(time.Second)
	}
	f.T.Fatalf("rollout never completed: %+v", f.deployment().Status)
}

// rolloutDone is kubectl rollout status's test for a finished rollout.
func rolloutDone(d *appsv1.Deployment) bool {
	if d.Generation > d.Status.ObservedGeneration {
		return false
	}
	if c := condition(d.Status, appsv1.DeploymentProgressing); c != nil && c.Reason == timedOutReason {
		return false
	}
	s := d.Status
	return s.UpdatedReplicas >= *d.Spec.Replicas && s.Replicas <= s.UpdatedReplicas && s.AvailableReplicas >= s.UpdatedReplicas
}

func rollingUpdate(surge, unavailable string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		s, u := intstr.Parse(surge), intstr.Parse(unavailable)
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}}
	}
}

func setImage(image string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = image }
}

func imageOf(rs *appsv1.ReplicaSet) string { return rs.Spec.Template.Spec.Containers[0].Image }

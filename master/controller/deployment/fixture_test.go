package deployment

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/controller/replicaset"
	"skiff/master/objects"
)

// fixture runs the Deployment and ReplicaSet controllers by hand over an in-memory store
// with a fake clock, and plays the scheduler and the agents.
type fixture struct {
	t      *testing.T
	store  *controllertest.Store
	client *controller.Client
	now    time.Time
	dc     *Controller
	rsc    *replicaset.Controller
	// check, when set, runs after every single reconcile.
	check func()
	// requeue is the last delay the Deployment controller asked for.
	requeue time.Duration
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, store: controllertest.New(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.client = &controller.Client{Store: f.store, Now: func() time.Time { return f.now }}
	f.dc = New(f.client, nil)
	f.rsc = replicaset.New(f.client, nil)
	return f
}

func ptr[T any](v T) *T { return &v }

func podTemplate(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

func (f *fixture) create(replicas int32, mutate func(*appsv1.Deployment)) {
	f.t.Helper()
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
	if err := f.client.Create(context.Background(), deployments, d); err != nil {
		f.t.Fatal(err)
	}
}

// update changes the Deployment's spec as the API server would (bumping its generation).
func (f *fixture) update(mutate func(*appsv1.Deployment)) {
	f.t.Helper()
	d := f.deployment()
	mutate(d)
	if err := f.client.Update(context.Background(), deployments, d, true); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) deployment() *appsv1.Deployment {
	f.t.Helper()
	d, err := controller.Get[*appsv1.Deployment](f.client.State(), deployments, "default", "web")
	if err != nil || d == nil {
		f.t.Fatalf("deployment: %v", err)
	}
	return d
}

// replicaSets lists the ReplicaSets by revision.
func (f *fixture) replicaSets() []*appsv1.ReplicaSet {
	f.t.Helper()
	list, err := controller.List[*appsv1.ReplicaSet](f.client.State(), replicaSets, "default", nil)
	if err != nil {
		f.t.Fatal(err)
	}
	sort.Sort(byRevision(list))
	return list
}

func (f *fixture) pods() []*corev1.Pod {
	f.t.Helper()
	ps, err := controller.List[*corev1.Pod](f.client.State(), pods, "default", nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return ps
}

func active(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodFailed && p.Status.Phase != corev1.PodSucceeded
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// counts returns the active pods and the available (active and ready) ones.
func (f *fixture) counts() (total, available int32) {
	for _, p := range f.pods() {
		if active(p) {
			total++
			if ready(p) {
				available++
			}
		}
	}
	return total, available
}

func (f *fixture) reconcileDeployment() {
	f.t.Helper()
	err := f.dc.Reconcile(context.Background(), objects.Key(deployments, "default", "web"))
	var later controller.RequeueAfter
	switch {
	case errors.As(err, &later):
		f.requeue = time.Duration(later)
	case err != nil:
		f.t.Fatalf("deployment reconcile: %v", err)
	default:
		f.requeue = 0
	}
	if f.check != nil {
		f.check()
	}
}

func (f *fixture) reconcileReplicaSets() {
	f.t.Helper()
	for _, rs := range f.replicaSets() {
		err := f.rsc.Reconcile(context.Background(), objects.Key(replicaSets, rs.Namespace, rs.Name))
		var later controller.RequeueAfter
		if err != nil && !errors.As(err, &later) {
			f.t.Fatalf("replicaset reconcile: %v", err)
		}
		if f.check != nil {
			f.check()
		}
	}
}

// settle runs both controllers until neither writes anything more.
func (f *fixture) settle() {
	f.t.Helper()
	for i := 0; i < 50; i++ {
		before := f.store.Entries()
		f.reconcileDeployment()
		f.reconcileReplicaSets()
		if f.store.Entries() == before {
			return
		}
	}
	f.t.Fatal("controllers never settled")
}

func (f *fixture) writePod(p *corev1.Pod) {
	f.t.Helper()
	if err := f.client.Update(context.Background(), pods, p, false); err != nil {
		f.t.Fatal(err)
	}
}

// schedule binds every unbound pod, as the scheduler would.
func (f *fixture) schedule() {
	for _, p := range f.pods() {
		if p.Spec.NodeName == "" && p.DeletionTimestamp == nil {
			p.Spec.NodeName = "n1"
			p.Status.Phase = corev1.PodPending
			f.writePod(p)
		}
	}
}

// makeReady marks up to n bound, unready pods running and ready (n < 0: all), as their
// agent would, and returns how many it marked.
func (f *fixture) makeReady(n int) int {
	marked := 0
	for _, p := range f.pods() {
		if marked == n {
			break
		}
		if !active(p) || p.Spec.NodeName == "" || ready(p) {
			continue
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(f.now)}}
		f.writePod(p)
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
		rev, _ := objects.ParseRV(p.ResourceVersion)
		if _, err := f.client.Commit(context.Background(), fsm.Delete(objects.Key(pods, p.Namespace, p.Name), rev)); err != nil {
			f.t.Fatal(err)
		}
		n++
	}
	return n
}

// converge drives the rollout to its end: controllers, scheduler, agents (readying at most
// perStep pods a round), until kubectl rollout status would say it is done.
func (f *fixture) converge(perStep int) {
	f.t.Helper()
	for i := 0; i < 200; i++ {
		f.settle()
		if rolloutDone(f.deployment()) && f.reap() == 0 {
			return
		}
		f.schedule()
		f.reap()
		f.makeReady(perStep)
		f.now = f.now.Add(time.Second)
	}
	f.t.Fatalf("rollout never completed: %+v", f.deployment().Status)
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

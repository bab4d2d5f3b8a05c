package disruption

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/objects"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fixture is a controllertest world holding a ReplicaSet "web" with replicas running pods,
// the first ready of them ready.
type fixture struct {
	*controllertest.Env
	rs *appsv1.ReplicaSet
}

func newFixture(t *testing.T, replicas int32, ready int) *fixture {
	f := &fixture{Env: controllertest.NewEnv(t)}
	f.SetNow(t0)
	f.rs = &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
	}
	f.Create(replicasets, f.rs)
	for i := range int(replicas) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-" + string(rune('a'+i)), Namespace: "default", Labels: map[string]string{"app": "web"},
			OwnerReferences: []metav1.OwnerReference{controller.OwnerReference(f.rs, replicasets)}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		p.Status.Phase = corev1.PodRunning
		status := corev1.ConditionFalse
		if i < ready {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		f.CreatePod(p)
	}
	return f
}

func (f *fixture) budget(spec policyv1.PodDisruptionBudgetSpec, disrupted map[string]metav1.Time) policyv1.PodDisruptionBudgetStatus {
	f.T.Helper()
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "default"}, Spec: spec}
	f.Create(pdbs, pdb)
	if disrupted != nil {
		pdb.Status.DisruptedPods = disrupted
		f.Update(pdbs, pdb, false)
	}
	f.Reconcile(New(f.Client, nil), objects.Key(pdbs, "default", "b"))
	got, _ := controller.Get[*policyv1.PodDisruptionBudget](f.Client.State(), pdbs, "default", "b")
	return got.Status
}

func TestBudgetStatus(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	intOr := func(v intstr.IntOrString) *intstr.IntOrString { return &v }
	cases := []struct {
		name                       string
		replicas                   int32
		ready                      int
		spec                       policyv1.PodDisruptionBudgetSpec
		disrupted                  map[string]metav1.Time
		expected, desired, healthy int32
		allowed                    int32
	}{
		{"minAvailable int", 3, 3, policyv1.PodDisruptionBudgetSpec{Selector: sel, MinAvailable: intOr(intstr.FromInt32(2))}, nil, 3, 2, 3, 1},
		{"minAvailable percent rounds up", 3, 3, policyv1.PodDisruptionBudgetSpec{Selector: sel, MinAvailable: intOr(intstr.FromString("50%"))}, nil, 3, 2, 3, 1},
		{"maxUnavailable percent", 4, 4, policyv1.PodDisruptionBudgetSpec{Selector: sel, MaxUnavailable: intOr(intstr.FromString("50%"))}, nil, 4, 2, 4, 2},
		{"unready pods are not healthy", 3, 1, policyv1.PodDisruptionBudgetSpec{Selector: sel, MinAvailable: intOr(intstr.FromInt32(2))}, nil, 3, 2, 1, 0},
		{"recent eviction not yet seen", 3, 3, policyv1.PodDisruptionBudgetSpec{Selector: sel, MaxUnavailable: intOr(intstr.FromInt32(1))},
			map[string]metav1.Time{"web-a": metav1.NewTime(t0.Add(-time.Minute))}, 3, 2, 2, 0},
		{"expired eviction record", 3, 3, policyv1.PodDisruptionBudgetSpec{Selector: sel, MaxUnavailable: intOr(intstr.FromInt32(1))},
			map[string]metav1.Time{"web-a": metav1.NewTime(t0.Add(-3 * time.Minute))}, 3, 2, 3, 1},
		{"no selector selects nothing", 3, 3, policyv1.PodDisruptionBudgetSpec{MinAvailable: intOr(intstr.FromInt32(1))}, nil, 0, 1, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.replicas, tc.ready)
			s := f.budget(tc.spec, tc.disrupted)
			if s.ExpectedPods != tc.expected || s.DesiredHealthy != tc.desired || s.CurrentHealthy != tc.healthy || s.DisruptionsAllowed != tc.allowed {
				t.Fatalf("status = expected %d desired %d healthy %d allowed %d; want %d %d %d %d",
					s.ExpectedPods, s.DesiredHealthy, s.CurrentHealthy, s.DisruptionsAllowed, tc.expected, tc.desired, tc.healthy, tc.allowed)
			}
			if s.ObservedGeneration != 1 || len(s.Conditions) != 1 {
				t.Fatalf("observedGeneration %d, conditions %+v", s.ObservedGeneration, s.Conditions)
			}
			wantCond := metav1.ConditionTrue
			if tc.allowed == 0 {
				wantCond = metav1.ConditionFalse
			}
			if s.Conditions[0].Status != wantCond {
				t.Fatalf("DisruptionAllowed = %s, want %s", s.Conditions[0].Status, wantCond)
			}
		})
	}
}

func TestDeploymentScaleCountsAndUnchangedStatusIsNotRewritten(t *testing.T) {
	f := newFixture(t, 2, 2)
	ctx := context.Background()
	replicas := int32(4)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: f.rs.Spec.Selector, Template: f.rs.Spec.Template}}
	if err := f.Client.Create(ctx, deployments, d); err != nil {
		t.Fatal(err)
	}
	f.rs.OwnerReferences = []metav1.OwnerReference{controller.OwnerReference(d, deployments)}
	if err := f.Client.Update(ctx, replicasets, f.rs, false); err != nil {
		t.Fatal(err)
	}
	s := f.budget(policyv1.PodDisruptionBudgetSpec{Selector: f.rs.Spec.Selector, MaxUnavailable: &intstr.IntOrString{Type: intstr.String, StrVal: "25%"}}, nil)
	if s.ExpectedPods != 4 || s.DesiredHealthy != 3 || s.DisruptionsAllowed != 0 {
		t.Fatalf("deployment-scaled budget: %+v", s)
	}
	rev := f.Client.State().Revision()
	f.Advance(time.Minute)
	if err := New(f.Client, nil).Reconcile(ctx, objects.Key(pdbs, "default", "b")); err != nil {
		t.Fatal(err)
	}
	if f.Client.State().Revision() != rev {
		t.Fatal("an unchanged status was written again")
	}
}

package controller_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/objects"
	"skiff/master/registry"
)

// countingReconciler records how often each key was reconciled and fails the first n tries.
type countingReconciler struct {
	mu     sync.Mutex
	seen   map[string]int
	failN  int
	client *controller.Client
}

func (r *countingReconciler) Watches() []string { return []string{"configmaps"} }
func (r *countingReconciler) Keys(_ *fsm.State, ev fsm.Event) []fsm.Key {
	return controller.SelfKey(ev)
}
func (r *countingReconciler) Primary(st *fsm.State) []fsm.Key {
	return controller.AllKeys(st, configmaps)
}
func (r *countingReconciler) Reconcile(ctx context.Context, k fsm.Key) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[k.Name]++
	if r.seen[k.Name] <= r.failN {
		return errors.New("transient")
	}
	return nil
}

func (r *countingReconciler) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[name]
}

var configmaps = objects.ByStoreName("configmaps")

func TestRunnerReconcilesExistingAndNewObjectsAndRetriesFailures(t *testing.T) {
	s := controllertest.New()
	c := &controller.Client{Store: s}
	ctx := context.Background()
	if err := c.Create(ctx, configmaps, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	rec := &countingReconciler{seen: map[string]int{}, failN: 2}
	controllertest.Go(t, (&controller.Runner{Name: "t", Reconciler: rec, Store: s}).Run)
	if err := c.Create(ctx, configmaps, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "both objects reconciled past their failures", func() bool { return rec.count("before") >= 3 && rec.count("after") >= 3 })
}

func TestClientCreateStampsAndDeleteMarksBoundPods(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &controller.Client{Store: controllertest.New(), Now: func() time.Time { return now }}
	ctx := context.Background()
	pods := objects.ByStoreName("pods")
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if err := c.Create(ctx, pods, p); err != nil {
		t.Fatal(err)
	}
	if len(p.Name) != len("web-")+5 || p.UID == "" || p.ResourceVersion == "" || !p.CreationTimestamp.Time.Equal(now) {
		t.Fatalf("create did not stamp the pod: %+v", p.ObjectMeta)
	}
	if p.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Fatalf("create did not apply defaults: restartPolicy %q", p.Spec.RestartPolicy)
	}
	bad := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "default"}}
	if err := c.Create(ctx, pods, bad); !errors.Is(err, controller.ErrInvalid) {
		t.Fatalf("invalid pod: err %v, want ErrInvalid", err)
	}
	got, _ := controller.Get[*corev1.Pod](c.State(), pods, "default", p.Name)
	if err := c.Delete(ctx, pods, got, metav1.DeletePropagationBackground); err != nil {
		t.Fatal(err)
	}
	got, _ = controller.Get[*corev1.Pod](c.State(), pods, "default", p.Name)
	if got == nil || got.DeletionTimestamp == nil || *got.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("a bound pod was not marked for graceful deletion: %+v", got)
	}
	// A stale write (revision moved) fails as stale and changes nothing.
	p.Labels = map[string]string{"x": "y"}
	if err := c.Update(ctx, pods, p, false); !controller.IsStale(err) {
		t.Fatalf("stale update: err %v, want a stale error", err)
	}
}

func TestRecorderWritesAndCountsRepeats(t *testing.T) {
	s := controllertest.New()
	c := &controller.Client{Store: s}
	r := controller.NewRecorder(c, "test-controller", nil)
	controllertest.Go(t, r.Run)
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default", UID: "u1"}}
	obj.Kind, obj.APIVersion = "ConfigMap", "v1"
	r.Eventf(obj, corev1.EventTypeNormal, "Did", "did %d things", 3)
	r.Eventf(obj, corev1.EventTypeNormal, "Did", "did %d things", 3)
	controllertest.WaitFor(t, "one event counted twice", func() bool {
		evs, _ := controller.List[*corev1.Event](c.State(), registry.Lookup("", "v1", "events"), "default", nil)
		return len(evs) == 1 && evs[0].Count == 2 && evs[0].Message == "did 3 things" &&
			evs[0].InvolvedObject.Kind == "ConfigMap" && evs[0].Source.Component == "test-controller"
	})
	if n := controller.ExpireEventsBefore(context.Background(), c, time.Now().Add(time.Hour)); n != 1 {
		t.Fatalf("expired %d events, want 1", n)
	}
}

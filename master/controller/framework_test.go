package controller

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/controller/controllertest"
	"skiff/master/objects"
)

func TestQueueDeduplicatesAndRequeuesKeysChangedWhileProcessing(t *testing.T) {
	q := newQueue()
	a, b := fsm.Key{Resource: "x", Name: "a"}, fsm.Key{Resource: "x", Name: "b"}
	q.add(a)
	q.add(b)
	q.add(a)
	if q.len() != 2 {
		t.Fatalf("len = %d, want 2 (a queued once)", q.len())
	}
	k, _ := q.get()
	if k != a {
		t.Fatalf("got %v first, want a", k)
	}
	q.add(a) // changed while processing: must come back once done, not go to a second worker
	if q.len() != 1 {
		t.Fatalf("a key being processed was queued beside itself")
	}
	q.done(a, false)
	if q.len() != 2 {
		t.Fatalf("a dirty key did not come back after done: len %d", q.len())
	}
	q.close()
	if _, ok := q.get(); ok {
		t.Fatal("get on a closed queue returned a key")
	}
}

func TestQueueBacksOffFailuresExponentially(t *testing.T) {
	q := newQueue()
	k := fsm.Key{Resource: "x", Name: "a"}
	for i := range 5 {
		q.add(k)
		got, _ := q.get()
		q.done(got, true)
		if q.failures[k] != i+1 {
			t.Fatalf("failures = %d after %d failures", q.failures[k], i+1)
		}
	}
	// The key comes back on its own after the back-off.
	got, ok := q.get()
	if !ok || got != k {
		t.Fatalf("failed key never came back")
	}
	q.done(got, false)
	if _, ok := q.failures[k]; ok {
		t.Fatal("success did not reset the failure count")
	}
}

// countingReconciler records how often each key was reconciled and fails the first n tries.
type countingReconciler struct {
	mu     sync.Mutex
	seen   map[string]int
	failN  int
	client *Client
}

func (r *countingReconciler) Watches() []string { return []string{"configmaps"} }
func (r *countingReconciler) Keys(_ *fsm.State, ev fsm.Event) []fsm.Key {
	return SelfKey(ev)
}
func (r *countingReconciler) Primary(st *fsm.State) []fsm.Key {
	return AllKeys(st, configmaps)
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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunnerReconcilesExistingAndNewObjectsAndRetriesFailures(t *testing.T) {
	s := controllertest.New()
	c := &Client{Store: s}
	ctx := context.Background()
	if err := c.Create(ctx, configmaps, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	rec := &countingReconciler{seen: map[string]int{}, failN: 2}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); (&Runner{Name: "t", Reconciler: rec, Store: s}).Run(rctx) }()
	if err := c.Create(ctx, configmaps, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both objects reconciled past their failures", func() bool { return rec.count("before") >= 3 && rec.count("after") >= 3 })
	cancel()
	<-done
}

func TestClientCreateStampsAndDeleteMarksBoundPods(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &Client{Store: controllertest.New(), Now: func() time.Time { return now }}
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
	if err := c.Create(ctx, pods, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid pod: err %v, want ErrInvalid", err)
	}
	got, _ := Get[*corev1.Pod](c.State(), pods, "default", p.Name)
	if err := c.Delete(ctx, pods, got, metav1.DeletePropagationBackground); err != nil {
		t.Fatal(err)
	}
	got, _ = Get[*corev1.Pod](c.State(), pods, "default", p.Name)
	if got == nil || got.DeletionTimestamp == nil || *got.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("a bound pod was not marked for graceful deletion: %+v", got)
	}
	// A stale write (revision moved) fails as stale and changes nothing.
	p.Labels = map[string]string{"x": "y"}
	if err := c.Update(ctx, pods, p, false); !IsStale(err) {
		t.Fatalf("stale update: err %v, want a stale error", err)
	}
}

func TestRecorderWritesAndCountsRepeats(t *testing.T) {
	s := controllertest.New()
	c := &Client{Store: s}
	r := NewRecorder(c, "test-controller", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default", UID: "u1"}}
	obj.Kind, obj.APIVersion = "ConfigMap", "v1"
	r.Eventf(obj, corev1.EventTypeNormal, "Did", "did %d things", 3)
	r.Eventf(obj, corev1.EventTypeNormal, "Did", "did %d things", 3)
	waitFor(t, "one event counted twice", func() bool {
		evs, _ := List[*corev1.Event](c.State(), events, "default", nil)
		return len(evs) == 1 && evs[0].Count == 2 && evs[0].Message == "did 3 things" &&
			evs[0].InvolvedObject.Kind == "ConfigMap" && evs[0].Source.Component == "test-controller"
	})
	if n := expireEvents(context.Background(), c, time.Now().Add(time.Hour)); n != 1 {
		t.Fatalf("expired %d events, want 1", n)
	}
}

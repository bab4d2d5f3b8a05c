package controllertest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/registry"
)

// Epoch is where a fake clock starts: a fixed time, so tests read the same on every run.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var pods = registry.Lookup("", "v1", "pods")

// Env is the world around a controller under test: the in-memory store, a Client whose
// clock the test moves by hand, and the moves of the scheduler and of the agents, which
// unit tests make themselves between reconciles. Its methods fail the test on errors a
// test does not expect, and are safe to call while a Runner works the same store.
type Env struct {
	T      testing.TB
	Store  *Store
	Client *controller.Client

	mu   sync.Mutex
	now  time.Time
	live bool
}

// NewEnv returns an empty world whose clock stands at Epoch until the test moves it.
func NewEnv(t testing.TB) *Env {
	e := &Env{T: t, Store: New(), now: Epoch}
	e.Client = &controller.Client{Store: e.Store, Now: e.Now}
	return e
}

// NewLiveEnv returns an empty world on the wall clock, for tests that run controllers
// through a Runner: back-offs, requeues and event names then follow real time.
func NewLiveEnv(t testing.TB) *Env {
	e := NewEnv(t)
	e.live = true
	return e
}

// Now is the world's clock.
func (e *Env) Now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.live {
		return time.Now()
	}
	return e.now
}

// SetNow sets the clock (from then on a fake one, even in a live world).
func (e *Env) SetNow(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now, e.live = now, false
}

// Advance moves the clock forward by d.
func (e *Env) Advance(d time.Duration) { e.SetNow(e.Now().Add(d)) }

// Reconcile runs one pass of r for key, failing the test on an error; a RequeueAfter is
// returned as its delay (zero when none was asked for).
func (e *Env) Reconcile(r controller.Reconciler, key fsm.Key) time.Duration {
	e.T.Helper()
	err := r.Reconcile(context.Background(), key)
	var later controller.RequeueAfter
	if errors.As(err, &later) {
		return time.Duration(later)
	}
	if err != nil {
		e.T.Fatalf("reconcile %s: %v", key, err)
	}
	return 0
}

// Create stores obj as a user would, failing the test if it cannot.
func (e *Env) Create(r *registry.Resource, obj runtime.Object) {
	e.T.Helper()
	if err := e.Client.Create(context.Background(), r, obj); err != nil {
		e.T.Fatalf("create %s %s: %v", r.Kind, objects.Accessor(obj).GetName(), err)
	}
}

// Update replaces obj as a user would (a spec change when bumpGeneration is set), failing
// the test if it cannot.
func (e *Env) Update(r *registry.Resource, obj runtime.Object, bumpGeneration bool) {
	e.T.Helper()
	if err := e.Client.Update(context.Background(), r, obj, bumpGeneration); err != nil {
		e.T.Fatalf("update %s %s: %v", r.Kind, objects.Accessor(obj).GetName(), err)
	}
}

// CreatePod stores p as a user would, then reports the status p carries as its agent
// would: a create itself leaves a pod Pending, as the API server does.
func (e *Env) CreatePod(p *corev1.Pod) {
	e.T.Helper()
	status := p.Status
	e.Create(pods, p)
	p.Status = status
	e.Update(pods, p, false)
}

// Get returns namespace/name of r, failing the test when it is missing.
func Get[T runtime.Object](e *Env, r *registry.Resource, namespace, name string) T {
	e.T.Helper()
	obj, err := controller.Get[T](e.Client.State(), r, namespace, name)
	if err == nil && e.Client.State().Get(objects.Key(r, namespace, name)) == nil {
		err = errors.New("not found")
	}
	if err != nil {
		e.T.Fatalf("get %s %s/%s: %v", r.Kind, namespace, name, err)
	}
	return obj
}

// Change reads namespace/name of r, applies mutate and writes it back as a user's change
// of its spec would be (metadata.generation bumped).
func Change[T runtime.Object](e *Env, r *registry.Resource, namespace, name string, mutate func(T)) {
	e.T.Helper()
	obj := Get[T](e, r, namespace, name)
	mutate(obj)
	e.Update(r, obj, true)
}

// Pods lists the pods of namespace (every namespace when empty).
func (e *Env) Pods(namespace string) []*corev1.Pod {
	e.T.Helper()
	ps, err := controller.List[*corev1.Pod](e.Client.State(), pods, namespace, nil)
	if err != nil {
		e.T.Fatal(err)
	}
	return ps
}

// Pod returns namespace/name, nil if there is none.
func (e *Env) Pod(namespace, name string) *corev1.Pod {
	e.T.Helper()
	p, err := controller.Get[*corev1.Pod](e.Client.State(), pods, namespace, name)
	if err != nil {
		e.T.Fatal(err)
	}
	return p
}

// WritePod stores p as its scheduler or agent would. A write that lost a race (with a
// controller under a Runner) just loses, as it would against the API server.
func (e *Env) WritePod(p *corev1.Pod) {
	e.T.Helper()
	if err := e.Client.Update(context.Background(), pods, p, false); err != nil && !controller.IsStale(err) {
		e.T.Fatalf("update pod %s: %v", p.Name, err)
	}
}

// RemovePod removes p from the store, as its agent does once the pod has stopped.
func (e *Env) RemovePod(p *corev1.Pod) {
	e.T.Helper()
	rev, _ := objects.ParseRV(p.ResourceVersion)
	if _, err := e.Client.Commit(context.Background(), fsm.Delete(objects.Key(pods, p.Namespace, p.Name), rev)); err != nil && !controller.IsStale(err) {
		e.T.Fatalf("remove pod %s: %v", p.Name, err)
	}
}

// Schedule binds every unbound pod not being deleted to the node nodeFor names for it (a
// pod it names no node for stays unbound), as the scheduler would.
func (e *Env) Schedule(nodeFor func(*corev1.Pod) string) {
	e.T.Helper()
	for _, p := range e.Pods("") {
		if p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
			continue
		}
		if n := nodeFor(p); n != "" {
			p.Spec.NodeName = n
			e.WritePod(p)
		}
	}
}

// OnNode is a Schedule policy binding every pod to one node.
func OnNode(node string) func(*corev1.Pod) string {
	return func(*corev1.Pod) string { return node }
}

// Start marks p Running and Ready since now and stores it, as its agent reports a pod whose
// containers started and pass their readiness probes.
func (e *Env) Start(p *corev1.Pod) {
	e.T.Helper()
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(e.Now())}}
	e.WritePod(p)
}

// Agent plays every node's agent once: pods being deleted are removed (their containers
// stopped at once), bound pending pods are started.
func (e *Env) Agent() {
	e.T.Helper()
	for _, p := range e.Pods("") {
		switch {
		case p.DeletionTimestamp != nil:
			e.RemovePod(p)
		case p.Spec.NodeName != "" && p.Status.Phase == corev1.PodPending:
			e.Start(p)
		}
	}
}

// Go runs each routine (a Runner's or a Recorder's Run) in a goroutine until the test
// ends; then it cancels them and waits for all to return, so none outlives its test.
func Go(t testing.TB, routines ...func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range routines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx)
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// WaitFor polls cond until it holds, failing the test after a generous deadline: tests
// of controllers under a Runner wait on conditions, never on wall-clock durations.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

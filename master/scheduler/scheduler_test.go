package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/objects"
	"skiff/master/registry"
)

var eventsResource = registry.Lookup("", "v1", "events")

// env is an in-memory store with a scheduler running against it.
type env struct {
	t      *testing.T
	store  *controllertest.Store
	client *controller.Client
	cancel context.CancelFunc
	done   sync.WaitGroup
}

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newEnv(t *testing.T) *env {
	store := controllertest.New()
	// A fake clock that moves a nanosecond per reading: event names (which take the time)
	// stay distinct.
	var ticks atomic.Int64
	now := func() time.Time { return start.Add(time.Duration(ticks.Add(1))) }
	return &env{t: t, store: store, client: &controller.Client{Store: store, Now: now}}
}

// run starts the scheduler (and an event recorder) in goroutines, stopped at cleanup.
func (e *env) run(opts Options) {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	rec := controller.NewRecorder(e.client, "default-scheduler", nil)
	s := New(e.client, rec, opts, nil)
	e.done.Add(2)
	go func() { defer e.done.Done(); rec.Run(ctx) }()
	go func() { defer e.done.Done(); s.Run(ctx) }()
	e.t.Cleanup(e.stop)
}

func (e *env) stop() {
	e.cancel()
	e.done.Wait()
}

func (e *env) create(objs ...any) {
	e.t.Helper()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.Node:
			err = e.client.Create(context.Background(), nodesResource, o)
		case *corev1.Pod:
			err = e.client.Create(context.Background(), podsResource, o)
		}
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) pods() []*corev1.Pod {
	e.t.Helper()
	pods, err := controller.List[*corev1.Pod](e.client.State(), podsResource, "", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return pods
}

func (e *env) pod(name string) *corev1.Pod {
	e.t.Helper()
	p, err := controller.Get[*corev1.Pod](e.client.State(), podsResource, "default", name)
	if err != nil || p == nil {
		e.t.Fatalf("pod %s: %v", name, err)
	}
	return p
}

// events returns the events about pods with reason, by pod name.
func (e *env) events(reason string) map[string]*corev1.Event {
	e.t.Helper()
	evs, err := controller.List[*corev1.Event](e.client.State(), eventsResource, "", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]*corev1.Event{}
	for _, ev := range evs {
		if ev.Reason == reason {
			out[ev.InvolvedObject.Name] = ev
		}
	}
	return out
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) allBound() bool {
	for _, p := range e.pods() {
		if p.Spec.NodeName == "" {
			return false
		}
	}
	return true
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// bindings counts, per pod, the writes that gave it a node, and reports any write that
// moved a bound pod, from a watch opened before the scheduler starts.
type bindings struct {
	mu    sync.Mutex
	count map[string]int
	moved []string
	stop  func()
}

func watchBindings(t *testing.T, f *fsm.FSM) *bindings {
	w, err := f.Watch(fsm.WatchOptions{Resource: "pods", From: f.Revision()})
	if err != nil {
		t.Fatal(err)
	}
	b := &bindings{count: map[string]int{}, stop: w.Stop}
	go func() {
		for ev := range w.Events() {
			if ev.Prev == nil {
				continue
			}
			before, after := ev.Prev.Meta.Fields["spec.nodeName"], ev.Record.Meta.Fields["spec.nodeName"]
			b.mu.Lock()
			switch {
			case before == "" && after != "":
				b.count[ev.Record.Key.Name]++
			case before != after:
				b.moved = append(b.moved, ev.Record.Key.Name)
			}
			b.mu.Unlock()
		}
	}()
	t.Cleanup(w.Stop)
	return b
}

func TestSchedulerBindsEveryPodOnce(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.create(testNode(fmt.Sprintf("n%d", i), allocatable(corev1.ResourceCPU, "1")))
	}
	for i := range 24 {
		owner := fmt.Sprintf("rs%d", i%3)
		e.create(testPod(fmt.Sprintf("p%02d", i), ownedBy(owner), request(corev1.ResourceCPU, "200m")))
	}
	b := watchBindings(t, e.store.FSM())
	e.run(Options{})
	e.waitFor("every pod bound", e.allBound)

	used := map[string]int64{}
	for _, p := range e.pods() {
		q := p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
		used[p.Spec.NodeName] += q.MilliValue()
		if c := podCondition(p, corev1.PodScheduled); c == nil || c.Status != corev1.ConditionTrue {
			t.Errorf("pod %s: PodScheduled = %+v", p.Name, c)
		}
	}
	for node, m := range used {
		if m > 1000 {
			t.Errorf("node %s overcommitted: %dm of 1000m requested", node, m)
		}
	}
	e.waitFor("a Scheduled event for every pod", func() bool { return len(e.events("Scheduled")) == 24 })
	if ev := e.events("Scheduled")["p00"]; ev.Type != corev1.EventTypeNormal || ev.Message != "Successfully assigned default/p00 to "+e.pod("p00").Spec.NodeName {
		t.Errorf("Scheduled event: %s %q", ev.Type, ev.Message)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range e.pods() {
		if b.count[p.Name] != 1 {
			t.Errorf("pod %s was given a node %d times", p.Name, b.count[p.Name])
		}
	}
	if len(b.moved) > 0 {
		t.Errorf("bound pods moved: %v", b.moved)
	}
}

func TestSchedulerUnschedulableUntilANodeFits(t *testing.T) {
	e := newEnv(t)
	e.create(testNode("n1", cordoned))
	e.create(testPod("p"))
	e.run(Options{RetryInterval: 50 * time.Millisecond})

	want := "0/1 nodes are available: 1 node(s) were unschedulable."
	e.waitFor("PodScheduled=False", func() bool {
		c := podCondition(e.pod("p"), corev1.PodScheduled)
		return c != nil && c.Status == corev1.ConditionFalse
	})
	c := podCondition(e.pod("p"), corev1.PodScheduled)
	if c.Reason != corev1.PodReasonUnschedulable || c.Message != want {
		t.Errorf("condition %s %q, want Unschedulable %q", c.Reason, c.Message, want)
	}
	rv := e.pod("p").ResourceVersion
	// Retries record the event again (the recorder counts repeats) but leave the
	// condition, which has not changed, unwritten.
	e.waitFor("a second FailedScheduling", func() bool {
		ev := e.events("FailedScheduling")["p"]
		return ev != nil && ev.Count >= 2
	})
	if ev := e.events("FailedScheduling")["p"]; ev.Type != corev1.EventTypeWarning || ev.Message != want {
		t.Errorf("FailedScheduling event: %s %q", ev.Type, ev.Message)
	}
	if got := e.pod("p").ResourceVersion; got != rv {
		t.Errorf("pod rewritten on retry: resourceVersion %s → %s", rv, got)
	}

	e.create(testNode("n2"))
	e.waitFor("pod bound to the new node", func() bool { return e.pod("p").Spec.NodeName == "n2" })
	e.waitFor("Scheduled event", func() bool { return e.events("Scheduled")["p"] != nil })
	if c := podCondition(e.pod("p"), corev1.PodScheduled); c.Status != corev1.ConditionTrue || c.Reason != "" || c.Message != "" {
		t.Errorf("condition after binding: %+v", c)
	}
}

func TestSchedulerRetriesWhenAPodFinishes(t *testing.T) {
	e := newEnv(t)
	e.create(testNode("n1", allocatable(corev1.ResourceCPU, "1")))
	e.create(testPod("big", request(corev1.ResourceCPU, "800m")))
	e.run(Options{})
	e.waitFor("big bound", func() bool { return e.pod("big").Spec.NodeName == "n1" })
	e.create(testPod("next", request(corev1.ResourceCPU, "500m")))
	e.waitFor("next unschedulable", func() bool {
		c := podCondition(e.pod("next"), corev1.PodScheduled)
		return c != nil && c.Message == "0/1 nodes are available: 1 Insufficient cpu."
	})
	big := e.pod("big")
	big.Status.Phase = corev1.PodSucceeded
	if err := e.client.Update(context.Background(), podsResource, big, false); err != nil {
		t.Fatal(err)
	}
	e.waitFor("next bound once big finished", func() bool { return e.pod("next").Spec.NodeName == "n1" })
}

func TestSchedulerCountsPodsBoundByOthers(t *testing.T) {
	e := newEnv(t)
	e.create(testNode("n1", allocatable(corev1.ResourceCPU, "1")))
	e.create(testPod("static", onNode("n1"), request(corev1.ResourceCPU, "800m")))
	e.create(testPod("other", func(p *corev1.Pod) { p.Spec.SchedulerName = "my-scheduler" }))
	e.create(testPod("p", request(corev1.ResourceCPU, "500m")))
	e.run(Options{})
	e.waitFor("p unschedulable", func() bool {
		c := podCondition(e.pod("p"), corev1.PodScheduled)
		return c != nil && c.Message == "0/1 nodes are available: 1 Insufficient cpu."
	})
	// Deleting the pod frees its share.
	static := e.pod("static")
	if _, err := e.client.Commit(context.Background(), fsm.Delete(objects.Key(podsResource, "default", "static"), 0)); err != nil {
		t.Fatal(err)
	}
	e.waitFor("p bound", func() bool { return e.pod("p").Spec.NodeName == "n1" })
	if o := e.pod("other"); o.Spec.NodeName != "" || len(o.Status.Conditions) > 0 {
		t.Errorf("pod for another scheduler touched: %+v", o.Status)
	}
	_ = static
}

func TestSchedulerRetriesFailedBinds(t *testing.T) {
	e := newEnv(t)
	e.create(testNode("n1"))
	var mu sync.Mutex
	failed := 0
	e.store.Fail = func(txn *fsm.Txn) error {
		mu.Lock()
		defer mu.Unlock()
		if txn.Ops[0].Key.Resource == "pods" && txn.Ops[0].Meta.Fields["spec.nodeName"] != "" && failed == 0 {
			failed++
			return errors.New("leadership lost")
		}
		return nil
	}
	e.create(testPod("p"))
	e.run(Options{})
	e.waitFor("p bound after a failed bind", func() bool { return e.pod("p").Spec.NodeName == "n1" })
	mu.Lock()
	defer mu.Unlock()
	if failed != 1 {
		t.Errorf("%d binds failed, want 1", failed)
	}
}

func TestSchedulerSurvivesWatchReset(t *testing.T) {
	e := newEnv(t)
	e.create(testNode("n1", allocatable(corev1.ResourceCPU, "1")))
	e.create(testPod("a", request(corev1.ResourceCPU, "600m")))
	e.run(Options{})
	e.waitFor("a bound", func() bool { return e.pod("a").Spec.NodeName == "n1" })
	e.waitFor("a's event written", func() bool { return e.events("Scheduled")["a"] != nil })

	// A snapshot restore ends every watch; the scheduler rebuilds its cache from the state.
	var buf bytes.Buffer
	f := e.store.FSM()
	if err := fsm.WriteSnapshot(&buf, f.State()); err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	e.create(testPod("b", request(corev1.ResourceCPU, "600m")))
	e.waitFor("b unschedulable: a still counts after the rebuild", func() bool {
		c := podCondition(e.pod("b"), corev1.PodScheduled)
		return c != nil && c.Message == "0/1 nodes are available: 1 Insufficient cpu."
	})
	e.create(testNode("n2", allocatable(corev1.ResourceCPU, "1")))
	e.waitFor("b bound to n2", func() bool { return e.pod("b").Spec.NodeName == "n2" })
}

// TestRequestsParsedAsKubernetes guards the quantity conversions the filters rely on.
func TestRequestsParsedAsKubernetes(t *testing.T) {
	r := fromList(corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("1.5"),
		corev1.ResourceMemory:           resource.MustParse("1Gi"),
		corev1.ResourceEphemeralStorage: resource.MustParse("2G"),
		corev1.ResourcePods:             resource.MustParse("110"),
		"hugepages-2Mi":                 resource.MustParse("4Mi"),
	})
	if r.milliCPU != 1500 || r.memory != 1<<30 || r.ephemeral != 2e9 || r.scalar["hugepages-2Mi"] != 4<<20 || len(r.scalar) != 1 {
		t.Errorf("converted %+v", r)
	}
}

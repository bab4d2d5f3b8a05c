package controller

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/gossip"
	"skiff/master/objects"
	"skiff/raft/rafttest"
)

// fakeMembers is the in-memory twin of the gossip pool.
type fakeMembers struct {
	mu      sync.Mutex
	members []gossip.Member
	changes chan struct{}
}

func (f *fakeMembers) Members() []gossip.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]gossip.Member(nil), f.members...)
}

func (f *fakeMembers) Changes() <-chan struct{} { return f.changes }

func (f *fakeMembers) set(states map[string]gossip.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members = nil
	for name, s := range states {
		f.members = append(f.members, gossip.Member{Name: name, State: s, Meta: gossip.Meta{Role: gossip.RoleAgent, Name: name}})
	}
	f.members = append(f.members, gossip.Member{Name: "m1", State: gossip.StateAlive, Meta: gossip.Meta{Role: gossip.RoleMaster, Name: "m1"}})
}

type lifecycleFixture struct {
	t     *testing.T
	store *rafttest.Cluster
	gm    *fakeMembers
	now   time.Time
	c     *NodeLifecycle
}

func newLifecycleFixture(t *testing.T) *lifecycleFixture {
	f := &lifecycleFixture{t: t, store: rafttest.New(t, rafttest.Options{Size: 1}), gm: &fakeMembers{changes: make(chan struct{}, 1)}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.c = &NodeLifecycle{Store: f.store.Node(0), Members: f.gm, EvictionTimeout: 5 * time.Minute, Now: func() time.Time { return f.now }}
	return f
}

func (f *lifecycleFixture) create(r string, obj interface{ GetName() string }, value []byte, meta fsm.Meta, ns string) {
	f.t.Helper()
	res, err := f.store.Node(0).Propose(context.Background(), &fsm.Txn{Ops: []fsm.Op{fsm.Create(fsm.Key{Resource: r, Namespace: ns, Name: obj.GetName()}, value, meta)}})
	if err != nil || res.Err != nil {
		f.t.Fatalf("create %s: %v %v", obj.GetName(), err, res.Err)
	}
}

func (f *lifecycleFixture) addNode(name string) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	value, meta, err := objects.Encode(nodes, n)
	if err != nil {
		f.t.Fatal(err)
	}
	f.create(objects.StoreResource(nodes), n, value, meta, "")
}

func (f *lifecycleFixture) addPod(name, node string) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.PodSpec{NodeName: node}}
	value, meta, err := objects.Encode(pods, p)
	if err != nil {
		f.t.Fatal(err)
	}
	f.create(objects.StoreResource(pods), p, value, meta, "default")
}

func (f *lifecycleFixture) reconcile() uint64 {
	f.t.Helper()
	before := f.store.Node(0).FSM().Revision()
	if err := f.c.Reconcile(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	return f.store.Node(0).FSM().Revision() - before
}

func (f *lifecycleFixture) node(name string) *corev1.Node {
	rec := f.store.Node(0).FSM().State().Get(objects.Key(nodes, "", name))
	obj, err := objects.Decode(nodes, rec)
	if err != nil {
		f.t.Fatal(err)
	}
	return obj.(*corev1.Node)
}

func (f *lifecycleFixture) podExists(name string) bool {
	return f.store.Node(0).FSM().State().Get(objects.Key(pods, "default", name)) != nil
}

func TestNodeLifecycleWritesOnlyTransitions(t *testing.T) {
	f := newLifecycleFixture(t)
	f.addNode("n1")
	f.addNode("n2")
	f.gm.set(map[string]gossip.State{"n1": gossip.StateAlive, "n2": gossip.StateAlive})
	if w := f.reconcile(); w != 0 {
		t.Fatalf("healthy cluster: %d writes", w)
	}
	f.gm.set(map[string]gossip.State{"n1": gossip.StateDead, "n2": gossip.StateAlive})
	if w := f.reconcile(); w != 1 {
		t.Fatalf("death: %d writes, want 1", w)
	}
	n := f.node("n1")
	if c := readyCondition(n); c == nil || c.Status != corev1.ConditionUnknown {
		t.Fatalf("dead node condition: %+v", n.Status.Conditions)
	}
	if len(n.Spec.Taints) != 2 || n.Spec.Taints[0].Key != corev1.TaintNodeUnreachable {
		t.Fatalf("taints: %+v", n.Spec.Taints)
	}
	for i := 0; i < 3; i++ {
		if w := f.reconcile(); w != 0 {
			t.Fatalf("still dead: %d writes on pass %d", w, i)
		}
	}
	f.gm.set(map[string]gossip.State{"n1": gossip.StateAlive, "n2": gossip.StateAlive})
	if w := f.reconcile(); w != 1 {
		t.Fatalf("recovery: %d writes, want 1", w)
	}
	n = f.node("n1")
	if c := readyCondition(n); c.Status != corev1.ConditionTrue || len(n.Spec.Taints) != 0 {
		t.Fatalf("recovered node: %+v %+v", n.Status.Conditions, n.Spec.Taints)
	}
	// Left is as unreachable as dead.
	f.gm.set(map[string]gossip.State{"n1": gossip.StateAlive, "n2": gossip.StateLeft})
	if w := f.reconcile(); w != 1 || readyCondition(f.node("n2")).Status != corev1.ConditionUnknown {
		t.Fatal("a node that left was not marked unknown")
	}
}

// A new leader whose gossip view has not heard of a node yet leaves it alone.
func TestNodeLifecycleIgnoresNodesGossipDoesNotKnow(t *testing.T) {
	f := newLifecycleFixture(t)
	f.addNode("n1")
	f.addNode("n2")
	f.gm.set(map[string]gossip.State{"n2": gossip.StateAlive})
	if w := f.reconcile(); w != 0 {
		t.Fatalf("unknown node changed: %d writes", w)
	}
	if readyCondition(f.node("n1")).Status != corev1.ConditionTrue {
		t.Fatal("a node gossip has not heard of was marked down")
	}
}

func TestNodeLifecycleEvictsAfterTimeoutUnlessAllAgentsAreGone(t *testing.T) {
	f := newLifecycleFixture(t)
	f.addNode("n1")
	f.addNode("n2")
	f.addPod("a", "n1")
	f.addPod("b", "n1")
	f.addPod("c", "n2")
	f.gm.set(map[string]gossip.State{"n1": gossip.StateDead, "n2": gossip.StateAlive})
	f.reconcile()
	f.now = f.now.Add(4 * time.Minute)
	f.reconcile()
	if !f.podExists("a") || !f.podExists("b") {
		t.Fatal("pods evicted before the timeout")
	}
	// Every agent unreachable: no eviction, however long.
	f.gm.set(map[string]gossip.State{"n1": gossip.StateDead, "n2": gossip.StateDead})
	f.reconcile()
	f.now = f.now.Add(time.Hour)
	f.reconcile()
	if !f.podExists("a") || !f.podExists("c") {
		t.Fatal("pods evicted while every agent was unreachable")
	}
	f.gm.set(map[string]gossip.State{"n1": gossip.StateDead, "n2": gossip.StateAlive})
	f.reconcile() // n2 back
	f.reconcile()
	if f.podExists("a") || f.podExists("b") {
		t.Fatal("pods on a node unreachable past the timeout were not evicted")
	}
	if !f.podExists("c") {
		t.Fatal("a pod on a healthy node was evicted")
	}
}

// Run reacts to gossip changes and stops with its context.
func TestNodeLifecycleRunFollowsChanges(t *testing.T) {
	f := newLifecycleFixture(t)
	f.addNode("n1")
	f.gm.set(map[string]gossip.State{"n1": gossip.StateAlive})
	f.c.Resync = time.Hour // only gossip changes wake it
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.c.Run(ctx); close(done) }()
	f.gm.set(map[string]gossip.State{"n1": gossip.StateDead})
	f.gm.changes <- struct{}{}
	deadline := time.Now().Add(20 * time.Second)
	for readyCondition(f.node("n1")).Status != corev1.ConditionUnknown {
		if time.Now().After(deadline) {
			t.Fatal("Run did not react to a gossip change")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
}

// Pods on an unreachable node stop counting as Ready, once; pods elsewhere are untouched.
func TestNodeLifecycleMarksPodsOfUnreachableNodesNotReady(t *testing.T) {
	f := newLifecycleFixture(t)
	f.addNode("n1")
	f.addNode("n2")
	for _, p := range []struct{ name, node string }{{"a", "n1"}, {"b", "n2"}} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: "default"}, Spec: corev1.PodSpec{NodeName: p.node},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
		value, meta, err := objects.Encode(pods, pod)
		if err != nil {
			t.Fatal(err)
		}
		f.create(objects.StoreResource(pods), pod, value, meta, "default")
	}
	f.gm.set(map[string]gossip.State{"n1": gossip.StateDead, "n2": gossip.StateAlive})
	f.reconcile() // the node
	if w := f.reconcile(); w != 1 {
		t.Fatalf("marking the unreachable node's pod: %d writes, want 1", w)
	}
	if w := f.reconcile(); w != 0 {
		t.Fatalf("pods already marked: %d writes", w)
	}
	ready := func(name string) corev1.ConditionStatus {
		rec := f.store.Node(0).FSM().State().Get(objects.Key(pods, "default", name))
		obj, _ := objects.Decode(pods, rec)
		for _, c := range obj.(*corev1.Pod).Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status
			}
		}
		return ""
	}
	if ready("a") != corev1.ConditionFalse || ready("b") != corev1.ConditionTrue {
		t.Fatalf("Ready: a=%s (unreachable node), b=%s (healthy node)", ready("a"), ready("b"))
	}
}

package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/registry"
	"skiff/master/scheduler"
	"skiff/raft/rafttest"
)

// Scheduler figures (DESIGN.md §8 S1). kube-scheduler's CI (scheduler_perf) fails below
// 680 pods/s for 5,000 nodes and 10,000 pods, which is the figure printed beside skiff's.
const (
	schedTargetPerSec = 2000
	kubeCIPerSec      = 680
	schedOwners       = 100 // ReplicaSets the pods belong to, so owner spreading works
	schedZones        = 3
)

var (
	benchNodes = registry.Lookup("", "v1", "nodes")
	benchPods  = registry.Lookup("", "v1", "pods")
)

// benchNode is a Ready node like an agent registers: 8 CPUs, 32 GiB, 110 pods, in one of
// three zones.
func benchNode(i int) *corev1.Node {
	name := fmt.Sprintf("node-%05d", i)
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("8"),
		corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			corev1.LabelHostname: name, corev1.LabelTopologyZone: fmt.Sprintf("zone-%d", i%schedZones),
		}},
		Status: corev1.NodeStatus{
			Capacity: alloc, Allocatable: alloc.DeepCopy(),
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

// benchPod is a pending pod of one of the bench's ReplicaSets, asking for 100m and 128 MiB.
func benchPod(i int) *corev1.Pod {
	yes := true
	owner := i % schedOwners
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("web-%d-%06d", owner, i), Namespace: "default",
			Labels: map[string]string{"app": fmt.Sprintf("web-%d", owner)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: fmt.Sprintf("web-%d", owner),
				UID: types.UID(fmt.Sprintf("rs-uid-%d", owner)), Controller: &yes}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.local/web:1",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
			}},
		}}},
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// spread summarises how many pods each node got.
type spread struct {
	lo, hi int
	hist   map[int]int // nodes by pod count
}

func spreadOf(perNode map[string]int, nodes int) spread {
	s := spread{lo: -1, hist: map[int]int{}}
	for i := range nodes {
		n := perNode[benchNode(i).Name]
		s.hist[n]++
		if s.lo < 0 || n < s.lo {
			s.lo = n
		}
		s.hi = max(s.hi, n)
	}
	return s
}

func (s spread) String() string {
	var parts []string
	for n := s.lo; n <= s.hi; n++ {
		if s.hist[n] > 0 {
			parts = append(parts, fmt.Sprintf("%d nodes with %d", s.hist[n], n))
		}
	}
	return fmt.Sprintf("max−min %d pods per node (%s)", s.hi-s.lo, strings.Join(parts, ", "))
}

// placeInMemory places pods one after the other on a cache of nodes, committing each to
// the cache only: the placement loop alone, with no store and no Raft.
func placeInMemory(tb testing.TB, nodes, pods int) (perSec float64, sp spread) {
	c := scheduler.NewCache(scheduler.Options{Seed: 1})
	for i := range nodes {
		c.SetNode(benchNode(i))
	}
	infos := make([]*scheduler.PodInfo, pods)
	for i := range infos {
		infos[i] = scheduler.NewPodInfo(benchPod(i))
	}
	perNode := map[string]int{}
	start := time.Now()
	for _, p := range infos {
		node, err := c.Place(p)
		if err != nil {
			tb.Fatal(err)
		}
		c.Assume(p, node)
		perNode[node]++
	}
	perSec = float64(pods) / time.Since(start).Seconds()
	return perSec, spreadOf(perNode, nodes)
}

// BenchmarkSchedulerPlacement measures placements per second of the placement loop over
// the scheduler's cache, with 1,000 and 5,000 nodes.
func BenchmarkSchedulerPlacement(b *testing.B) {
	rep := &report{title: "scheduler placement in memory (filters, scores, assume; no store)"}
	for _, nodes := range []int{1000, 5000} {
		pods := 2 * nodes
		perSec, sp := placeInMemory(b, nodes, pods)
		rep.add("%5d nodes, %5d pods: %6.0f placements/s; %s", nodes, pods, perSec, sp)
		b.ReportMetric(perSec, fmt.Sprintf("placements/s-%dnodes", nodes))
	}
	fmt.Fprint(os.Stdout, rep)
}

// raftRun is the outcome of scheduling through Raft.
type raftRun struct {
	elapsed    time.Duration
	bound      int
	entries    uint64
	spread     spread
	overcommit []string
}

// scheduleThroughRaft writes nodes Ready nodes and pods pending pods into a 3-node Raft
// cluster (in batched transactions), runs the scheduler on the leader and waits until the
// leader's FSM shows every pod bound. Entries counts the Raft log entries the leader
// applied meanwhile: binds, and the scheduler's events riding along.
func scheduleThroughRaft(tb testing.TB, nodes, pods int) raftRun {
	c := rafttest.New(tb, rafttest.Options{Size: 3})
	leader := c.Node(c.WaitLeader())
	client := &controller.Client{Store: controller.LeaderStore{Node: leader}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	create := func(r *registry.Resource, n int, obj func(int) runtime.Object) {
		const batch = 500
		for lo := 0; lo < n; lo += batch {
			var ops []fsm.Op
			for i := lo; i < min(lo+batch, n); i++ {
				op, err := client.CreateOp(r, obj(i))
				if err != nil {
					tb.Fatal(err)
				}
				ops = append(ops, op)
			}
			if _, err := client.Commit(ctx, ops...); err != nil {
				tb.Fatal(err)
			}
		}
	}
	create(benchNodes, nodes, func(i int) runtime.Object { return benchNode(i) })
	create(benchPods, pods, func(i int) runtime.Object { return benchPod(i) })

	f := leader.FSM()
	pending := func() int {
		recs, _ := f.State().List(fsm.ListOptions{Resource: objects.StoreResource(benchPods), Field: "spec.nodeName", FieldValue: ""})
		return len(recs)
	}
	if n := pending(); n != pods {
		tb.Fatalf("%d pods pending before the scheduler starts, want %d", n, pods)
	}
	rec := controller.NewRecorder(client, "default-scheduler", nil)
	s := scheduler.New(client, rec, scheduler.Options{}, nil)
	done := make(chan struct{}, 2)
	startRev := f.Revision()
	start := time.Now()
	go func() { rec.Run(ctx); done <- struct{}{} }()
	go func() { s.Run(ctx); done <- struct{}{} }()
	deadline := start.Add(5 * time.Minute)
	for pending() > 0 {
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d pods still pending after 5 minutes", pending(), pods)
		}
		time.Sleep(10 * time.Millisecond)
	}
	run := raftRun{elapsed: time.Since(start), entries: f.Revision() - startRev}
	cancel()
	<-done
	<-done

	// Check the outcome from the store: every pod bound, no node given more than it has.
	recs, _ := f.State().List(fsm.ListOptions{Resource: objects.StoreResource(benchPods)})
	perNode := map[string]int{}
	for _, r := range recs {
		if n := r.Meta.Fields["spec.nodeName"]; n != "" {
			perNode[n]++
			run.bound++
		}
	}
	alloc := benchNode(0).Status.Allocatable
	req := benchPod(0).Spec.Containers[0].Resources.Requests
	for node, n := range perNode {
		if int64(n) > alloc.Pods().Value() || int64(n)*req.Cpu().MilliValue() > alloc.Cpu().MilliValue() ||
			int64(n)*req.Memory().Value() > alloc.Memory().Value() {
			run.overcommit = append(run.overcommit, fmt.Sprintf("%s (%d pods)", node, n))
		}
	}
	run.spread = spreadOf(perNode, nodes)
	return run
}

// BenchmarkSchedulerRaft measures S1: pods scheduled and bound per second through a real
// 3-node Raft cluster, 5,000 nodes and 10,000 pending pods by default
// (SKIFF_BENCH_SCHED_NODES, SKIFF_BENCH_SCHED_PODS), with the Raft entries the binds took
// and how evenly they spread.
func BenchmarkSchedulerRaft(b *testing.B) {
	nodes := envInt("SKIFF_BENCH_SCHED_NODES", 5000)
	pods := envInt("SKIFF_BENCH_SCHED_PODS", 10000)
	run := scheduleThroughRaft(b, nodes, pods)
	perSec := float64(run.bound) / run.elapsed.Seconds()
	rep := &report{title: fmt.Sprintf("scheduler through Raft: %d Ready nodes, %d pending pods, 3 replicas on loopback", nodes, pods)}
	rep.add("S1 bound %d pods in %s: %.0f pods/s (target ≥ %d/s; kube-scheduler CI threshold %d pods/s = %.1f×)",
		run.bound, run.elapsed.Round(time.Millisecond), perSec, schedTargetPerSec, kubeCIPerSec, perSec/kubeCIPerSec)
	rep.add("Raft entries applied meanwhile: %d → %.1f pods per entry (binds are batched; events ride along)",
		run.entries, float64(run.bound)/float64(max(run.entries, 1)))
	rep.add("spread: %s", run.spread)
	if len(run.overcommit) > 0 {
		rep.add("OVERCOMMITTED: %v", run.overcommit)
	}
	fmt.Fprint(os.Stdout, rep)
	b.ReportMetric(perSec, "S1-pods/s")
	b.ReportMetric(float64(run.bound)/float64(max(run.entries, 1)), "pods/entry")
}

// TestSchedulerThroughRaft runs the S1 path at a tiny size as an ordinary test, for
// correctness only: every pod bound, no node overcommitted.
func TestSchedulerThroughRaft(t *testing.T) {
	run := scheduleThroughRaft(t, 20, 300)
	if run.bound != 300 {
		t.Errorf("%d of 300 pods bound", run.bound)
	}
	if len(run.overcommit) > 0 {
		t.Errorf("overcommitted nodes: %v", run.overcommit)
	}
}

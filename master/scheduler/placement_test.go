package scheduler

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// placeAll places and assumes pods one after the other, as the scheduler does, and returns
// how many landed on each node and the errors of those that did not.
func placeAll(t *testing.T, c *Cache, pods ...*corev1.Pod) (map[string]int, []error) {
	t.Helper()
	perNode := map[string]int{}
	var errs []error
	for _, pod := range pods {
		p := NewPodInfo(pod)
		node, err := c.Place(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.Assume(p, node)
		perNode[node]++
	}
	return perNode, errs
}

func replicas(n int, owner string, opts ...func(*corev1.Pod)) []*corev1.Pod {
	var pods []*corev1.Pod
	for i := range n {
		pods = append(pods, testPod(fmt.Sprintf("%s-%d", owner, i), append([]func(*corev1.Pod){ownedBy(owner), podLabel("app", owner)}, opts...)...))
	}
	return pods
}

func TestPlacementSpreadsReplicasOverNodes(t *testing.T) {
	c := cacheWith([]*corev1.Node{testNode("n1"), testNode("n2")})
	got, errs := placeAll(t, c, replicas(6, "web")...)
	if len(errs) > 0 || got["n1"] != 3 || got["n2"] != 3 {
		t.Fatalf("placed %v (errors %v), want 3 on each node", got, errs)
	}
}

func TestPlacementSpreadsReplicasOverZones(t *testing.T) {
	c := cacheWith([]*corev1.Node{testNode("a1", zone("a")), testNode("a2", zone("a")), testNode("b1", zone("b")), testNode("b2", zone("b"))})
	got, errs := placeAll(t, c, replicas(4, "web")...)
	if len(errs) > 0 || len(got) != 4 {
		t.Fatalf("placed %v (errors %v), want one per node", got, errs)
	}
}

func TestPlacementHardZoneSpread(t *testing.T) {
	c := cacheWith([]*corev1.Node{testNode("a1", zone("a")), testNode("a2", zone("a")), testNode("a3", zone("a")), testNode("b1", zone("b"))})
	got, errs := placeAll(t, c, replicas(4, "web", spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, "web"))...)
	if len(errs) > 0 || got["b1"] != 2 {
		t.Fatalf("placed %v (errors %v), want 2 in zone b", got, errs)
	}
}

func TestPlacementAntiAffinityLeavesThirdPodUnschedulable(t *testing.T) {
	c := cacheWith([]*corev1.Node{testNode("n1"), testNode("n2")})
	got, errs := placeAll(t, c, replicas(3, "db", antiAffinity(podTerm("app", "db", corev1.LabelHostname)))...)
	if got["n1"] != 1 || got["n2"] != 1 || len(errs) != 1 {
		t.Fatalf("placed %v (errors %v), want one per node and one unschedulable", got, errs)
	}
	if want := "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."; errs[0].Error() != want {
		t.Errorf("message %q, want %q", errs[0], want)
	}
}

func TestPlacementAffinityFollowsFirstPod(t *testing.T) {
	c := cacheWith([]*corev1.Node{testNode("a1", zone("a")), testNode("b1", zone("b")), testNode("c1", zone("c"))})
	got, errs := placeAll(t, c, replicas(5, "db", podAffinity(podTerm("app", "db", corev1.LabelTopologyZone)))...)
	if len(errs) > 0 || len(got) != 1 {
		t.Fatalf("placed %v (errors %v), want all in one zone", got, errs)
	}
}

func TestFitErrorMessage(t *testing.T) {
	c := cacheWith([]*corev1.Node{
		testNode("cordoned", cordoned),
		testNode("gpu", taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)),
		testNode("small", allocatable(corev1.ResourceCPU, "1")),
	})
	_, err := c.Place(NewPodInfo(testPod("p", request(corev1.ResourceCPU, "2"))))
	want := "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable."
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	if _, err := NewCache(Options{}).Place(NewPodInfo(testPod("p"))); err == nil || err.Error() != "no nodes available to schedule pods" {
		t.Errorf("empty cluster: %v", err)
	}
	bad := testPod("p", func(p *corev1.Pod) {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "k", WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus"}}}}}
	})
	if _, err := c.Place(NewPodInfo(bad)); err == nil || err.Error()[:len("0/3 nodes are available: invalid")] != "0/3 nodes are available: invalid" {
		t.Errorf("invalid constraint: %v", err)
	}
}

func TestPlacementDoesNotOvercommit(t *testing.T) {
	c := cacheWith([]*corev1.Node{testNode("n1", allocatable(corev1.ResourceCPU, "1")), testNode("n2", allocatable(corev1.ResourceCPU, "1"))})
	got, errs := placeAll(t, c, replicas(5, "big", request(corev1.ResourceCPU, "500m"))...)
	if got["n1"] != 2 || got["n2"] != 2 || len(errs) != 1 {
		t.Fatalf("placed %v (errors %v), want 2 per node and 1 unschedulable", got, errs)
	}
	if want := "0/2 nodes are available: 2 Insufficient cpu."; errs[0].Error() != want {
		t.Errorf("message %q, want %q", errs[0], want)
	}
	c.RemovePod("default", "big-0")
	if _, errs := placeAll(t, c, testPod("again", request(corev1.ResourceCPU, "500m"))); len(errs) > 0 {
		t.Errorf("after a pod left: %v", errs)
	}
}

func TestPlacementBinPacking(t *testing.T) {
	c := NewCache(Options{Strategy: MostAllocated, Seed: 1})
	for _, n := range []*corev1.Node{testNode("n1"), testNode("n2"), testNode("n3")} {
		c.SetNode(n)
	}
	got, errs := placeAll(t, c, replicas(8, "job", request(corev1.ResourceCPU, "1"), func(p *corev1.Pod) { p.OwnerReferences = nil })...)
	if len(errs) > 0 || len(got) != 2 {
		t.Fatalf("placed %v (errors %v), want two full nodes", got, errs)
	}
}

func TestNumFeasibleNodesToFind(t *testing.T) {
	for _, tc := range []struct{ all, pct, want int }{
		{10, 0, 10}, {99, 0, 99}, {100, 0, 100}, {1000, 0, 420}, {5000, 0, 500}, {6000, 0, 300},
		{10000, 0, 500}, {1000, 10, 100}, {1000, 100, 1000}, {500, 1, 100},
	} {
		if got := numFeasibleNodesToFind(tc.all, tc.pct); got != tc.want {
			t.Errorf("numFeasibleNodesToFind(%d, %d) = %d, want %d", tc.all, tc.pct, got, tc.want)
		}
	}
}

// spreadRange places 30 owners' 100 replicas each on 1,000 nodes and returns the fewest
// and most pods any node got.
func spreadRange(t *testing.T, zones, percentage int) (lo, hi int) {
	c := NewCache(Options{Seed: 1, PercentageOfNodesToScore: percentage})
	for i := range 1000 {
		n := testNode(fmt.Sprintf("n%04d", i))
		if zones > 0 {
			zone(fmt.Sprintf("z%d", i%zones))(n)
		}
		c.SetNode(n)
	}
	var pods []*corev1.Pod
	for o := range 30 {
		pods = append(pods, replicas(100, fmt.Sprintf("rs%d", o))...)
	}
	got, errs := placeAll(t, c, pods...)
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	lo, hi = len(pods), 0
	for _, n := range c.nodes {
		lo, hi = min(lo, got[n.name]), max(hi, got[n.name])
	}
	return lo, hi
}

// TestSampledPlacementKeepsSpread checks that scoring only a sample of the nodes in a large
// cluster spreads as evenly as scoring them all: without zones every node ends within one
// pod of every other, and with zones (whose balance per owner weighs in too) the range is
// no wider than a full scan's.
func TestSampledPlacementKeepsSpread(t *testing.T) {
	if lo, hi := spreadRange(t, 0, 0); hi-lo > 1 {
		t.Errorf("no zones: pods per node range from %d to %d", lo, hi)
	}
	lo, hi := spreadRange(t, 3, 0)
	flo, fhi := spreadRange(t, 3, 100)
	if hi-lo > fhi-flo || hi-lo > 2 {
		t.Errorf("3 zones: pods per node range from %d to %d sampled, %d to %d scoring every node", lo, hi, flo, fhi)
	}
}

func TestCacheNodeChanges(t *testing.T) {
	c := cacheWith([]*corev1.Node{testNode("n1")}, testPod("p1", onNode("n1"), request(corev1.ResourceCPU, "3")), testPod("p2", onNode("gone")))
	if n := c.byName["n1"]; n.requested.milliCPU != 3000 || n.pods != 1 {
		t.Fatalf("n1 requested %d m by %d pods", n.requested.milliCPU, n.pods)
	}
	// A pod bound to a node the cache does not know counts once that node appears.
	c.SetNode(testNode("gone"))
	if n := c.byName["gone"]; n.pods != 1 {
		t.Fatalf("late node has %d pods", n.pods)
	}
	// Updating a node keeps its pods.
	c.SetNode(testNode("n1", cordoned))
	if n := c.byName["n1"]; !n.unschedulable || n.pods != 1 {
		t.Fatalf("updated node: unschedulable=%v pods=%d", n.unschedulable, n.pods)
	}
	c.RemoveNode("n1")
	if len(c.nodes) != 1 || c.nodes[0].name != "gone" || c.nodes[0].index != 0 {
		t.Fatalf("nodes after removal: %v", c.nodes)
	}
	c.SetNode(testNode("n1"))
	if n := c.byName["n1"]; n.pods != 1 || n.requested.milliCPU != 3000 {
		t.Fatalf("re-added node: %d pods, %d m", n.pods, n.requested.milliCPU)
	}
	c.RemovePod("default", "p1")
	if n := c.byName["n1"]; n.pods != 0 || n.requested.milliCPU != 0 || len(c.pods) != 1 {
		t.Fatalf("after removing p1: %d pods, %d m, %d cached", n.pods, n.requested.milliCPU, len(c.pods))
	}
}

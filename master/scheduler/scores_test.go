package scheduler

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

type scoreFunc func(*Options, *cycle, *PodInfo, []*nodeInfo, []int64) bool

type scoreCase struct {
	name  string
	opts  Options
	nodes []*corev1.Node
	bound []*corev1.Pod
	pod   *corev1.Pod
	// want is each node's score, or nil when the scorer should have no opinion.
	want map[string]int64
}

func runScoreCases(t *testing.T, f scoreFunc, cases []scoreCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cacheWith(tc.nodes, tc.bound...)
			tc.opts.setDefaults()
			p := NewPodInfo(tc.pod)
			var nodes []*nodeInfo
			for _, n := range tc.nodes {
				nodes = append(nodes, c.byName[n.Name])
			}
			out := make([]int64, len(nodes))
			var got map[string]int64
			if f(&tc.opts, c.prepare(p), p, nodes, out) {
				got = map[string]int64{}
				for i, n := range nodes {
					got[n.name] = out[i]
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("scores = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestScoreResources(t *testing.T) {
	nodes := []*corev1.Node{testNode("empty"), testNode("half")}
	half := testPod("h", onNode("half"), request(corev1.ResourceCPU, "1900m"), request(corev1.ResourceMemory, "3968Mi"))
	// The pod brings 100m and 128Mi: the empty node ends at 2.5% CPU and 1.6% memory used,
	// the other at exactly half of both.
	runScoreCases(t, scoreResources, []scoreCase{
		{name: "least allocated", nodes: nodes, bound: []*corev1.Pod{half}, pod: testPod("p"), want: map[string]int64{"empty": 97, "half": 50}},
		{name: "most allocated", opts: Options{Strategy: MostAllocated}, nodes: nodes, bound: []*corev1.Pod{half}, pod: testPod("p"),
			want: map[string]int64{"empty": 1, "half": 50}},
		{name: "no requests count as defaults", nodes: nodes[:1], pod: testPod("p", func(p *corev1.Pod) { p.Spec.Containers[0].Resources.Requests = nil }),
			want: map[string]int64{"empty": 97}},
	})
}

func TestScoreBalanced(t *testing.T) {
	nodes := []*corev1.Node{testNode("even"), testNode("cpu-heavy")}
	runScoreCases(t, scoreBalanced, []scoreCase{
		{name: "balanced node wins", nodes: nodes,
			bound: []*corev1.Pod{testPod("x", onNode("cpu-heavy"), request(corev1.ResourceCPU, "2"), request(corev1.ResourceMemory, "0"))},
			pod:   testPod("p", request(corev1.ResourceMemory, "200Mi")), want: map[string]int64{"even": 99, "cpu-heavy": 74}},
	})
}

func TestScoreOwnerSpread(t *testing.T) {
	nodes := []*corev1.Node{testNode("a1", zone("a")), testNode("a2", zone("a")), testNode("b1", zone("b"))}
	rs := func(name, node string) *corev1.Pod { return testPod(name, ownedBy("rs-1"), onNode(node)) }
	runScoreCases(t, scoreOwnerSpread, []scoreCase{
		{name: "no owner", nodes: nodes, pod: testPod("p")},
		{name: "first of its owner", nodes: nodes, pod: testPod("p", ownedBy("rs-1"))},
		{name: "nodes and zones", nodes: nodes, bound: []*corev1.Pod{rs("r1", "a1")}, pod: testPod("p", ownedBy("rs-1")),
			want: map[string]int64{"a1": 75, "a2": 91, "b1": 100}},
		{name: "other owners do not count", nodes: nodes, bound: []*corev1.Pod{rs("r1", "a1"), testPod("x", ownedBy("rs-2"), onNode("b1"))},
			pod: testPod("p", ownedBy("rs-1")), want: map[string]int64{"a1": 75, "a2": 91, "b1": 100}},
		{name: "own constraints replace owner spreading", nodes: nodes, bound: []*corev1.Pod{rs("r1", "a1")},
			pod: testPod("p", ownedBy("rs-1"), spread(corev1.LabelHostname, 1, corev1.DoNotSchedule, "x"))},
	})
}

func TestScoreTopologySpread(t *testing.T) {
	nodes := []*corev1.Node{testNode("a1", zone("a")), testNode("a2", zone("a")), testNode("b1", zone("b")), testNode("none")}
	web := func(name, node string) *corev1.Pod { return testPod(name, podLabel("app", "web"), onNode(node)) }
	soft := spread(corev1.LabelTopologyZone, 1, corev1.ScheduleAnyway, "web")
	runScoreCases(t, scoreTopologySpread, []scoreCase{
		{name: "hard only", nodes: nodes, pod: testPod("p", spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, "web"))},
		{name: "emptier zone wins, keyless node last", nodes: nodes, bound: []*corev1.Pod{web("w1", "a1"), web("w2", "a2")},
			pod: testPod("p", podLabel("app", "web"), soft), want: map[string]int64{"a1": 0, "a2": 0, "b1": 100, "none": 0}},
		{name: "even", nodes: nodes[:3], bound: []*corev1.Pod{web("w1", "a1"), web("w2", "b1")},
			pod: testPod("p", podLabel("app", "web"), soft), want: map[string]int64{"a1": 100, "a2": 100, "b1": 100}},
	})
}

func TestScoreNodeAffinity(t *testing.T) {
	nodes := []*corev1.Node{testNode("ssd", nodeLabel("disk", "ssd")), testNode("hdd", nodeLabel("disk", "hdd")), testNode("gpu", nodeLabel("gpu", "yes"), nodeLabel("disk", "ssd"))}
	preferred := func(p *corev1.Pod) {
		affinity(p).NodeAffinity = &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
			{Weight: 10, Preference: labelTerm("disk", corev1.NodeSelectorOpIn, "ssd")},
			{Weight: 30, Preference: labelTerm("gpu", corev1.NodeSelectorOpExists)},
		}}
	}
	runScoreCases(t, scoreNodeAffinity, []scoreCase{
		{name: "none", nodes: nodes, pod: testPod("p")},
		{name: "weights add up", nodes: nodes, pod: testPod("p", preferred), want: map[string]int64{"ssd": 25, "hdd": 0, "gpu": 100}},
	})
}

func TestScorePodAffinity(t *testing.T) {
	nodes := []*corev1.Node{testNode("a1", zone("a")), testNode("b1", zone("b")), testNode("c1", zone("c"))}
	cache := testPod("cache", podLabel("app", "cache"), onNode("a1"))
	noisy := testPod("noisy", podLabel("app", "noisy"), onNode("b1"))
	prefer := func(p *corev1.Pod) {
		affinity(p).PodAffinity = &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
			{Weight: 50, PodAffinityTerm: podTerm("app", "cache", corev1.LabelTopologyZone)}}}
		affinity(p).PodAntiAffinity = &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
			{Weight: 50, PodAffinityTerm: podTerm("app", "noisy", corev1.LabelTopologyZone)}}}
	}
	likesWeb := testPod("fan", onNode("c1"), func(p *corev1.Pod) {
		affinity(p).PodAffinity = &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
			{Weight: 100, PodAffinityTerm: podTerm("app", "web", corev1.LabelTopologyZone)}}}
	})
	runScoreCases(t, scorePodAffinity, []scoreCase{
		{name: "none", nodes: nodes, bound: []*corev1.Pod{cache}, pod: testPod("p")},
		{name: "own preferences", nodes: nodes, bound: []*corev1.Pod{cache, noisy}, pod: testPod("p", prefer),
			want: map[string]int64{"a1": 100, "b1": 0, "c1": 50}},
		{name: "placed pod's preference for it", nodes: nodes, bound: []*corev1.Pod{likesWeb}, pod: testPod("p", podLabel("app", "web")),
			want: map[string]int64{"a1": 0, "b1": 0, "c1": 100}},
	})
}

func TestScoreTaints(t *testing.T) {
	nodes := []*corev1.Node{
		testNode("clean"),
		testNode("one", taint("a", "1", corev1.TaintEffectPreferNoSchedule)),
		testNode("two", taint("a", "1", corev1.TaintEffectPreferNoSchedule), taint("b", "1", corev1.TaintEffectPreferNoSchedule)),
	}
	runScoreCases(t, scoreTaints, []scoreCase{
		{name: "no PreferNoSchedule taints", nodes: nodes[:1], pod: testPod("p")},
		{name: "fewer is better", nodes: nodes, pod: testPod("p"), want: map[string]int64{"clean": 100, "one": 50, "two": 0}},
		{name: "tolerated", nodes: nodes, pod: testPod("p", toleration("a", "1", corev1.TaintEffectPreferNoSchedule)),
			want: map[string]int64{"clean": 100, "one": 100, "two": 0}},
		{name: "NoSchedule toleration does not count", nodes: nodes, pod: testPod("p", toleration("a", "1", corev1.TaintEffectNoSchedule)),
			want: map[string]int64{"clean": 100, "one": 50, "two": 0}},
	})
}

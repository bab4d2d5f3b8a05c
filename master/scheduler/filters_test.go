package scheduler

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type filterCase struct {
	name  string
	node  *corev1.Node
	pod   *corev1.Pod
	bound []*corev1.Pod
	// others are further nodes in the cluster (for topology counts).
	others []*corev1.Node
	want   []string
}

func runFilterCases(t *testing.T, f filter, cases []filterCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cacheWith(append([]*corev1.Node{tc.node}, tc.others...), tc.bound...)
			p := NewPodInfo(tc.pod)
			if p.parseErr != nil {
				t.Fatalf("pod does not parse: %v", p.parseErr)
			}
			got := f(c.prepare(p), p, c.byName[tc.node.Name], nil)
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("reasons = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFilterUnschedulable(t *testing.T) {
	runFilterCases(t, filterUnschedulable, []filterCase{
		{name: "schedulable", node: testNode("n"), pod: testPod("p")},
		{name: "cordoned", node: testNode("n", cordoned), pod: testPod("p"), want: []string{ReasonUnschedulable}},
		{name: "cordoned, tolerated", node: testNode("n", cordoned),
			pod: testPod("p", toleration(corev1.TaintNodeUnschedulable, "", corev1.TaintEffectNoSchedule))},
	})
}

func TestFilterTaints(t *testing.T) {
	runFilterCases(t, filterTaints, []filterCase{
		{name: "untainted", node: testNode("n"), pod: testPod("p")},
		{name: "NoSchedule", node: testNode("n", taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)), pod: testPod("p"),
			want: []string{"node(s) had untolerated taint {dedicated: gpu}"}},
		{name: "NoExecute", node: testNode("n", taint("k", "", corev1.TaintEffectNoExecute)), pod: testPod("p"),
			want: []string{"node(s) had untolerated taint {k: }"}},
		{name: "PreferNoSchedule only scores", node: testNode("n", taint("k", "v", corev1.TaintEffectPreferNoSchedule)), pod: testPod("p")},
		{name: "tolerated by value", node: testNode("n", taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)),
			pod: testPod("p", toleration("dedicated", "gpu", corev1.TaintEffectNoSchedule))},
		{name: "wrong value", node: testNode("n", taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)),
			pod:  testPod("p", toleration("dedicated", "cpu", corev1.TaintEffectNoSchedule)),
			want: []string{"node(s) had untolerated taint {dedicated: gpu}"}},
		{name: "wrong effect", node: testNode("n", taint("k", "v", corev1.TaintEffectNoExecute)),
			pod: testPod("p", toleration("k", "v", corev1.TaintEffectNoSchedule)), want: []string{"node(s) had untolerated taint {k: v}"}},
		{name: "exists with any effect", node: testNode("n", taint("k", "v", corev1.TaintEffectNoExecute)), pod: testPod("p", toleration("k", "", ""))},
		{name: "tolerate everything", node: testNode("n", taint("k", "v", corev1.TaintEffectNoSchedule)),
			pod: testPod("p", func(p *corev1.Pod) { p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}} })},
		{name: "numeric Gt", node: testNode("n", taint("level", "5", corev1.TaintEffectNoSchedule)),
			pod: testPod("p", func(p *corev1.Pod) {
				p.Spec.Tolerations = []corev1.Toleration{{Key: "level", Operator: corev1.TolerationOpGt, Value: "3"}}
			})},
		{name: "not ready", node: testNode("n", ready(corev1.ConditionFalse)), pod: testPod("p"),
			want: []string{"node(s) had untolerated taint {node.kubernetes.io/not-ready: }"}},
		{name: "no Ready condition", node: testNode("n", func(n *corev1.Node) { n.Status.Conditions = nil }), pod: testPod("p"),
			want: []string{"node(s) had untolerated taint {node.kubernetes.io/not-ready: }"}},
		{name: "unreachable", node: testNode("n", ready(corev1.ConditionUnknown)), pod: testPod("p"),
			want: []string{"node(s) had untolerated taint {node.kubernetes.io/unreachable: }"}},
		{name: "not ready, tolerated", node: testNode("n", ready(corev1.ConditionFalse)),
			pod: testPod("p", toleration(corev1.TaintNodeNotReady, "", corev1.TaintEffectNoSchedule))},
	})
}

func nodeNameTerm(op corev1.NodeSelectorOperator, names ...string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: op, Values: names}}}
}

func labelTerm(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func TestFilterNodeAffinity(t *testing.T) {
	ssd := testNode("n", nodeLabel("disk", "ssd"), nodeLabel("cores", "16"))
	no := []string{ReasonNodeAffinity}
	runFilterCases(t, filterNodeAffinity, []filterCase{
		{name: "no constraints", node: ssd, pod: testPod("p")},
		{name: "nodeSelector matches", node: ssd, pod: testPod("p", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} })},
		{name: "nodeSelector differs", node: ssd, pod: testPod("p", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "hdd"} }), want: no},
		{name: "nodeSelector missing label", node: ssd, pod: testPod("p", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"gpu": "yes"} }), want: no},
		{name: "In", node: ssd, pod: testPod("p", requiredNodeTerms(labelTerm("disk", corev1.NodeSelectorOpIn, "ssd", "nvme")))},
		{name: "NotIn", node: ssd, pod: testPod("p", requiredNodeTerms(labelTerm("disk", corev1.NodeSelectorOpNotIn, "ssd"))), want: no},
		{name: "Exists", node: ssd, pod: testPod("p", requiredNodeTerms(labelTerm("disk", corev1.NodeSelectorOpExists)))},
		{name: "DoesNotExist", node: ssd, pod: testPod("p", requiredNodeTerms(labelTerm("disk", corev1.NodeSelectorOpDoesNotExist))), want: no},
		{name: "Gt", node: ssd, pod: testPod("p", requiredNodeTerms(labelTerm("cores", corev1.NodeSelectorOpGt, "8")))},
		{name: "Lt", node: ssd, pod: testPod("p", requiredNodeTerms(labelTerm("cores", corev1.NodeSelectorOpLt, "8"))), want: no},
		{name: "terms are ORed", node: ssd, pod: testPod("p", requiredNodeTerms(
			labelTerm("disk", corev1.NodeSelectorOpIn, "hdd"), labelTerm("disk", corev1.NodeSelectorOpIn, "ssd")))},
		{name: "matchFields name (DaemonSet)", node: ssd, pod: testPod("p", requiredNodeTerms(nodeNameTerm(corev1.NodeSelectorOpIn, "n")))},
		{name: "matchFields other name", node: ssd, pod: testPod("p", requiredNodeTerms(nodeNameTerm(corev1.NodeSelectorOpIn, "m"))), want: no},
		{name: "matchFields NotIn", node: ssd, pod: testPod("p", requiredNodeTerms(nodeNameTerm(corev1.NodeSelectorOpNotIn, "n"))), want: no},
		{name: "expressions and fields ANDed", node: ssd, pod: testPod("p", requiredNodeTerms(corev1.NodeSelectorTerm{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"hdd"}}},
			MatchFields:      []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n"}}},
		})), want: no},
		{name: "empty term matches nothing", node: ssd, pod: testPod("p", requiredNodeTerms(corev1.NodeSelectorTerm{})), want: no},
		{name: "selector and affinity both apply", node: ssd, pod: testPod("p",
			func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} },
			requiredNodeTerms(nodeNameTerm(corev1.NodeSelectorOpIn, "m"))), want: no},
	})
}

func TestFilterPorts(t *testing.T) {
	n := testNode("n")
	used := testPod("used", onNode("n"), hostPortOn(8080, "", corev1.ProtocolTCP))
	usedIP := testPod("used", onNode("n"), hostPortOn(8080, "10.0.0.1", corev1.ProtocolTCP))
	no := []string{ReasonPorts}
	runFilterCases(t, filterPorts, []filterCase{
		{name: "free", node: n, pod: testPod("p", hostPortOn(8080, "", ""))},
		{name: "same port", node: n, bound: []*corev1.Pod{used}, pod: testPod("p", hostPortOn(8080, "", "")), want: no},
		{name: "other port", node: n, bound: []*corev1.Pod{used}, pod: testPod("p", hostPortOn(8081, "", ""))},
		{name: "other protocol", node: n, bound: []*corev1.Pod{used}, pod: testPod("p", hostPortOn(8080, "", corev1.ProtocolUDP))},
		{name: "specific IP vs any", node: n, bound: []*corev1.Pod{used}, pod: testPod("p", hostPortOn(8080, "10.0.0.2", "")), want: no},
		{name: "different IPs", node: n, bound: []*corev1.Pod{usedIP}, pod: testPod("p", hostPortOn(8080, "10.0.0.2", ""))},
		{name: "same IP", node: n, bound: []*corev1.Pod{usedIP}, pod: testPod("p", hostPortOn(8080, "10.0.0.1", "")), want: no},
		{name: "container port only", node: n, bound: []*corev1.Pod{used}, pod: testPod("p", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
		})},
	})
}

func TestFilterResources(t *testing.T) {
	n := testNode("n", allocatable(corev1.ResourceEphemeralStorage, "10Gi"), allocatable("example.com/gpu", "1"))
	big := testPod("big", onNode("n"), request(corev1.ResourceCPU, "3500m"), request(corev1.ResourceMemory, "7Gi"))
	runFilterCases(t, filterResources, []filterCase{
		{name: "fits", node: n, pod: testPod("p")},
		{name: "cpu", node: n, bound: []*corev1.Pod{big}, pod: testPod("p", request(corev1.ResourceCPU, "600m")), want: []string{"Insufficient cpu"}},
		{name: "exactly full", node: n, bound: []*corev1.Pod{big}, pod: testPod("p", request(corev1.ResourceCPU, "500m"), request(corev1.ResourceMemory, "1Gi"))},
		{name: "cpu and memory", node: n, bound: []*corev1.Pod{big}, pod: testPod("p", request(corev1.ResourceCPU, "1"), request(corev1.ResourceMemory, "2Gi")),
			want: []string{"Insufficient cpu", "Insufficient memory"}},
		{name: "ephemeral storage", node: n, pod: testPod("p", request(corev1.ResourceEphemeralStorage, "11Gi")), want: []string{"Insufficient ephemeral-storage"}},
		{name: "extended resource", node: n, pod: testPod("p", request("example.com/gpu", "2")), want: []string{"Insufficient example.com/gpu"}},
		{name: "unknown extended resource", node: n, pod: testPod("p", request("example.com/fpga", "1")), want: []string{"Insufficient example.com/fpga"}},
		{name: "pod count", node: testNode("n", allocatable(corev1.ResourcePods, "1")), bound: []*corev1.Pod{testPod("x", onNode("n"))},
			pod: testPod("p"), want: []string{"Too many pods"}},
		{name: "init container dominates", node: n, bound: []*corev1.Pod{big}, pod: testPod("p", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "x", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}}
		}), want: []string{"Insufficient cpu"}},
		{name: "overhead counts", node: n, bound: []*corev1.Pod{big}, pod: testPod("p", func(p *corev1.Pod) {
			p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("450m")}
		}), want: []string{"Insufficient cpu"}},
	})
}

func TestPodRequests(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	ctr := func(cpu, mem string) corev1.Container {
		rl := corev1.ResourceList{}
		if cpu != "" {
			rl[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			rl[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return corev1.Container{Resources: corev1.ResourceRequirements{Requests: rl}}
	}
	sidecar := ctr("200m", "")
	sidecar.RestartPolicy = &always
	for _, tc := range []struct {
		name            string
		spec            corev1.PodSpec
		cpu, mem, nzCPU int64
		nzMem           int64
	}{
		{"sum of containers", corev1.PodSpec{Containers: []corev1.Container{ctr("100m", "1Mi"), ctr("200m", "2Mi")}}, 300, 3 << 20, 300, 3 << 20},
		{"no requests", corev1.PodSpec{Containers: []corev1.Container{ctr("", "")}}, 0, 0, defaultMilliCPU, defaultMemory},
		{"init larger", corev1.PodSpec{Containers: []corev1.Container{ctr("100m", "1Mi")}, InitContainers: []corev1.Container{ctr("1", "")}}, 1000, 1 << 20, 1000, defaultMemory},
		{"sidecar adds up", corev1.PodSpec{Containers: []corev1.Container{ctr("100m", "")}, InitContainers: []corev1.Container{sidecar, ctr("500m", "")}},
			700, 0, 700, 2 * defaultMemory},
		{"overhead", corev1.PodSpec{Containers: []corev1.Container{ctr("100m", "")}, Overhead: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}},
			150, 0, 150, defaultMemory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, nz := podRequests(&tc.spec)
			if req.milliCPU != tc.cpu || req.memory != tc.mem || nz.milliCPU != tc.nzCPU || nz.memory != tc.nzMem {
				t.Errorf("requests = %d m / %d B, non-zero %d m / %d B; want %d / %d, %d / %d",
					req.milliCPU, req.memory, nz.milliCPU, nz.memory, tc.cpu, tc.mem, tc.nzCPU, tc.nzMem)
			}
		})
	}
}

func TestFilterSpread(t *testing.T) {
	a1, a2, b1 := testNode("a1", zone("a")), testNode("a2", zone("a")), testNode("b1", zone("b"))
	web := func(name, node string) *corev1.Pod { return testPod(name, podLabel("app", "web"), onNode(node)) }
	zoneHard := spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, "web")
	hostHard := spread(corev1.LabelHostname, 1, corev1.DoNotSchedule, "web")
	runFilterCases(t, filterSpread, []filterCase{
		{name: "empty cluster", node: a1, others: []*corev1.Node{b1}, pod: testPod("p", podLabel("app", "web"), zoneHard)},
		{name: "zone one ahead", node: a1, others: []*corev1.Node{a2, b1}, bound: []*corev1.Pod{web("w1", "a2")},
			pod: testPod("p", podLabel("app", "web"), zoneHard), want: []string{ReasonSpread}},
		{name: "zone behind", node: b1, others: []*corev1.Node{a1, a2}, bound: []*corev1.Pod{web("w1", "a2")},
			pod: testPod("p", podLabel("app", "web"), zoneHard)},
		{name: "other labels do not count", node: a1, others: []*corev1.Node{a2, b1}, bound: []*corev1.Pod{testPod("x", onNode("a2"))},
			pod: testPod("p", podLabel("app", "web"), zoneHard)},
		{name: "maxSkew 2 allows", node: a1, others: []*corev1.Node{a2, b1}, bound: []*corev1.Pod{web("w1", "a2")},
			pod: testPod("p", podLabel("app", "web"), spread(corev1.LabelTopologyZone, 2, corev1.DoNotSchedule, "web"))},
		{name: "hostname", node: a2, others: []*corev1.Node{a1, b1}, bound: []*corev1.Pod{web("w1", "a2")},
			pod: testPod("p", podLabel("app", "web"), hostHard), want: []string{ReasonSpread}},
		{name: "missing key", node: testNode("nz"), others: []*corev1.Node{a1}, pod: testPod("p", podLabel("app", "web"), zoneHard),
			want: []string{ReasonSpreadMissingLabel}},
		{name: "ScheduleAnyway never filters", node: a1, others: []*corev1.Node{a2, b1}, bound: []*corev1.Pod{web("w1", "a2"), web("w2", "a1")},
			pod: testPod("p", podLabel("app", "web"), spread(corev1.LabelTopologyZone, 1, corev1.ScheduleAnyway, "web"))},
		{name: "nodes excluded by nodeSelector do not count", node: a1, others: []*corev1.Node{a2, b1}, bound: []*corev1.Pod{web("w1", "a2")},
			pod: testPod("p", podLabel("app", "web"), zoneHard, func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{corev1.LabelTopologyZone: "a"} })},
		{name: "minDomains", node: a1, others: []*corev1.Node{a2}, bound: []*corev1.Pod{web("w1", "a2")},
			pod: testPod("p", podLabel("app", "web"), zoneHard, func(p *corev1.Pod) {
				two := int32(2)
				p.Spec.TopologySpreadConstraints[0].MinDomains = &two
			}), want: []string{ReasonSpread}},
	})
}

func TestFilterPodAffinity(t *testing.T) {
	a1, a2, b1 := testNode("a1", zone("a")), testNode("a2", zone("a")), testNode("b1", zone("b"))
	db := testPod("db", podLabel("app", "db"), onNode("a2"))
	runFilterCases(t, filterPodAffinity, []filterCase{
		{name: "affinity zone satisfied", node: a1, others: []*corev1.Node{a2, b1}, bound: []*corev1.Pod{db},
			pod: testPod("p", podAffinity(podTerm("app", "db", corev1.LabelTopologyZone)))},
		{name: "affinity zone not satisfied", node: b1, others: []*corev1.Node{a1, a2}, bound: []*corev1.Pod{db},
			pod: testPod("p", podAffinity(podTerm("app", "db", corev1.LabelTopologyZone))), want: []string{ReasonAffinity}},
		{name: "affinity host", node: a1, others: []*corev1.Node{a2}, bound: []*corev1.Pod{db},
			pod: testPod("p", podAffinity(podTerm("app", "db", corev1.LabelHostname))), want: []string{ReasonAffinity}},
		{name: "affinity, no match anywhere", node: a1, others: []*corev1.Node{b1},
			pod: testPod("p", podAffinity(podTerm("app", "db", corev1.LabelTopologyZone))), want: []string{ReasonAffinity}},
		{name: "first pod of a self-affine group", node: a1, others: []*corev1.Node{b1},
			pod: testPod("p", podLabel("app", "db"), podAffinity(podTerm("app", "db", corev1.LabelTopologyZone)))},
		{name: "affinity in another namespace", node: a1, others: []*corev1.Node{a2}, bound: []*corev1.Pod{db},
			pod:  testPod("p", func(p *corev1.Pod) { p.Namespace = "other" }, podAffinity(podTerm("app", "db", corev1.LabelTopologyZone))),
			want: []string{ReasonAffinity}},
		{name: "affinity with namespaces listed", node: a1, others: []*corev1.Node{a2}, bound: []*corev1.Pod{db},
			pod: testPod("p", func(p *corev1.Pod) { p.Namespace = "other" }, podAffinity(func() corev1.PodAffinityTerm {
				t := podTerm("app", "db", corev1.LabelTopologyZone)
				t.Namespaces = []string{"default"}
				return t
			}()))},
		{name: "affinity with all namespaces", node: a1, others: []*corev1.Node{a2}, bound: []*corev1.Pod{db},
			pod: testPod("p", func(p *corev1.Pod) { p.Namespace = "other" }, podAffinity(func() corev1.PodAffinityTerm {
				t := podTerm("app", "db", corev1.LabelTopologyZone)
				t.NamespaceSelector = &metav1.LabelSelector{}
				return t
			}()))},
		{name: "anti-affinity host, same host", node: a2, others: []*corev1.Node{a1}, bound: []*corev1.Pod{db},
			pod: testPod("p", antiAffinity(podTerm("app", "db", corev1.LabelHostname))), want: []string{ReasonAntiAffinity}},
		{name: "anti-affinity host, other host", node: a1, others: []*corev1.Node{a2}, bound: []*corev1.Pod{db},
			pod: testPod("p", antiAffinity(podTerm("app", "db", corev1.LabelHostname)))},
		{name: "anti-affinity zone", node: a1, others: []*corev1.Node{a2, b1}, bound: []*corev1.Pod{db},
			pod: testPod("p", antiAffinity(podTerm("app", "db", corev1.LabelTopologyZone))), want: []string{ReasonAntiAffinity}},
		{name: "anti-affinity, custom key", node: testNode("r1", nodeLabel("rack", "1")), others: []*corev1.Node{testNode("r1b", nodeLabel("rack", "1"))},
			bound: []*corev1.Pod{testPod("db", podLabel("app", "db"), onNode("r1b"))},
			pod:   testPod("p", antiAffinity(podTerm("app", "db", "rack"))), want: []string{ReasonAntiAffinity}},
		{name: "existing pod's anti-affinity", node: a1, others: []*corev1.Node{a2, b1},
			bound: []*corev1.Pod{testPod("lonely", onNode("a2"), antiAffinity(podTerm("app", "web", corev1.LabelTopologyZone)))},
			pod:   testPod("p", podLabel("app", "web")), want: []string{ReasonExistingAntiAffinity}},
		{name: "existing pod's anti-affinity elsewhere", node: b1, others: []*corev1.Node{a1, a2},
			bound: []*corev1.Pod{testPod("lonely", onNode("a2"), antiAffinity(podTerm("app", "web", corev1.LabelTopologyZone)))},
			pod:   testPod("p", podLabel("app", "web"))},
	})
}

package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// The reasons kube-scheduler gives for a node that cannot take a pod; they are what
// `kubectl describe pod` shows, counted per reason, in the FailedScheduling message.
const (
	ReasonUnschedulable        = "node(s) were unschedulable"
	ReasonNodeAffinity         = "node(s) didn't match Pod's node affinity/selector"
	ReasonUntoleratedTaint     = "node(s) had untolerated taint {%s: %s}"
	ReasonPorts                = "node(s) didn't have free ports for the requested pod ports"
	ReasonTooManyPods          = "Too many pods"
	ReasonInsufficient         = "Insufficient %s"
	ReasonSpread               = "node(s) didn't match pod topology spread constraints"
	ReasonSpreadMissingLabel   = "node(s) didn't match pod topology spread constraints (missing required label)"
	ReasonAffinity             = "node(s) didn't match pod affinity rules"
	ReasonAntiAffinity         = "node(s) didn't match pod anti-affinity rules"
	ReasonExistingAntiAffinity = "node(s) didn't satisfy existing pods anti-affinity rules"
)

const (
	reasonInsufficientCPU       = "Insufficient cpu"
	reasonInsufficientMemory    = "Insufficient memory"
	reasonInsufficientEphemeral = "Insufficient ephemeral-storage"
)

// A filter decides whether node n can take pod p, in the order kube-scheduler's default
// plugins run (NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts,
// NodeResourcesFit, PodTopologySpread, InterPodAffinity). It appends to out the reasons it
// refuses (none when the node fits) and returns out. The filters are pure: they read the
// pod, the node and the cycle's precomputed counts, and change nothing.
type filter func(cy *cycle, p *PodInfo, n *nodeInfo, out []string) []string

var filters = []filter{
	filterUnschedulable,
	filterTaints,
	filterNodeAffinity,
	filterPorts,
	filterResources,
	filterSpread,
	filterPodAffinity,
}

// fits runs the filters until one refuses, and returns its reasons (nil if n fits).
func fits(cy *cycle, p *PodInfo, n *nodeInfo, out []string) []string {
	for _, f := range filters {
		if out = f(cy, p, n, out[:0]); len(out) > 0 {
			return out
		}
	}
	return nil
}

var unschedulableTaint = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}

func filterUnschedulable(_ *cycle, p *PodInfo, n *nodeInfo, out []string) []string {
	if n.unschedulable && !tolerates(p.tolerations, &unschedulableTaint) {
		out = append(out, ReasonUnschedulable)
	}
	return out
}

func filterTaints(_ *cycle, p *PodInfo, n *nodeInfo, out []string) []string {
	if t := untoleratedTaint(p.tolerations, n.taints); t != nil {
		out = append(out, fmt.Sprintf(ReasonUntoleratedTaint, t.Key, t.Value))
	}
	return out
}

// untoleratedTaint is the first NoSchedule or NoExecute taint no toleration matches.
func untoleratedTaint(tolerations []corev1.Toleration, taints []corev1.Taint) *corev1.Taint {
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !tolerates(tolerations, t) {
			return t
		}
	}
	return nil
}

func filterNodeAffinity(_ *cycle, p *PodInfo, n *nodeInfo, out []string) []string {
	if !matchesNodeConstraints(p, n) {
		out = append(out, ReasonNodeAffinity)
	}
	return out
}

// matchesNodeConstraints is the pod's nodeSelector and required node affinity.
func matchesNodeConstraints(p *PodInfo, n *nodeInfo) bool {
	if len(p.nodeSelector) == 0 {
		return p.nodeAffinity.matches(n)
	}
	for k, v := range p.nodeSelector {
		if lv, ok := n.labels[k]; !ok || lv != v {
			return false
		}
	}
	return p.nodeAffinity.matches(n)
}

func filterPorts(_ *cycle, p *PodInfo, n *nodeInfo, out []string) []string {
	for _, want := range p.ports {
		for _, used := range n.ports {
			if want.conflicts(used) {
				return append(out, ReasonPorts)
			}
		}
	}
	return out
}

// filterResources checks the pod count and every requested resource against what the node
// has left, reporting each shortfall, as NodeResourcesFit does.
func filterResources(_ *cycle, p *PodInfo, n *nodeInfo, out []string) []string {
	if n.pods+1 > n.allowedPods {
		out = append(out, ReasonTooManyPods)
	}
	r := &p.req
	if r.milliCPU > 0 && r.milliCPU > n.alloc.milliCPU-n.requested.milliCPU {
		out = append(out, reasonInsufficientCPU)
	}
	if r.memory > 0 && r.memory > n.alloc.memory-n.requested.memory {
		out = append(out, reasonInsufficientMemory)
	}
	if r.ephemeral > 0 && r.ephemeral > n.alloc.ephemeral-n.requested.ephemeral {
		out = append(out, reasonInsufficientEphemeral)
	}
	if len(r.scalar) == 0 {
		return out
	}
	for name, v := range r.scalar {
		if v > 0 && v > n.alloc.scalar[name]-n.requested.scalar[name] {
			out = append(out, fmt.Sprintf(ReasonInsufficient, name))
		}
	}
	return out
}

// filterSpread enforces the DoNotSchedule topology spread constraints: placing the pod in
// the node's domain must not make that domain exceed the least populated one by more than
// maxSkew.
func filterSpread(cy *cycle, p *PodInfo, n *nodeInfo, out []string) []string {
	if cy == nil {
		return out
	}
	for i := range cy.spread {
		s := &cy.spread[i]
		if !s.c.hard {
			continue
		}
		v, ok := n.labels[s.c.key]
		if !ok {
			return append(out, ReasonSpreadMissingLabel)
		}
		self := int32(0)
		if s.c.selfMatch {
			self = 1
		}
		if s.counts[v]+self-s.minimum() > s.c.maxSkew {
			return append(out, ReasonSpread)
		}
	}
	return out
}

// filterPodAffinity enforces required inter-pod affinity and anti-affinity, the pod's own
// and that of pods already placed, using the counts per topology domain the cycle
// computed.
func filterPodAffinity(cy *cycle, p *PodInfo, n *nodeInfo, out []string) []string {
	if cy == nil {
		return out
	}
	if len(p.affinity) > 0 {
		exist := true
		for i := range p.affinity {
			t := &p.affinity[i]
			v, ok := n.labels[t.key]
			if !ok {
				return append(out, ReasonAffinity)
			}
			if cy.affinity[topologyPair{t.key, v}] <= 0 {
				exist = false
			}
		}
		// The first pod of a group that wants to be with its own kind may go anywhere
		// the terms' labels exist.
		if !exist && (len(cy.affinity) > 0 || !cy.selfAffinity) {
			return append(out, ReasonAffinity)
		}
	}
	for i := range p.antiAffinity {
		t := &p.antiAffinity[i]
		if v, ok := n.labels[t.key]; ok && cy.antiAffinity[topologyPair{t.key, v}] > 0 {
			return append(out, ReasonAntiAffinity)
		}
	}
	if len(cy.existingAnti) == 0 {
		return out
	}
	for tp := range cy.existingAnti {
		if v, ok := n.labels[tp.key]; ok && v == tp.value {
			return append(out, ReasonExistingAntiAffinity)
		}
	}
	return out
}

// matchesAll reports whether p matches every term (the self-affinity exception).
func matchesAll(terms []affinityTerm, p *PodInfo) bool {
	for i := range terms {
		if !terms[i].matches(p) {
			return false
		}
	}
	return true
}

package scheduler

import (
	"skiff/master/objects"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// nodeInfo is one node as placement sees it: what it offers and what the pods bound or
// assumed on it already take, in integers.
type nodeInfo struct {
	name  string
	index int // position in Cache.nodes
	// heapIndex is the node's position in its zone's load heap, and zoneID that zone's id.
	heapIndex, zoneID int
	labels            map[string]string
	zone              string
	// unschedulable is spec.unschedulable (a cordoned node).
	unschedulable bool
	// taints are the node's taints plus the one the node lifecycle would add for a node
	// that is not Ready (node.kubernetes.io/not-ready or unreachable, NoSchedule), so a
	// node that is not Ready takes only pods that tolerate that.
	taints      []corev1.Taint
	alloc       resources
	allowedPods int64

	requested, nonZero resources
	pods               int64
	ports              []hostPort
}

// newNodeInfo reads what placement needs from node.
func newNodeInfo(node *corev1.Node) *nodeInfo {
	alloc := node.Status.Allocatable
	if len(alloc) == 0 {
		alloc = node.Status.Capacity
	}
	n := &nodeInfo{
		name:          node.Name,
		labels:        node.Labels,
		zone:          zoneOf(node.Labels),
		unschedulable: node.Spec.Unschedulable,
		alloc:         fromList(alloc),
		taints:        objects.EffectiveTaints(node),
	}
	if q, ok := alloc[corev1.ResourcePods]; ok {
		n.allowedPods = q.Value()
	}
	return n
}

// zoneOf is a node's zone label, the legacy one if the current one is absent.
func zoneOf(l map[string]string) string {
	if z, ok := l[corev1.LabelTopologyZone]; ok {
		return z
	}
	return l[corev1.LabelFailureDomainBetaZone]
}

// addPod and removePod account for a pod bound or assumed on the node.
func (n *nodeInfo) addPod(p *PodInfo) {
	n.requested.add(&p.req, 1)
	n.nonZero.add(&p.nonZero, 1)
	n.pods++
	n.ports = append(n.ports, p.ports...)
}

func (n *nodeInfo) removePod(p *PodInfo) {
	n.requested.add(&p.req, -1)
	n.nonZero.add(&p.nonZero, -1)
	n.pods--
	for _, hp := range p.ports {
		for i := range n.ports {
			if n.ports[i] == hp {
				n.ports = append(n.ports[:i], n.ports[i+1:]...)
				break
			}
		}
	}
}

// nodeSelectorTerm is a compiled NodeSelectorTerm: label requirements and metadata.name
// requirements, all of which must hold. A term that is empty or cannot be parsed matches
// no node, as in Kubernetes.
type nodeSelectorTerm struct {
	labels  labels.Selector
	names   []fieldRequirement
	invalid bool
}

// fieldRequirement is a matchFields requirement; metadata.name is the only field nodes
// can be selected by (the DaemonSet controller pins its pods to a node with it).
type fieldRequirement struct {
	in     bool
	values []string
}

// nodeSelector is a list of terms of which one must match; nil means no requirement.
type nodeSelector []nodeSelectorTerm

type weightedNodeTerm struct {
	term   nodeSelectorTerm
	weight int64
}

var nodeSelectorOps = map[corev1.NodeSelectorOperator]selection.Operator{
	corev1.NodeSelectorOpIn:           selection.In,
	corev1.NodeSelectorOpNotIn:        selection.NotIn,
	corev1.NodeSelectorOpExists:       selection.Exists,
	corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
	corev1.NodeSelectorOpGt:           selection.GreaterThan,
	corev1.NodeSelectorOpLt:           selection.LessThan,
}

func compileNodeSelector(terms []corev1.NodeSelectorTerm) nodeSelector {
	out := make(nodeSelector, 0, len(terms))
	for i := range terms {
		out = append(out, compileNodeSelectorTerm(&terms[i]))
	}
	return out
}

func compileNodeSelectorTerm(t *corev1.NodeSelectorTerm) nodeSelectorTerm {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return nodeSelectorTerm{invalid: true}
	}
	var term nodeSelectorTerm
	if len(t.MatchExpressions) > 0 {
		sel := labels.NewSelector()
		for _, e := range t.MatchExpressions {
			op, ok := nodeSelectorOps[e.Operator]
			if !ok {
				return nodeSelectorTerm{invalid: true}
			}
			r, err := labels.NewRequirement(e.Key, op, e.Values)
			if err != nil {
				return nodeSelectorTerm{invalid: true}
			}
			sel = sel.Add(*r)
		}
		term.labels = sel
	}
	for _, f := range t.MatchFields {
		if f.Key != "metadata.name" || (f.Operator != corev1.NodeSelectorOpIn && f.Operator != corev1.NodeSelectorOpNotIn) {
			return nodeSelectorTerm{invalid: true}
		}
		term.names = append(term.names, fieldRequirement{in: f.Operator == corev1.NodeSelectorOpIn, values: f.Values})
	}
	return term
}

func (t *nodeSelectorTerm) matches(n *nodeInfo) bool {
	if t.invalid {
		return false
	}
	if t.labels != nil && !t.labels.Matches(labels.Set(n.labels)) {
		return false
	}
	for _, f := range t.names {
		found := false
		for _, v := range f.values {
			if v == n.name {
				found = true
				break
			}
		}
		if found != f.in {
			return false
		}
	}
	return true
}

// matches reports whether one of the terms matches n; a nil selector matches every node.
func (s nodeSelector) matches(n *nodeInfo) bool {
	if s == nil {
		return true
	}
	for i := range s {
		if s[i].matches(n) {
			return true
		}
	}
	return false
}

func parseInt(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

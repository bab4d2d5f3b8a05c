package daemonset

import (
	"errors"
	"skiff/master/objects"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/klog/v2"
)

// errUnsupportedRequirement is returned when a node selector requirement uses an operator,
// or a number of values, that the API does not define; such a requirement matches nothing.
var errUnsupportedRequirement = errors.New("unsupported node selector requirement")

// eligibility decides which nodes a DaemonSet's pod belongs on, from the template's node
// name, node selector, required node affinity and tolerations (with the defaults every
// daemon pod gets). It is computed once per pass and checked against every node.
type eligibility struct {
	nodeName     string
	nodeSelector labels.Selector
	required     *corev1.NodeSelector
	tolerations  []corev1.Toleration
}

func newEligibility(ds *appsv1.DaemonSet) *eligibility {
	spec := ds.Spec.Template.Spec.DeepCopy()
	addDefaultTolerations(spec)
	e := &eligibility{nodeName: spec.NodeName, tolerations: spec.Tolerations}
	if len(spec.NodeSelector) > 0 {
		e.nodeSelector = labels.SelectorFromSet(spec.NodeSelector)
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil {
		e.required = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	return e
}

// check reports whether a daemon pod should be started on node (run) and whether one that
// is already there may stay (keep). They differ only for taints: a NoSchedule taint the pod
// does not tolerate keeps new pods off but leaves a running one alone, while a NoExecute
// taint evicts it too, as Kubernetes' NodeShouldRunDaemonPod decides.
func (e *eligibility) check(node *corev1.Node) (run, keep bool) {
	if e.nodeName != "" && e.nodeName != node.Name {
		return false, false
	}
	if e.nodeSelector != nil && !e.nodeSelector.Matches(labels.Set(node.Labels)) {
		return false, false
	}
	if e.required != nil && !nodeSelectorMatches(e.required, node) {
		return false, false
	}
	taints := objects.EffectiveTaints(node)
	if !e.untolerated(taints, corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute) {
		return true, true
	}
	return false, !e.untolerated(taints, corev1.TaintEffectNoExecute)
}

// untolerated reports whether one of taints with one of effects is tolerated by none of the
// pod's tolerations.
func (e *eligibility) untolerated(taints []corev1.Taint, effects ...corev1.TaintEffect) bool {
	for i := range taints {
		t := &taints[i]
		relevant := false
		for _, eff := range effects {
			relevant = relevant || t.Effect == eff
		}
		if relevant && !tolerates(e.tolerations, t) {
			return true
		}
	}
	return false
}

// tolerates uses the API's own toleration matching. Numeric comparison operators are an
// alpha feature off by default, so they never match (and never log).
func tolerates(tolerations []corev1.Toleration, taint *corev1.Taint) bool {
	for i := range tolerations {
		if tolerations[i].ToleratesTaint(klog.Logger{}, taint, false) {
			return true
		}
	}
	return false
}

// nodeSelectorMatches evaluates a required node affinity: the terms are ORed, the
// requirements of a term ANDed, and an empty term matches nothing.
func nodeSelectorMatches(ns *corev1.NodeSelector, node *corev1.Node) bool {
	for _, term := range ns.NodeSelectorTerms {
		if termMatches(term, node) {
			return true
		}
	}
	return false
}

func termMatches(term corev1.NodeSelectorTerm, node *corev1.Node) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false
	}
	set := labels.Set(node.Labels)
	for _, req := range term.MatchExpressions {
		r, err := labelRequirement(req)
		if err != nil || !r.Matches(set) {
			return false
		}
	}
	for _, req := range term.MatchFields {
		if !fieldMatches(req, node) {
			return false
		}
	}
	return true
}

var selectionOps = map[corev1.NodeSelectorOperator]selection.Operator{
	corev1.NodeSelectorOpIn:           selection.In,
	corev1.NodeSelectorOpNotIn:        selection.NotIn,
	corev1.NodeSelectorOpExists:       selection.Exists,
	corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
	corev1.NodeSelectorOpGt:           selection.GreaterThan,
	corev1.NodeSelectorOpLt:           selection.LessThan,
}

// labelRequirement turns a node selector requirement into a label requirement, whose
// Matches implements every operator (Gt and Lt compare integers).
func labelRequirement(req corev1.NodeSelectorRequirement) (*labels.Requirement, error) {
	op, ok := selectionOps[req.Operator]
	if !ok {
		return nil, errUnsupportedRequirement
	}
	if op == selection.GreaterThan || op == selection.LessThan {
		if len(req.Values) != 1 {
			return nil, errUnsupportedRequirement
		}
		if _, err := strconv.ParseInt(req.Values[0], 10, 64); err != nil {
			return nil, err
		}
	}
	return labels.NewRequirement(req.Key, op, req.Values)
}

// fieldMatches evaluates a matchFields requirement; metadata.name with In or NotIn is the
// only one the API allows. Node names may be longer than label values, so they are
// compared directly rather than through a label requirement.
func fieldMatches(req corev1.NodeSelectorRequirement, node *corev1.Node) bool {
	if req.Key != metav1.ObjectNameField {
		return false
	}
	in := false
	for _, v := range req.Values {
		in = in || v == node.Name
	}
	switch req.Operator {
	case corev1.NodeSelectorOpIn:
		return in
	case corev1.NodeSelectorOpNotIn:
		return !in
	}
	return false
}

// addDefaultTolerations adds what Kubernetes gives every DaemonSet pod: a daemon belongs to
// its node whatever the node's condition, so node problems and cordoning neither keep it
// off nor evict it (network-unavailable only for host-network pods, which do not need the
// pod network).
func addDefaultTolerations(spec *corev1.PodSpec) {
	add := func(key string, effect corev1.TaintEffect) {
		addOrUpdateToleration(spec, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: effect})
	}
	add(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)
	if spec.HostNetwork {
		add(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)
	}
}

// addOrUpdateToleration replaces a toleration matching t (same key, effect, operator and
// value) with t, or appends t, as Kubernetes' AddOrUpdateTolerationInPodSpec does: a
// user's tolerationSeconds on the same toleration is overridden, so daemons are never
// evicted for node problems.
func addOrUpdateToleration(spec *corev1.PodSpec, t corev1.Toleration) {
	for i := range spec.Tolerations {
		if spec.Tolerations[i].MatchToleration(&t) {
			spec.Tolerations[i] = t
			return
		}
	}
	spec.Tolerations = append(spec.Tolerations, t)
}

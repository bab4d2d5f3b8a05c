package scheduler

import (
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"skiff/fsm"
	"skiff/master/objects"
)

// PodInfo is what placement needs to know about one pod, parsed once from the object:
// requests as integers, compiled selectors, affinity terms and spread constraints. The
// placement loop never looks at the API object again. The scheduler also keeps its own
// bookkeeping here (where the pod is assumed or bound, its place in the queue).
type PodInfo struct {
	key       fsm.Key
	namespace string
	name      string
	uid       string
	labels    map[string]string
	// owner is the UID of the controller owner reference; pods of one owner are spread.
	owner string

	req, nonZero resources
	ports        []hostPort

	nodeSelector  map[string]string
	nodeAffinity  nodeSelector // required; nil when the pod has none
	preferredNode []weightedNodeTerm
	tolerations   []corev1.Toleration

	affinity, antiAffinity                   []affinityTerm // required
	preferredAffinity, preferredAntiAffinity []affinityTerm
	spread                                   []spreadConstraint

	// parseErr is why the pod's scheduling constraints cannot be understood (an invalid
	// selector); such a pod is unschedulable everywhere, with this as the message.
	parseErr error

	// pod is the object the scheduler binds; kept only while the pod is pending.
	pod *corev1.Pod
	rev uint64

	// nodeName and node say where the pod is bound or assumed (node is nil while the cache
	// has no such node).
	nodeName string
	node     *nodeInfo
	// inflight is set while a bind of this pod is being written.
	inflight bool
	// next is a newer version of the pod that arrived while its bind was in flight.
	next *PodInfo

	state    queueState
	attempts int
	lastTry  time.Time
}

// hostPort is one port a pod claims on its node's addresses.
type hostPort struct {
	ip       string
	protocol corev1.Protocol
	port     int32
}

// conflicts reports whether two host ports cannot share a node: same protocol and port, and
// the same address or either on every address.
func (a hostPort) conflicts(b hostPort) bool {
	return a.port == b.port && a.protocol == b.protocol && (a.ip == b.ip || a.ip == anyIP || b.ip == anyIP)
}

const anyIP = "0.0.0.0"

// affinityTerm is a compiled pod (anti-)affinity term: pods matching selector in one of
// namespaces (nil: every namespace) and sharing the value of the node label key.
type affinityTerm struct {
	selector   labels.Selector
	namespaces map[string]bool
	key        string
	weight     int64
}

func (t *affinityTerm) matches(p *PodInfo) bool {
	if t.namespaces != nil && !t.namespaces[p.namespace] {
		return false
	}
	return t.selector.Matches(labels.Set(p.labels))
}

// spreadConstraint is a compiled topologySpreadConstraint.
type spreadConstraint struct {
	maxSkew    int32
	key        string
	hard       bool // DoNotSchedule
	selector   labels.Selector
	minDomains int32
	// honorAffinity and honorTaints say which nodes' domains count (nodeAffinityPolicy,
	// nodeTaintsPolicy).
	honorAffinity, honorTaints bool
	// selfMatch is whether the pod itself matches selector, and so adds one to its domain.
	selfMatch bool
}

// NamespaceResolver returns the names of the namespaces whose labels sel matches. It lets
// affinity terms with a namespaceSelector name namespaces; without one, such a selector
// adds no namespace.
type NamespaceResolver func(sel labels.Selector) []string

// NewPodInfo parses pod for placement.
func NewPodInfo(pod *corev1.Pod) *PodInfo { return newPodInfo(pod, nil) }

func newPodInfo(pod *corev1.Pod, resolve NamespaceResolver) *PodInfo {
	spec := &pod.Spec
	p := &PodInfo{
		key:          objects.Key(podsResource, pod.Namespace, pod.Name),
		namespace:    pod.Namespace,
		name:         pod.Name,
		uid:          string(pod.UID),
		labels:       pod.Labels,
		nodeSelector: spec.NodeSelector,
		tolerations:  spec.Tolerations,
		nodeName:     spec.NodeName,
	}
	p.rev, _ = objects.ParseRV(pod.ResourceVersion)
	if ref := metav1.GetControllerOf(pod); ref != nil {
		p.owner = string(ref.UID)
	}
	p.req, p.nonZero = podRequests(spec)
	for _, ctrs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range ctrs {
			for _, cp := range ctrs[i].Ports {
				if cp.HostPort <= 0 {
					continue
				}
				hp := hostPort{ip: cp.HostIP, protocol: cp.Protocol, port: cp.HostPort}
				if hp.ip == "" {
					hp.ip = anyIP
				}
				if hp.protocol == "" {
					hp.protocol = corev1.ProtocolTCP
				}
				p.ports = append(p.ports, hp)
			}
		}
	}
	var errs []error
	if a := spec.Affinity; a != nil {
		if na := a.NodeAffinity; na != nil {
			if req := na.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
				p.nodeAffinity = compileNodeSelector(req.NodeSelectorTerms)
			}
			for _, t := range na.PreferredDuringSchedulingIgnoredDuringExecution {
				if t.Weight != 0 {
					p.preferredNode = append(p.preferredNode, weightedNodeTerm{term: compileNodeSelectorTerm(&t.Preference), weight: int64(t.Weight)})
				}
			}
		}
		if pa := a.PodAffinity; pa != nil {
			p.affinity = compileAffinityTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution, nil, resolve, &errs)
			p.preferredAffinity = compileAffinityTerms(pod, nil, pa.PreferredDuringSchedulingIgnoredDuringExecution, resolve, &errs)
		}
		if pa := a.PodAntiAffinity; pa != nil {
			p.antiAffinity = compileAffinityTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution, nil, resolve, &errs)
			p.preferredAntiAffinity = compileAffinityTerms(pod, nil, pa.PreferredDuringSchedulingIgnoredDuringExecution, resolve, &errs)
		}
	}
	for i := range spec.TopologySpreadConstraints {
		c, err := compileSpread(pod, &spec.TopologySpreadConstraints[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.spread = append(p.spread, c)
	}
	p.parseErr = errors.Join(errs...)
	return p
}

// hasPodAffinity reports whether the pod has any inter-pod term, which the cache indexes
// because other pods' placement must respect them too.
func (p *PodInfo) hasPodAffinity() bool {
	return len(p.affinity)+len(p.antiAffinity)+len(p.preferredAffinity)+len(p.preferredAntiAffinity) > 0
}

// selectorWithKeys turns a label selector into a Selector, adding "key in (value)" for each
// matchLabelKeys key and "key notin (value)" for each mismatchLabelKeys key the pod has.
func selectorWithKeys(pod *corev1.Pod, ls *metav1.LabelSelector, match, mismatch []string) (labels.Selector, error) {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil || ls == nil {
		return sel, err
	}
	for _, keys := range []struct {
		list []string
		op   selection.Operator
	}{{match, selection.In}, {mismatch, selection.NotIn}} {
		for _, k := range keys.list {
			v, ok := pod.Labels[k]
			if !ok {
				continue
			}
			r, err := labels.NewRequirement(k, keys.op, []string{v})
			if err != nil {
				return nil, err
			}
			sel = sel.Add(*r)
		}
	}
	return sel, nil
}

func compileAffinityTerms(pod *corev1.Pod, required []corev1.PodAffinityTerm, preferred []corev1.WeightedPodAffinityTerm, resolve NamespaceResolver, errs *[]error) []affinityTerm {
	var out []affinityTerm
	add := func(t *corev1.PodAffinityTerm, weight int64) {
		sel, err := selectorWithKeys(pod, t.LabelSelector, t.MatchLabelKeys, t.MismatchLabelKeys)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("invalid pod affinity term: %w", err))
			return
		}
		term := affinityTerm{selector: sel, key: t.TopologyKey, weight: weight}
		switch {
		case len(t.Namespaces) == 0 && t.NamespaceSelector == nil:
			term.namespaces = map[string]bool{pod.Namespace: true}
		case t.NamespaceSelector != nil && len(t.NamespaceSelector.MatchLabels) == 0 && len(t.NamespaceSelector.MatchExpressions) == 0:
			// An empty namespace selector means every namespace.
		default:
			term.namespaces = map[string]bool{}
			for _, ns := range t.Namespaces {
				term.namespaces[ns] = true
			}
			if t.NamespaceSelector != nil && resolve != nil {
				nsSel, err := metav1.LabelSelectorAsSelector(t.NamespaceSelector)
				if err != nil {
					*errs = append(*errs, fmt.Errorf("invalid namespace selector: %w", err))
					return
				}
				for _, ns := range resolve(nsSel) {
					term.namespaces[ns] = true
				}
			}
		}
		out = append(out, term)
	}
	for i := range required {
		add(&required[i], 1)
	}
	for i := range preferred {
		add(&preferred[i].PodAffinityTerm, int64(preferred[i].Weight))
	}
	return out
}

func compileSpread(pod *corev1.Pod, c *corev1.TopologySpreadConstraint) (spreadConstraint, error) {
	sel, err := selectorWithKeys(pod, c.LabelSelector, c.MatchLabelKeys, nil)
	if err != nil {
		return spreadConstraint{}, fmt.Errorf("invalid topology spread constraint: %w", err)
	}
	sc := spreadConstraint{
		maxSkew:       c.MaxSkew,
		key:           c.TopologyKey,
		hard:          c.WhenUnsatisfiable == corev1.DoNotSchedule,
		selector:      sel,
		minDomains:    1,
		honorAffinity: c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
		honorTaints:   c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor,
		selfMatch:     sel.Matches(labels.Set(pod.Labels)),
	}
	if c.MinDomains != nil && sc.hard {
		sc.minDomains = *c.MinDomains
	}
	return sc, nil
}

// tolerates reports whether any toleration lets a pod stay with taint, with the matching
// rules of k8s.io/api's Toleration.ToleratesTaint (including the numeric Gt and Lt).
func tolerates(tolerations []corev1.Toleration, taint *corev1.Taint) bool {
	for i := range tolerations {
		if toleratesOne(&tolerations[i], taint) {
			return true
		}
	}
	return false
}

func toleratesOne(t *corev1.Toleration, taint *corev1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		return t.Value == taint.Value
	case corev1.TolerationOpExists:
		return true
	case corev1.TolerationOpLt, corev1.TolerationOpGt:
		tv, err1 := parseInt(t.Value)
		nv, err2 := parseInt(taint.Value)
		if err1 != nil || err2 != nil {
			return false
		}
		if t.Operator == corev1.TolerationOpLt {
			return nv < tv
		}
		return nv > tv
	}
	return false
}

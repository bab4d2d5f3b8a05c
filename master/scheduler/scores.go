package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
)

// maxScore is what every scorer gives its favourite node; scorers are weighted and summed.
const maxScore = 100

// ScoringStrategy says how node resources count when scoring, as in kube-scheduler's
// NodeResourcesFit plugin.
type ScoringStrategy string

const (
	// LeastAllocated favours the emptiest nodes, spreading load (the default).
	LeastAllocated ScoringStrategy = "LeastAllocated"
	// MostAllocated favours the fullest nodes that fit, packing pods onto few nodes.
	MostAllocated ScoringStrategy = "MostAllocated"
)

// A scorer rates each feasible node from 0 to maxScore into out. It returns false when it
// has no opinion about this pod (every node would score the same), so its work is skipped.
// Scorers are pure: they read the pod, the nodes and the cycle.
type scorer struct {
	weight int64
	score  func(opts *Options, cy *cycle, p *PodInfo, nodes []*nodeInfo, out []int64) bool
}

// The weights are kube-scheduler's defaults for the plugins these stand for.
var scorers = []scorer{
	{1, scoreResources},
	{1, scoreBalanced},
	{2, scoreOwnerSpread},
	{2, scoreTopologySpread},
	{2, scoreNodeAffinity},
	{2, scorePodAffinity},
	{3, scoreTaints},
}

// scoreResources rates the CPU and memory left (LeastAllocated) or used (MostAllocated)
// after placing the pod, counting requests with the scoring defaults for containers that
// ask for nothing.
func scoreResources(opts *Options, _ *cycle, p *PodInfo, nodes []*nodeInfo, out []int64) bool {
	most := opts.Strategy == MostAllocated
	for i, n := range nodes {
		cpu := resourceScore(n.nonZero.milliCPU+p.nonZero.milliCPU, n.alloc.milliCPU, most)
		mem := resourceScore(n.nonZero.memory+p.nonZero.memory, n.alloc.memory, most)
		out[i] = (cpu + mem) / 2
	}
	return true
}

func resourceScore(requested, capacity int64, most bool) int64 {
	if capacity <= 0 {
		return 0
	}
	if most {
		return min(requested, capacity) * maxScore / capacity
	}
	if requested > capacity {
		return 0
	}
	return (capacity - requested) * maxScore / capacity
}

// scoreBalanced favours nodes whose CPU and memory would be used in equal proportion, so
// neither runs out while the other idles.
func scoreBalanced(_ *Options, _ *cycle, p *PodInfo, nodes []*nodeInfo, out []int64) bool {
	for i, n := range nodes {
		cpu := fraction(n.nonZero.milliCPU+p.nonZero.milliCPU, n.alloc.milliCPU)
		mem := fraction(n.nonZero.memory+p.nonZero.memory, n.alloc.memory)
		d := cpu - mem
		if d < 0 {
			d = -d
		}
		out[i] = int64((1 - d/2) * maxScore)
	}
	return true
}

func fraction(requested, capacity int64) float64 {
	if capacity <= 0 {
		return 1
	}
	return min(float64(requested)/float64(capacity), 1)
}

// scoreOwnerSpread spreads the pods of one controller (ReplicaSet, StatefulSet, Job) over
// nodes and zones, for pods without constraints of their own, as kube-scheduler's default
// spreading does: ScheduleAnyway constraints on the hostname (maxSkew 3) and the zone
// (maxSkew 5), so a difference of a pod or two weighs about as much as load does.
func scoreOwnerSpread(_ *Options, cy *cycle, _ *PodInfo, nodes []*nodeInfo, out []int64) bool {
	if cy.owner == nil {
		return false
	}
	hostWeight := math.Log(float64(cy.nodes + 2))
	zoneWeight := math.Log(float64(cy.zones + 2))
	lo, hi := int64(-1), int64(0)
	for i, n := range nodes {
		raw := float64(cy.ownerOnNode[n.index]+2) * hostWeight
		if n.zone != "" {
			raw += float64(cy.ownerInZone[n.zoneID]+4) * zoneWeight
		}
		out[i] = int64(raw + 0.5)
		hi = max(hi, out[i])
		if lo < 0 || out[i] < lo {
			lo = out[i]
		}
	}
	for i := range out {
		out[i] = maxScore * (hi + lo - out[i]) / hi
	}
	return true
}

// scoreTopologySpread favours the domains with fewer matching pods for the ScheduleAnyway
// constraints. Nodes lacking a constraint's key score zero.
func scoreTopologySpread(_ *Options, cy *cycle, _ *PodInfo, nodes []*nodeInfo, out []int64) bool {
	soft := false
	for i := range cy.spread {
		soft = soft || !cy.spread[i].c.hard
	}
	if !soft {
		return false
	}
	minRaw, maxRaw := int64(-1), int64(0)
	for i, n := range nodes {
		raw := float64(0)
		out[i] = -1
		for j := range cy.spread {
			s := &cy.spread[j]
			if s.c.hard {
				continue
			}
			v, ok := n.labels[s.c.key]
			if !ok {
				raw = -1
				break
			}
			raw += float64(s.counts[v]+s.c.maxSkew-1) * s.weight
		}
		if raw < 0 {
			continue
		}
		out[i] = int64(raw + 0.5)
		maxRaw = max(maxRaw, out[i])
		if minRaw < 0 || out[i] < minRaw {
			minRaw = out[i]
		}
	}
	for i := range nodes {
		switch {
		case out[i] < 0:
			out[i] = 0
		case maxRaw == 0:
			out[i] = maxScore
		default:
			out[i] = maxScore * (maxRaw + minRaw - out[i]) / maxRaw
		}
	}
	return true
}

// scoreNodeAffinity sums the weights of the preferred node affinity terms each node
// matches, scaled to the best node.
func scoreNodeAffinity(_ *Options, _ *cycle, p *PodInfo, nodes []*nodeInfo, out []int64) bool {
	if len(p.preferredNode) == 0 {
		return false
	}
	var best int64
	for i, n := range nodes {
		out[i] = 0
		for j := range p.preferredNode {
			if p.preferredNode[j].term.matches(n) {
				out[i] += p.preferredNode[j].weight
			}
		}
		best = max(best, out[i])
	}
	return scaleTo(out, 0, best)
}

// scorePodAffinity rates each node by the inter-pod preferences of its domains (the pod's
// own preferred terms and placed pods' terms about it), scaled between the worst and the
// best node.
func scorePodAffinity(_ *Options, cy *cycle, _ *PodInfo, nodes []*nodeInfo, out []int64) bool {
	if len(cy.preferred) == 0 {
		return false
	}
	lo, hi := int64(0), int64(0)
	for i, n := range nodes {
		out[i] = 0
		for _, k := range cy.preferredKeys {
			if v, ok := n.labels[k]; ok {
				out[i] += cy.preferred[topologyPair{k, v}]
			}
		}
		if i == 0 || out[i] < lo {
			lo = out[i]
		}
		if i == 0 || out[i] > hi {
			hi = out[i]
		}
	}
	return scaleTo(out, lo, hi)
}

// scaleTo maps out from [lo, hi] onto [0, maxScore]; false if every value is the same.
func scaleTo(out []int64, lo, hi int64) bool {
	if hi == lo {
		return false
	}
	for i := range out {
		out[i] = maxScore * (out[i] - lo) / (hi - lo)
	}
	return true
}

// scoreTaints counts the PreferNoSchedule taints the pod does not tolerate; fewer is better.
func scoreTaints(_ *Options, _ *cycle, p *PodInfo, nodes []*nodeInfo, out []int64) bool {
	var worst int64
	for i, n := range nodes {
		out[i] = 0
		for j := range n.taints {
			t := &n.taints[j]
			if t.Effect == corev1.TaintEffectPreferNoSchedule && !toleratesPreferNoSchedule(p.tolerations, t) {
				out[i]++
			}
		}
		worst = max(worst, out[i])
	}
	if worst == 0 {
		return false
	}
	for i := range out {
		out[i] = maxScore * (worst - out[i]) / worst
	}
	return true
}

// toleratesPreferNoSchedule considers only the tolerations that apply to PreferNoSchedule
// taints (those with that effect or none), as TaintToleration scoring does.
func toleratesPreferNoSchedule(tolerations []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tolerations {
		if e := tolerations[i].Effect; (e == "" || e == corev1.TaintEffectPreferNoSchedule) && toleratesOne(&tolerations[i], t) {
			return true
		}
	}
	return false
}

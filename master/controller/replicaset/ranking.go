package replicaset

import (
	"math"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"skiff/master/podstatus"
)

// deletionCostAnnotation lets users say which pods of a ReplicaSet should go first
// (lower cost first), as in Kubernetes.
const deletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// podsToDelete picks the n pods of active whose deletion costs least. Pods are ranked by
// how many active pods of related ReplicaSets share their node, so scaling down also
// spreads what remains.
func podsToDelete(active, related []*corev1.Pod, n int, now time.Time) []*corev1.Pod {
	if n >= len(active) {
		return active
	}
	onNode := map[string]int{}
	for _, p := range related {
		if podstatus.Active(p) {
			onNode[p.Spec.NodeName]++
		}
	}
	ranked := rankedPods{pods: append([]*corev1.Pod(nil), active...), rank: make([]int, len(active)), now: now}
	for i, p := range ranked.pods {
		ranked.rank[i] = onNode[p.Spec.NodeName]
	}
	sort.Sort(ranked)
	return ranked.pods[:n]
}

// rankedPods orders pods from the cheapest to lose to the dearest exactly as Kubernetes'
// ActivePodsWithRanks does (with LogarithmicScaleDown and PodDeletionCost, both on by
// default): unscheduled before scheduled; pending before unknown before running; not
// ready before ready; lower deletion cost first; more co-located siblings first; ready
// for less time first; more restarts first; newer first. Times are compared in
// logarithmic buckets of their age so that pods of similar age are not told apart by
// noise, with the uid as a random but stable tie-break.
type rankedPods struct {
	pods []*corev1.Pod
	rank []int
	now  time.Time
}

var phaseOrdinal = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

func (s rankedPods) Len() int { return len(s.pods) }

func (s rankedPods) Swap(i, j int) {
	s.pods[i], s.pods[j] = s.pods[j], s.pods[i]
	s.rank[i], s.rank[j] = s.rank[j], s.rank[i]
}

func (s rankedPods) Less(i, j int) bool {
	a, b := s.pods[i], s.pods[j]
	if a.Spec.NodeName != b.Spec.NodeName && (a.Spec.NodeName == "" || b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if pa, pb := phaseOrdinal[a.Status.Phase], phaseOrdinal[b.Status.Phase]; pa != pb {
		return pa < pb
	}
	ra, rb := podstatus.Ready(a), podstatus.Ready(b)
	if ra != rb {
		return !ra
	}
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	if s.rank[i] != s.rank[j] {
		return s.rank[i] > s.rank[j]
	}
	if ra && rb {
		ta, tb := readySince(a), readySince(b)
		if !ta.Equal(tb) {
			return s.newer(a, b, ta, tb)
		}
	}
	if xa, xb := maxRestarts(a), maxRestarts(b); xa != xb {
		return xa > xb
	}
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return s.newer(a, b, ta, tb)
	}
	return false
}

// newer reports whether ta is the more recent time (a zero time counting as the most
// recent), comparing ages in powers of two.
func (s rankedPods) newer(a, b *corev1.Pod, ta, tb time.Time) bool {
	if s.now.IsZero() || ta.IsZero() || tb.IsZero() {
		return ta.IsZero() || ta.After(tb)
	}
	if d := ageBucket(ta, s.now) - ageBucket(tb, s.now); d != 0 {
		return d < 0
	}
	return a.UID < b.UID
}

func ageBucket(t, now time.Time) int64 {
	if d := now.Sub(t); d > 0 {
		return int64(math.Log2(float64(d)))
	}
	return -1
}

func deletionCost(p *corev1.Pod) int32 {
	v, err := strconv.ParseInt(p.Annotations[deletionCostAnnotation], 10, 32)
	if err != nil {
		return 0
	}
	return int32(v)
}

func maxRestarts(p *corev1.Pod) int32 {
	var m int32
	for _, c := range p.Status.ContainerStatuses {
		m = max(m, c.RestartCount)
	}
	return m
}

// readySince is when the pod last became ready (zero if unknown).
func readySince(p *corev1.Pod) time.Time {
	if c := podstatus.ReadyCondition(p); c != nil {
		return c.LastTransitionTime.Time
	}
	return time.Time{}
}

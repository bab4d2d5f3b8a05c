package replicaset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// calculateStatus derives rs's status from the pods it controls, as Kubernetes does. It
// also returns how long until the next ready pod becomes available (it has been ready
// for minReadySeconds), zero when none is waiting: availability depends on time alone, so
// nothing else would wake the controller to count it.
func calculateStatus(rs *appsv1.ReplicaSet, active, terminating []*corev1.Pod, manageErr error, now time.Time) (appsv1.ReplicaSetStatus, time.Duration) {
	status := *rs.Status.DeepCopy()
	template := labels.SelectorFromSet(rs.Spec.Template.Labels)
	minReady := time.Duration(rs.Spec.MinReadySeconds) * time.Second
	var fullyLabeled, ready, available int32
	var wait time.Duration
	for _, p := range active {
		if template.Matches(labels.Set(p.Labels)) {
			fullyLabeled++
		}
		if !podReady(p) {
			continue
		}
		ready++
		if in, ok := availableIn(p, minReady, now); in == 0 {
			available++
		} else if ok && (wait == 0 || in < wait) {
			wait = in
		}
	}
	failure := condition(status.Conditions, appsv1.ReplicaSetReplicaFailure)
	switch {
	case manageErr != nil && failure == nil:
		reason := "FailedDelete"
		if len(active) < desiredReplicas(rs) {
			reason = "FailedCreate"
		}
		status.Conditions = append(status.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: reason,
			Message: manageErr.Error(), LastTransitionTime: metav1.NewTime(now.Truncate(time.Second)),
		})
	case manageErr == nil && failure != nil:
		status.Conditions = withoutCondition(status.Conditions, appsv1.ReplicaSetReplicaFailure)
	}
	status.Replicas = int32(len(active))
	status.FullyLabeledReplicas = fullyLabeled
	status.ReadyReplicas = ready
	status.AvailableReplicas = available
	n := int32(len(terminating))
	status.TerminatingReplicas = &n
	status.ObservedGeneration = rs.Generation
	return status, wait
}

// writeStatus stores status if it differs from what rs reports, conditional on rs's
// revision (status writes leave metadata.generation alone).
func (c *Controller) writeStatus(ctx context.Context, rs *appsv1.ReplicaSet, status appsv1.ReplicaSetStatus) error {
	if apiequality.Semantic.DeepEqual(rs.Status, status) {
		return nil
	}
	rs.Status = status
	return c.client.Update(ctx, replicaSets, rs, false)
}

func condition(conds []appsv1.ReplicaSetCondition, t appsv1.ReplicaSetConditionType) *appsv1.ReplicaSetCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

func withoutCondition(conds []appsv1.ReplicaSetCondition, t appsv1.ReplicaSetConditionType) []appsv1.ReplicaSetCondition {
	var out []appsv1.ReplicaSetCondition
	for _, c := range conds {
		if c.Type != t {
			out = append(out, c)
		}
	}
	return out
}

// readyCondition returns the pod's Ready condition, nil if it has none.
func readyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	c := readyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// readySince is when the pod last became ready (zero if unknown).
func readySince(p *corev1.Pod) time.Time {
	if c := readyCondition(p); c != nil {
		return c.LastTransitionTime.Time
	}
	return time.Time{}
}

// availableIn says how long until the ready pod p counts as available: zero if it already
// does; ok is false when it never will by waiting (its ready time is unknown). Kubernetes'
// rule: ready, and ready since strictly more than minReady ago.
func availableIn(p *corev1.Pod, minReady time.Duration, now time.Time) (in time.Duration, ok bool) {
	if minReady == 0 {
		return 0, true
	}
	since := readySince(p)
	if since.IsZero() {
		return -1, false
	}
	at := since.Add(minReady)
	if at.Before(now) {
		return 0, true
	}
	// Strictly after: wake a moment past the boundary.
	return at.Sub(now) + time.Millisecond, true
}

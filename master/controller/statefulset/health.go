package statefulset

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

func readyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// runningAndReady is what OrderedReady waits for before starting the next ordinal.
func runningAndReady(p *corev1.Pod) bool {
	c := readyCondition(p)
	return p.Status.Phase == corev1.PodRunning && c != nil && c.Status == corev1.ConditionTrue
}

// availableIn reports whether p is available at now (running and ready for
// minReadySeconds) and, if it is ready but not yet available, how long until it is.
func availableIn(p *corev1.Pod, minReadySeconds int32, now time.Time) (bool, time.Duration) {
	if !runningAndReady(p) {
		return false, 0
	}
	if minReadySeconds == 0 {
		return true, 0
	}
	c := readyCondition(p)
	at := c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second)
	if !c.LastTransitionTime.IsZero() && at.Before(now) {
		return true, 0
	}
	return false, max(at.Sub(now), time.Second)
}

// unavailable reports whether a replica counts against maxUnavailable: missing, being
// deleted, or not available.
func unavailable(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	if p == nil || p.DeletionTimestamp != nil {
		return true
	}
	ok, _ := availableIn(p, minReadySeconds, now)
	return !ok
}

// finished reports whether p's containers are done for good (a StatefulSet's replicas are
// meant to run forever, so it replaces them).
func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

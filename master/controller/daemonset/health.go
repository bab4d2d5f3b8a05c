package daemonset

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

func isReady(p *corev1.Pod) bool {
	c := readyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// availableIn reports whether p is available at now (ready for minReadySeconds) and, if it
// is ready but not yet available, how long until it is.
func availableIn(p *corev1.Pod, minReadySeconds int32, now time.Time) (bool, time.Duration) {
	if !isReady(p) {
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

func isAvailable(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	ok, _ := availableIn(p, minReadySeconds, now)
	return ok
}

// Package podstatus answers what the controllers and the API server ask of a pod's status
// (is it ready, available, still active), with Kubernetes' definitions, so that every
// component counts a pod the same way. It reads the pod only: no store, no clock of its own.
package podstatus

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// ReadyCondition returns the pod's Ready condition, nil if the agent has not reported one.
func ReadyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// Ready reports whether the pod's Ready condition is True: every container passes its
// readiness probe, so Services send it traffic.
func Ready(p *corev1.Pod) bool {
	c := ReadyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// Terminal reports whether the pod has finished for good (Succeeded or Failed): its
// containers will not run again, whatever its restart policy.
func Terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// Active reports whether the pod still counts towards its controller's replicas: neither
// finished nor being deleted (Kubernetes' IsPodActive).
func Active(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && !Terminal(p)
}

// Available reports whether the pod is available at now: ready, and ready for strictly
// more than minReadySeconds (Kubernetes' IsPodAvailable). When it is ready but not yet
// available, wait is how long until it will be, a moment past the boundary, so that a
// controller requeued after wait finds it available; wait is zero when waiting cannot
// make it available (not ready, or no time of readiness recorded).
func Available(p *corev1.Pod, minReadySeconds int32, now time.Time) (ok bool, wait time.Duration) {
	c := ReadyCondition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false, 0
	}
	if minReadySeconds == 0 {
		return true, 0
	}
	if c.LastTransitionTime.IsZero() {
		return false, 0
	}
	at := c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second)
	if at.Before(now) {
		return true, 0
	}
	return false, at.Sub(now) + time.Millisecond
}

package statefulset

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"skiff/master/podstatus"
)

// runningAndReady is what OrderedReady waits for before starting the next ordinal
// (Kubernetes' isRunningAndReady): a StatefulSet also asks for the Running phase, which
// Ready alone does not imply for a pod that is shutting down.
func runningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && podstatus.Ready(p)
}

// availableIn reports whether p is available at now (running, and ready for
// minReadySeconds) and, if waiting will make it so, how long until it is.
func availableIn(p *corev1.Pod, minReadySeconds int32, now time.Time) (bool, time.Duration) {
	if p.Status.Phase != corev1.PodRunning {
		return false, 0
	}
	return podstatus.Available(p, minReadySeconds, now)
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

package job

import (
	"cmp"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"skiff/master/controller"
	"skiff/master/podstatus"
)

// Pod failure back-off, as Kubernetes: a replacement for a failed pod waits 10 s, doubling
// with each failure since the last success, up to 6 minutes.
const (
	backoffBase = 10 * time.Second
	backoffMax  = 6 * time.Minute
)

// maxCreatesPerPass bounds the pods one pass (one Raft entry) creates; their creation
// events bring the Job back for the rest.
const maxCreatesPerPass = 100

// newPod builds a pod from the Job's template, named "<job>-<5 random>", controlled by the
// Job and carrying the tracking finalizer. The template's labels already hold job-name and
// controller-uid (in both forms): the Job's defaulting adds them.
func newPod(job *batchv1.Job) *corev1.Pod {
	pod := controller.PodFromTemplate(&job.Spec.Template, job, jobs)
	pod.Finalizers = append(pod.Finalizers, batchv1.JobTrackingFinalizer)
	return pod
}

func tracked(p *corev1.Pod) bool { return slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) }

func untrack(p *corev1.Pod) {
	p.Finalizers = slices.DeleteFunc(p.Finalizers, func(f string) bool { return f == batchv1.JobTrackingFinalizer })
}

// podFinishTime is when a finished pod's last container ended (its creation if no
// container says).
func podFinishTime(p *corev1.Pod) time.Time {
	t := p.CreationTimestamp.Time
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			if s.State.Terminated != nil && s.State.Terminated.FinishedAt.After(t) {
				t = s.State.Terminated.FinishedAt.Time
			}
		}
	}
	return t
}

// backoffRemaining is how long a replacement pod must still wait after the failures since
// the last success, judged from the pods still present.
func backoffRemaining(owned []*corev1.Pod, now time.Time) time.Duration {
	var lastSuccess, lastFailure time.Time
	for _, p := range owned {
		if t := podFinishTime(p); p.Status.Phase == corev1.PodSucceeded && t.After(lastSuccess) {
			lastSuccess = t
		}
	}
	failures := 0
	for _, p := range owned {
		if t := podFinishTime(p); p.Status.Phase == corev1.PodFailed && t.After(lastSuccess) {
			failures++
			if t.After(lastFailure) {
				lastFailure = t
			}
		}
	}
	if failures == 0 {
		return 0
	}
	delay := backoffMax
	if failures <= 6 {
		delay = min(backoffMax, backoffBase<<(failures-1))
	}
	return lastFailure.Add(delay).Sub(now)
}

// pastBackoffLimitOnFailure reports whether, with restartPolicy OnFailure, the container
// restarts of the running pods reached the backoff limit: there, failures are restarts in
// place, not failed pods.
func pastBackoffLimitOnFailure(job *batchv1.Job, active []*corev1.Pod) bool {
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var restarts int32
	for _, p := range active {
		if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending {
			continue
		}
		for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
			for _, s := range list {
				restarts += s.RestartCount
			}
		}
	}
	limit := *job.Spec.BackoffLimit
	if limit == 0 {
		return restarts > 0
	}
	return restarts >= limit
}

// sortForRemoval orders active pods so the least advanced go first, as Kubernetes picks
// them: unscheduled, then pending, then not ready, then the youngest.
func sortForRemoval(active []*corev1.Pod) {
	rank := func(p *corev1.Pod) int {
		switch {
		case p.Spec.NodeName == "":
			return 0
		case p.Status.Phase == corev1.PodPending:
			return 1
		case !podstatus.Ready(p):
			return 2
		}
		return 3
	}
	slices.SortStableFunc(active, func(a, b *corev1.Pod) int {
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		return b.CreationTimestamp.Time.Compare(a.CreationTimestamp.Time)
	})
}

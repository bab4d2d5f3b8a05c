package job

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/podstatus"
)

// event is an Event to record once the pass's transaction has committed.
type event struct{ kind, reason, message string }

// pass is one sync of one unfinished Job: the writes it decides (committed together with the
// Job's status, so counts and pod changes are never apart) and the events they deserve.
type pass struct {
	r      *reconciler
	job    *batchv1.Job
	now    time.Time
	ops    []fsm.Op
	events []event
}

func (p *pass) eventf(kind, reason, format string, args ...any) {
	p.events = append(p.events, event{kind, reason, fmt.Sprintf(format, args...)})
}

// sync counts the pods that finished, decides whether the Job fails or succeeds, otherwise
// keeps the wanted number of pods running, and writes it all in one transaction.
func (r *reconciler) sync(ctx context.Context, job *batchv1.Job, owned []*corev1.Pod) error {
	p := &pass{r: r, job: job, now: r.client.Time().Truncate(time.Second)}
	old := job.Status.DeepCopy()
	active, terminating, err := p.count(owned)
	if err != nil {
		return err
	}
	suspended := job.Spec.Suspend != nil && *job.Spec.Suspend
	if job.Status.StartTime == nil && !suspended {
		job.Status.StartTime = &metav1.Time{Time: p.now}
	}
	var requeue time.Duration
	if t := p.decide(active, suspended); t != nil {
		active, terminating, err = p.finish(t, active, terminating)
	} else {
		active, terminating, requeue, err = p.manage(owned, active, terminating, suspended)
		if ads := job.Spec.ActiveDeadlineSeconds; ads != nil && !suspended && job.Status.StartTime != nil {
			left := job.Status.StartTime.Add(time.Duration(*ads) * time.Second).Sub(p.now)
			if requeue == 0 || left < requeue {
				requeue = max(left, time.Second)
			}
		}
	}
	if err != nil {
		return err
	}
	ready := int32(0)
	for _, pod := range active {
		if podstatus.Ready(pod) {
			ready++
		}
	}
	job.Status.Active = int32(len(active))
	job.Status.Ready = &ready
	job.Status.Terminating = ptrTo(int32(len(terminating)))
	if !equality.Semantic.DeepEqual(old, &job.Status) {
		op, err := r.client.UpdateOp(jobs, job, false)
		if err != nil {
			return err
		}
		p.ops = append(p.ops, op)
	}
	if _, err := r.client.Commit(ctx, p.ops...); err != nil {
		return err
	}
	for _, e := range p.events {
		r.rec.Eventf(job, e.kind, e.reason, "%s", e.message)
	}
	if requeue > 0 {
		return controller.RequeueAfter(requeue)
	}
	return nil
}

// count sorts the Job's pods into running and terminating, and counts every finished pod
// still carrying the tracking finalizer, releasing it in the same transaction. A pod being
// deleted before it succeeded counts as failed, as Kubernetes counts it with the default
// podReplacementPolicy: it will never succeed.
func (p *pass) count(owned []*corev1.Pod) (active, terminating []*corev1.Pod, err error) {
	st := &p.job.Status
	for _, pod := range owned {
		counted := tracked(pod)
		switch {
		case pod.Status.Phase == corev1.PodSucceeded:
			if counted {
				st.Succeeded++
			}
		case pod.Status.Phase == corev1.PodFailed:
			if counted {
				st.Failed++
			}
		case pod.DeletionTimestamp != nil:
			terminating = append(terminating, pod)
			if counted {
				st.Failed++
			}
		default:
			active = append(active, pod)
			continue
		}
		ops, err := p.r.client.RemoveFinalizerOps(pods, pod, batchv1.JobTrackingFinalizer)
		if err != nil {
			return nil, nil, err
		}
		p.ops = append(p.ops, ops...)
	}
	return active, terminating, nil
}

// decide returns where the Job is heading: the target an earlier pass chose, or failure
// (backoff limit, active deadline) or success (completions reached; for a work queue with
// no completions, a success and nothing left running). nil keeps it running.
func (p *pass) decide(active []*corev1.Pod, suspended bool) *target {
	job := p.job
	if t := pendingTarget(job); t != nil {
		return t
	}
	limit := int32(6)
	if job.Spec.BackoffLimit != nil {
		limit = *job.Spec.BackoffLimit
	}
	ads := job.Spec.ActiveDeadlineSeconds
	switch {
	case job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion:
		return failure(reasonUnsupportedMode, msgUnsupportedMode)
	case job.Status.Failed > limit || pastBackoffLimitOnFailure(job, active):
		return failure(batchv1.JobReasonBackoffLimitExceeded, msgBackoffLimit)
	case ads != nil && !suspended && job.Status.StartTime != nil && !p.now.Before(job.Status.StartTime.Add(time.Duration(*ads)*time.Second)):
		return failure(batchv1.JobReasonDeadlineExceeded, msgDeadline)
	case job.Spec.Completions == nil && job.Status.Succeeded > 0 && len(active) == 0,
		job.Spec.Completions != nil && job.Status.Succeeded >= *job.Spec.Completions:
		return &target{interim: batchv1.JobSuccessCriteriaMet, terminal: batchv1.JobComplete, reason: batchv1.JobReasonCompletionsReached, message: msgCompletions}
	}
	return nil
}

// finish moves the Job toward t: the interim condition first, every running pod deleted
// (counted as failed when the Job fails, as Kubernetes counts them), and the terminal
// condition (Complete or Failed) once no pod is left terminating, so `kubectl wait` sees a
// finished Job only when nothing of it still runs.
func (p *pass) finish(t *target, active, terminating []*corev1.Pod) ([]*corev1.Pod, []*corev1.Pod, error) {
	job := p.job
	setCondition(job, t.interim, corev1.ConditionTrue, t.reason, t.message, p.now)
	for _, pod := range active {
		if t.failing() && tracked(pod) {
			job.Status.Failed++
		}
		stays, err := p.remove(pod)
		if err != nil {
			return nil, nil, err
		}
		if stays {
			terminating = append(terminating, pod)
		}
	}
	if len(terminating) > 0 {
		return nil, terminating, nil
	}
	setCondition(job, t.terminal, corev1.ConditionTrue, t.reason, t.message, p.now)
	if t.failing() {
		p.eventf(corev1.EventTypeWarning, t.reason, "%s", t.message)
	} else {
		job.Status.CompletionTime = &metav1.Time{Time: p.now}
		p.eventf(corev1.EventTypeNormal, "Completed", "Job completed")
	}
	return nil, nil, nil
}

// manage keeps the wanted number of pods running: it records suspension and resumption,
// deletes pods beyond what is wanted and creates the missing ones, unless the failure
// back-off says to wait (returned as the time to look again).
func (p *pass) manage(owned, active, terminating []*corev1.Pod, suspended bool) ([]*corev1.Pod, []*corev1.Pod, time.Duration, error) {
	job := p.job
	if suspended {
		if setCondition(job, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", p.now) {
			p.eventf(corev1.EventTypeNormal, "Suspended", "Job suspended")
		}
	} else if setCondition(job, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", p.now) {
		// The active deadline counts time continuously active: it starts again.
		p.eventf(corev1.EventTypeNormal, "Resumed", "Job resumed")
		job.Status.StartTime = &metav1.Time{Time: p.now}
	}
	want := wantActive(job, int32(len(active)), suspended)
	var requeue time.Duration
	if excess := len(active) - int(want); excess > 0 {
		sortForRemoval(active)
		for _, pod := range active[:excess] {
			stays, err := p.remove(pod)
			if err != nil {
				return nil, nil, 0, err
			}
			if stays {
				terminating = append(terminating, pod)
			}
		}
		active = active[excess:]
	} else if missing := int(want) - len(active); missing > 0 {
		if job.Spec.PodReplacementPolicy != nil && *job.Spec.PodReplacementPolicy == batchv1.Failed {
			missing -= len(terminating) // replace a pod only once it has failed for good
		}
		if missing > 0 {
			if wait := backoffRemaining(owned, p.now); wait > 0 {
				requeue = wait
			} else {
				created, err := p.create(min(missing, maxCreatesPerPass))
				if err != nil {
					return nil, nil, 0, err
				}
				active = append(active, created...)
			}
		}
	}
	if suspended && len(active) == 0 {
		// A suspended Job has not started: its deadline and mutable template say so.
		job.Status.StartTime = nil
	}
	return active, terminating, requeue, nil
}

// wantActive is how many pods should run, as Kubernetes computes it: none while suspended;
// for a work queue (no completions) parallelism until the first success, then only those
// still running; otherwise the remaining completions, at most parallelism.
func wantActive(job *batchv1.Job, active int32, suspended bool) int32 {
	if suspended {
		return 0
	}
	parallelism := int32(1)
	if job.Spec.Parallelism != nil {
		parallelism = *job.Spec.Parallelism
	}
	if job.Spec.Completions == nil {
		if job.Status.Succeeded > 0 {
			return active
		}
		return parallelism
	}
	return max(0, min(parallelism, *job.Spec.Completions-job.Status.Succeeded))
}

// create adds n pods from the Job's template.
func (p *pass) create(n int) ([]*corev1.Pod, error) {
	created := make([]*corev1.Pod, 0, n)
	for range n {
		pod := newPod(p.job)
		op, err := p.r.client.CreateOp(pods, pod)
		if err != nil {
			p.r.rec.Eventf(p.job, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
			return nil, err
		}
		p.ops = append(p.ops, op)
		p.eventf(corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", pod.Name)
		created = append(created, pod)
	}
	return created, nil
}

// remove deletes a running pod, releasing it in the same write so its end is not counted
// again; it reports whether the pod stays terminating for a while (its agent stops it).
func (p *pass) remove(pod *corev1.Pod) (bool, error) {
	untrack(pod)
	stays := objects.PodGracePeriod(pod, nil) > 0
	ops, err := p.r.client.DeleteOps(pods, pod, metav1.DeletePropagationBackground)
	if err != nil {
		return false, err
	}
	p.ops = append(p.ops, ops...)
	p.eventf(corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", pod.Name)
	return stays, nil
}

func ptrTo[T any](v T) *T { return &v }

package deployment

import (
	"fmt"
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// hasProgressDeadline reports whether progress is tracked (the API defaults the deadline
// to 600 s; MaxInt32 means never).
func hasProgressDeadline(d *appsv1.Deployment) bool {
	return d.Spec.ProgressDeadlineSeconds != nil && *d.Spec.ProgressDeadlineSeconds != math.MaxInt32
}

// checkPausedConditions marks pausing and resuming in the Progressing condition (status
// Unknown), so that time spent paused never counts against the progress deadline. A
// timed-out rollout keeps saying so.
func (r *rollout) checkPausedConditions() {
	d := r.d
	if !hasProgressDeadline(d) {
		return
	}
	cond := condition(d.Status, appsv1.DeploymentProgressing)
	if cond != nil && cond.Reason == timedOutReason {
		return
	}
	paused := cond != nil && cond.Reason == pausedDeployReason
	switch {
	case d.Spec.Paused && !paused:
		r.setCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, pausedDeployReason, "Deployment is paused")
	case !d.Spec.Paused && paused:
		r.setCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, resumedDeployReason, "Deployment is resumed")
	}
}

// syncRolloutStatus computes the status after a rollout step and judges progress, as
// Kubernetes does: NewReplicaSetAvailable once complete; ReplicaSetUpdated (with a fresh
// lastUpdateTime) whenever pods were added, readied or old ones removed;
// ProgressDeadlineExceeded when nothing happened for progressDeadlineSeconds since the
// last such update. The new ReplicaSet's ReplicaFailure condition (else an old one's) is
// carried over.
func (r *rollout) syncRolloutStatus(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) {
	d := r.d
	status := calculateStatus(all, newRS, d, r.now)
	if !hasProgressDeadline(d) {
		status.Conditions = withoutCondition(status.Conditions, appsv1.DeploymentProgressing)
	}
	cur := condition(d.Status, appsv1.DeploymentProgressing)
	complete := status.Replicas == status.UpdatedReplicas && cur != nil && cur.Reason == newRSAvailableReason
	at := conditionTime(r.now)
	subject := fmt.Sprintf("Deployment %q", d.Name)
	if newRS != nil {
		subject = fmt.Sprintf("ReplicaSet %q", newRS.Name)
	}
	if hasProgressDeadline(d) && !complete {
		switch {
		case deploymentComplete(d, &status):
			setCondition(&status, appsv1.DeploymentProgressing, corev1.ConditionTrue, newRSAvailableReason, subject+" has successfully progressed.", at)
		case deploymentProgressing(d, &status):
			c := appsv1.DeploymentCondition{
				Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: replicaSetUpdatedReason,
				Message: subject + " is progressing.", LastUpdateTime: at, LastTransitionTime: at,
			}
			if cur != nil && cur.Status == corev1.ConditionTrue {
				c.LastTransitionTime = cur.LastTransitionTime
			}
			status.Conditions = append(withoutCondition(status.Conditions, appsv1.DeploymentProgressing), c)
		case r.timedOut(&status):
			setCondition(&status, appsv1.DeploymentProgressing, corev1.ConditionFalse, timedOutReason, subject+" has timed out progressing.", at)
		}
	}
	if failure := replicaFailure(all, newRS); failure != nil {
		setCondition(&status, failure.Type, failure.Status, failure.Reason, failure.Message, failure.LastTransitionTime)
	} else {
		status.Conditions = withoutCondition(status.Conditions, appsv1.DeploymentReplicaFailure)
	}
	d.Status = status
	r.checkProgress = true
}

// replicaFailure converts the first ReplicaFailure condition of the new ReplicaSet, else
// of any ReplicaSet, into a Deployment condition.
func replicaFailure(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) *appsv1.DeploymentCondition {
	for _, rs := range append([]*appsv1.ReplicaSet{newRS}, all...) {
		if rs == nil {
			continue
		}
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure {
				return &appsv1.DeploymentCondition{
					Type: appsv1.DeploymentConditionType(c.Type), Status: c.Status, Reason: c.Reason, Message: c.Message,
					LastUpdateTime: c.LastTransitionTime, LastTransitionTime: c.LastTransitionTime,
				}
			}
		}
	}
	return nil
}

// deploymentComplete: every desired replica is updated and available, no old pod is left,
// and the latest spec has been observed. This is what kubectl rollout status waits for.
func deploymentComplete(d *appsv1.Deployment, s *appsv1.DeploymentStatus) bool {
	want := *d.Spec.Replicas
	return s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want && s.ObservedGeneration >= d.Generation
}

// deploymentProgressing reports whether s shows progress over the stored status: more
// updated, ready or available pods, or fewer old ones.
func deploymentProgressing(d *appsv1.Deployment, s *appsv1.DeploymentStatus) bool {
	old := d.Status
	return s.UpdatedReplicas > old.UpdatedReplicas ||
		s.Replicas-s.UpdatedReplicas < old.Replicas-old.UpdatedReplicas ||
		s.ReadyReplicas > old.ReadyReplicas ||
		s.AvailableReplicas > old.AvailableReplicas
}

// timedOut reports whether the last progress (or the creation of the new ReplicaSet, or
// the resume) is more than progressDeadlineSeconds ago; a completed rollout never times
// out, a timed-out one stays so.
func (r *rollout) timedOut(s *appsv1.DeploymentStatus) bool {
	if !hasProgressDeadline(r.d) {
		return false
	}
	c := condition(*s, appsv1.DeploymentProgressing)
	if c == nil || c.Reason == newRSAvailableReason {
		return false
	}
	if c.Reason == timedOutReason {
		return true
	}
	deadline := time.Duration(*r.d.Spec.ProgressDeadlineSeconds) * time.Second
	return c.LastUpdateTime.Add(deadline).Before(r.now)
}

// requeueAfter is when to look at a rollout in progress again to judge the deadline:
// nothing else would wake the controller if the pods simply never become ready. Zero
// when no look is needed.
func (r *rollout) requeueAfter() time.Duration {
	d := r.d
	if !r.checkProgress || !hasProgressDeadline(d) {
		return 0
	}
	c := condition(d.Status, appsv1.DeploymentProgressing)
	if c == nil || c.Reason == timedOutReason || deploymentComplete(d, &d.Status) {
		return 0
	}
	after := c.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second).Sub(r.now)
	// A second more, so that the deadline has surely passed (conditions keep seconds).
	return max(after, 0) + time.Second
}

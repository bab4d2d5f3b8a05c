package scheduler

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// writeResult is the outcome of a bind (pod set) or of a condition write (pod nil).
type writeResult struct {
	pod *PodInfo
	err error
}

// bind writes the placement: spec.nodeName and PodScheduled=True, as the API server's
// binding subresource does, conditional on the version the scheduler placed, so a pod
// changed or deleted meanwhile is not bound on stale grounds. It runs in its own
// goroutine; concurrent binds are packed into shared Raft entries by the Raft layer's
// batcher. pod is not modified.
func (s *Scheduler) bind(ctx context.Context, pod *corev1.Pod, node string) error {
	b := pod.DeepCopy()
	b.Spec.NodeName = node
	setCondition(&b.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, s.now())
	op, err := s.client.UpdateOp(podsResource, b, false)
	if err != nil {
		return err
	}
	if _, err := s.client.Commit(ctx, op); err != nil {
		return err
	}
	s.rec.Eventf(b, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", b.Namespace, b.Name, node)
	return nil
}

// writeCondition sets the PodScheduled condition on pod's status, conditional on its
// version; a pod that changed meanwhile is left for the next attempt.
func (s *Scheduler) writeCondition(ctx context.Context, pod *corev1.Pod, cond corev1.PodCondition) error {
	b := pod.DeepCopy()
	setCondition(&b.Status, cond, s.now())
	op, err := s.client.UpdateOp(podsResource, b, false)
	if err != nil {
		return err
	}
	_, err = s.client.Commit(ctx, op)
	return err
}

func (s *Scheduler) now() time.Time {
	if s.client.Now != nil {
		return s.client.Now()
	}
	return time.Now()
}

// conditionDiffers reports whether writing c would change status: its status, reason or
// message differ from the condition of its type (times do not count).
func conditionDiffers(status *corev1.PodStatus, c *corev1.PodCondition) bool {
	for i := range status.Conditions {
		if old := &status.Conditions[i]; old.Type == c.Type {
			return old.Status != c.Status || old.Reason != c.Reason || old.Message != c.Message
		}
	}
	return true
}

// setCondition replaces or adds the condition of c's type. The transition time moves only
// when the status does.
func setCondition(status *corev1.PodStatus, c corev1.PodCondition, now time.Time) {
	c.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
	for i := range status.Conditions {
		if old := &status.Conditions[i]; old.Type == c.Type {
			if old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
			*old = c
			return
		}
	}
	status.Conditions = append(status.Conditions, c)
}

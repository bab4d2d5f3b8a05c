package statefulset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// updateStatus writes the counts and revisions `kubectl get sts` and `kubectl rollout status`
// read, if they changed, conditional on the StatefulSet as this pass read it (a newer spec
// makes the write stale, and the next pass counts against it). Every member pod counts as a
// replica, even while terminating; only live ones count as current or updated. Once every
// replica is updated and ready, the update revision becomes the current one, completing the
// rolling update. It returns how soon a ready pod becomes available, when minReadySeconds
// makes the counts change with time alone.
func (r *reconciler) updateStatus(ctx context.Context, set *appsv1.StatefulSet, revs *revisions, ps []*corev1.Pod) (time.Duration, error) {
	now := r.client.Time()
	count := collisionCount(set)
	s := appsv1.StatefulSetStatus{
		ObservedGeneration: set.Generation,
		CurrentRevision:    revs.current,
		UpdateRevision:     revs.update,
		CollisionCount:     &count,
		Conditions:         set.Status.Conditions,
	}
	var retry time.Duration
	for _, p := range ps {
		if ordinalOf(set, p) < 0 {
			continue
		}
		s.Replicas++
		if runningAndReady(p) {
			s.ReadyReplicas++
			if ok, wait := availableIn(p, set.Spec.MinReadySeconds, now); ok {
				s.AvailableReplicas++
			} else if wait > 0 && (retry == 0 || wait < retry) {
				retry = wait
			}
		}
		if p.DeletionTimestamp == nil {
			if revisionOf(p) == revs.current {
				s.CurrentReplicas++
			}
			if revisionOf(p) == revs.update {
				s.UpdatedReplicas++
			}
		}
	}
	if set.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType &&
		s.UpdatedReplicas == s.Replicas && s.ReadyReplicas == s.Replicas {
		s.CurrentReplicas = s.UpdatedReplicas
		s.CurrentRevision = s.UpdateRevision
	}
	if equality.Semantic.DeepEqual(s, set.Status) {
		return retry, nil
	}
	set.Status = s
	return retry, r.client.Update(ctx, statefulSets, set, false)
}

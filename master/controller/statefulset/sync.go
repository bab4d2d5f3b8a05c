package statefulset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"skiff/master/podstatus"
)

// sync makes the pass's changes, in Kubernetes' order: first the replicas in the ordinal
// range (recreate finished ones, create missing ones, restore identity labels), then the
// condemned ones beyond it (scale down, highest ordinal first), then the rolling update.
//
// With OrderedReady ("monotonic") a step stops the pass at the first replica that is not
// Running, Ready and available, and makes at most one creation or deletion: each ordinal
// waits for all lower ones, and a scale-down waits for the pod before to be gone. With
// Parallel every replica is handled in the same pass and nothing waits. It returns how
// soon to look again when only time (minReadySeconds) can unblock the set.
func (r *reconciler) sync(ctx context.Context, set *appsv1.StatefulSet, revs *revisions, ps []*corev1.Pod) (time.Duration, error) {
	now := r.client.Time()
	minReady := set.Spec.MinReadySeconds
	start, n := startOrdinal(set), replicaCount(set)
	replicas := make([]*corev1.Pod, n)
	var condemned []*corev1.Pod
	for _, p := range ps {
		switch ord := ordinalOf(set, p); {
		case ord < 0:
		case ord >= start && ord < start+n:
			replicas[ord-start] = p
		default:
			condemned = append(condemned, p)
		}
	}
	byOrdinalDescending(set, condemned)

	// The first unavailable pod, counting replicas before condemned ones and condemned ones
	// from the lowest ordinal: a scale-down may remove it even while it is unhealthy.
	var firstUnavailable *corev1.Pod
	replicasHealthy := true
	for _, p := range replicas {
		replicasHealthy = replicasHealthy && !unavailable(p, minReady, now)
	}
	for i := len(condemned) - 1; replicasHealthy && i >= 0 && firstUnavailable == nil; i-- {
		if unavailable(condemned[i], minReady, now) {
			firstUnavailable = condemned[i]
		}
	}

	monotonic := set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	b := r.batch(set)
	for i, p := range replicas {
		switch {
		case p != nil && podstatus.Terminal(p):
			// The replacement comes once this one is gone.
			if p.DeletionTimestamp == nil {
				if err := b.delete(p); err != nil {
					return 0, err
				}
			}
			replicas[i] = nil
			if monotonic {
				return 0, b.commit(ctx)
			}
			continue
		case p == nil:
			if err := b.create(newVersionedPod(set, revs, start+i)); err != nil {
				return 0, err
			}
			if monotonic {
				return 0, b.commit(ctx)
			}
			continue
		}
		if monotonic {
			if p.DeletionTimestamp != nil || !runningAndReady(p) {
				return 0, b.commit(ctx)
			}
			if ok, wait := availableIn(p, minReady, now); !ok {
				return wait, b.commit(ctx)
			}
		}
		if !identityMatches(set, p) {
			setIdentity(set, p, start+i)
			if err := b.update(p); err != nil {
				return 0, err
			}
		}
	}
	if err := b.commit(ctx); err != nil {
		return 0, err
	}

	for _, p := range condemned {
		if p.DeletionTimestamp != nil {
			if monotonic {
				return 0, nil
			}
			continue
		}
		if monotonic && p != firstUnavailable {
			if !runningAndReady(p) {
				return 0, nil
			}
			if ok, wait := availableIn(p, minReady, now); !ok {
				return wait, nil
			}
		}
		if err := b.delete(p); err != nil {
			return 0, err
		}
		if monotonic {
			return 0, b.commit(ctx)
		}
	}
	if err := b.commit(ctx); err != nil {
		return 0, err
	}

	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return 0, nil
	}
	return 0, r.rollingUpdate(ctx, set, revs, replicas, now)
}

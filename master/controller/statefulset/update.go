package statefulset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// rollingUpdate deletes replicas not at the update revision, from the highest ordinal down
// to the partition, while fewer than maxUnavailable replicas (default 1) are unavailable;
// the next passes recreate them at the update revision. With the default this replaces one
// pod at a time, each after the one before is Running and Ready again. replicas are the
// pods in the ordinal range as this pass found them (nil where one was missing).
func (r *reconciler) rollingUpdate(ctx context.Context, set *appsv1.StatefulSet, revs *revisions, replicas []*corev1.Pod, now time.Time) error {
	partition, maxUnavailable := 0, 1
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		if ru.Partition != nil {
			partition = int(*ru.Partition)
		}
		if ru.MaxUnavailable != nil {
			// Percentages round down, but never below one, as in Kubernetes.
			n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, len(replicas), false)
			if err != nil {
				return err
			}
			maxUnavailable = max(n, 1)
		}
	}
	down := 0
	for _, p := range replicas {
		if unavailable(p, set.Spec.MinReadySeconds, now) {
			down++
		}
	}
	b := r.batch(set)
	for i, budget := len(replicas)-1, maxUnavailable-down; i >= 0 && i >= partition && budget > 0; i-- {
		p := replicas[i]
		if p == nil || p.DeletionTimestamp != nil || revisionOf(p) == revs.update {
			continue
		}
		if err := b.delete(p); err != nil {
			return err
		}
		budget--
	}
	return b.commit(ctx)
}

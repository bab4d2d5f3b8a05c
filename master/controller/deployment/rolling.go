package deployment

import (
	"context"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
)

// rolloutRolling moves a RollingUpdate one step: grow the new ReplicaSet as far as
// maxSurge allows, else shrink old ones as far as maxUnavailable allows, else (done)
// prune the history; then report. Availability comes from the ReplicaSets' status, so
// each step waits for the pods of the previous one to become ready.
func (r *rollout) rolloutRolling(ctx context.Context) error {
	newRS, oldRSs, err := r.allReplicaSets(ctx, true)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	scaled, err := r.reconcileNewReplicaSet(ctx, all, newRS)
	if err != nil {
		return err
	}
	if !scaled {
		if scaled, err = r.reconcileOldReplicaSets(ctx, all, filterActive(oldRSs), newRS); err != nil {
			return err
		}
	}
	if !scaled && deploymentComplete(r.d, &r.d.Status) {
		if err := r.cleanup(ctx, oldRSs); err != nil {
			return err
		}
	}
	r.syncRolloutStatus(all, newRS)
	return nil
}

// reconcileNewReplicaSet scales the new ReplicaSet towards spec.replicas within the surge.
func (r *rollout) reconcileNewReplicaSet(ctx context.Context, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	want := *r.d.Spec.Replicas
	switch {
	case *newRS.Spec.Replicas == want:
		return false, nil
	case *newRS.Spec.Replicas > want:
		return r.scaleReplicaSetAndRecordEvent(ctx, newRS, want)
	}
	n, err := newRSNewReplicas(r.d, all, newRS)
	if err != nil {
		return false, err
	}
	return r.scaleReplicaSetAndRecordEvent(ctx, newRS, n)
}

// reconcileOldReplicaSets scales old ReplicaSets down as far as availability allows:
//
//	maxScaledDown = allPods - minAvailable - newRSUnavailable
//
// counting the new ReplicaSet's unavailable pods so that they never license removing
// available old ones. Old ReplicaSets' unhealthy pods go first (removing them costs no
// availability), then available ones while more than minAvailable remain.
func (r *rollout) reconcileOldReplicaSets(ctx context.Context, all, oldRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	if specReplicas(oldRSs) == 0 {
		return false, nil
	}
	minAvailable := *r.d.Spec.Replicas - maxUnavailable(r.d)
	newUnavailable := *newRS.Spec.Replicas - newRS.Status.AvailableReplicas
	maxScaledDown := specReplicas(all) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return false, nil
	}
	cleaned, err := r.cleanupUnhealthyReplicas(ctx, oldRSs, maxScaledDown)
	if err != nil {
		return false, err
	}
	all = append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	scaledDown, err := r.scaleDownOldReplicaSets(ctx, all, oldRSs)
	if err != nil {
		return false, err
	}
	return cleaned+scaledDown > 0, nil
}

// cleanupUnhealthyReplicas shrinks old ReplicaSets, oldest first, by their unavailable
// pods, at most limit in all. The ReplicaSet controller deletes unready pods first, so
// this removes exactly the pods that were not serving.
func (r *rollout) cleanupUnhealthyReplicas(ctx context.Context, oldRSs []*appsv1.ReplicaSet, limit int32) (int32, error) {
	sort.Sort(byCreation(oldRSs))
	var total int32
	for _, rs := range oldRSs {
		if total >= limit {
			break
		}
		if *rs.Spec.Replicas == 0 || *rs.Spec.Replicas == rs.Status.AvailableReplicas {
			continue
		}
		n := min(limit-total, *rs.Spec.Replicas-rs.Status.AvailableReplicas)
		if n <= 0 {
			continue
		}
		if _, err := r.scaleReplicaSetAndRecordEvent(ctx, rs, *rs.Spec.Replicas-n); err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// scaleDownOldReplicaSets removes available old pods, oldest ReplicaSet first, while
// more than minAvailable pods are available in all.
func (r *rollout) scaleDownOldReplicaSets(ctx context.Context, all, oldRSs []*appsv1.ReplicaSet) (int32, error) {
	minAvailable := *r.d.Spec.Replicas - maxUnavailable(r.d)
	available := availableReplicas(all)
	if available <= minAvailable {
		return 0, nil
	}
	sort.Sort(byCreation(oldRSs))
	var total int32
	budget := available - minAvailable
	for _, rs := range oldRSs {
		if total >= budget {
			break
		}
		if *rs.Spec.Replicas == 0 {
			continue
		}
		n := min(*rs.Spec.Replicas, budget-total)
		if _, err := r.scaleReplicaSetAndRecordEvent(ctx, rs, *rs.Spec.Replicas-n); err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

package deployment

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	"skiff/master/podstatus"
)

// rolloutRecreate scales every old ReplicaSet to zero, waits until none of their pods runs
// (terminating ones included), and only then creates and scales up the new ReplicaSet,
// so old and new pods never run side by side.
func (r *rollout) rolloutRecreate(ctx context.Context) error {
	newRS, oldRSs, err := r.allReplicaSets(ctx, false)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	scaledDown := false
	for _, rs := range filterActive(oldRSs) {
		scaled, err := r.scaleReplicaSetAndRecordEvent(ctx, rs, 0)
		if err != nil {
			return err
		}
		scaledDown = scaledDown || scaled
	}
	running, err := r.oldPodsRunning(newRS, oldRSs)
	if err != nil {
		return err
	}
	if scaledDown || running {
		r.syncRolloutStatus(all, newRS)
		return nil
	}
	if newRS == nil {
		if newRS, oldRSs, err = r.allReplicaSets(ctx, true); err != nil {
			return err
		}
		all = append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	}
	if _, err := r.scaleReplicaSetAndRecordEvent(ctx, newRS, *r.d.Spec.Replicas); err != nil {
		return err
	}
	if deploymentComplete(r.d, &r.d.Status) {
		if err := r.cleanup(ctx, oldRSs); err != nil {
			return err
		}
	}
	r.syncRolloutStatus(all, newRS)
	return nil
}

// oldPodsRunning reports whether an old ReplicaSet still reports pods or any pod of one
// has not finished (whatever its deletion state).
func (r *rollout) oldPodsRunning(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) (bool, error) {
	if statusReplicas(oldRSs) > 0 {
		return true, nil
	}
	byRS, err := podMap(r.c.client.State(), r.d, r.sel, r.rsList)
	if err != nil {
		return false, err
	}
	for uid, ps := range byRS {
		if newRS != nil && newRS.UID == uid {
			continue
		}
		for _, p := range ps {
			if !podstatus.Terminal(p) {
				return true, nil
			}
		}
	}
	return false, nil
}

package deployment

import (
	"context"
	"errors"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"skiff/fsm"
	"skiff/master/controller"
)

// claimReplicaSets returns the ReplicaSets the Deployment controls once ownership is
// settled as Kubernetes' ControllerRefManager settles it: an orphan whose labels the
// selector matches is adopted (unless either side is being deleted); one it controls whose
// labels no longer match is released (unless the Deployment is being deleted); those of
// other controllers are left alone. Every write is conditional on the ReplicaSet's
// revision; one that vanished meanwhile is skipped.
func (r *rollout) claimReplicaSets(ctx context.Context, st *fsm.State, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	d := r.d
	owned, err := controller.Owned[*appsv1.ReplicaSet](st, replicaSets, d)
	if err != nil {
		return nil, err
	}
	matching, err := controller.List[*appsv1.ReplicaSet](st, replicaSets, d.Namespace, sel)
	if err != nil {
		return nil, err
	}
	seen := map[types.UID]bool{}
	var claimed []*appsv1.ReplicaSet
	for _, rs := range append(owned, matching...) {
		if seen[rs.UID] {
			continue
		}
		seen[rs.UID] = true
		if rs.Spec.Replicas == nil {
			rs.Spec.Replicas = new(int32)
			*rs.Spec.Replicas = 1
		}
		matches := sel.Matches(labels.Set(rs.Labels))
		ref := metav1.GetControllerOfNoCopy(rs)
		switch {
		case ref != nil && ref.UID != d.UID:
		case ref != nil && matches:
			claimed = append(claimed, rs)
		case ref != nil:
			if d.DeletionTimestamp == nil {
				rs.OwnerReferences = withoutOwner(rs.OwnerReferences, d.UID)
				if err := r.c.client.Update(ctx, replicaSets, rs, false); err != nil && !errors.Is(err, fsm.ErrNotFound) {
					return nil, err
				}
			}
		case matches && d.DeletionTimestamp == nil && rs.DeletionTimestamp == nil:
			rs.OwnerReferences = append(withoutOwner(rs.OwnerReferences, d.UID), controller.OwnerReference(d, deployments))
			err := r.c.client.Update(ctx, replicaSets, rs, false)
			if errors.Is(err, fsm.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			claimed = append(claimed, rs)
		}
	}
	return claimed, nil
}

// podMap groups the pods d's selector matches by the claimed ReplicaSet controlling them.
// A Recreate rollout reads it to wait until no old pod runs.
func podMap(st *fsm.State, d *appsv1.Deployment, sel labels.Selector, rsList []*appsv1.ReplicaSet) (map[types.UID][]*corev1.Pod, error) {
	ps, err := controller.List[*corev1.Pod](st, pods, d.Namespace, sel)
	if err != nil {
		return nil, err
	}
	m := make(map[types.UID][]*corev1.Pod, len(rsList))
	for _, rs := range rsList {
		m[rs.UID] = nil
	}
	for _, p := range ps {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil {
			continue
		}
		if _, ok := m[ref.UID]; ok {
			m[ref.UID] = append(m[ref.UID], p)
		}
	}
	return m, nil
}

func withoutOwner(refs []metav1.OwnerReference, uid types.UID) []metav1.OwnerReference {
	out := make([]metav1.OwnerReference, 0, len(refs))
	for _, r := range refs {
		if r.UID != uid {
			out = append(out, r)
		}
	}
	return out
}

package deployment

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"skiff/fsm"
	"skiff/master/controller"
)

// claimReplicaSets returns the ReplicaSets the Deployment controls once ownership is
// settled as Kubernetes' ControllerRefManager settles it (controller.Claim): an orphan
// whose labels the selector matches is adopted, one it controls whose labels no longer
// match is released, those of other controllers are left alone.
func (r *rollout) claimReplicaSets(ctx context.Context, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	claimed, err := controller.Claim(ctx, r.c.client, controller.ClaimSpec[*appsv1.ReplicaSet]{
		Owner: r.d, OwnerResource: deployments, Resource: replicaSets, Selector: sel,
	})
	if err != nil {
		return nil, err
	}
	for _, rs := range claimed {
		if rs.Spec.Replicas == nil {
			rs.Spec.Replicas = new(int32)
			*rs.Spec.Replicas = 1
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

package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/podstatus"
)

// claimPods returns the active pods rs controls once ownership is settled as Kubernetes'
// ControllerRefManager settles it (controller.Claim): an active orphan the selector
// matches is adopted, a pod rs controls whose labels no longer match is released. Pods
// that finished or are being deleted are left alone, as Kubernetes filters them out
// before claiming: they no longer count towards the replicas.
func (c *Controller) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, sel labels.Selector) ([]*corev1.Pod, error) {
	return controller.Claim(ctx, c.client, controller.ClaimSpec[*corev1.Pod]{
		Owner: rs, OwnerResource: replicaSets, Resource: pods, Selector: sel,
		Ignore: func(p *corev1.Pod) bool { return !podstatus.Active(p) },
	})
}

// controlledPods returns the pods rs controls and its selector matches, split into active
// ones and ones being deleted that have not finished yet.
func controlledPods(st *fsm.State, rs *appsv1.ReplicaSet, sel labels.Selector) (active, terminating []*corev1.Pod, err error) {
	controlled, err := controller.Controlled[*corev1.Pod](st, pods, rs)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range controlled {
		switch {
		case !sel.Matches(labels.Set(p.Labels)):
		case podstatus.Active(p):
			active = append(active, p)
		case p.DeletionTimestamp != nil && !podstatus.Terminal(p):
			terminating = append(terminating, p)
		}
	}
	return active, terminating, nil
}

package replicaset

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

// claimPods returns the active pods rs controls once ownership is settled as Kubernetes'
// ControllerRefManager settles it: an active orphan the selector matches is adopted (a
// controller reference added, conditional on the pod's revision); a pod rs controls whose
// labels no longer match is released (its reference to rs removed), unless rs is being
// deleted. Pods controlled by something else are never touched. A pod that vanished
// meanwhile is skipped; any other failed write aborts the pass, so rs never creates
// replacements for pods it merely failed to adopt.
func (c *Controller) claimPods(ctx context.Context, st *fsm.State, rs *appsv1.ReplicaSet, sel labels.Selector) ([]*corev1.Pod, error) {
	candidates, err := candidatePods(st, rs, sel)
	if err != nil {
		return nil, err
	}
	var claimed []*corev1.Pod
	for _, pod := range candidates {
		if !isActive(pod) {
			continue
		}
		matches := sel.Matches(labels.Set(pod.Labels))
		ref := metav1.GetControllerOfNoCopy(pod)
		switch {
		case ref != nil && ref.UID != rs.UID:
		case ref != nil && matches:
			claimed = append(claimed, pod)
		case ref != nil:
			if rs.DeletionTimestamp == nil {
				pod.OwnerReferences = withoutOwner(pod.OwnerReferences, rs.UID)
				if err := c.client.Update(ctx, pods, pod, false); err != nil && !errors.Is(err, fsm.ErrNotFound) {
					return nil, err
				}
			}
		case matches && rs.DeletionTimestamp == nil:
			pod.OwnerReferences = append(withoutOwner(pod.OwnerReferences, rs.UID), controller.OwnerReference(rs, replicaSets))
			err := c.client.Update(ctx, pods, pod, false)
			if errors.Is(err, fsm.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			claimed = append(claimed, pod)
		}
	}
	return claimed, nil
}

// candidatePods lists the pods that name rs as an owner and those its selector matches,
// through the owner and label indexes rather than the whole namespace.
func candidatePods(st *fsm.State, rs *appsv1.ReplicaSet, sel labels.Selector) ([]*corev1.Pod, error) {
	owned, err := controller.Owned[*corev1.Pod](st, pods, rs)
	if err != nil {
		return nil, err
	}
	matching, err := controller.List[*corev1.Pod](st, pods, rs.Namespace, sel)
	if err != nil {
		return nil, err
	}
	seen := make(map[types.UID]bool, len(owned))
	out := owned
	for _, p := range owned {
		seen[p.UID] = true
	}
	for _, p := range matching {
		if !seen[p.UID] {
			out = append(out, p)
		}
	}
	return out, nil
}

// controlledPods returns the pods rs controls and its selector matches, split into active
// ones and ones being deleted that have not finished yet.
func controlledPods(st *fsm.State, rs *appsv1.ReplicaSet, sel labels.Selector) (active, terminating []*corev1.Pod, err error) {
	owned, err := controller.Owned[*corev1.Pod](st, pods, rs)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range owned {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil || ref.UID != rs.UID || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		switch {
		case isActive(p):
			active = append(active, p)
		case p.DeletionTimestamp != nil && !isTerminal(p):
			terminating = append(terminating, p)
		}
	}
	return active, terminating, nil
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

package daemonset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"skiff/fsm"
	"skiff/master/controller"
)

// claimPods returns the pods ds controls, as Kubernetes' ClaimPods decides them: pods it
// controls whose labels its selector still matches, plus orphans (no controller, not being
// deleted) that the selector matches, which it adopts. Pods it controls whose labels no
// longer match are released. Adoptions and releases commit together; the pods are then
// read again so later writes are conditional on their new revisions.
func (r *reconciler) claimPods(ctx context.Context, ds *appsv1.DaemonSet, sel labels.Selector) ([]*corev1.Pod, error) {
	st := r.client.State()
	owned, err := controller.Owned[*corev1.Pod](st, pods, ds)
	if err != nil {
		return nil, err
	}
	matching, err := controller.List[*corev1.Pod](st, pods, ds.Namespace, sel)
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	var ops []fsm.Op
	mine := map[string]bool{}
	for _, p := range owned {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil || ref.UID != ds.UID {
			continue
		}
		mine[p.Name] = true
		if sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
			continue
		}
		refs := p.OwnerReferences[:0]
		for _, o := range p.OwnerReferences {
			if o.UID != ds.UID {
				refs = append(refs, o)
			}
		}
		p.OwnerReferences = refs
		op, err := r.client.UpdateOp(pods, p, false)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	for _, p := range matching {
		if mine[p.Name] || p.DeletionTimestamp != nil || metav1.GetControllerOfNoCopy(p) != nil {
			continue
		}
		p.OwnerReferences = append(p.OwnerReferences, controller.OwnerReference(ds, daemonSets))
		op, err := r.client.UpdateOp(pods, p, false)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return out, nil
	}
	if _, err := r.client.Commit(ctx, ops...); err != nil {
		return nil, err
	}
	return r.claimPods(ctx, ds, sel)
}

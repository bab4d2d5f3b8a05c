package statefulset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"skiff/fsm"
	"skiff/master/controller"
)

// claimPods returns the pods set controls, as Kubernetes' ClaimPods decides them with the
// StatefulSet's membership filter: pods it controls that its selector matches and whose
// name makes them its members, plus orphans (no controller, not being deleted) that match
// likewise, which it adopts (a set deleted with --cascade=orphan and created again takes its
// replicas back). Pods it controls that no longer match are released. Adoptions and
// releases commit together; the pods are then read again so later writes are conditional
// on their new revisions.
func (r *reconciler) claimPods(ctx context.Context, set *appsv1.StatefulSet, sel labels.Selector) ([]*corev1.Pod, error) {
	st := r.client.State()
	owned, err := controller.Owned[*corev1.Pod](st, pods, set)
	if err != nil {
		return nil, err
	}
	candidates, err := controller.List[*corev1.Pod](st, pods, set.Namespace, sel)
	if err != nil {
		return nil, err
	}
	member := func(p *corev1.Pod) bool { return sel.Matches(labels.Set(p.Labels)) && ordinalOf(set, p) >= 0 }
	var out []*corev1.Pod
	var ops []fsm.Op
	mine := map[string]bool{}
	for _, p := range owned {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil || ref.UID != set.UID {
			continue
		}
		mine[p.Name] = true
		if member(p) {
			out = append(out, p)
			continue
		}
		refs := p.OwnerReferences[:0]
		for _, o := range p.OwnerReferences {
			if o.UID != set.UID {
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
	for _, p := range candidates {
		if mine[p.Name] || p.DeletionTimestamp != nil || metav1.GetControllerOfNoCopy(p) != nil || !member(p) {
			continue
		}
		p.OwnerReferences = append(p.OwnerReferences, controller.OwnerReference(set, statefulSets))
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
	return r.claimPods(ctx, set, sel)
}

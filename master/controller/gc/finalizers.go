package gc

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/registry"
)

// RemoveFinalizerOps returns what removing finalizer from obj takes, with the API server's
// rule for updates: an object being deleted whose last finalizer goes is removed. Two kinds
// are only updated, because someone else finishes them: a pod still within its grace period
// (deletionGracePeriodSeconds above zero), which its agent stops and then removes, as the
// kubelet does; and a Namespace, which the namespace finalizer empties before removing it.
// It returns no ops when obj does not carry the finalizer. obj is changed in place.
func RemoveFinalizerOps(c *controller.Client, r *registry.Resource, obj runtime.Object, finalizer string) ([]fsm.Op, error) {
	acc := objects.Accessor(obj)
	if !slices.Contains(acc.GetFinalizers(), finalizer) {
		return nil, nil
	}
	acc.SetFinalizers(slices.DeleteFunc(acc.GetFinalizers(), func(f string) bool { return f == finalizer }))
	grace := acc.GetDeletionGracePeriodSeconds()
	_, namespace := obj.(*corev1.Namespace)
	if acc.GetDeletionTimestamp() != nil && len(acc.GetFinalizers()) == 0 && (grace == nil || *grace == 0) && !namespace {
		rev, err := objects.ParseRV(acc.GetResourceVersion())
		if err != nil {
			return nil, err
		}
		return []fsm.Op{fsm.Delete(objects.Key(r, acc.GetNamespace(), acc.GetName()), rev)}, nil
	}
	op, err := c.UpdateOp(r, obj, false)
	if err != nil {
		return nil, err
	}
	return []fsm.Op{op}, nil
}

// foreground works on an owner deleted in the foreground: each dependent not yet being
// deleted is collected (deleted, or released if it has another live owner); once no
// dependent is left at all, the foregroundDeletion finalizer comes off and the owner goes.
// Waiting for every dependent, not only those with blockOwnerDeletion, is stricter than
// Kubernetes and never wrong.
func (g *collector) foreground(ctx context.Context, st *fsm.State, r *registry.Resource, owner runtime.Object) error {
	deps := st.Dependents(string(objects.Accessor(owner).GetUID()))
	if len(deps) == 0 {
		ops, err := RemoveFinalizerOps(g.client, r, owner, metav1.FinalizerDeleteDependents)
		if err != nil {
			return err
		}
		_, err = g.client.Commit(ctx, ops...)
		return err
	}
	var ops []fsm.Op
	for _, rec := range deps {
		dr := g.byStore[rec.Key.Resource]
		if dr == nil {
			continue
		}
		dep, err := objects.Decode(dr, rec)
		if err != nil {
			return err
		}
		if objects.Accessor(dep).GetDeletionTimestamp() != nil {
			continue // already going; its deletion event brings the owner back here
		}
		more, err := g.collectOps(st, dr, dep)
		if err != nil {
			return err
		}
		if ops = append(ops, more...); len(ops) >= batchSize {
			if _, err := g.client.Commit(ctx, ops...); err != nil {
				return err
			}
			ops = nil
		}
	}
	_, err := g.client.Commit(ctx, ops...)
	return err
}

// orphan works on an owner deleted with the orphan policy: every dependent loses its
// reference to the owner, then the orphan finalizer comes off (and the owner goes if it was
// the last one). The finalizer is removed in the same transaction as the last dependents,
// so the owner never disappears while something still points at it.
func (g *collector) orphan(ctx context.Context, st *fsm.State, r *registry.Resource, owner runtime.Object) error {
	uid := objects.Accessor(owner).GetUID()
	var ops []fsm.Op
	for _, rec := range st.Dependents(string(uid)) {
		dr := g.byStore[rec.Key.Resource]
		if dr == nil {
			continue
		}
		dep, err := objects.Decode(dr, rec)
		if err != nil {
			return err
		}
		acc := objects.Accessor(dep)
		acc.SetOwnerReferences(slices.DeleteFunc(acc.GetOwnerReferences(), func(ref metav1.OwnerReference) bool { return ref.UID == uid }))
		op, err := g.client.UpdateOp(dr, dep, false)
		if err != nil {
			return err
		}
		if ops = append(ops, op); len(ops) >= batchSize {
			if _, err := g.client.Commit(ctx, ops...); err != nil {
				return err
			}
			ops = nil
		}
	}
	fin, err := RemoveFinalizerOps(g.client, r, owner, metav1.FinalizerOrphanDependents)
	if err != nil {
		return err
	}
	_, err = g.client.Commit(ctx, append(ops, fin...)...)
	return err
}

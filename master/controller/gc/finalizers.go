package gc

import (
	"context"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/registry"
)

// foreground works on an owner deleted in the foreground: each dependent not yet being
// deleted is collected (deleted, or released if it has another live owner); once no
// dependent is left at all, the foregroundDeletion finalizer comes off and the owner goes.
// Waiting for every dependent, not only those with blockOwnerDeletion, is stricter than
// Kubernetes and never wrong.
func (g *collector) foreground(ctx context.Context, st *fsm.State, r *registry.Resource, owner runtime.Object) error {
	deps := st.Dependents(string(objects.Accessor(owner).GetUID()))
	if len(deps) == 0 {
		ops, err := g.client.RemoveFinalizerOps(r, owner, metav1.FinalizerDeleteDependents)
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
	fin, err := g.client.RemoveFinalizerOps(r, owner, metav1.FinalizerOrphanDependents)
	if err != nil {
		return err
	}
	_, err = g.client.Commit(ctx, append(ops, fin...)...)
	return err
}

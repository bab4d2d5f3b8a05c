package gc

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/registry"
)

// ownerState is what a dependent's owner reference points at.
type ownerState int

const (
	// ownerAlive: the owner exists with the referenced UID (or cannot be resolved, which the
	// collector never takes as a reason to delete).
	ownerAlive ownerState = iota
	// ownerGone: nothing with the referenced UID is at the referenced name.
	ownerGone
	// ownerDeletingDependents: the owner is being deleted in the foreground and waits for
	// its dependents to go first.
	ownerDeletingDependents
)

// resolve finds where the owner named by ref lives for a dependent in namespace. A
// cluster-scoped dependent cannot have a namespaced owner; Kubernetes treats such a
// reference as unresolvable, and so does this (ok is false).
func (g *collector) resolve(namespace string, ref metav1.OwnerReference) (fsm.Key, bool) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return fsm.Key{}, false
	}
	r := g.byKind[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}]
	if r == nil || (r.Namespaced && namespace == "") {
		return fsm.Key{}, false
	}
	return objects.Key(r, namespace, ref.Name), true
}

// ownerKeys lists the keys of the owners refs name, so a foreground deletion waiting on a
// dependent is looked at again when that dependent goes.
func (g *collector) ownerKeys(namespace string, refs []metav1.OwnerReference) []fsm.Key {
	var keys []fsm.Key
	for _, ref := range refs {
		if k, ok := g.resolve(namespace, ref); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// ownerState checks the owner ref names by UID, not only by name: an owner deleted and
// created again under the same name is a different owner. cache, when not nil, keeps the
// owners read during one sweep.
func (g *collector) ownerState(st *fsm.State, namespace string, ref metav1.OwnerReference, cache map[fsm.Key]header) ownerState {
	k, ok := g.resolve(namespace, ref)
	if !ok {
		return ownerAlive
	}
	h, seen := cache[k]
	if !seen {
		rec := st.Get(k)
		if rec == nil {
			return ownerGone
		}
		h = readHeader(rec)
		if cache != nil {
			cache[k] = h
		}
	}
	switch {
	case h.Metadata.UID != string(ref.UID):
		return ownerGone
	case h.Metadata.DeletionTimestamp != nil && slices.Contains(h.Metadata.Finalizers, metav1.FinalizerDeleteDependents):
		return ownerDeletingDependents
	}
	return ownerAlive
}

// collectOps decides the fate of obj from its owners, as the Kubernetes collector's
// attemptToDeleteItem does: with every owner alive nothing happens; with some owner alive
// the references to the others (gone, or deleting in the foreground) are removed; with none
// alive the object is deleted, in the foreground if a foreground deletion waits on it and it
// has dependents of its own, else as its own finalizers ask (background by default).
func (g *collector) collectOps(st *fsm.State, r *registry.Resource, obj runtime.Object) ([]fsm.Op, error) {
	acc := objects.Accessor(obj)
	var solid, drop, waiting int
	for _, ref := range acc.GetOwnerReferences() {
		switch g.ownerState(st, acc.GetNamespace(), ref, nil) {
		case ownerAlive:
			solid++
		case ownerGone:
			drop++
		case ownerDeletingDependents:
			drop++
			waiting++
		}
	}
	switch {
	case drop == 0:
		return nil, nil
	case solid > 0:
		kept := slices.DeleteFunc(acc.GetOwnerReferences(), func(ref metav1.OwnerReference) bool {
			return g.ownerState(st, acc.GetNamespace(), ref, nil) != ownerAlive
		})
		acc.SetOwnerReferences(kept)
		op, err := g.client.UpdateOp(r, obj, false)
		if err != nil {
			return nil, err
		}
		return []fsm.Op{op}, nil
	}
	policy := metav1.DeletePropagationBackground
	switch {
	case waiting > 0 && len(st.Dependents(string(acc.GetUID()))) > 0:
		policy = metav1.DeletePropagationForeground
	case slices.Contains(acc.GetFinalizers(), metav1.FinalizerOrphanDependents):
		policy = metav1.DeletePropagationOrphan
	case slices.Contains(acc.GetFinalizers(), metav1.FinalizerDeleteDependents):
		policy = metav1.DeletePropagationForeground
	}
	return g.client.DeleteOps(r, obj, policy)
}

// Package gc is the garbage collector: it deletes objects whose owners are gone (background
// cascading), deletes an owner's dependents before the owner when it is deleted in the
// foreground, and releases them when it is deleted with the orphan policy, as the Kubernetes
// garbage collector does with ownerReferences.
//
// It finds dependents through the store's owner index (fsm.State.Dependents), so a deletion
// costs a look-up of that owner's dependents, never a scan; only the periodic resync sweeps
// every object, to catch what happened while no leader was watching.
package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/registry"
)

// batchSize bounds how many objects one Raft entry changes, so a large cascade becomes a
// series of modest entries instead of one huge one.
const batchSize = 100

// collector is the garbage collector's Reconciler. Its keys are the objects it looks at:
// a dependent whose owners may be gone, or an owner being deleted with a GC finalizer.
type collector struct {
	client  *controller.Client
	byStore map[string]*registry.Resource
	byKind  map[schema.GroupKind]*registry.Resource
	watched []string
}

// New returns the garbage collector. It records no events, as in Kubernetes.
func New(client *controller.Client) controller.Reconciler {
	g := &collector{client: client, byStore: map[string]*registry.Resource{}, byKind: map[schema.GroupKind]*registry.Resource{}}
	for _, r := range registry.All() {
		g.byStore[objects.StoreResource(r)] = r
		g.byKind[schema.GroupKind{Group: r.Group, Kind: r.Kind}] = r
		// Events are written constantly and own nothing: not watching them spares every
		// event write a look here. One that names an owner is still found through the
		// owner index when that owner goes, and by the sweep.
		if r.Group != "" || r.Resource != "events" {
			g.watched = append(g.watched, objects.StoreResource(r))
		}
	}
	return g
}

// Watches lists every resource that can own or depend on another.
func (g *collector) Watches() []string { return slices.Clone(g.watched) }

// header is the part of an object's metadata the collector reads without decoding the
// whole object.
type header struct {
	Metadata struct {
		UID               string                  `json:"uid"`
		DeletionTimestamp *metav1.Time            `json:"deletionTimestamp"`
		Finalizers        []string                `json:"finalizers"`
		OwnerReferences   []metav1.OwnerReference `json:"ownerReferences"`
	} `json:"metadata"`
}

func readHeader(rec *fsm.Record) header {
	var h header
	if rec != nil {
		_ = json.Unmarshal(rec.Value, &h)
	}
	return h
}

// deleting reports whether the object is being deleted and waits on one of the collector's
// finalizers.
func (h header) deleting() bool {
	return h.Metadata.DeletionTimestamp != nil &&
		(slices.Contains(h.Metadata.Finalizers, metav1.FinalizerDeleteDependents) || slices.Contains(h.Metadata.Finalizers, metav1.FinalizerOrphanDependents))
}

var deletionTimestampField = []byte(`"deletionTimestamp"`)

// Keys maps a change to the objects it may have left for the collector: the dependents of a
// deleted object, the owners of a deleted or released dependent (a foreground deletion may
// be waiting for it), a dependent whose owner references changed, and an object marked for
// deletion with a collector finalizer.
func (g *collector) Keys(st *fsm.State, ev fsm.Event) []fsm.Key {
	rec := ev.Record
	var keys []fsm.Key
	if ev.Type == fsm.Deleted {
		h := readHeader(rec)
		if h.Metadata.UID != "" {
			for _, d := range st.Dependents(h.Metadata.UID) {
				keys = append(keys, d.Key)
			}
		}
		return append(keys, g.ownerKeys(rec.Key.Namespace, h.Metadata.OwnerReferences)...)
	}
	ownersChanged := ev.Prev == nil || !slices.Equal(ev.Prev.Meta.Owners, rec.Meta.Owners)
	if len(rec.Meta.Owners) > 0 && ownersChanged {
		keys = append(keys, rec.Key)
	}
	if ev.Prev != nil && len(ev.Prev.Meta.Owners) > 0 && ownersChanged {
		keys = append(keys, g.ownerKeys(rec.Key.Namespace, readHeader(ev.Prev).Metadata.OwnerReferences)...)
	}
	if bytes.Contains(rec.Value, deletionTimestampField) && readHeader(rec).deleting() {
		keys = append(keys, rec.Key)
	}
	return keys
}

// Primary sweeps the whole store for work a missed event would have announced: dependents
// with an owner that is gone or deleting in the foreground, and owners being deleted with a
// collector finalizer. It decodes each owner at most once per sweep.
func (g *collector) Primary(st *fsm.State) []fsm.Key {
	var keys []fsm.Key
	owners := map[fsm.Key]header{}
	st.Walk(func(rec *fsm.Record) bool {
		if g.byStore[rec.Key.Resource] == nil {
			return true
		}
		var h header
		decoded := false
		if bytes.Contains(rec.Value, deletionTimestampField) {
			h, decoded = readHeader(rec), true
			if h.deleting() {
				keys = append(keys, rec.Key)
				return true
			}
		}
		if len(rec.Meta.Owners) == 0 {
			return true
		}
		if !decoded {
			h = readHeader(rec)
		}
		if h.Metadata.DeletionTimestamp != nil {
			return true // already going: nothing left to collect
		}
		for _, ref := range h.Metadata.OwnerReferences {
			if g.ownerState(st, rec.Key.Namespace, ref, owners) != ownerAlive {
				keys = append(keys, rec.Key)
				break
			}
		}
		return true
	})
	return keys
}

// Reconcile looks at one object: it finishes a deletion waiting on a collector finalizer,
// or collects the object (or drops references to owners that are gone) when an owner is
// missing.
func (g *collector) Reconcile(ctx context.Context, key fsm.Key) error {
	st := g.client.State()
	r := g.byStore[key.Resource]
	rec := st.Get(key)
	if r == nil || rec == nil {
		return nil
	}
	obj, err := objects.Decode(r, rec)
	if err != nil {
		return err
	}
	acc := objects.Accessor(obj)
	if acc.GetDeletionTimestamp() != nil {
		switch {
		case slices.Contains(acc.GetFinalizers(), metav1.FinalizerOrphanDependents):
			return g.orphan(ctx, st, r, obj)
		case slices.Contains(acc.GetFinalizers(), metav1.FinalizerDeleteDependents):
			return g.foreground(ctx, st, r, obj)
		}
		return nil
	}
	ops, err := g.collectOps(st, r, obj)
	if err != nil {
		return err
	}
	_, err = g.client.Commit(ctx, ops...)
	return err
}

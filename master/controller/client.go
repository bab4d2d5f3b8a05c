package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/registry"
)

// ErrInvalid is returned when an object a controller built fails the resource's validation
// (for example a pod template that cannot become a valid pod).
var ErrInvalid = errors.New("invalid object")

// Client reads typed objects from the leader's FSM and writes them through Raft, each write
// conditional on the revision it was read at, with the same stamping, defaulting and
// validation the API server applies. Store errors come back wrapped: errors.Is with
// fsm.ErrConflict, fsm.ErrNotFound or fsm.ErrAlreadyExists tells a controller that the
// state moved under it and the next pass should look again. It is safe for concurrent use.
type Client struct {
	Store Store
	Now   func() time.Time
}

// State returns the leader's current state; it is immutable and may be read at leisure.
func (c *Client) State() *fsm.State { return c.Store.FSM().State() }

// Time returns the controllers' clock: Now if set (tests), else the wall clock.
func (c *Client) Time() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c *Client) now() time.Time { return c.Time() }

// Get decodes namespace/name of r from st; it returns nil (and no error) when absent.
func Get[T runtime.Object](st *fsm.State, r *registry.Resource, namespace, name string) (T, error) {
	var zero T
	rec := st.Get(objects.Key(r, namespace, name))
	if rec == nil {
		return zero, nil
	}
	obj, err := objects.Decode(r, rec)
	if err != nil {
		return zero, err
	}
	return obj.(T), nil
}

// List decodes every object of r in namespace (all when empty) whose labels sel matches
// (everything when sel is nil).
func List[T runtime.Object](st *fsm.State, r *registry.Resource, namespace string, sel labels.Selector) ([]T, error) {
	opts := fsm.ListOptions{Resource: objects.StoreResource(r), Namespace: namespace}
	if sel != nil && !sel.Empty() {
		opts.Predicate = func(rec *fsm.Record) bool { return sel.Matches(labels.Set(rec.Meta.Labels)) }
	}
	recs, _ := st.List(opts)
	return decodeAll[T](r, recs)
}

// ListField decodes the objects of r whose indexed field has value, through the index.
func ListField[T runtime.Object](st *fsm.State, r *registry.Resource, field, value string) ([]T, error) {
	recs, _ := st.List(fsm.ListOptions{Resource: objects.StoreResource(r), Field: field, FieldValue: value})
	return decodeAll[T](r, recs)
}

// Owned decodes the objects of r that name owner in their ownerReferences, through the
// store's owner index.
func Owned[T runtime.Object](st *fsm.State, r *registry.Resource, owner metav1.Object) ([]T, error) {
	var recs []*fsm.Record
	want := objects.StoreResource(r)
	for _, rec := range st.Dependents(string(owner.GetUID())) {
		if rec.Key.Resource == want && (owner.GetNamespace() == "" || rec.Key.Namespace == owner.GetNamespace()) {
			recs = append(recs, rec)
		}
	}
	return decodeAll[T](r, recs)
}

// Controlled decodes the objects of r whose controller is owner (an object may name owner
// as a mere owner, or be mid-adoption by another controller), through the owner index.
func Controlled[T runtime.Object](st *fsm.State, r *registry.Resource, owner metav1.Object) ([]T, error) {
	owned, err := Owned[T](st, r, owner)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(owned, func(obj T) bool { return !metav1.IsControlledBy(objects.Accessor(obj), owner) }), nil
}

func decodeAll[T runtime.Object](r *registry.Resource, recs []*fsm.Record) ([]T, error) {
	out := make([]T, 0, len(recs))
	for _, rec := range recs {
		obj, err := objects.Decode(r, rec)
		if err != nil {
			return nil, err
		}
		out = append(out, obj.(T))
	}
	return out, nil
}

// CreateOp prepares obj as the API server prepares a create (name from generateName, uid,
// creation time, defaults, validation) and returns the operation that stores it. obj is
// updated in place with what was decided.
func (c *Client) CreateOp(r *registry.Resource, obj runtime.Object) (fsm.Op, error) {
	acc := objects.Accessor(obj)
	objects.StampNew(acc, c.now())
	if pod, ok := obj.(*corev1.Pod); ok {
		// As the API server does on create: a new pod has no status but its phase.
		pod.Status = corev1.PodStatus{Phase: corev1.PodPending}
	}
	if r.Default != nil {
		r.Default(obj)
	}
	if r.Validate != nil {
		if errs := r.Validate(obj, nil); len(errs) > 0 {
			return fsm.Op{}, fmt.Errorf("%w: %s %s/%s: %v", ErrInvalid, r.Kind, acc.GetNamespace(), acc.GetName(), errs.ToAggregate())
		}
	}
	value, meta, err := objects.Encode(r, obj)
	if err != nil {
		return fsm.Op{}, err
	}
	return fsm.Create(objects.Key(r, acc.GetNamespace(), acc.GetName()), value, meta), nil
}

// UpdateOp returns the operation that replaces obj, conditional on its resourceVersion.
// bumpGeneration is set by callers that changed the spec (metadata.generation counts spec
// changes, so status writers leave it alone).
func (c *Client) UpdateOp(r *registry.Resource, obj runtime.Object, bumpGeneration bool) (fsm.Op, error) {
	acc := objects.Accessor(obj)
	rev, err := objects.ParseRV(acc.GetResourceVersion())
	if err != nil || rev == 0 {
		return fsm.Op{}, fmt.Errorf("updating %s %s/%s: no resourceVersion to make the write conditional on", r.Kind, acc.GetNamespace(), acc.GetName())
	}
	if bumpGeneration {
		acc.SetGeneration(acc.GetGeneration() + 1)
	}
	if r.Default != nil {
		r.Default(obj)
	}
	value, meta, err := objects.Encode(r, obj)
	if err != nil {
		return fsm.Op{}, err
	}
	return fsm.Update(objects.Key(r, acc.GetNamespace(), acc.GetName()), rev, value, meta), nil
}

// DeleteOps returns what deleting obj takes, as the API server would do it with the given
// propagation policy: a pod bound to a node is only marked (its agent stops it within the
// grace period and removes it); an object with finalizers, or deleted in the foreground,
// is marked and left to its finalizers; anything else is removed, conditional on its
// resourceVersion. An object already being deleted needs nothing (no ops).
func (c *Client) DeleteOps(r *registry.Resource, obj runtime.Object, policy metav1.DeletionPropagation) ([]fsm.Op, error) {
	acc := objects.Accessor(obj)
	if acc.GetDeletionTimestamp() != nil {
		return nil, nil
	}
	rev, err := objects.ParseRV(acc.GetResourceVersion())
	if err != nil || rev == 0 {
		return nil, fmt.Errorf("deleting %s %s/%s: no resourceVersion to make the write conditional on", r.Kind, acc.GetNamespace(), acc.GetName())
	}
	key := objects.Key(r, acc.GetNamespace(), acc.GetName())
	var grace int64
	if pod, ok := obj.(*corev1.Pod); ok {
		grace = objects.PodGracePeriod(pod, nil)
	}
	finalizers := acc.GetFinalizers()
	if policy == metav1.DeletePropagationForeground {
		finalizers = appendUnique(finalizers, metav1.FinalizerDeleteDependents)
	}
	if policy == metav1.DeletePropagationOrphan {
		finalizers = appendUnique(finalizers, metav1.FinalizerOrphanDependents)
	}
	if grace == 0 && len(finalizers) == 0 {
		return []fsm.Op{fsm.Delete(key, rev)}, nil
	}
	now := metav1.NewTime(c.now().Truncate(time.Second).Add(time.Duration(grace) * time.Second))
	acc.SetDeletionTimestamp(&now)
	acc.SetDeletionGracePeriodSeconds(&grace)
	acc.SetFinalizers(finalizers)
	value, meta, err := objects.Encode(r, obj)
	if err != nil {
		return nil, err
	}
	return []fsm.Op{fsm.Update(key, rev, value, meta)}, nil
}

// ForceDeleteOps returns what deleting obj without a grace period takes, for pods whose
// agent is gone and cannot finish a graceful deletion: the object is removed at once unless
// it has finalizers, in which case it is marked deleted with grace 0, so the last
// finalizer's removal deletes it (RemoveFinalizerOps). An object already marked with grace
// 0 needs nothing (no ops).
func (c *Client) ForceDeleteOps(r *registry.Resource, obj runtime.Object) ([]fsm.Op, error) {
	acc := objects.Accessor(obj)
	if g := acc.GetDeletionGracePeriodSeconds(); acc.GetDeletionTimestamp() != nil && g != nil && *g == 0 && len(acc.GetFinalizers()) > 0 {
		return nil, nil
	}
	rev, err := objects.ParseRV(acc.GetResourceVersion())
	if err != nil || rev == 0 {
		return nil, fmt.Errorf("deleting %s %s/%s: no resourceVersion to make the write conditional on", r.Kind, acc.GetNamespace(), acc.GetName())
	}
	key := objects.Key(r, acc.GetNamespace(), acc.GetName())
	if len(acc.GetFinalizers()) == 0 {
		return []fsm.Op{fsm.Delete(key, rev)}, nil
	}
	now, zero := metav1.NewTime(c.now().Truncate(time.Second)), int64(0)
	acc.SetDeletionTimestamp(&now)
	acc.SetDeletionGracePeriodSeconds(&zero)
	value, meta, err := objects.Encode(r, obj)
	if err != nil {
		return nil, err
	}
	return []fsm.Op{fsm.Update(key, rev, value, meta)}, nil
}

// RemoveFinalizerOps returns what removing finalizer from obj takes, with the API server's
// rule for updates: an object being deleted whose last finalizer goes is removed. Two kinds
// are only updated, because someone else finishes them: a pod still within its grace period
// (deletionGracePeriodSeconds above zero), which its agent stops and then removes, as the
// kubelet does; and a Namespace, which the namespace finalizer empties before removing it.
// It returns no ops when obj does not carry the finalizer. obj is changed in place.
func (c *Client) RemoveFinalizerOps(r *registry.Resource, obj runtime.Object, finalizer string) ([]fsm.Op, error) {
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

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// Commit proposes ops as one all-or-nothing transaction. A business failure (conflict,
// missing, already exists) is returned wrapping the fsm sentinel; on success it returns the
// revision the transaction was applied at.
func (c *Client) Commit(ctx context.Context, ops ...fsm.Op) (uint64, error) {
	if len(ops) == 0 {
		return 0, nil
	}
	res, err := c.Store.Propose(ctx, &fsm.Txn{Ops: ops})
	if err != nil {
		return 0, err
	}
	if res.Err != nil {
		return 0, fmt.Errorf("%s %s: %w", ops[res.Failed].Kind, ops[res.Failed].Key, res.Err)
	}
	return res.Revision, nil
}

// Create stores a new object (see CreateOp) and sets its resourceVersion.
func (c *Client) Create(ctx context.Context, r *registry.Resource, obj runtime.Object) error {
	op, err := c.CreateOp(r, obj)
	if err != nil {
		return err
	}
	return c.commitOne(ctx, obj, op)
}

// Update replaces obj if it is still at its resourceVersion, and sets the new one.
func (c *Client) Update(ctx context.Context, r *registry.Resource, obj runtime.Object, bumpGeneration bool) error {
	op, err := c.UpdateOp(r, obj, bumpGeneration)
	if err != nil {
		return err
	}
	return c.commitOne(ctx, obj, op)
}

// commitOne commits the write of obj and sets obj's resourceVersion to the revision it was
// stored at, so the caller's next write can be conditional on it.
func (c *Client) commitOne(ctx context.Context, obj runtime.Object, op fsm.Op) error {
	rev, err := c.Commit(ctx, op)
	if err != nil {
		return err
	}
	objects.Accessor(obj).SetResourceVersion(strconv.FormatUint(rev, 10))
	return nil
}

// Delete deletes obj as DeleteOps describes.
func (c *Client) Delete(ctx context.Context, r *registry.Resource, obj runtime.Object, policy metav1.DeletionPropagation) error {
	ops, err := c.DeleteOps(r, obj, policy)
	if err != nil {
		return err
	}
	_, err = c.Commit(ctx, ops...)
	return err
}

// IsStale reports whether err means the state moved under the writer (a newer write, an
// object gone or already there): the controller should look again rather than log it.
func IsStale(err error) bool {
	return errors.Is(err, fsm.ErrConflict) || errors.Is(err, fsm.ErrNotFound) || errors.Is(err, fsm.ErrAlreadyExists) || apierrors.IsConflict(err)
}

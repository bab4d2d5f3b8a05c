package controller

import (
	"context"
	"errors"
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"skiff/fsm"
	"skiff/master/registry"
)

// ErrEmptySelector is returned when Claim is asked to claim with an empty selector, which
// would adopt every object of the namespace.
var ErrEmptySelector = errors.New("claiming with an empty selector")

// Dependent is an object a controller can own: any stored API object, typed.
type Dependent interface {
	runtime.Object
	metav1.Object
}

// ClaimSpec says which owner Claim settles ownership for, and over which objects.
type ClaimSpec[T Dependent] struct {
	Owner         metav1.Object
	OwnerResource *registry.Resource
	// Resource is the dependents' resource (pods, ReplicaSets).
	Resource *registry.Resource
	// Selector is the owner's selector; it must not be empty (validation forbids it, and
	// controllers check before claiming).
	Selector labels.Selector
	// Ignore, when set, leaves objects out altogether: neither adopted, released nor
	// returned (a ReplicaSet looks only at its active pods, as Kubernetes filters them
	// before claiming).
	Ignore func(T) bool
	// Member, when set, narrows what the selector matches: an object must also satisfy it
	// to be kept or adopted (a StatefulSet claims only pods named after it).
	Member func(T) bool
}

// claimBatch bounds the adoptions and releases of one Raft entry, so that re-creating
// the owner of a thousand orphans does not make one huge entry.
const claimBatch = 100

// Claim settles which objects of spec.Resource spec.Owner controls, as Kubernetes'
// ControllerRefManager does, and returns them. The candidates are the objects that name
// the owner and those its selector matches, found through the owner and label indexes.
// One it controls that still matches is kept; one it controls that no longer matches is
// released (its references to the owner removed); an orphan that matches, not being
// deleted, is adopted (a controller reference to the owner added). An owner being deleted
// neither adopts nor releases, and objects another controller holds are never touched.
//
// Adoptions and releases commit in as few transactions as claimBatch allows, each write
// conditional on the object's revision. A failed write (the object changed or vanished
// meanwhile) aborts the pass before the owner acts on a partial claim, for example by
// creating replacements for pods it merely failed to adopt; the runner retries it. The
// returned objects carry their new revisions, so later writes can be conditional on them.
func Claim[T Dependent](ctx context.Context, c *Client, spec ClaimSpec[T]) ([]T, error) {
	if spec.Selector == nil || spec.Selector.Empty() {
		return nil, ErrEmptySelector
	}
	st := c.State()
	owned, err := Owned[T](st, spec.Resource, spec.Owner)
	if err != nil {
		return nil, err
	}
	matching, err := List[T](st, spec.Resource, spec.Owner.GetNamespace(), spec.Selector)
	if err != nil {
		return nil, err
	}
	uid := spec.Owner.GetUID()
	ownerGoing := spec.Owner.GetDeletionTimestamp() != nil
	seen := make(map[types.UID]bool, len(owned))
	var claimed, written []T
	var ops []fsm.Op
	for _, obj := range append(owned, matching...) {
		if seen[obj.GetUID()] || spec.Ignore != nil && spec.Ignore(obj) {
			continue
		}
		seen[obj.GetUID()] = true
		matches := spec.Selector.Matches(labels.Set(obj.GetLabels())) && (spec.Member == nil || spec.Member(obj))
		ref := metav1.GetControllerOfNoCopy(obj)
		switch {
		case ref != nil && ref.UID != uid:
			continue
		case ref != nil && matches:
			claimed = append(claimed, obj)
			continue
		case ownerGoing:
			continue
		case ref != nil:
			obj.SetOwnerReferences(withoutOwner(obj.GetOwnerReferences(), uid))
		case !matches || obj.GetDeletionTimestamp() != nil:
			continue
		default:
			obj.SetOwnerReferences(append(withoutOwner(obj.GetOwnerReferences(), uid), OwnerReference(spec.Owner, spec.OwnerResource)))
			claimed = append(claimed, obj)
		}
		op, err := c.UpdateOp(spec.Resource, obj, false)
		if err != nil {
			return nil, err
		}
		ops, written = append(ops, op), append(written, obj)
	}
	for len(ops) > 0 {
		n := min(len(ops), claimBatch)
		rev, err := c.Commit(ctx, ops[:n]...)
		if err != nil {
			return nil, err
		}
		for _, obj := range written[:n] {
			obj.SetResourceVersion(strconv.FormatUint(rev, 10))
		}
		ops, written = ops[n:], written[n:]
	}
	return claimed, nil
}

// withoutOwner returns refs without those naming uid. An adoption drops them before adding
// its controller reference, as the API server's merge of the adoption patch would, so an
// object never names its owner twice.
func withoutOwner(refs []metav1.OwnerReference, uid types.UID) []metav1.OwnerReference {
	return slices.DeleteFunc(slices.Clone(refs), func(r metav1.OwnerReference) bool { return r.UID == uid })
}

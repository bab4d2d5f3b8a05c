package api

import (
	"encoding/json"
	"fmt"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/registry"
)

// deleteOptions reads DeleteOptions from the body (if any) and the query.
func deleteOptions(c echo.Context) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		// client-go sends DeleteOptions as protobuf; kubectl as JSON.
		if body, err = toJSON(c, body); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(body, opts); err != nil {
			return nil, apierrors.NewBadRequest("decoding DeleteOptions: " + err.Error())
		}
	}
	if g := c.QueryParam("gracePeriodSeconds"); g != "" {
		n, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest("gracePeriodSeconds must be an integer")
		}
		opts.GracePeriodSeconds = &n
	}
	if p := c.QueryParam("propagationPolicy"); p != "" {
		pp := metav1.DeletionPropagation(p)
		opts.PropagationPolicy = &pp
	}
	// Checked as kube-apiserver's ValidateDeleteOptions: 422 Invalid, nothing deleted.
	errs := validateDryRun(field.NewPath("dryRun"), opts.DryRun)
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground, metav1.DeletePropagationForeground:
		default:
			errs = append(errs, field.NotSupported(field.NewPath("propagationPolicy"), *opts.PropagationPolicy,
				[]string{string(metav1.DeletePropagationForeground), string(metav1.DeletePropagationBackground), string(metav1.DeletePropagationOrphan)}))
		}
		//nolint:staticcheck // OrphanDependents is deprecated, and still honoured by kube
		if opts.OrphanDependents != nil {
			errs = append(errs, field.Invalid(field.NewPath("propagationPolicy"), *opts.PropagationPolicy, "orphanDependents and deletionPropagation cannot be both set"))
		}
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "DeleteOptions"}, "", errs)
	}
	if opts.OrphanDependents != nil && *opts.OrphanDependents && opts.PropagationPolicy == nil {
		pp := metav1.DeletePropagationOrphan
		opts.PropagationPolicy = &pp
	}
	return opts, nil
}

func (s *Server) delete(c echo.Context, info requestInfo) error {
	opts, err := deleteOptions(c)
	if err != nil {
		return writeStatus(c, err)
	}
	// Without a resourceVersion precondition the client asked for no particular version:
	// a conflict with a concurrent writer is retried on the latest one, as kube-apiserver
	// does, rather than returned as 409.
	for attempt := 0; ; attempt++ {
		st, err := s.readState(c)
		if err != nil {
			return writeStatus(c, err)
		}
		rec := st.Get(objects.Key(info.Resource, info.Namespace, info.Name))
		if rec == nil {
			return writeStatus(c, apierrors.NewNotFound(grOf(info.Resource), info.Name))
		}
		obj, code, err := s.deleteRecord(c, st, info.Resource, rec, opts)
		if apierrors.IsConflict(err) && unconditional(opts) && attempt < maxPatchRetries {
			continue
		}
		if err != nil {
			return writeStatus(c, err)
		}
		// kube-apiserver answers 200 for an object only marked for deletion too, and 202
		// only when the client asked for cascading with orphanDependents=false.
		//nolint:staticcheck // OrphanDependents is deprecated, and still honoured by kube
		if code == http.StatusAccepted && (opts.OrphanDependents == nil || *opts.OrphanDependents) {
			code = http.StatusOK
		}
		return writeObject(c, code, obj)
	}
}

// unconditional reports whether a delete names no resourceVersion to delete at; a UID
// precondition still holds on a retry (it is checked against the latest object).
func unconditional(opts *metav1.DeleteOptions) bool {
	return opts.Preconditions == nil || opts.Preconditions.ResourceVersion == nil
}

// deleteRecord deletes one object: at once, or by marking it with a deletionTimestamp when
// finalizers (or a pod's graceful termination on its node) must run first. It returns the
// object as the response shows it and the HTTP code (200 deleted, 202 marked). A dry run
// (query or opts.DryRun) changes nothing. Extra operations (an eviction's disruption budget
// update) commit in the same transaction as the deletion, or not at all.
func (s *Server) deleteRecord(c echo.Context, st *fsm.State, r *registry.Resource, rec *fsm.Record, opts *metav1.DeleteOptions, extra ...fsm.Op) (runtime.Object, int, error) {
	obj, err := objects.Decode(r, rec)
	if err != nil {
		return nil, 0, err
	}
	dry := isDryRun(c, opts)
	acc := objects.Accessor(obj)
	if p := opts.Preconditions; p != nil {
		if p.UID != nil && *p.UID != acc.GetUID() {
			return nil, 0, apierrors.NewConflict(grOf(r), acc.GetName(), fmt.Errorf("precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, acc.GetUID()))
		}
		if p.ResourceVersion != nil && *p.ResourceVersion != acc.GetResourceVersion() {
			return nil, 0, apierrors.NewConflict(grOf(r), acc.GetName(), fmt.Errorf("precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, acc.GetResourceVersion()))
		}
	}
	policy := metav1.DeletePropagationBackground
	if opts.PropagationPolicy != nil {
		policy = *opts.PropagationPolicy
	}
	key := rec.Key
	if acc.GetDeletionTimestamp() != nil {
		// Already being deleted: a second delete with grace 0 on a pod finishes it.
		if pod, ok := obj.(*corev1.Pod); ok && opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds == 0 && len(pod.Finalizers) == 0 {
			if dry {
				return obj, http.StatusOK, nil
			}
			_, err := s.commit(c, r, acc.GetName(), append([]fsm.Op{fsm.Delete(key, rec.ModRevision)}, extra...)...)
			return obj, http.StatusOK, err
		}
		if pod, ok := obj.(*corev1.Pod); ok && opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds == 0 &&
			(pod.DeletionGracePeriodSeconds == nil || *pod.DeletionGracePeriodSeconds != 0) {
			// Its agent is done with it, but finalizers remain: record that the grace period
			// is over, so the last finalizer's removal deletes it.
			if dry {
				return obj, http.StatusAccepted, nil
			}
			zero := int64(0)
			pod.DeletionGracePeriodSeconds = &zero
			value, m, err := objects.Encode(r, obj)
			if err != nil {
				return nil, 0, err
			}
			if _, err := s.commit(c, r, acc.GetName(), fsm.Update(key, rec.ModRevision, value, m)); err != nil {
				return nil, 0, err
			}
		}
		return obj, http.StatusAccepted, nil
	}
	finalizers := acc.GetFinalizers()
	if policy == metav1.DeletePropagationForeground {
		finalizers = appendUnique(finalizers, metav1.FinalizerDeleteDependents)
	}
	var grace int64
	if pod, ok := obj.(*corev1.Pod); ok {
		grace = objects.PodGracePeriod(pod, opts.GracePeriodSeconds)
	}
	if policy == metav1.DeletePropagationOrphan && (len(finalizers) > 0 || grace > 0) {
		// Removed later, not now: the garbage collector orphans the dependents when the
		// other finalizers are done, as kube's orphan finalizer asks.
		finalizers = appendUnique(finalizers, metav1.FinalizerOrphanDependents)
	}
	if len(finalizers) > 0 || grace > 0 {
		// Mark it; finalizers' owners (or the pod's agent) finish the deletion.
		now := metav1.NewTime(s.now().Truncate(time.Second))
		if grace > 0 {
			now = metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
		}
		acc.SetDeletionTimestamp(&now)
		acc.SetDeletionGracePeriodSeconds(&grace)
		acc.SetFinalizers(finalizers)
		if ns, ok := obj.(*corev1.Namespace); ok {
			ns.Status.Phase = corev1.NamespaceTerminating
		}
		if dry {
			return obj, http.StatusAccepted, nil
		}
		value, m, err := objects.Encode(r, obj)
		if err != nil {
			return nil, 0, err
		}
		res, err := s.commit(c, r, acc.GetName(), append([]fsm.Op{fsm.Update(key, rec.ModRevision, value, m)}, extra...)...)
		if err != nil {
			return nil, 0, err
		}
		acc.SetResourceVersion(strconv.FormatUint(res.Revision, 10))
		return obj, http.StatusAccepted, nil
	}
	if ns, ok := obj.(*corev1.Namespace); ok {
		// A namespace is marked Terminating (no new content), emptied, then removed.
		now := metav1.NewTime(s.now().Truncate(time.Second))
		ns.DeletionTimestamp = &now
		ns.Status.Phase = corev1.NamespaceTerminating
		if dry {
			return obj, http.StatusOK, nil
		}
		value, m, err := objects.Encode(r, obj)
		if err != nil {
			return nil, 0, err
		}
		if _, err := s.commit(c, r, acc.GetName(), fsm.Update(key, rec.ModRevision, value, m)); err != nil {
			return nil, 0, err
		}
		ctx, cancel := contextWithTimeout(c, proposeTimeout)
		defer cancel()
		if err := FinalizeNamespace(ctx, s.node, ns.Name); err != nil {
			// The leader's namespace finalizer finishes the job.
			return obj, http.StatusAccepted, nil
		}
		return obj, http.StatusOK, nil
	}
	ops := append([]fsm.Op{fsm.Delete(key, rec.ModRevision)}, releaseClusterIP(obj)...)
	if policy == metav1.DeletePropagationOrphan {
		// Dependents lose their reference to this owner in the same transaction, so none
		// is ever left pointing at a deleted owner.
		orphans, err := orphanOps(st, acc)
		if err != nil {
			return nil, 0, err
		}
		ops = append(ops, orphans...)
	}
	if dry {
		return obj, http.StatusOK, nil
	}
	if _, err := s.commit(c, r, acc.GetName(), append(ops, extra...)...); err != nil {
		return nil, 0, err
	}
	return obj, http.StatusOK, nil
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// orphanOps returns updates that remove owner from every dependent's ownerReferences.
func orphanOps(st *fsm.State, owner metav1.Object) ([]fsm.Op, error) {
	var ops []fsm.Op
	for _, dep := range st.Dependents(string(owner.GetUID())) {
		r := objects.ByStoreName(dep.Key.Resource)
		if r == nil {
			continue
		}
		obj, err := objects.Decode(r, dep)
		if err != nil {
			return nil, err
		}
		acc := objects.Accessor(obj)
		var refs []metav1.OwnerReference
		for _, ref := range acc.GetOwnerReferences() {
			if ref.UID != owner.GetUID() {
				refs = append(refs, ref)
			}
		}
		acc.SetOwnerReferences(refs)
		value, m, err := objects.Encode(r, obj)
		if err != nil {
			return nil, err
		}
		ops = append(ops, fsm.Update(dep.Key, dep.ModRevision, value, m))
	}
	return ops, nil
}

func (s *Server) deleteCollection(c echo.Context, info requestInfo) error {
	opts, err := deleteOptions(c)
	if err != nil {
		return writeStatus(c, err)
	}
	sel, err := parseSelection(c, info.Resource)
	if err != nil {
		return writeStatus(c, err)
	}
	st, err := s.readState(c)
	if err != nil {
		return writeStatus(c, err)
	}
	lo := fsm.ListOptions{Resource: objects.StoreResource(info.Resource), Namespace: info.Namespace, Predicate: sel.matches}
	recs, _ := st.List(lo)
	for _, rec := range recs {
		_, _, err := s.deleteRecord(c, st, info.Resource, rec, opts)
		for attempt := 0; apierrors.IsConflict(err) && unconditional(opts) && attempt < maxPatchRetries; attempt++ {
			// Changed since the list: delete the latest version of it.
			if st, err = s.readState(c); err != nil {
				return writeStatus(c, err)
			}
			if rec = st.Get(rec.Key); rec == nil {
				err = nil
				break
			}
			_, _, err = s.deleteRecord(c, st, info.Resource, rec, opts)
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return writeStatus(c, err)
		}
	}
	return writeObject(c, http.StatusOK, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess})
}

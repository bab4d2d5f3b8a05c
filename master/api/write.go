package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/registry"
)

// maxGeneratedNameBase is how much of a generateName is kept (63 minus the suffix).
const maxGeneratedNameBase = 58

// proposeTimeout bounds how long a write waits for Raft.
const proposeTimeout = 30 * time.Second

func dryRun(c echo.Context) bool {
	for _, v := range c.QueryParams()["dryRun"] {
		if v == "All" {
			return true
		}
	}
	return false
}

// commit proposes ops and maps the store's business failures onto API errors about obj.
func (s *Server) commit(c echo.Context, r *registry.Resource, name string, ops ...fsm.Op) (*fsm.TxnResult, error) {
	ctx, cancel := contextWithTimeout(c, proposeTimeout)
	defer cancel()
	res, err := s.node.Propose(ctx, &fsm.Txn{Ops: ops})
	if err != nil {
		return nil, err
	}
	return res, s.resultError(r, name, res)
}

// resultError maps a transaction's business failure onto the API error about r/name.
func (s *Server) resultError(r *registry.Resource, name string, res *fsm.TxnResult) error {
	switch res.Err {
	case nil:
		return nil
	case fsm.ErrAlreadyExists:
		return apierrors.NewAlreadyExists(grOf(r), name)
	case fsm.ErrNotFound:
		return apierrors.NewNotFound(grOf(r), name)
	case fsm.ErrConflict:
		return apierrors.NewConflict(grOf(r), name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	return res.Err
}

// namespaceUsable checks that the namespace of a new object exists and is not terminating.
func (s *Server) namespaceUsable(st *fsm.State, ns string) error {
	rec := st.Get(fsm.Key{Resource: "namespaces", Name: ns})
	if rec == nil {
		return apierrors.NewNotFound(groupResource("", "namespaces"), ns)
	}
	var obj struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if json.Unmarshal(rec.Value, &obj) == nil && obj.Metadata.DeletionTimestamp != nil {
		return apierrors.NewForbidden(groupResource("", "namespaces"), ns,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
}

func (s *Server) create(c echo.Context, info requestInfo) error {
	r := info.Resource
	body, err := readBody(c)
	if err != nil {
		return writeStatus(c, err)
	}
	obj, err := decodeObject(c, r, body)
	if err != nil {
		return writeStatus(c, err)
	}
	acc := objects.Accessor(obj)
	if r.Namespaced {
		if acc.GetNamespace() == "" {
			acc.SetNamespace(info.Namespace)
		}
		if acc.GetNamespace() != info.Namespace {
			return writeStatus(c, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request"))
		}
	} else {
		acc.SetNamespace("")
	}
	if acc.GetName() == "" && acc.GetGenerateName() != "" {
		// As kube's names.SimpleNameGenerator: the base is cut so that base and the
		// 5-character suffix fit a 63-character name.
		base := acc.GetGenerateName()
		if len(base) > maxGeneratedNameBase {
			base = base[:maxGeneratedNameBase]
		}
		acc.SetName(base + objects.GenerateNameSuffix())
	}
	if acc.GetName() == "" {
		return writeStatus(c, apierrors.NewInvalid(gkOf(r), "", field.ErrorList{field.Required(field.NewPath("metadata", "name"), "name or generateName is required")}))
	}
	// Everything non-deterministic is decided here, before the entry is proposed.
	objects.StampNew(acc, s.now())
	prepareForCreate(r, obj)
	if r.Default != nil {
		r.Default(obj)
	}
	if errs := validateMeta(r, acc); len(errs) > 0 {
		return writeStatus(c, apierrors.NewInvalid(gkOf(r), acc.GetName(), errs))
	}
	if r.Validate != nil {
		if errs := r.Validate(obj, nil); len(errs) > 0 {
			return writeStatus(c, apierrors.NewInvalid(gkOf(r), acc.GetName(), errs))
		}
	}
	if r.Namespaced {
		if err := s.namespaceUsable(s.node.FSM().State(), acc.GetNamespace()); err != nil {
			return writeStatus(c, err)
		}
	}
	if dryRun(c) {
		return writeObject(c, http.StatusCreated, obj)
	}
	var res *fsm.TxnResult
	for attempt := 0; ; attempt++ {
		claims := allocateClusterIP(s.node.FSM().State(), obj)
		value, m, err := objects.Encode(r, obj)
		if err != nil {
			return writeStatus(c, err)
		}
		ops := append([]fsm.Op{fsm.Create(objects.Key(r, acc.GetNamespace(), acc.GetName()), value, m)}, claims...)
		ctx, cancel := contextWithTimeout(c, proposeTimeout)
		res, err = s.node.Propose(ctx, &fsm.Txn{Ops: ops})
		cancel()
		if err == nil && res.Err == fsm.ErrAlreadyExists && res.Failed > 0 && attempt < 5 {
			// Another service took the same cluster IP a moment ago: pick again.
			if svc, ok := obj.(*corev1.Service); ok {
				svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
			}
			continue
		}
		if err == nil {
			err = s.resultError(r, acc.GetName(), res)
		}
		if err != nil {
			return writeStatus(c, err)
		}
		break
	}
	if err != nil {
		return writeStatus(c, err)
	}
	acc.SetResourceVersion(strconv.FormatUint(res.Revision, 10))
	return writeObject(c, http.StatusCreated, obj)
}

// validateMeta checks what every object's metadata must satisfy.
func validateMeta(r *registry.Resource, acc metav1.Object) field.ErrorList {
	var errs field.ErrorList
	if r.Namespaced && acc.GetNamespace() == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "namespace"), ""))
	}
	return errs
}

// update replaces an object, or only its status on the status subresource (PUT). Without a
// resourceVersion in the body it is unconditional, as Kubernetes allows for these resources.
func (s *Server) update(c echo.Context, info requestInfo) error {
	body, err := readBody(c)
	if err != nil {
		return writeStatus(c, err)
	}
	obj, err := decodeObject(c, info.Resource, body)
	if err != nil {
		return writeStatus(c, err)
	}
	out, err := s.replace(c, info, obj, info.Subresource == "status")
	if err != nil {
		return writeStatus(c, err)
	}
	return writeObject(c, http.StatusOK, out)
}

// replace stores obj over the current object of info (the main resource, or its status
// when status is set), keeping what clients may not change, and returns what was stored.
// Without a resourceVersion the update is unconditional: a concurrent write only makes it
// re-apply over the newer object, as Kubernetes' GuaranteedUpdate does.
func (s *Server) replace(c echo.Context, info requestInfo, obj runtime.Object, status bool) (runtime.Object, error) {
	r := info.Resource
	acc := objects.Accessor(obj)
	if acc.GetName() != info.Name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", acc.GetName(), info.Name))
	}
	if r.Namespaced {
		if acc.GetNamespace() == "" {
			acc.SetNamespace(info.Namespace)
		}
		if acc.GetNamespace() != info.Namespace {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	}
	want, err := objects.ParseRV(acc.GetResourceVersion())
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	orig := obj.DeepCopyObject()
	for attempt := 0; ; attempt++ {
		obj = orig.DeepCopyObject()
		out, err := s.replaceOnce(c, info, obj, status, want, attempt > 0)
		if apierrors.IsConflict(err) && want == 0 && attempt < maxPatchRetries {
			continue
		}
		return out, err
	}
}

// replaceOnce is one attempt of replace, against local state first (fresh selects a
// linearizable read).
func (s *Server) replaceOnce(c echo.Context, info requestInfo, obj runtime.Object, status bool, want uint64, fresh bool) (runtime.Object, error) {
	r := info.Resource
	key := objects.Key(r, info.Namespace, info.Name)
	st := s.node.FSM().State()
	rec := st.Get(key)
	if fresh || rec == nil || want > rec.ModRevision {
		// The local state may lag behind what the client saw; read up to date.
		var err error
		if st, err = s.readState(c); err != nil {
			return nil, err
		}
		if rec = st.Get(key); rec == nil {
			return nil, apierrors.NewNotFound(grOf(r), info.Name)
		}
	}
	if want != 0 && want != rec.ModRevision {
		return nil, apierrors.NewConflict(grOf(r), info.Name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	old, err := objects.Decode(r, rec)
	if err != nil {
		return nil, err
	}
	if errs := prepareForUpdate(r, obj, old, status); len(errs) > 0 {
		return nil, apierrors.NewInvalid(gkOf(r), info.Name, errs)
	}
	keepAllocated(obj, old)
	acc := objects.Accessor(obj)
	if r.Default != nil {
		r.Default(obj)
	}
	if r.Validate != nil {
		if errs := r.Validate(obj, old); len(errs) > 0 {
			return nil, apierrors.NewInvalid(gkOf(r), info.Name, errs)
		}
	}
	if dryRun(c) {
		return obj, nil
	}
	// An object being deleted whose last finalizer is removed is gone, unless it is a pod
	// still in its grace period: its agent deletes it once its containers stopped.
	if g := acc.GetDeletionGracePeriodSeconds(); acc.GetDeletionTimestamp() != nil && len(acc.GetFinalizers()) == 0 && (g == nil || *g == 0) {
		if _, err := s.commit(c, r, info.Name, fsm.Delete(key, rec.ModRevision)); err != nil {
			return nil, err
		}
		return obj, nil
	}
	value, m, err := objects.Encode(r, obj)
	if err != nil {
		return nil, err
	}
	res, err := s.commit(c, r, info.Name, fsm.Update(key, rec.ModRevision, value, m))
	if err != nil {
		return nil, err
	}
	acc.SetResourceVersion(strconv.FormatUint(res.Revision, 10))
	return obj, nil
}

// prepareForUpdate copies onto obj what an update may not change: identity and creation
// metadata, and either the status (main resource) or everything but the status (status
// subresource). It bumps the generation when the spec changed.
func prepareForUpdate(r *registry.Resource, obj, old runtime.Object, status bool) field.ErrorList {
	acc, oldAcc := objects.Accessor(obj), objects.Accessor(old)
	var errs field.ErrorList
	if acc.GetUID() != "" && acc.GetUID() != oldAcc.GetUID() {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "uid"), acc.GetUID(), "field is immutable"))
	}
	acc.SetUID(oldAcc.GetUID())
	acc.SetCreationTimestamp(oldAcc.GetCreationTimestamp())
	acc.SetDeletionTimestamp(oldAcc.GetDeletionTimestamp())
	acc.SetDeletionGracePeriodSeconds(oldAcc.GetDeletionGracePeriodSeconds())
	acc.SetGeneration(oldAcc.GetGeneration())
	acc.SetManagedFields(nil)
	if oldAcc.GetDeletionTimestamp() != nil && len(acc.GetFinalizers()) > len(oldAcc.GetFinalizers()) {
		errs = append(errs, field.Forbidden(field.NewPath("metadata", "finalizers"), "no new finalizers can be added if the object is being deleted"))
	}
	if status {
		// Only the status changes: everything else is the stored object's.
		if cur, ok := fieldByName(obj, "Status"); ok {
			newStatus := reflect.New(cur.Type()).Elem()
			newStatus.Set(cur)
			rv := acc.GetResourceVersion()
			copyObject(obj, old)
			setField(obj, "Status", newStatus)
			objects.Accessor(obj).SetResourceVersion(rv)
		}
		return errs
	}
	if hasSubresource(r, "status") {
		if oldStatus, ok := fieldByName(old, "Status"); ok {
			setField(obj, "Status", oldStatus)
		}
	}
	if objects.SpecChanged(obj, old) {
		acc.SetGeneration(oldAcc.GetGeneration() + 1)
	}
	return errs
}

// prepareForCreate resets what a create may not set: the status of resources whose status
// has its own subresource (pods start Pending).
func prepareForCreate(r *registry.Resource, obj runtime.Object) {
	if !hasSubresource(r, "status") || r.Resource == "namespaces" {
		return
	}
	if v, ok := fieldByName(obj, "Status"); ok {
		setField(obj, "Status", reflect.Zero(v.Type()))
	}
	if r.Resource == "pods" {
		if phase, ok := fieldByName(obj, "Status"); ok {
			phase.FieldByName("Phase").SetString("Pending")
		}
	}
}

func fieldByName(obj runtime.Object, name string) (reflect.Value, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	f := v.Elem().FieldByName(name)
	return f, f.IsValid()
}

func setField(obj runtime.Object, name string, val reflect.Value) {
	if f, ok := fieldByName(obj, name); ok && f.CanSet() {
		f.Set(val)
	}
}

func copyObject(dst, src runtime.Object) {
	b, _ := json.Marshal(src)
	n := reflect.New(reflect.TypeOf(dst).Elem())
	_ = json.Unmarshal(b, n.Interface())
	reflect.ValueOf(dst).Elem().Set(n.Elem())
}

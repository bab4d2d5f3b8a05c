package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/registry"
)

// readState returns the state a read is served from. No resourceVersion: a linearizable
// read. "0": whatever this master has. "N": this master's state once it has applied N.
func (s *Server) readState(c echo.Context) (*fsm.State, error) {
	ctx, cancel := contextWithTimeout(c, 10*time.Second)
	defer cancel()
	switch rv := c.QueryParam("resourceVersion"); rv {
	case "":
		return s.node.LinearizableRead(ctx)
	case "0":
		return s.node.FSM().State(), nil
	default:
		n, err := objects.ParseRV(rv)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if err := s.node.FSM().WaitApplied(ctx, n); err != nil {
			st := apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %d, current: %d", n, s.node.FSM().Revision()), 1)
			st.ErrStatus.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}, RetryAfterSeconds: 1}
			return nil, st
		}
		return s.node.FSM().State(), nil
	}
}

func (s *Server) get(c echo.Context, info requestInfo) error {
	_, obj, err := s.current(c, info)
	if err != nil {
		return writeStatus(c, err)
	}
	if wantsTable(c) {
		return writeObject(c, http.StatusOK, s.table(c, info.Resource, []runtime.Object{obj}, ""))
	}
	return writeObject(c, http.StatusOK, obj)
}

// current reads the object info names at the consistency the request asks for, with the
// state it was read from.
func (s *Server) current(c echo.Context, info requestInfo) (*fsm.State, runtime.Object, error) {
	st, err := s.readState(c)
	if err != nil {
		return nil, nil, err
	}
	obj, err := s.getFrom(st, info)
	return st, obj, err
}

func (s *Server) getFrom(st *fsm.State, info requestInfo) (runtime.Object, error) {
	rec := st.Get(objects.Key(info.Resource, info.Namespace, info.Name))
	if rec == nil {
		return nil, apierrors.NewNotFound(grOf(info.Resource), info.Name)
	}
	return objects.Decode(info.Resource, rec)
}

// selection is a list or watch's label and field selectors, compiled into a predicate.
type selection struct {
	r      *registry.Resource
	labels labels.Selector
	fields fields.Selector
	// indexField/indexValue name a store index that narrows the scan.
	indexField, indexValue string
}

func parseSelection(c echo.Context, r *registry.Resource) (*selection, error) {
	sel := &selection{r: r, labels: labels.Everything(), fields: fields.Everything()}
	var err error
	if ls := c.QueryParam("labelSelector"); ls != "" {
		if sel.labels, err = labels.Parse(ls); err != nil {
			return nil, apierrors.NewBadRequest(err.Error()) // it says "unable to parse requirement: …"
		}
	}
	if fs := c.QueryParam("fieldSelector"); fs != "" {
		if sel.fields, err = fields.ParseSelector(fs); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
		}
		supported := map[string]bool{"metadata.name": true, "metadata.namespace": true}
		if r.Fields != nil {
			for k := range r.Fields(r.New()) {
				supported[k] = true
			}
		}
		for _, req := range sel.fields.Requirements() {
			if !supported[req.Field] {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
		}
		for _, f := range r.IndexedFields {
			if v, ok := sel.fields.RequiresExactMatch(f); ok {
				sel.indexField, sel.indexValue = f, v
				break
			}
		}
	}
	return sel, nil
}

func (sel *selection) everything() bool { return sel.labels.Empty() && sel.fields.Empty() }

// matches reports whether a stored record is selected. It decodes the object only when a
// field selector needs a field the store does not index.
func (sel *selection) matches(rec *fsm.Record) bool {
	if !sel.labels.Empty() && !sel.labels.Matches(labels.Set(rec.Meta.Labels)) {
		return false
	}
	if sel.fields.Empty() {
		return true
	}
	set := fields.Set{"metadata.name": rec.Key.Name, "metadata.namespace": rec.Key.Namespace}
	for k, v := range rec.Meta.Fields {
		set[k] = v
	}
	for _, req := range sel.fields.Requirements() {
		if _, ok := set[req.Field]; !ok && sel.r.Fields != nil {
			if obj, err := objects.Decode(sel.r, rec); err == nil {
				for k, v := range sel.r.Fields(obj) {
					set[k] = v
				}
			}
			break
		}
	}
	return sel.fields.Matches(set)
}

// continueToken is what a paged list hands back to resume: the revision listed and the last
// key returned.
type continueToken struct {
	RV        uint64 `json:"rv"`
	Namespace string `json:"ns,omitempty"`
	Name      string `json:"name"`
}

func (s *Server) retainState(st *fsm.State) {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	now := time.Now()
	s.listStates[st.Revision()] = retainedState{st: st, used: now}
	for rv, rs := range s.listStates {
		if now.Sub(rs.used) > 5*time.Minute || len(s.listStates) > 64 && rv != st.Revision() && now.Sub(rs.used) > 10*time.Second {
			delete(s.listStates, rv)
		}
	}
}

func (s *Server) retained(rv uint64) *fsm.State {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	rs, ok := s.listStates[rv]
	if !ok {
		return nil
	}
	rs.used = time.Now()
	s.listStates[rv] = rs
	return rs.st
}

func (s *Server) list(c echo.Context, info requestInfo) error {
	r := info.Resource
	if err := validateListOptions(c, false); err != nil {
		return writeStatus(c, err)
	}
	sel, err := parseSelection(c, r)
	if err != nil {
		return writeStatus(c, err)
	}
	limit := 0
	if l := c.QueryParam("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 0 {
			return writeStatus(c, apierrors.NewBadRequest("limit must be a non-negative integer"))
		}
	}
	var st *fsm.State
	var after *fsm.Key
	if tok := c.QueryParam("continue"); tok != "" {
		var ct continueToken
		raw, derr := base64.RawURLEncoding.DecodeString(tok)
		if derr != nil || json.Unmarshal(raw, &ct) != nil {
			return writeStatus(c, apierrors.NewBadRequest("continue key is not valid"))
		}
		if st = s.retained(ct.RV); st == nil {
			return writeStatus(c, apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."))
		}
		k := objects.Key(r, ct.Namespace, ct.Name)
		after = &k
	} else if st, err = s.readState(c); err != nil {
		return writeStatus(c, err)
	} else if c.QueryParam("resourceVersionMatch") == string(metav1.ResourceVersionMatchExact) {
		// Exactly that revision: the state a paged list kept, or the current one if it is
		// still at it. Older history is not kept, as etcd's after a compaction.
		want, _ := objects.ParseRV(c.QueryParam("resourceVersion"))
		if st.Revision() != want {
			if st = s.retained(want); st == nil {
				return writeStatus(c, apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", want, s.node.FSM().Revision())))
			}
		}
	}
	opts := fsm.ListOptions{Resource: objects.StoreResource(r), After: after, Limit: limit}
	if r.Namespaced {
		opts.Namespace = info.Namespace
	}
	if sel.indexField != "" {
		opts.Field, opts.FieldValue = sel.indexField, sel.indexValue
	}
	if !sel.everything() {
		opts.Predicate = sel.matches
	}
	recs, more := st.List(opts)
	var next string
	if more && len(recs) > 0 {
		last := recs[len(recs)-1].Key
		b, _ := json.Marshal(continueToken{RV: st.Revision(), Namespace: last.Namespace, Name: last.Name})
		next = base64.RawURLEncoding.EncodeToString(b)
		s.retainState(st)
	}
	rv := strconv.FormatUint(st.Revision(), 10)
	if !wantsTable(c) && !wantsYAML(c) {
		if b := rawList(r, recs, rv, next); b != nil {
			return c.Blob(http.StatusOK, "application/json", b)
		}
	}
	objs := make([]runtime.Object, 0, len(recs))
	for _, rec := range recs {
		obj, err := objects.Decode(r, rec)
		if err != nil {
			return writeStatus(c, err)
		}
		objs = append(objs, obj)
	}
	if wantsTable(c) {
		t := s.table(c, r, objs, rv)
		t.Continue = next
		return writeObject(c, http.StatusOK, t)
	}
	list := r.NewList()
	if err := meta.SetList(list, objs); err != nil {
		return writeStatus(c, err)
	}
	lm, _ := meta.ListAccessor(list)
	lm.SetResourceVersion(rv)
	lm.SetContinue(next)
	list.GetObjectKind().SetGroupVersionKind(r.GroupVersion().WithKind(r.ListKind))
	return writeObject(c, http.StatusOK, list)
}

// wantsTable reports whether the client asked for server-side printing (kubectl get).
func wantsTable(c echo.Context) bool {
	return strings.Contains(c.Request().Header.Get("Accept"), "as=Table")
}

// table renders objects as a metav1.Table with the resource's columns. Rows carry the
// object's metadata (or the whole object with includeObject=Object), as kubectl expects.
func (s *Server) table(c echo.Context, r *registry.Resource, objs []runtime.Object, rv string) *metav1.Table {
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"}}
	t.ResourceVersion = rv
	t.ColumnDefinitions = r.Columns
	now := s.now()
	include := c.QueryParam("includeObject")
	for _, obj := range objs {
		row := metav1.TableRow{Cells: r.Row(obj, now)}
		switch include {
		case "None":
		case "Object":
			row.Object = runtime.RawExtension{Object: obj}
		default:
			pom := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"}}
			if om, ok := fieldByName(obj, "ObjectMeta"); ok {
				pom.ObjectMeta = om.Interface().(metav1.ObjectMeta)
			}
			row.Object = runtime.RawExtension{Object: pom}
		}
		t.Rows = append(t.Rows, row)
	}
	if t.Rows == nil {
		t.Rows = []metav1.TableRow{}
	}
	return t
}

// andName narrows a field selector to one object name.
func andName(sel fields.Selector, name string) fields.Selector {
	return fields.AndSelectors(sel, fields.OneTermEqualSelector("metadata.name", name))
}

// rawList assembles a list response from stored JSON without decoding the items; nil if
// an item does not have the expected shape (the caller then takes the typed path).
func rawList(r *registry.Resource, recs []*fsm.Record, rv, next string) []byte {
	size := 128
	for _, rec := range recs {
		size += len(rec.Value) + 40
	}
	out := make([]byte, 0, size)
	out = append(out, `{"kind":`...)
	out = strconv.AppendQuote(out, r.ListKind)
	out = append(out, `,"apiVersion":`...)
	out = strconv.AppendQuote(out, r.GroupVersion().String())
	out = append(out, `,"metadata":{"resourceVersion":`...)
	out = strconv.AppendQuote(out, rv)
	if next != "" {
		out = append(out, `,"continue":`...)
		out = strconv.AppendQuote(out, next)
	}
	out = append(out, `},"items":[`...)
	for i, rec := range recs {
		item := objects.RawWithRV(rec.Value, rec.ModRevision)
		if item == nil {
			return nil
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, item...)
	}
	return append(out, "]}"...)
}

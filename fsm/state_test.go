package fsm

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// listFixture builds a store with namespaced pods spread over nodes, cluster-scoped nodes,
// and a second namespaced resource whose names overlap the pods'.
func listFixture(t *testing.T) *FSM {
	t.Helper()
	f := New(Options{})
	idx := uint64(0)
	next := func() uint64 { idx++; return idx }
	for _, ns := range []string{"a", "b", "c"} {
		for i := 0; i < 4; i++ {
			name := fmt.Sprintf("p%d", i)
			meta := Meta{
				Labels: map[string]string{"app": []string{"web", "db"}[i%2], "ns": ns},
				Fields: map[string]string{"spec.nodeName": fmt.Sprintf("n%d", i%3), "status.phase": "Running"},
			}
			mustApply(t, f, next(), Create(pod(ns, name), val(ns+"/"+name), meta))
		}
		mustApply(t, f, next(), Create(Key{Resource: "services", Namespace: ns, Name: "p0"}, val("svc"), Meta{Fields: map[string]string{"spec.nodeName": "n0"}}))
	}
	for i := 0; i < 3; i++ {
		mustApply(t, f, next(), Create(node(fmt.Sprintf("n%d", i)), val("node"), labels("zone", "z")))
	}
	return f
}

func TestGetAndLen(t *testing.T) {
	f := listFixture(t)
	st := f.State()
	if st.Len() != 3*4+3+3 {
		t.Fatalf("Len = %d", st.Len())
	}
	if r := st.Get(pod("b", "p2")); r == nil || string(r.Value) != "b/p2" || r.Key != pod("b", "p2") {
		t.Fatalf("Get(b/p2) = %+v", r)
	}
	for _, k := range []Key{pod("b", "p9"), pod("d", "p0"), pod("", "p0"), node("p0"), {Resource: "nodes", Namespace: "a", Name: "n0"}} {
		if r := st.Get(k); r != nil {
			t.Errorf("Get(%s) = %s, want nil", k, r.Key)
		}
	}
}

func TestList(t *testing.T) {
	f := listFixture(t)
	st := f.State()
	web := func(r *Record) bool { return r.Meta.Labels["app"] == "web" }
	cases := []struct {
		name string
		opts ListOptions
		want []string
	}{
		{"resource", ListOptions{Resource: "services"}, []string{"services/a/p0", "services/b/p0", "services/c/p0"}},
		{"cluster-scoped resource", ListOptions{Resource: "nodes"}, []string{"nodes/n0", "nodes/n1", "nodes/n2"}},
		{"namespace", ListOptions{Resource: "pods", Namespace: "b"}, []string{"pods/b/p0", "pods/b/p1", "pods/b/p2", "pods/b/p3"}},
		{"absent namespace", ListOptions{Resource: "pods", Namespace: "zz"}, nil},
		{"absent resource", ListOptions{Resource: "pod"}, nil},
		{"resource is not a prefix match", ListOptions{Resource: "service"}, nil},
		{"field", ListOptions{Resource: "pods", Field: "spec.nodeName", FieldValue: "n0"},
			[]string{"pods/a/p0", "pods/a/p3", "pods/b/p0", "pods/b/p3", "pods/c/p0", "pods/c/p3"}},
		{"field and namespace", ListOptions{Resource: "pods", Namespace: "c", Field: "spec.nodeName", FieldValue: "n1"}, []string{"pods/c/p1"}},
		{"field of another resource", ListOptions{Resource: "services", Field: "spec.nodeName", FieldValue: "n0"}, []string{"services/a/p0", "services/b/p0", "services/c/p0"}},
		{"field value is not a prefix match", ListOptions{Resource: "pods", Field: "spec.nodeName", FieldValue: "n"}, nil},
		{"field with empty value", ListOptions{Resource: "pods", Field: "spec.nodeName", FieldValue: ""}, nil},
		{"unindexed field", ListOptions{Resource: "pods", Field: "spec.other", FieldValue: "n0"}, nil},
		{"predicate", ListOptions{Resource: "pods", Namespace: "a", Predicate: web}, []string{"pods/a/p0", "pods/a/p2"}},
		{"predicate and field", ListOptions{Resource: "pods", Field: "spec.nodeName", FieldValue: "n0", Predicate: web}, []string{"pods/a/p0", "pods/b/p0", "pods/c/p0"}},
		{"predicate rejecting all", ListOptions{Resource: "pods", Predicate: func(*Record) bool { return false }}, nil},
		{"limit", ListOptions{Resource: "pods", Limit: 2}, []string{"pods/a/p0", "pods/a/p1"}},
		{"after", ListOptions{Resource: "pods", Namespace: "a", After: &Key{Resource: "pods", Namespace: "a", Name: "p1"}}, []string{"pods/a/p2", "pods/a/p3"}},
		{"after absent key", ListOptions{Resource: "pods", Namespace: "a", After: &Key{Resource: "pods", Namespace: "a", Name: "p1x"}}, []string{"pods/a/p2", "pods/a/p3"}},
		{"after the last key", ListOptions{Resource: "pods", Namespace: "a", After: &Key{Resource: "pods", Namespace: "a", Name: "p3"}}, nil},
		{"after crosses namespaces", ListOptions{Resource: "pods", After: &Key{Resource: "pods", Namespace: "b", Name: "p3"}}, []string{"pods/c/p0", "pods/c/p1", "pods/c/p2", "pods/c/p3"}},
		{"after with field", ListOptions{Resource: "pods", Field: "spec.nodeName", FieldValue: "n0", After: &Key{Resource: "pods", Namespace: "b", Name: "p0"}},
			[]string{"pods/b/p3", "pods/c/p0", "pods/c/p3"}},
		{"after sorting just before the namespace", ListOptions{Resource: "pods", Namespace: "b", After: &Key{Resource: "pods", Namespace: "a", Name: "p3"}},
			[]string{"pods/b/p0", "pods/b/p1", "pods/b/p2", "pods/b/p3"}},
		{"after sorting well before the namespace", ListOptions{Resource: "pods", Namespace: "c", After: &Key{Resource: "pods", Namespace: "a", Name: "p1"}},
			[]string{"pods/c/p0", "pods/c/p1", "pods/c/p2", "pods/c/p3"}},
		{"after of another resource sorting before", ListOptions{Resource: "services", After: &Key{Resource: "pods", Namespace: "a", Name: "p1"}},
			[]string{"services/a/p0", "services/b/p0", "services/c/p0"}},
		{"after sorting before the field value", ListOptions{Resource: "pods", Namespace: "c", Field: "spec.nodeName", FieldValue: "n1", After: &Key{Resource: "pods", Namespace: "a", Name: "p0"}},
			[]string{"pods/c/p1"}},
		{"after sorting past the namespace", ListOptions{Resource: "pods", Namespace: "b", After: &Key{Resource: "pods", Namespace: "c", Name: "p0"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, more := st.List(tc.opts)
			if !reflect.DeepEqual(keysOf(got), append([]string{}, tc.want...)) {
				t.Fatalf("List = %v, want %v", keysOf(got), tc.want)
			}
			wantMore := tc.opts.Limit > 0 && tc.opts.Limit < 12
			if more != wantMore {
				t.Fatalf("more = %v, want %v", more, wantMore)
			}
			for _, r := range got {
				if r != st.Get(r.Key) {
					t.Fatalf("List returned a record that is not the stored one for %s", r.Key)
				}
			}
		})
	}
}

// listAll pages through opts with the given limit and checks the paging contract.
func listAll(t testing.TB, st *State, opts ListOptions, limit int) []*Record {
	t.Helper()
	var all []*Record
	opts.Limit = limit
	opts.After = nil
	for page := 0; ; page++ {
		rs, more := st.List(opts)
		if len(rs) > limit {
			t.Fatalf("page %d has %d records, limit %d", page, len(rs), limit)
		}
		if more && len(rs) != limit {
			t.Fatalf("page %d: more with only %d of %d records", page, len(rs), limit)
		}
		all = append(all, rs...)
		if !more {
			return all
		}
		if page > 10000 {
			t.Fatalf("paging does not terminate")
		}
		last := rs[len(rs)-1].Key
		opts.After = &last
	}
}

func TestListPaging(t *testing.T) {
	f := listFixture(t)
	st := f.State()
	odd := func(r *Record) bool { return strings.HasSuffix(r.Key.Name, "1") || strings.HasSuffix(r.Key.Name, "3") }
	for _, opts := range []ListOptions{
		{Resource: "pods"},
		{Resource: "pods", Namespace: "b"},
		{Resource: "nodes"},
		{Resource: "services"},
		{Resource: "pods", Predicate: odd},
		{Resource: "pods", Field: "spec.nodeName", FieldValue: "n0"},
		{Resource: "pods", Field: "status.phase", FieldValue: "Running"},
		{Resource: "pods", Namespace: "a", Field: "status.phase", FieldValue: "Running"},
		{Resource: "pods", Field: "status.phase", FieldValue: "Running", Predicate: odd},
		{Resource: "nothing"},
	} {
		full, more := st.List(opts)
		if more {
			t.Fatalf("%+v: unlimited list reports more", opts)
		}
		for _, limit := range []int{1, 2, 3, 5, 7, len(full), len(full) + 1, 100} {
			if limit == 0 {
				continue
			}
			if got := listAll(t, st, opts, limit); !sameRecords(got, full) {
				t.Errorf("%+v limit %d: pages give %v, full list %v", opts, limit, keysOf(got), keysOf(full))
			}
		}
	}
}

func TestFieldIndexFollowsUpdatesAndDeletes(t *testing.T) {
	f := New(Options{})
	k := pod("ns", "p")
	onN := func(n string) []string {
		rs, _ := f.State().List(ListOptions{Resource: "pods", Field: "spec.nodeName", FieldValue: n})
		return keysOf(rs)
	}
	mustApply(t, f, 1, Create(k, val("1"), onNode("n1")))
	mustApply(t, f, 2, Create(pod("ns", "q"), val("1"), onNode("n1")))
	if got := onN("n1"); len(got) != 2 {
		t.Fatalf("n1: %v", got)
	}
	mustApply(t, f, 3, Update(k, 1, val("2"), onNode("n2")))
	if got := onN("n1"); !reflect.DeepEqual(got, []string{"pods/ns/q"}) {
		t.Fatalf("after move, n1: %v", got)
	}
	if got := onN("n2"); !reflect.DeepEqual(got, []string{"pods/ns/p"}) {
		t.Fatalf("after move, n2: %v", got)
	}
	// Same value again: the index points at the new record, once.
	mustApply(t, f, 4, Update(k, 3, val("3"), onNode("n2")))
	rs, _ := f.State().List(ListOptions{Resource: "pods", Field: "spec.nodeName", FieldValue: "n2"})
	if len(rs) != 1 || string(rs[0].Value) != "3" || rs[0].ModRevision != 4 {
		t.Fatalf("after same-value update: %+v", rs)
	}
	// Dropping the field removes the entry.
	mustApply(t, f, 5, Update(k, 4, val("4"), Meta{}))
	if got := onN("n2"); len(got) != 0 {
		t.Fatalf("after dropping the field, n2: %v", got)
	}
	mustApply(t, f, 6, Update(k, 5, val("5"), onNode("n3")))
	mustApply(t, f, 7, Delete(k, 6))
	mustApply(t, f, 8, DeleteIfExists(pod("ns", "q")))
	for _, n := range []string{"n1", "n2", "n3"} {
		if got := onN(n); len(got) != 0 {
			t.Fatalf("after deletes, %s: %v", n, got)
		}
	}
	st := f.State()
	if st.fields.Len() != 0 || st.owners.Len() != 0 || st.objects.Len() != 0 {
		t.Fatalf("indexes not empty after deleting everything: fields %d owners %d objects %d", st.fields.Len(), st.owners.Len(), st.objects.Len())
	}
}

func TestDependents(t *testing.T) {
	f := New(Options{})
	owned := func(uids ...string) Meta { return Meta{Owners: uids} }
	rs := Key{Resource: "replicasets", Namespace: "a", Name: "rs"}
	mustApply(t, f, 1,
		Create(pod("a", "p1"), nil, owned("rs-uid")),
		Create(pod("b", "p2"), nil, owned("rs-uid", "other-uid")),
		Create(rs, nil, owned("deploy-uid")),
		Create(Key{Resource: "configmaps", Namespace: "a", Name: "c"}, nil, owned("rs-uid")),
		Create(node("n"), nil, owned("rs-uid")),
		Create(pod("a", "p3"), nil, owned("rs-uid2")),
		Create(pod("a", "p4"), nil, owned("rs")),
	)
	deps := func(uid string) []string { return keysOf(f.State().Dependents(uid)) }
	want := []string{"configmaps/a/c", "nodes/n", "pods/a/p1", "pods/b/p2"}
	if got := deps("rs-uid"); !reflect.DeepEqual(got, want) {
		t.Fatalf("Dependents(rs-uid) = %v, want %v", got, want)
	}
	if got := deps("other-uid"); !reflect.DeepEqual(got, []string{"pods/b/p2"}) {
		t.Fatalf("Dependents(other-uid) = %v", got)
	}
	if got := deps("deploy-uid"); !reflect.DeepEqual(got, []string{"replicasets/a/rs"}) {
		t.Fatalf("Dependents(deploy-uid) = %v", got)
	}
	if got := deps("rs-uid2"); !reflect.DeepEqual(got, []string{"pods/a/p3"}) {
		t.Fatalf("Dependents(rs-uid2) = %v", got)
	}
	if got := deps("nobody"); len(got) != 0 {
		t.Fatalf("Dependents(nobody) = %v", got)
	}
	// Removing the owner from Meta.Owners drops the object from Dependents.
	mustApply(t, f, 2, Update(pod("b", "p2"), 0, nil, owned("other-uid")))
	mustApply(t, f, 3, Update(node("n"), 0, nil, Meta{}))
	if got := deps("rs-uid"); !reflect.DeepEqual(got, []string{"configmaps/a/c", "pods/a/p1"}) {
		t.Fatalf("after owner removal: %v", got)
	}
	if got := deps("other-uid"); !reflect.DeepEqual(got, []string{"pods/b/p2"}) {
		t.Fatalf("other-uid after update: %v", got)
	}
	// Dependents returns the current records.
	mustApply(t, f, 4, Update(pod("a", "p1"), 1, val("new"), owned("rs-uid")))
	for _, r := range f.State().Dependents("rs-uid") {
		if r != f.State().Get(r.Key) {
			t.Fatalf("Dependents returned a stale record for %s", r.Key)
		}
	}
	mustApply(t, f, 5, Delete(pod("a", "p1"), 4), Delete(Key{Resource: "configmaps", Namespace: "a", Name: "c"}, 0))
	if got := deps("rs-uid"); len(got) != 0 {
		t.Fatalf("after deletes: %v", got)
	}
}

func TestClusterScopedKeysDoNotCollide(t *testing.T) {
	f := New(Options{})
	r := "things"
	keys := []Key{
		{Resource: r, Name: "x"},
		{Resource: r, Name: "y"},
		{Resource: r, Namespace: "x", Name: "y"},
		{Resource: r, Namespace: "y", Name: "x"},
		{Resource: r, Namespace: "x", Name: "x"},
		{Resource: r + "s", Name: "x"},
		{Resource: "t", Namespace: "hings", Name: "x"},
	}
	for i, k := range keys {
		mustApply(t, f, uint64(i+1), Create(k, val(k.String()), onNode("n")))
	}
	st := f.State()
	if st.Len() != len(keys) {
		t.Fatalf("Len = %d, want %d", st.Len(), len(keys))
	}
	for _, k := range keys {
		if got := st.Get(k); got == nil || got.Key != k || string(got.Value) != k.String() {
			t.Fatalf("Get(%s) = %+v", k, got)
		}
	}
	all, _ := st.List(ListOptions{Resource: r})
	if want := []string{"things/x", "things/y", "things/x/x", "things/x/y", "things/y/x"}; !reflect.DeepEqual(keysOf(all), want) {
		t.Fatalf("List(all) = %v, want %v", keysOf(all), want)
	}
	inX, _ := st.List(ListOptions{Resource: r, Namespace: "x"})
	if want := []string{"things/x/x", "things/x/y"}; !reflect.DeepEqual(keysOf(inX), want) {
		t.Fatalf("List(ns x) = %v, want %v", keysOf(inX), want)
	}
	byField, _ := st.List(ListOptions{Resource: r, Field: "spec.nodeName", FieldValue: "n"})
	if !sameRecords(byField, all) {
		t.Fatalf("field list = %v, want %v", keysOf(byField), keysOf(all))
	}
	byFieldX, _ := st.List(ListOptions{Resource: r, Namespace: "x", Field: "spec.nodeName", FieldValue: "n"})
	if !sameRecords(byFieldX, inX) {
		t.Fatalf("field list in x = %v, want %v", keysOf(byFieldX), keysOf(inX))
	}
	// Deleting the cluster-scoped x leaves the namespaced ones alone.
	mustApply(t, f, 100, Delete(Key{Resource: r, Name: "x"}, 0))
	if f.State().Len() != len(keys)-1 || f.State().Get(Key{Resource: r, Namespace: "x", Name: "x"}) == nil {
		t.Fatalf("deleting a cluster-scoped key touched a namespaced one")
	}
}

func TestWalkStopsEarly(t *testing.T) {
	f := listFixture(t)
	var seen []string
	f.State().Walk(func(r *Record) bool {
		seen = append(seen, r.Key.String())
		return len(seen) < 3
	})
	if want := []string{"nodes/n0", "nodes/n1", "nodes/n2"}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("Walk visited %v, want %v", seen, want)
	}
	n := 0
	f.State().Walk(func(*Record) bool { n++; return true })
	if n != f.State().Len() {
		t.Fatalf("full Walk visited %d of %d", n, f.State().Len())
	}
}

func TestStatesAreImmutable(t *testing.T) {
	f := listFixture(t)
	old := f.State()
	oldHash := old.Hash()
	oldList, _ := old.List(ListOptions{Resource: "pods", Field: "spec.nodeName", FieldValue: "n0"})
	mustApply(t, f, 100,
		Update(pod("a", "p0"), 0, val("changed"), onNode("n9")),
		Delete(pod("b", "p0"), 0),
		Create(pod("a", "new"), nil, onNode("n0")),
	)
	if old.Hash() != oldHash || old.Revision() == 100 {
		t.Fatalf("an old State changed after Apply")
	}
	again, _ := old.List(ListOptions{Resource: "pods", Field: "spec.nodeName", FieldValue: "n0"})
	if !sameRecords(again, oldList) {
		t.Fatalf("old field list changed: %v vs %v", keysOf(again), keysOf(oldList))
	}
	if f.State().Hash() == oldHash {
		t.Fatalf("new State has the old hash")
	}
}

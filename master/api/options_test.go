package api_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// A dry run carried in DeleteOptions (where client-go and `kubectl drain --dry-run=server`
// put it) changes nothing, for a delete and for an eviction; a dryRun or fieldValidation
// value Kubernetes does not define is refused with 422 and changes nothing.
func TestDryRunInDeleteOptionsAndBadWriteOptions(t *testing.T) {
	ta := newTestAPI(t, 1, nil)
	ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c1"}}`), 201, "create")
	ta.expect(ta.do("POST", "/api/v1/namespaces/default/pods", "application/json", pod("p1", "web", `,"nodeName":"n1"`)), 201, "create pod")
	before := ta.c.Node(0).FSM().State().Hash()

	ta.expect(ta.do("DELETE", "/api/v1/namespaces/default/configmaps/c1", "application/json",
		`{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}`), 200, "dry-run delete")
	ta.expect(ta.do("POST", "/api/v1/namespaces/default/pods/p1/eviction", "application/json",
		`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"p1"},"deleteOptions":{"dryRun":["All"]}}`), 201, "dry-run eviction")
	expectStatus(t, ta.do("DELETE", "/api/v1/namespaces/default/configmaps/c1", "application/json",
		`{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["all"]}`), 422, "Invalid")
	expectStatus(t, ta.do("POST", "/api/v1/namespaces/default/configmaps?dryRun=all", "application/json",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c2"}}`), 422, "Invalid")
	expectStatus(t, ta.do("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=strict", "application/json",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c3"}}`), 422, "Invalid")
	expectStatus(t, ta.do("DELETE", "/api/v1/namespaces/default/configmaps/c1?dryRun=yes", "", ""), 422, "Invalid")
	expectStatus(t, ta.do("DELETE", "/api/v1/namespaces/default/configmaps/c1?propagationPolicy=Sometimes", "", ""), 422, "Invalid")
	expectStatus(t, ta.do("DELETE", "/api/v1/namespaces/default/configmaps/c1?propagationPolicy=Orphan", "application/json",
		`{"kind":"DeleteOptions","apiVersion":"v1","orphanDependents":false}`), 422, "Invalid")

	// Malformed patches are 400 with the parser's message; a JSON patch that cannot apply is 422.
	r := ta.do("PATCH", "/api/v1/namespaces/default/configmaps/c1", "application/merge-patch+json", `{"data":`)
	expectStatus(t, r, 400, "BadRequest")
	expectStatus(t, ta.do("PATCH", "/api/v1/namespaces/default/configmaps/c1", "application/strategic-merge-patch+json", `[1`), 400, "BadRequest")
	expectStatus(t, ta.do("PATCH", "/api/v1/namespaces/default/configmaps/c1", "application/json-patch+json", `[{"op":"test","path":"/data/x","value":"y"}]`), 422, "Invalid")

	if after := ta.c.Node(0).FSM().State().Hash(); after != before {
		t.Fatal("a dry run or a refused request changed the store")
	}
	ta.expect(ta.do("GET", "/api/v1/namespaces/default/configmaps/c1", "", ""), 200, "still there")
	p := ta.expect(ta.do("GET", "/api/v1/namespaces/default/pods/p1", "", ""), 200, "pod still there").json(t)
	if get(p, "metadata", "deletionTimestamp") != nil {
		t.Fatal("a dry-run eviction marked the pod for deletion")
	}
}

// A delete without a resourceVersion precondition is not refused with 409 because another
// client wrote the object meanwhile: it is retried on the latest version, as kube does.
func TestUnconditionalDeleteSurvivesConcurrentWrites(t *testing.T) {
	ta := newTestAPI(t, 1, nil)
	for round := 0; round < 10; round++ {
		name := fmt.Sprintf("busy-%d", round)
		ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json",
			fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q}}`, name)), 201, "create")
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				// Unconditional merge patches: the writer that races the delete.
				r := ta.do("PATCH", "/api/v1/namespaces/default/configmaps/"+name, "application/merge-patch+json",
					fmt.Sprintf(`{"data":{"n":"%d"}}`, i))
				if r.code == 404 {
					return
				}
			}
		}()
		r := ta.do("DELETE", "/api/v1/namespaces/default/configmaps/"+name, "", "")
		stop.Store(true)
		wg.Wait()
		if r.code != 200 {
			t.Fatalf("round %d: unconditional delete under concurrent writes: %d %s", round, r.code, r.body)
		}
		expectStatus(t, ta.do("GET", "/api/v1/namespaces/default/configmaps/"+name, "", ""), 404, "NotFound")
	}
}

// Bodies in a format the API does not read are 415, a long generateName is cut as kube
// cuts it, and a path nothing serves answers with a NotFound Status.
func TestContentTypesGenerateNameAndUnknownPaths(t *testing.T) {
	ta := newTestAPI(t, 1, nil)
	before := ta.c.Node(0).FSM().State().Hash()
	expectStatus(t, ta.do("POST", "/api/v1/namespaces/default/configmaps", "text/plain",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c1"}}`), 415, "UnsupportedMediaType")
	expectStatus(t, ta.do("GET", "/no/such/path", "", ""), 404, "NotFound")
	if after := ta.c.Node(0).FSM().State().Hash(); after != before {
		t.Fatal("a refused request changed the store")
	}
	// Unknown fields are dropped with a warning by default, as kube does (Warn).
	w := ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"warned"},"bogus":"x"}`), 201, "unknown field, Warn")
	if h := w.header.Get("Warning"); !strings.HasPrefix(h, `299 - "`) || !strings.Contains(h, `unknown field \"bogus\"`) {
		t.Fatalf("Warning header %q: want a 299 warning naming the unknown field, its quotes escaped", h)
	}
	long := strings.Repeat("a", 62) + "-"
	m := ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json",
		fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":%q}}`, long)), 201, "long generateName").json(t)
	name, _ := get(m, "metadata", "name").(string)
	if len(name) != 63 || !strings.HasPrefix(name, strings.Repeat("a", 58)) {
		t.Fatalf("generated name %q: want the first 58 characters of generateName and a 5-character suffix", name)
	}
}

// resourceVersionMatch is checked as kube-apiserver checks it, and Exact serves exactly that
// revision or answers 410 Gone.
func TestResourceVersionMatch(t *testing.T) {
	ta := newTestAPI(t, 1, nil)
	for i := 0; i < 3; i++ {
		ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json",
			fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c%d"}}`, i)), 201, "create")
	}
	const base = "/api/v1/namespaces/default/configmaps"
	for _, q := range []string{"?resourceVersionMatch=NotOlderThan", "?resourceVersionMatch=bogus&resourceVersion=1",
		"?resourceVersionMatch=Exact&resourceVersion=0", "?watch=true&resourceVersionMatch=NotOlderThan&resourceVersion=1"} {
		expectStatus(t, ta.do("GET", base+q, "", ""), 422, "Invalid")
	}
	list := ta.expect(ta.do("GET", base, "", ""), 200, "list").json(t)
	rv, _ := get(list, "metadata", "resourceVersion").(string)
	exact := ta.expect(ta.do("GET", base+"?resourceVersionMatch=Exact&resourceVersion="+rv, "", ""), 200, "Exact at the current revision").json(t)
	if got := get(exact, "metadata", "resourceVersion"); got != rv {
		t.Fatalf("Exact list at %s answered revision %v", rv, got)
	}
	ta.expect(ta.do("GET", base+"?resourceVersionMatch=NotOlderThan&resourceVersion=1", "", ""), 200, "NotOlderThan")
	expectStatus(t, ta.do("GET", base+"?resourceVersionMatch=Exact&resourceVersion=1", "", ""), 410, "Expired")
}

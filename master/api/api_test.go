package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"skiff/master/api"
	"skiff/master/api/apitest"
	"skiff/raft"
	"skiff/raft/rafttest"
)

// testAPI is an API server over an in-process Raft cluster (real bbolt, real TCP).
type testAPI struct {
	t       *testing.T
	c       *rafttest.Cluster
	srv     *httptest.Server
	token   string
	servers []*httptest.Server
}

func newTestAPI(t *testing.T, size int, mutate func(*raft.Config)) *testAPI {
	t.Helper()
	ac := apitest.Start(t, size, false, mutate)
	return &testAPI{t: t, c: ac.Store, token: ac.Token, servers: ac.Servers, srv: ac.Servers[0]}
}

type response struct {
	code   int
	body   []byte
	header http.Header
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON (%d): %s", r.code, r.body)
	}
	return m
}

// do sends a request with the admin token through server i (default 0).
func (ta *testAPI) do(method, path, contentType, body string) response {
	return ta.doOn(0, method, path, contentType, body, ta.token)
}

func (ta *testAPI) doOn(i int, method, path, contentType, body, token string) response {
	ta.t.Helper()
	req, err := http.NewRequest(method, ta.servers[i].URL+path, strings.NewReader(body))
	if err != nil {
		ta.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: b, header: resp.Header}
}

func (ta *testAPI) expect(r response, code int, what string) response {
	ta.t.Helper()
	if r.code != code {
		ta.t.Fatalf("%s: got %d, want %d: %s", what, r.code, code, r.body)
	}
	return r
}

// status checks a metav1.Status error response's code and reason.
func expectStatus(t *testing.T, r response, code int, reason string) {
	t.Helper()
	m := r.json(t)
	if r.code != code || m["kind"] != "Status" || int(m["code"].(float64)) != code || (reason != "" && m["reason"] != reason) {
		t.Fatalf("want Status %d %s, got %d: %s", code, reason, r.code, r.body)
	}
}

func get(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

const podJSON = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s","labels":{"app":"%s"}},
 "spec":{"containers":[{"name":"c","image":"busybox:1.36"}]%s}}`

func pod(name, app, extraSpec string) string { return fmt.Sprintf(podJSON, name, app, extraSpec) }

func TestAuthentication(t *testing.T) {
	ta := newTestAPI(t, 1, nil)
	for _, p := range []string{"/healthz", "/livez", "/readyz", "/version"} {
		ta.expect(ta.doOn(0, "GET", p, "", "", ""), 200, p+" without a token")
	}
	expectStatus(t, ta.doOn(0, "GET", "/api/v1/namespaces", "", "", ""), 401, "Unauthorized")
	expectStatus(t, ta.doOn(0, "GET", "/api/v1/namespaces", "", "", "wrong"), 401, "Unauthorized")
	expectStatus(t, ta.doOn(0, "POST", "/api/v1/namespaces/default/pods", "application/json", pod("p", "a", ""), "wrong"), 401, "Unauthorized")
	ta.expect(ta.do("GET", "/api/v1/namespaces/default/pods/p", "", ""), 404, "pod created without a token")
}

func TestDiscovery(t *testing.T) {
	ta := newTestAPI(t, 1, nil)
	v := ta.expect(ta.do("GET", "/api", "", ""), 200, "/api").json(t)
	if fmt.Sprint(v["versions"]) != "[v1]" {
		t.Fatalf("/api: %v", v)
	}
	core := string(ta.expect(ta.do("GET", "/api/v1", "", ""), 200, "/api/v1").body)
	for _, want := range []string{`"name":"pods"`, `"name":"pods/status"`, `"name":"namespaces"`, `"name":"configmaps"`, `"shortNames":["po"]`} {
		if !strings.Contains(core, want) {
			t.Fatalf("/api/v1 lacks %s: %s", want, core)
		}
	}
	groups := string(ta.expect(ta.do("GET", "/apis", "", ""), 200, "/apis").body)
	for _, g := range []string{"apps", "batch", "coordination.k8s.io"} {
		if !strings.Contains(groups, `"name":"`+g+`"`) {
			t.Fatalf("/apis lacks %s: %s", g, groups)
		}
	}
	apps := string(ta.expect(ta.do("GET", "/apis/apps/v1", "", ""), 200, "/apis/apps/v1").body)
	if !strings.Contains(apps, `"name":"deployments/scale"`) {
		t.Fatalf("apps/v1 lacks deployments/scale: %s", apps)
	}
	ta.expect(ta.do("GET", "/apis/apps", "", ""), 200, "/apis/apps")
	expectStatus(t, ta.do("GET", "/apis/nope/v1", "", ""), 404, "NotFound")
	expectStatus(t, ta.do("GET", "/api/v1/nopes", "", ""), 404, "NotFound")
	root := ta.expect(ta.do("GET", "/openapi/v3", "", ""), 200, "/openapi/v3").json(t)
	if get(root, "paths", "apis/apps/v1") == nil {
		t.Fatalf("openapi v3 root: %v", root)
	}
	doc := string(ta.expect(ta.do("GET", "/openapi/v3/api/v1", "", ""), 200, "/openapi/v3/api/v1").body)
	if !strings.Contains(doc, "fieldValidation") || !strings.Contains(doc, `"kind":"Pod"`) {
		t.Fatalf("openapi v3 api/v1 lacks the PATCH fieldValidation parameter: %s", doc[:min(400, len(doc))])
	}
}

func TestCreateGetListDelete(t *testing.T) {
	ta := newTestAPI(t, 3, nil)
	created := ta.expect(ta.do("POST", "/api/v1/namespaces/default/pods", "application/json", pod("web-1", "web", "")), 201, "create").json(t)
	if get(created, "metadata", "uid") == "" || get(created, "metadata", "creationTimestamp") == nil || get(created, "metadata", "resourceVersion") == "" {
		t.Fatalf("create did not fill metadata: %v", created["metadata"])
	}
	if get(created, "spec", "restartPolicy") != "Always" || get(created, "status", "phase") != "Pending" {
		t.Fatalf("create did not default: %v %v", created["spec"], created["status"])
	}
	rv := get(created, "metadata", "resourceVersion").(string)
	// A write through one master is visible at once through every master.
	for i := range ta.servers {
		got := ta.expect(ta.doOn(i, "GET", "/api/v1/namespaces/default/pods/web-1", "", "", ta.token), 200, "get").json(t)
		if get(got, "metadata", "resourceVersion") != rv {
			t.Fatalf("master %d returned rv %v, want %s", i, get(got, "metadata", "resourceVersion"), rv)
		}
	}
	yamlPod := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-2\n  labels: {app: web}\nspec:\n  nodeName: n1\n  containers:\n  - name: c\n    image: nginx\n"
	ta.expect(ta.do("POST", "/api/v1/namespaces/default/pods", "application/yaml", yamlPod), 201, "create from YAML")
	ta.expect(ta.do("POST", "/api/v1/namespaces/default/pods", "application/json", pod("db-1", "db", "")), 201, "create db")
	gen := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"cfg-"},"data":{"k":"v"}}`
	cm := ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json", gen), 201, "generateName").json(t)
	if name := get(cm, "metadata", "name").(string); !strings.HasPrefix(name, "cfg-") || len(name) != len("cfg-")+5 {
		t.Fatalf("generated name %q", name)
	}

	list := ta.expect(ta.do("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb", "", ""), 200, "list by label").json(t)
	if items := list["items"].([]any); len(items) != 2 || list["kind"] != "PodList" {
		t.Fatalf("label selector: %d items, kind %v", len(items), list["kind"])
	}
	list = ta.expect(ta.do("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1", "", ""), 200, "list by field").json(t)
	if items := list["items"].([]any); len(items) != 1 || get(items[0].(map[string]any), "metadata", "name") != "web-2" {
		t.Fatalf("field selector: %v", list["items"])
	}
	list = ta.expect(ta.do("GET", "/api/v1/pods?fieldSelector=status.phase%3DPending,metadata.name!%3Ddb-1", "", ""), 200, "list by two fields").json(t)
	if items := list["items"].([]any); len(items) != 2 {
		t.Fatalf("two field requirements: %d items", len(items))
	}
	expectStatus(t, ta.do("GET", "/api/v1/pods?fieldSelector=spec.bogus%3Dx", "", ""), 400, "BadRequest")
	expectStatus(t, ta.do("GET", "/api/v1/pods?labelSelector=a%3D%3D%3Db", "", ""), 400, "BadRequest")

	// Paging: limit 2 then continue reads one consistent revision.
	page1 := ta.expect(ta.do("GET", "/api/v1/namespaces/default/pods?limit=2", "", ""), 200, "page 1").json(t)
	cont := get(page1, "metadata", "continue").(string)
	if len(page1["items"].([]any)) != 2 || cont == "" {
		t.Fatalf("page 1: %v", page1["metadata"])
	}
	ta.expect(ta.do("POST", "/api/v1/namespaces/default/pods", "application/json", pod("zz-late", "late", "")), 201, "create between pages")
	page2 := ta.expect(ta.do("GET", "/api/v1/namespaces/default/pods?limit=2&continue="+cont, "", ""), 200, "page 2").json(t)
	if items := page2["items"].([]any); len(items) != 1 || get(page2, "metadata", "continue") != nil && get(page2, "metadata", "continue") != "" {
		t.Fatalf("page 2 should hold the one remaining pod of the first revision: %v", page2)
	}
	expectStatus(t, ta.do("GET", "/api/v1/namespaces/default/pods?limit=2&continue=bogus", "", ""), 400, "BadRequest")

	// Table output for kubectl get.
	table := ta.expect(ta.doWithAccept("/api/v1/namespaces/default/pods", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"), 200, "table").json(t)
	if table["kind"] != "Table" || len(table["rows"].([]any)) != 4 {
		t.Fatalf("table: %v", table)
	}
	cols := fmt.Sprint(table["columnDefinitions"])
	for _, c := range []string{"Name", "Ready", "Status", "Restarts", "Age"} {
		if !strings.Contains(cols, "name:"+c) {
			t.Fatalf("pod table lacks column %s: %s", c, cols)
		}
	}

	// Delete: unbound pods go at once; a bound pod is marked and waits for its agent.
	del := ta.expect(ta.do("DELETE", "/api/v1/namespaces/default/pods/web-1", "", ""), 200, "delete").json(t)
	if get(del, "metadata", "name") != "web-1" {
		t.Fatalf("delete response: %v", del)
	}
	expectStatus(t, ta.do("GET", "/api/v1/namespaces/default/pods/web-1", "", ""), 404, "NotFound")
	expectStatus(t, ta.do("DELETE", "/api/v1/namespaces/default/pods/web-1", "", ""), 404, "NotFound")
	marked := ta.expect(ta.do("DELETE", "/api/v1/namespaces/default/pods/web-2", "", ""), 200, "graceful delete").json(t)
	if get(marked, "metadata", "deletionTimestamp") == nil {
		t.Fatalf("bound pod not marked for deletion: %v", marked["metadata"])
	}
	ta.expect(ta.do("DELETE", "/api/v1/namespaces/default/pods/web-2?gracePeriodSeconds=0", "", ""), 200, "force delete")
	expectStatus(t, ta.do("GET", "/api/v1/namespaces/default/pods/web-2", "", ""), 404, "NotFound")

	// Delete a collection by label.
	ta.expect(ta.do("DELETE", "/api/v1/namespaces/default/pods?labelSelector=app%3Ddb", "", ""), 200, "deletecollection")
	list = ta.expect(ta.do("GET", "/api/v1/namespaces/default/pods", "", ""), 200, "list after").json(t)
	if items := list["items"].([]any); len(items) != 1 {
		t.Fatalf("after deletecollection: %d pods", len(items))
	}
	ta.c.Verify()
}

func (ta *testAPI) doWithAccept(path, accept string) response {
	ta.t.Helper()
	req, _ := http.NewRequest("GET", ta.srv.URL+path, nil)
	req.Header.Set("Accept", accept)
	req.Header.Set("Authorization", "Bearer "+ta.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: b, header: resp.Header}
}

// Bad input gets a clear Kubernetes error and changes nothing in the store.
func TestBadInputChangesNothing(t *testing.T) {
	ta := newTestAPI(t, 1, nil)
	before := ta.c.Node(0).FSM().State()
	cases := []struct {
		name, method, path, ct, body string
		code                         int
		reason                       string
	}{
		{"malformed JSON", "POST", "/api/v1/namespaces/default/pods", "application/json", `{"apiVersion":"v1",`, 400, "BadRequest"},
		{"malformed YAML", "POST", "/api/v1/namespaces/default/pods", "application/yaml", "kind: Pod\n  bad: [", 400, "BadRequest"},
		{"wrong kind for path", "POST", "/api/v1/namespaces/default/pods", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`, 400, "BadRequest"},
		{"invalid name", "POST", "/api/v1/namespaces/default/pods", "application/json", pod("Bad_Name", "a", ""), 422, "Invalid"},
		{"missing image", "POST", "/api/v1/namespaces/default/pods", "application/json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}`, 422, "Invalid"},
		{"no containers", "POST", "/api/v1/namespaces/default/pods", "application/json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{}}`, 422, "Invalid"},
		{"bad label", "POST", "/api/v1/namespaces/default/pods", "application/json", pod("p", "-bad-", ""), 422, "Invalid"},
		{"no name", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}`, 422, "Invalid"},
		{"unknown field, strict", "POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict", "application/json", pod("p", "a", `,"bogus":1`), 400, "BadRequest"},
		{"duplicate field, strict", "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","name":"y"}}`, 400, "BadRequest"},
		{"namespace mismatch", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}`, 400, "BadRequest"},
		{"missing namespace", "POST", "/api/v1/namespaces/nope/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`, 404, "NotFound"},
		{"oversized body", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}}`, 413, "RequestEntityTooLarge"},
		{"bad protobuf body", "POST", "/api/v1/namespaces/default/configmaps", "application/vnd.kubernetes.protobuf", "\x00", 400, "BadRequest"},
		{"bad patch type", "PATCH", "/api/v1/namespaces/default/configmaps/x", "text/plain", "{}", 415, ""},
		{"dry run", "POST", "/api/v1/namespaces/default/configmaps?dryRun=All", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dry"}}`, 201, ""},
	}
	for _, tc := range cases {
		r := ta.do(tc.method, tc.path, tc.ct, tc.body)
		if tc.code == 201 {
			ta.expect(r, 201, tc.name)
			continue
		}
		if r.code != tc.code {
			t.Fatalf("%s: got %d, want %d: %.300s", tc.name, r.code, tc.code, r.body)
		}
		if tc.reason != "" {
			expectStatus(t, r, tc.code, tc.reason)
		}
	}
	expectStatus(t, ta.do("GET", "/api/v1/namespaces/default/configmaps/dry", "", ""), 404, "NotFound")
	after := ta.c.Node(0).FSM().State()
	if after.Hash() != before.Hash() {
		t.Fatal("a rejected request changed the store")
	}
}

func TestUpdatePatchAndSubresources(t *testing.T) {
	ta := newTestAPI(t, 1, nil)
	dep := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":2,
 "selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
 "spec":{"containers":[{"name":"web","image":"nginx:1"},{"name":"side","image":"busybox"}]}}}}`
	created := ta.expect(ta.do("POST", "/apis/apps/v1/namespaces/default/deployments", "application/json", dep), 201, "create deployment").json(t)
	if get(created, "spec", "strategy", "type") != "RollingUpdate" || get(created, "spec", "revisionHistoryLimit") != float64(10) {
		t.Fatalf("deployment defaults: %v", created["spec"])
	}
	rv := get(created, "metadata", "resourceVersion").(string)

	// PUT with a stale resourceVersion conflicts; with the current one it succeeds and the
	// spec change bumps the generation.
	stale := strings.Replace(dep, `"name":"web"},"spec"`, `"name":"web","resourceVersion":"1"},"spec"`, 1)
	expectStatus(t, ta.do("PUT", "/apis/apps/v1/namespaces/default/deployments/web", "application/json", stale), 409, "Conflict")
	cur := strings.Replace(dep, `"name":"web"},"spec"`, `"name":"web","resourceVersion":"`+rv+`"},"spec"`, 1)
	cur = strings.Replace(cur, `"replicas":2`, `"replicas":3`, 1)
	upd := ta.expect(ta.do("PUT", "/apis/apps/v1/namespaces/default/deployments/web", "application/json", cur), 200, "update").json(t)
	if get(upd, "metadata", "generation") != float64(2) || get(upd, "spec", "replicas") != float64(3) {
		t.Fatalf("update: generation %v replicas %v", get(upd, "metadata", "generation"), get(upd, "spec", "replicas"))
	}

	// Strategic merge patch merges containers by name; merge patch replaces the list.
	smp := `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:2"}]}}}}`
	p := ta.expect(ta.do("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", "application/strategic-merge-patch+json", smp), 200, "strategic patch").json(t)
	cs := get(p, "spec", "template", "spec", "containers").([]any)
	if len(cs) != 2 || get(cs[0].(map[string]any), "image") != "nginx:2" {
		t.Fatalf("strategic merge: %v", cs)
	}
	ta.expect(ta.do("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", "application/merge-patch+json", `{"metadata":{"labels":{"tier":"front"}}}`), 200, "merge patch")
	jp := `[{"op":"replace","path":"/spec/replicas","value":5},{"op":"add","path":"/metadata/annotations","value":{"a":"b"}}]`
	p = ta.expect(ta.do("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", "application/json-patch+json", jp), 200, "json patch").json(t)
	if get(p, "spec", "replicas") != float64(5) || get(p, "metadata", "labels", "tier") != "front" || get(p, "metadata", "annotations", "a") != "b" {
		t.Fatalf("patches: %v %v", p["metadata"], get(p, "spec", "replicas"))
	}
	expectStatus(t, ta.do("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", "application/json-patch+json", `[{"op":"test","path":"/spec/replicas","value":9}]`), 422, "")
	expectStatus(t, ta.do("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", "application/merge-patch+json", `{"spec":{"replicas":-1}}`), 422, "Invalid")
	expectStatus(t, ta.do("PATCH", "/apis/apps/v1/namespaces/default/deployments/nope", "application/merge-patch+json", `{}`), 404, "NotFound")

	// The main resource ignores status; the status subresource changes only status.
	ta.expect(ta.do("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", "application/merge-patch+json", `{"status":{"replicas":7}}`), 200, "status via main")
	got := ta.expect(ta.do("GET", "/apis/apps/v1/namespaces/default/deployments/web", "", ""), 200, "get").json(t)
	if get(got, "status", "replicas") != nil {
		t.Fatalf("main resource changed status: %v", got["status"])
	}
	st := ta.expect(ta.do("PATCH", "/apis/apps/v1/namespaces/default/deployments/web/status", "application/merge-patch+json", `{"status":{"replicas":7},"spec":{"replicas":1}}`), 200, "status patch").json(t)
	if get(st, "status", "replicas") != float64(7) || get(st, "spec", "replicas") != float64(5) {
		t.Fatalf("status subresource: spec %v status %v", get(st, "spec", "replicas"), get(st, "status", "replicas"))
	}

	// Scale.
	sc := ta.expect(ta.do("GET", "/apis/apps/v1/namespaces/default/deployments/web/scale", "", ""), 200, "get scale").json(t)
	if sc["kind"] != "Scale" || get(sc, "spec", "replicas") != float64(5) || get(sc, "status", "replicas") != float64(7) {
		t.Fatalf("scale: %v", sc)
	}
	ta.expect(ta.do("PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale", "application/merge-patch+json", `{"spec":{"replicas":9}}`), 200, "patch scale")
	got = ta.expect(ta.do("GET", "/apis/apps/v1/namespaces/default/deployments/web", "", ""), 200, "get").json(t)
	if get(got, "spec", "replicas") != float64(9) {
		t.Fatalf("scale did not change replicas: %v", get(got, "spec", "replicas"))
	}
	// Selector is immutable.
	expectStatus(t, ta.do("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", "application/merge-patch+json",
		`{"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"other"}}}}}`), 422, "Invalid")
}

func TestFinalizersAndOrphans(t *testing.T) {
	ta := newTestAPI(t, 1, nil)
	owner := ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"owner"}}`), 201, "owner").json(t)
	uid := get(owner, "metadata", "uid").(string)
	dep := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dep","ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"owner","uid":"%s"}]}}`, uid)
	ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json", dep), 201, "dependent")
	ta.expect(ta.do("DELETE", "/api/v1/namespaces/default/configmaps/owner?propagationPolicy=Orphan", "", ""), 200, "orphan delete")
	d := ta.expect(ta.do("GET", "/api/v1/namespaces/default/configmaps/dep", "", ""), 200, "dependent survives").json(t)
	if refs := get(d, "metadata", "ownerReferences"); refs != nil {
		t.Fatalf("orphaned dependent still references its owner: %v", refs)
	}

	ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fin","finalizers":["example.com/hold"]}}`), 201, "with finalizer")
	m := ta.expect(ta.do("DELETE", "/api/v1/namespaces/default/configmaps/fin", "", ""), 200, "delete with finalizer").json(t)
	if get(m, "metadata", "deletionTimestamp") == nil {
		t.Fatalf("not marked: %v", m["metadata"])
	}
	ta.expect(ta.do("GET", "/api/v1/namespaces/default/configmaps/fin", "", ""), 200, "still there")
	expectStatus(t, ta.do("PATCH", "/api/v1/namespaces/default/configmaps/fin", "application/merge-patch+json", `{"metadata":{"finalizers":["a","b"]}}`), 422, "Invalid")
	ta.expect(ta.do("PATCH", "/api/v1/namespaces/default/configmaps/fin", "application/merge-patch+json", `{"metadata":{"finalizers":null}}`), 200, "drop finalizer")
	expectStatus(t, ta.do("GET", "/api/v1/namespaces/default/configmaps/fin", "", ""), 404, "NotFound")
	expectStatus(t, ta.do("DELETE", "/api/v1/namespaces/default/configmaps/dep", "application/json",
		`{"preconditions":{"uid":"not-it"}}`), 409, "Conflict")
}

// readEvents reads watch events until n arrived (or fails after a generous deadline).
func readEvents(t *testing.T, body *bufio.Reader, n int) []map[string]any {
	t.Helper()
	var out []map[string]any
	done := make(chan error, 1)
	go func() {
		for len(out) < n {
			line, err := body.ReadBytes('\n')
			if err != nil {
				done <- err
				return
			}
			var ev map[string]any
			if err := json.Unmarshal(line, &ev); err != nil {
				done <- err
				return
			}
			out = append(out, ev)
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("reading watch: %v (got %d events)", err, len(out))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("only %d of %d watch events within 30s", len(out), n)
	}
	return out
}

func openWatch(t *testing.T, ta *testAPI, i int, path string) (*bufio.Reader, func()) {
	t.Helper()
	req, _ := http.NewRequest("GET", ta.servers[i].URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+ta.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch %s: %d %s", path, resp.StatusCode, b)
	}
	return bufio.NewReader(resp.Body), func() { resp.Body.Close() }
}

func TestWatch(t *testing.T) {
	ta := newTestAPI(t, 3, func(c *raft.Config) { c.FSM.HistorySize = 64 })
	first := ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"w":"yes"}}}`), 201, "create a").json(t)
	rv := get(first, "metadata", "resourceVersion").(string)

	// Without a resourceVersion: existing objects first, then changes; served by a follower.
	r0, stop0 := openWatch(t, ta, 2, "/api/v1/namespaces/default/configmaps?watch=true&labelSelector=w%3Dyes")
	defer stop0()
	// From a resourceVersion: only later changes.
	r1, stop1 := openWatch(t, ta, 1, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion="+rv)
	defer stop1()
	if ev := readEvents(t, r0, 1)[0]; ev["type"] != "ADDED" || get(ev, "object", "metadata", "name") != "a" {
		t.Fatalf("initial event: %v", ev)
	}
	ta.expect(ta.do("PATCH", "/api/v1/namespaces/default/configmaps/a", "application/merge-patch+json", `{"data":{"k":"v"}}`), 200, "modify a")
	ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}`), 201, "create b")
	ta.expect(ta.do("DELETE", "/api/v1/namespaces/default/configmaps/a", "", ""), 200, "delete a")
	evs := readEvents(t, r1, 3)
	var got []string
	var last float64
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%s %s", ev["type"], get(ev, "object", "metadata", "name")))
		var n float64
		fmt.Sscan(get(ev, "object", "metadata", "resourceVersion").(string), &n)
		if n <= last {
			t.Fatalf("resourceVersions not increasing: %v", evs)
		}
		last = n
	}
	if strings.Join(got, ",") != "MODIFIED a,ADDED b,DELETED a" {
		t.Fatalf("events from rv: %v", got)
	}
	if evs := readEvents(t, r0, 2); evs[0]["type"] != "MODIFIED" || evs[1]["type"] != "DELETED" {
		t.Fatalf("label-selected events: %v", evs)
	}

	// After the history window has moved on, a resume gets 410 Gone as an ERROR event.
	for i := 0; i < 100; i++ {
		ta.expect(ta.do("PUT", "/api/v1/namespaces/default/configmaps/b", "application/json",
			fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"},"data":{"i":"%d"}}`, i)), 200, "churn")
	}
	r2, stop2 := openWatch(t, ta, 0, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion="+rv)
	defer stop2()
	ev := readEvents(t, r2, 1)[0]
	if ev["type"] != "ERROR" || get(ev, "object", "code") != float64(410) {
		t.Fatalf("resume from before the window: %v", ev)
	}
}

func TestNoLeaderWritesFailReadsOfLocalStateWork(t *testing.T) {
	ta := newTestAPI(t, 3, func(c *raft.Config) { c.LeaderWait = 500 * time.Millisecond })
	ta.expect(ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}`), 201, "create")
	// Wait until every master has the object, then take quorum away from master 0.
	ta.c.Converge()
	ta.c.Kill(1)
	ta.c.Kill(2)
	r := ta.do("POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}`)
	if r.code != 503 && r.code != 504 {
		t.Fatalf("write without quorum: %d %s", r.code, r.body)
	}
	if r.code == 503 && r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	ta.expect(ta.do("GET", "/api/v1/namespaces/default/configmaps/a?resourceVersion=0", "", ""), 200, "local read")
	ta.expect(ta.do("GET", "/api/v1/namespaces/default/configmaps?resourceVersion=0", "", ""), 200, "local list")
}

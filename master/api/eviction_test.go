package api_test

import (
	"fmt"
	"testing"
)

func TestEvictionHonoursDisruptionBudget(t *testing.T) {
	ta := newTestAPI(t, 1, nil)
	running := func(name string) {
		ta.expect(ta.do("POST", "/api/v1/namespaces/default/pods", "application/json", pod(name, "web", `,"nodeName":"n1"`)), 201, "create "+name)
		ta.expect(ta.do("PATCH", "/api/v1/namespaces/default/pods/"+name+"/status", "application/merge-patch+json",
			`{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}`), 200, "status "+name)
	}
	running("a")
	running("b")
	ta.expect(ta.do("POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets", "application/json",
		`{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"web"},"spec":{"minAvailable":1,"selector":{"matchLabels":{"app":"web"}}}}`), 201, "pdb")
	ta.expect(ta.do("PATCH", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web/status", "application/merge-patch+json",
		`{"status":{"observedGeneration":1,"disruptionsAllowed":1,"currentHealthy":2,"desiredHealthy":1,"expectedPods":2}}`), 200, "pdb status")

	evict := func(name string) response {
		return ta.do("POST", "/api/v1/namespaces/default/pods/"+name+"/eviction", "application/json",
			fmt.Sprintf(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":%q,"namespace":"default"}}`, name))
	}
	ta.expect(evict("a"), 201, "first eviction")
	a := ta.expect(ta.do("GET", "/api/v1/namespaces/default/pods/a", "", ""), 200, "evicted pod is terminating").json(t)
	if get(a, "metadata", "deletionTimestamp") == nil {
		t.Fatalf("evicted bound pod is not terminating: %v", a["metadata"])
	}
	p := ta.expect(ta.do("GET", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web", "", ""), 200, "pdb").json(t)
	if got := get(p, "status", "disruptionsAllowed"); got != nil && got.(float64) != 0 {
		t.Fatalf("disruptionsAllowed after eviction = %v, want 0", got)
	}
	if get(p, "status", "disruptedPods", "a") == nil {
		t.Fatalf("disruptedPods does not record a: %v", p["status"])
	}

	r := evict("b")
	expectStatus(t, r, 429, "TooManyRequests")
	if causes := get(r.json(t), "details", "causes"); causes == nil {
		t.Fatalf("429 without a DisruptionBudget cause: %s", r.body)
	}
	b := ta.expect(ta.do("GET", "/api/v1/namespaces/default/pods/b", "", ""), 200, "refused pod stays").json(t)
	if get(b, "metadata", "deletionTimestamp") != nil {
		t.Fatal("a refused eviction marked the pod")
	}

	// A pending pod is not protected by any budget.
	ta.expect(ta.do("POST", "/api/v1/namespaces/default/pods", "application/json", pod("pending", "web", "")), 201, "pending pod")
	ta.expect(evict("pending"), 201, "evict pending")
	expectStatus(t, ta.do("GET", "/api/v1/namespaces/default/pods/pending", "", ""), 404, "NotFound")

	// Two budgets over one pod: Kubernetes refuses rather than guess.
	ta.expect(ta.do("POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets", "application/json",
		`{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"all"},"spec":{"maxUnavailable":1,"selector":{}}}`), 201, "second pdb")
	expectStatus(t, evict("b"), 500, "InternalError")
	expectStatus(t, evict("missing"), 404, "NotFound")
	expectStatus(t, ta.do("POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets", "application/json",
		`{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"bad"},"spec":{"minAvailable":1,"maxUnavailable":1}}`), 422, "Invalid")
}

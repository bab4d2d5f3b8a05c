package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// bindAfterKillLoop kills the leader rounds times and measures, from the kill, the time
// until a pod created after the kill is bound to a node by the new leader's scheduler
// (issue 5's failover target: within the store's failover time + 0.5 s). The node is a
// Ready Node object in the store, no agent: this measures the masters, not containers.
func bindAfterKillLoop(tb testing.TB, s *skiffMasters, rounds int) durations {
	s.healthy()
	s.mustRequest(0, http.MethodPost, "/api/v1/nodes", `{"apiVersion":"v1","kind":"Node","metadata":{"name":"bench-node"}}`, http.StatusCreated)
	s.mustRequest(0, http.MethodPatch, "/api/v1/nodes/bench-node/status", `{"status":{"conditions":[{"type":"Ready","status":"True"}],`+
		`"allocatable":{"cpu":"64","memory":"256Gi","pods":"1000"},"capacity":{"cpu":"64","memory":"256Gi","pods":"1000"}}}`, http.StatusOK)
	var out durations
	for r := 0; r < rounds; r++ {
		s.healthy()
		l := s.leader(-1)
		if l < 0 {
			tb.Fatalf("no leader before round %d", r)
		}
		name := fmt.Sprintf("probe-%d", r)
		body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`, name)
		t0 := time.Now()
		s.kill(l)
		for i := 0; ; i++ {
			code, _ := s.request((l+1+i%2)%3, http.MethodPost, "/api/v1/namespaces/default/pods", body, 250*time.Millisecond)
			if code == http.StatusCreated || code == http.StatusConflict {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		for i := 0; ; i++ {
			code, resp := s.request((l+1+i%2)%3, http.MethodGet, "/api/v1/namespaces/default/pods/"+name, "", 250*time.Millisecond)
			var pod struct {
				Spec struct {
					NodeName string `json:"nodeName"`
				} `json:"spec"`
			}
			if code == http.StatusOK && json.Unmarshal(resp, &pod) == nil && pod.Spec.NodeName != "" {
				out = append(out, time.Since(t0))
				break
			}
			if time.Since(t0) > time.Minute {
				tb.Fatalf("round %d: pod %s not bound within a minute of the kill", r, name)
			}
			time.Sleep(2 * time.Millisecond)
		}
		s.restart(l)
	}
	return out
}

// request sends one API request to master via and returns the status code and body (0 if
// the request failed).
func (s *skiffMasters) request(via int, method, path, body string, timeout time.Duration) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ct := "application/json"
	if method == http.MethodPatch {
		ct = "application/merge-patch+json"
	}
	resp, err := s.Do(ctx, via, method, path, ct, []byte(body))
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *skiffMasters) mustRequest(via int, method, path, body string, want int) {
	code, resp := s.request(via, method, path, body, 10*time.Second)
	if code != want {
		s.tb.Fatalf("%s %s: %d %s", method, path, code, strings.TrimSpace(string(resp)))
	}
}

package agent

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeMaster answers node reads and holds pod watches open until the client goes away.
func fakeMaster(t *testing.T) (*httptest.Server, []byte) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") == "true" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Node","apiVersion":"v1","metadata":{"name":"n1"}}`))
	}))
	t.Cleanup(srv.Close)
	return srv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// A partitioned agent's API requests fail, its open watch is cut, and healing restores both.
func TestAgentPartitionCutsTheMasters(t *testing.T) {
	srv, caPEM := fakeMaster(t)
	client, err := NewClient(caPEM, "token", []string{srv.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{Name: "n1", Client: client, AllowDrills: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := client.GetNode(ctx, "n1"); err != nil {
		t.Fatalf("before the partition: %v", err)
	}
	watchEnded := make(chan error, 1)
	go func() { watchEnded <- client.WatchPods(ctx, "n1", "1", func(PodEvent) error { return nil }) }()
	// The watch is in flight once the drill tracks a request.
	deadline := time.Now().Add(20 * time.Second)
	for {
		a.drills.mu.Lock()
		n := len(a.drills.inflight)
		a.drills.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch never started")
		}
		time.Sleep(10 * time.Millisecond)
	}

	a.drills.partition(10 * time.Minute)
	select {
	case err := <-watchEnded:
		if err == nil {
			t.Fatal("the watch ended without an error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the partition did not cut the open watch")
	}
	if _, err := client.GetNode(ctx, "n1"); !errors.Is(err, ErrPartitioned) {
		t.Fatalf("a request during the partition: %v, want ErrPartitioned", err)
	}
	if st := a.drills.status(); st.Fault != "partition" || st.Until == nil {
		t.Fatalf("status during the partition = %+v", st)
	}

	a.drills.mu.Lock()
	gen := a.drills.gen
	a.drills.mu.Unlock()
	a.drills.heal(gen)
	if _, err := client.GetNode(ctx, "n1"); err != nil {
		t.Fatalf("after healing: %v", err)
	}

	// A partition also heals by itself after its duration.
	a.drills.partition(200 * time.Millisecond)
	deadline = time.Now().Add(20 * time.Second)
	for a.drills.partitioned() {
		if time.Now().After(deadline) {
			t.Fatal("the partition did not heal by itself")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The drill endpoints answer 403 on an agent without --allow-drills, and report and
// partition on one with it; during a partition only they answer.
func TestAgentDrillEndpoints(t *testing.T) {
	pass := func(h http.HandlerFunc) http.HandlerFunc { return h }
	call := func(h http.Handler, method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String()
	}

	off := New(Config{Name: "n1"})
	mux := http.NewServeMux()
	off.drillRoutes(mux, pass)
	for _, p := range []struct{ method, path string }{{"GET", "/drill"}, {"POST", "/drill/partition?duration=1s"}, {"POST", "/drill/heal"}} {
		if code, body := call(off.drillGate(mux), p.method, p.path); code != http.StatusForbidden || !strings.Contains(body, "--allow-drills") {
			t.Errorf("%s %s without drills: %d %s, want 403 naming --allow-drills", p.method, p.path, code, body)
		}
	}

	srv, caPEM := fakeMaster(t)
	client, _ := NewClient(caPEM, "token", []string{srv.Listener.Addr().String()})
	on := New(Config{Name: "n1", Client: client, AllowDrills: true})
	mux = http.NewServeMux()
	on.drillRoutes(mux, pass)
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	h := on.drillGate(mux)
	if code, _ := call(h, "POST", "/drill/partition?duration=1h"); code != http.StatusBadRequest {
		t.Errorf("a partition of 1h: %d, want 400", code)
	}
	code, body := call(h, "POST", "/drill/partition?duration=5m")
	var st AgentDrillStatus
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Fault != "partition" {
		t.Fatalf("partition: %d %s", code, body)
	}
	if code, _ := call(h, "GET", "/containerLogs/default/p/c"); code != http.StatusServiceUnavailable {
		t.Errorf("logs during the partition: %d, want 503", code)
	}
	if code, body := call(h, "POST", "/drill/heal"); code != http.StatusOK || strings.Contains(body, "partition") {
		t.Errorf("heal: %d %s", code, body)
	}
	if code, _ := call(h, "GET", "/containerLogs/default/p/c"); code != http.StatusOK {
		t.Errorf("logs after healing: %d, want 200", code)
	}
}

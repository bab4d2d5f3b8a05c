package master

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff/master/api"
	"skiff/raft"
)

// startSingle runs a one-master cluster on loopback with a real Raft node on disk.
func startSingle(t *testing.T) *Master {
	t.Helper()
	m := startTestMaster(t, Config{})
	if kc, err := os.ReadFile(m.KubeconfigPath()); err != nil || !strings.Contains(string(kc), testToken) {
		t.Fatalf("kubeconfig not written with the admin token: %v", err)
	}
	return m
}

// startTestMaster runs a one-master cluster "m1" from cfg with its Raft node on disk under
// a test directory and Raft and the API on loopback (it sets cfg.Raft and cfg.APIAddr), waits
// for the API, and points testClient and testToken at it. The master shuts down when the
// test ends.
func startTestMaster(t *testing.T, cfg Config) *Master {
	t.Helper()
	cfg.Raft = raft.Config{ID: "m1", DataDir: filepath.Join(t.TempDir(), "m1"), BindAddr: "127.0.0.1:0"}
	cfg.APIAddr = "127.0.0.1:0"
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	select {
	case <-m.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the API did not start within 30s")
	}
	ca, err := api.ClusterCA(m.Node().FSM().State())
	if err != nil || ca == nil {
		t.Fatalf("no CA: %v", err)
	}
	pool, _ := ca.Pool()
	testClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	testToken = api.AdminToken(m.Node().FSM().State())
	return m
}

var (
	testClient *http.Client
	testToken  string
)

func do(t *testing.T, method, url, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if !strings.HasSuffix(url, "z") {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestStoreAPI(t *testing.T) {
	m := startSingle(t)
	base := "https://" + m.APIAddr()
	steps := []struct {
		method, path, body string
		want               int
		wantBody           string
	}{
		{"GET", "/healthz", "", 200, "ok"},
		{"GET", "/readyz", "", 200, "ok"},
		{"GET", "/skiff/v1/masters", "", 200, ""},
		{"GET", "/skiff/v1/kv/a", "", 404, ""},
		{"PUT", "/skiff/v1/kv/a?revision=0", "one", 204, ""},
		{"PUT", "/skiff/v1/kv/a?revision=0", "again", 409, ""},
		{"GET", "/skiff/v1/kv/a", "", 200, "one"},
		{"PUT", "/skiff/v1/kv/a?revision=1", "stale", 409, ""},
		{"PUT", "/skiff/v1/kv/a?revision=x", "bad", 400, ""},
		{"PUT", "/skiff/v1/kv/b?revision=5", "absent", 404, ""},
		{"PUT", "/skiff/v1/kv/a", "two", 204, ""},
		{"GET", "/skiff/v1/kv/a?stale=true", "", 200, "two"},
		{"PUT", "/skiff/v1/kv/big", strings.Repeat("x", maxDebugValue+1), 413, ""},
		{"GET", "/skiff/v1/kv/big", "", 404, ""},
		{"POST", "/skiff/v1/raft/remove-peer", "", 400, ""},
	}
	for _, s := range steps {
		code, body, _ := do(t, s.method, base+s.path, s.body)
		if code != s.want || (s.wantBody != "" && body != s.wantBody) {
			t.Fatalf("%s %s: got %d %q, want %d %q", s.method, s.path, code, body, s.want, s.wantBody)
		}
	}
	// A conditional update with the revision just read succeeds.
	_, _, h := do(t, "GET", base+"/skiff/v1/kv/a", "")
	rev := h.Get("X-Skiff-Mod-Revision")
	if code, body, _ := do(t, "PUT", base+"/skiff/v1/kv/a?revision="+rev, "three"); code != 204 {
		t.Fatalf("conditional update at %s: %d %s", rev, code, body)
	}
	code, body, _ := do(t, "GET", base+"/skiff/v1/raft", "")
	if code != 200 || !strings.Contains(body, `"State":"Leader"`) {
		t.Fatalf("raft status: %d %s", code, body)
	}
}

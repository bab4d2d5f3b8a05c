package master

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"skiff/gossip"
)

// startDrillMaster runs a one-master cluster with drills allowed and gossip on loopback.
func startDrillMaster(t *testing.T) *Master {
	t.Helper()
	return startTestMaster(t, Config{
		Gossip:      gossip.Config{Name: "m1", BindAddr: "127.0.0.1:0"},
		AllowDrills: true,
	})
}

func drillStatus(t *testing.T, base string) DrillStatus {
	t.Helper()
	code, body, _ := do(t, "GET", base+"/skiff/v1/drill", "")
	var st DrillStatus
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("GET /skiff/v1/drill: %d %s", code, body)
	}
	return st
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A partition cuts the API (503, in-flight watches ended) and gossip, keeps the drill
// endpoints answering, and heals on request or by itself.
func TestDrillPartition(t *testing.T) {
	m := startDrillMaster(t)
	base := "https://" + m.APIAddr()
	if st := drillStatus(t, base); st.Master != "m1" || st.PID == 0 || st.Fault != "" {
		t.Fatalf("status before = %+v", st)
	}

	// A watch open before the partition must be cut by it.
	req, _ := http.NewRequest("GET", base+"/api/v1/namespaces/default/configmaps?watch=true", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := testClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("watch: %v %v", resp, err)
	}
	watchEnded := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				close(watchEnded)
				return
			}
		}
	}()
	defer resp.Body.Close()

	if code, body, _ := do(t, "POST", base+"/skiff/v1/drill/partition?duration=10m", ""); code != http.StatusOK {
		t.Fatalf("partition: %d %s", code, body)
	}
	if st := drillStatus(t, base); st.Fault != "partition" || st.Until == nil {
		t.Fatalf("status during the partition = %+v", st)
	}
	select {
	case <-watchEnded:
	case <-time.After(20 * time.Second):
		t.Fatal("the watch open before the partition was not cut")
	}
	code, body, _ := do(t, "GET", base+"/api/v1/namespaces", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "cut off") {
		t.Fatalf("API during the partition: %d %s, want 503", code, body)
	}
	if !m.Gossip().Isolated() {
		t.Fatal("gossip is not isolated during the partition")
	}

	if code, body, _ := do(t, "POST", base+"/skiff/v1/drill/heal", ""); code != http.StatusOK {
		t.Fatalf("heal: %d %s", code, body)
	}
	if code, body, _ := do(t, "GET", base+"/api/v1/namespaces", ""); code != http.StatusOK {
		t.Fatalf("API after healing: %d %s", code, body)
	}
	if m.Gossip().Isolated() {
		t.Fatal("gossip still isolated after healing")
	}

	// Without a heal request, the partition ends on its own after its duration.
	if code, body, _ := do(t, "POST", base+"/skiff/v1/drill/partition?duration=300ms", ""); code != http.StatusOK {
		t.Fatalf("partition: %d %s", code, body)
	}
	waitCond(t, "the partition to heal by itself", func() bool {
		code, _, _ := do(t, "GET", base+"/api/v1/namespaces", "")
		return code == http.StatusOK && drillStatus(t, base).Fault == ""
	})

	for _, bad := range []string{"x", "10ms", "11m"} {
		if code, _, _ := do(t, "POST", base+"/skiff/v1/drill/pause?duration="+bad, ""); code != http.StatusBadRequest {
			t.Errorf("duration %q: %d, want 400", bad, code)
		}
	}
	if code, _, _ := do(t, "GET", base+"/skiff/v1/drill/agents/nobody", ""); code != http.StatusNotFound {
		t.Errorf("an unknown agent: %d, want 404", code)
	}
}

// An emulated pause holds API requests until it ends, as a stopped process would.
func TestDrillPauseHoldsRequests(t *testing.T) {
	m := startDrillMaster(t)
	base := "https://" + m.APIAddr()
	if code, body, _ := do(t, "POST", base+"/skiff/v1/drill/pause?duration=10m", ""); code != http.StatusOK {
		t.Fatalf("pause: %d %s", code, body)
	}
	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/api/v1/namespaces", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := testClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	// While the pause lasts the request stays unanswered; the drill endpoints still answer.
	for i := 0; i < 10; i++ {
		if st := drillStatus(t, base); st.Fault != "pause" {
			t.Fatalf("status during the pause = %+v", st)
		}
		select {
		case code := <-answered:
			t.Fatalf("a request was answered (%d) during the pause", code)
		default:
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body, _ := do(t, "POST", base+"/skiff/v1/drill/heal", ""); code != http.StatusOK {
		t.Fatalf("heal: %d %s", code, body)
	}
	select {
	case code := <-answered:
		if code != http.StatusOK {
			t.Fatalf("the held request got %d after the pause, want 200", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the held request was not answered after the pause ended")
	}
}

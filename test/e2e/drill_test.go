package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"skiff/test/cluster"
)

// drillResult is the part of `skiff drill -o json` the tests check.
type drillResult struct {
	ID           string   `json:"id"`
	Drill        string   `json:"drill"`
	Target       string   `json:"target"`
	LeaderBefore string   `json:"leaderBefore"`
	LeaderAfter  string   `json:"leaderAfter"`
	NewLeaderMs  *float64 `json:"newLeaderMs"`
	WritesBackMs *float64 `json:"writesBackMs"`
	HealedMs     *float64 `json:"healedMs"`
	Writes       struct {
		Acknowledged, Found, Lost int
	} `json:"writes"`
	Reads struct {
		Reads, Stale int
	} `json:"reads"`
	Watch struct {
		Events, Missing, OutOfOrder, Duplicates, Expired, WrongRevision int
	} `json:"watch"`
	Convergence struct {
		Converged        bool `json:"converged"`
		OneLeaderPerTerm bool `json:"oneLeaderPerTerm"`
	} `json:"convergence"`
	Problems []string `json:"problems"`
	Passed   bool     `json:"passed"`
}

// runDrill runs `skiff drill args… -o json` and decodes its report; the command's progress
// goes to the test log.
func runDrill(t *testing.T, c *cluster.Cluster, kubeconfig string, args ...string) drillResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin, append(append([]string{"drill"}, args...), "--kubeconfig", kubeconfig, "-o", "json")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("skiff drill %s:\n%s", strings.Join(args, " "), stderr.String())
	var r drillResult
	if jerr := json.Unmarshal(stdout.Bytes(), &r); jerr != nil {
		t.Fatalf("skiff drill %s: %v; no JSON report (%v): %s", strings.Join(args, " "), err, jerr, stdout.String())
	}
	if err != nil && r.Passed {
		t.Fatalf("skiff drill exited with %v but its report passed", err)
	}
	return r
}

// checkDrill asserts what every drill against a healthy cluster must show: writes
// acknowledged and none lost, no stale read, no watch gap, one state on every master.
func checkDrill(t *testing.T, r drillResult) {
	t.Helper()
	if r.Writes.Acknowledged == 0 || r.Writes.Lost != 0 || r.Writes.Found < r.Writes.Acknowledged {
		t.Errorf("%s: writes %+v: want some acknowledged, every one found, none lost", r.Drill, r.Writes)
	}
	if r.Reads.Reads == 0 || r.Reads.Stale != 0 {
		t.Errorf("%s: reads %+v: want linearizable reads, none stale", r.Drill, r.Reads)
	}
	w := r.Watch
	if w.Events < r.Writes.Acknowledged || w.Missing+w.OutOfOrder+w.Duplicates+w.Expired+w.WrongRevision != 0 {
		t.Errorf("%s: watch %+v: want every acknowledged write once, in order", r.Drill, w)
	}
	if !r.Convergence.Converged || !r.Convergence.OneLeaderPerTerm {
		t.Errorf("%s: convergence %+v: want one state on every master and one leader per term", r.Drill, r.Convergence)
	}
	if r.WritesBackMs == nil || r.NewLeaderMs == nil {
		t.Errorf("%s: writes back %v, new leader %v: want both observed", r.Drill, r.WritesBackMs, r.NewLeaderMs)
	}
	if !r.Passed || len(r.Problems) != 0 {
		t.Errorf("%s: report failed: %q", r.Drill, r.Problems)
	}
}

// TestDrills runs `skiff drill` against three masters started with --allow-drills: a
// leadership transfer and a 3-second partition of the leader, each with its probe workload
// (writes, linearizable reads, a watch), and lists the reports kept in the cluster.
func TestDrills(t *testing.T) {
	c := cluster.Start(t, 3, "--allow-drills")
	kc := c.WriteKubeconfig(0)

	transfer := runDrill(t, c, kc, "leader-transfer", "--timeout", "30s")
	checkDrill(t, transfer)
	if transfer.LeaderAfter == transfer.LeaderBefore {
		t.Errorf("leader-transfer: leader %s before and after", transfer.LeaderBefore)
	}

	partition := runDrill(t, c, kc, "leader-partition", "--duration", "3s", "--timeout", "45s")
	checkDrill(t, partition)
	if partition.LeaderAfter == partition.Target {
		t.Errorf("leader-partition: the partitioned master %s leads afterwards; want another", partition.Target)
	}
	if partition.HealedMs == nil || *partition.HealedMs < 3000 {
		t.Errorf("leader-partition: healed at %v ms, want after the 3 s partition", partition.HealedMs)
	}

	out, err := exec.Command(c.Bin, "drill", "list", "--kubeconfig", kc, "-o", "json").Output()
	if err != nil {
		t.Fatalf("skiff drill list: %v", err)
	}
	var listed []drillResult
	if err := json.Unmarshal(out, &listed); err != nil {
		t.Fatalf("skiff drill list -o json: %v: %s", err, out)
	}
	ids := map[string]string{}
	for _, r := range listed {
		ids[r.ID] = r.Drill
	}
	if ids[transfer.ID] != "leader-transfer" || ids[partition.ID] != "leader-partition" {
		t.Errorf("skiff drill list shows %v, want both reports (%s, %s)", ids, transfer.ID, partition.ID)
	}
	c.Verify()
}

// TestDrillsOffByDefault: a master started without --allow-drills refuses every fault
// endpoint with 403 (and unauthenticated callers with 401), and `skiff drill` says why.
func TestDrillsOffByDefault(t *testing.T) {
	c := cluster.Start(t, 1)
	for _, ep := range []struct{ method, path string }{
		{http.MethodGet, "/skiff/v1/drill"},
		{http.MethodPost, "/skiff/v1/drill/crash"},
		{http.MethodPost, "/skiff/v1/drill/partition?duration=3s"},
		{http.MethodPost, "/skiff/v1/drill/pause?duration=3s"},
		{http.MethodPost, "/skiff/v1/drill/heal"},
		{http.MethodPost, "/skiff/v1/drill/agents/a1/partition?duration=3s"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := c.Do(ctx, 0, ep.method, ep.path, "", nil)
		cancel()
		if err != nil {
			t.Fatalf("%s %s: %v", ep.method, ep.path, err)
		}
		var st struct{ Message string }
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(st.Message, "--allow-drills") {
			t.Errorf("%s %s without --allow-drills: %d %q, want 403 naming --allow-drills", ep.method, ep.path, resp.StatusCode, st.Message)
		}
		req, _ := http.NewRequest(ep.method, "https://"+c.APIs[0]+ep.path, nil)
		resp, err = c.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", ep.method, ep.path, resp.StatusCode)
		}
	}
	// The master still works: it was neither crashed nor cut off.
	if st, err := c.Stats(0); err != nil || st.State != "Leader" {
		t.Fatalf("after the refused drills: %+v, %v; want the master leading", st, err)
	}
	out, err := exec.Command(c.Bin, "drill", "leader-crash", "--kubeconfig", c.WriteKubeconfig(0)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "at least 3 masters") {
		t.Errorf("skiff drill leader-crash on one master: %v: %s; want a refusal explaining it needs 3 masters", err, out)
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"skiff/test/cluster"
)

// runSkiff runs the skiff binary with args and returns its stdout, or an error with its
// stderr.
func runSkiff(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("skiff %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}

// skiffCLI is runSkiff that fails the test on an error.
func skiffCLI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := runSkiff(bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// raftPeer is one row of `skiff raft peers -o json`.
type raftPeer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	State   string `json:"state"`
}

// raftPeers runs `skiff raft peers -o json` and returns the peers by ID and their sorted
// IDs, or what went wrong (for waitFor to show).
func raftPeers(bin, kubeconfig string) (map[string]raftPeer, []string, string) {
	out, err := runSkiff(bin, "raft", "peers", "--kubeconfig", kubeconfig, "-o", "json")
	if err != nil {
		return nil, nil, err.Error()
	}
	var peers []raftPeer
	if err := json.Unmarshal([]byte(out), &peers); err != nil {
		return nil, nil, fmt.Sprintf("raft peers -o json: %v\n%s", err, out)
	}
	byID := map[string]raftPeer{}
	var ids []string
	for _, p := range peers {
		byID[p.ID] = p
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return byID, ids, out
}

// A fourth master joins a three-master cluster through gossip and becomes a voter; once it
// is killed for good, the leader's autopilot removes it after --dead-server-cleanup (and
// not below --min-quorum's 3), and the operator commands show the cluster of three with
// its leader and how many masters it can still lose.
func TestDeadMasterIsRemoved(t *testing.T) {
	const cleanup = "3s"
	c := cluster.Start(t, 3, "--dead-server-cleanup", cleanup)
	m4 := c.AddMaster("--dead-server-cleanup", cleanup)
	kc := c.WriteKubeconfig(0)

	waitFor(t, "4 voters after the join", 30*time.Second, func() (bool, string) {
		_, ids, out := raftPeers(c.Bin, kc)
		return slices.Equal(ids, []string{"m1", "m2", "m3", "m4"}), out
	})
	c.Kill(m4)
	waitFor(t, "the dead master removed from the raft configuration", 45*time.Second, func() (bool, string) {
		_, ids, out := raftPeers(c.Bin, kc)
		return slices.Equal(ids, []string{"m1", "m2", "m3"}), out
	})
	if c.WaitLeader(m4) < 0 {
		t.Fatal("no leader after the removal")
	}
	// Every surviving master's configuration agrees.
	for i := 0; i < 3; i++ {
		waitFor(t, fmt.Sprintf("%s's configuration to drop m4", c.Names[i]), 15*time.Second, func() (bool, string) {
			st, err := c.Stats(i)
			if err != nil {
				return false, err.Error()
			}
			return len(st.Peers) == 3, fmt.Sprint(st.Peers)
		})
	}

	table := skiffCLI(t, c.Bin, "raft", "peers", "--kubeconfig", kc)
	t.Logf("skiff raft peers:\n%s", table)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || strings.Contains(table, "m4") {
		t.Fatalf("raft peers should list a header and m1..m3 only:\n%s", table)
	}
	if !strings.Contains(table, "leader") {
		t.Fatalf("raft peers shows no leader:\n%s", table)
	}

	var status string
	waitFor(t, "status to report the leader and a quorum that can lose one", 15*time.Second, func() (bool, string) {
		var err error
		if status, err = runSkiff(c.Bin, "status", "--kubeconfig", kc); err != nil {
			return false, err.Error()
		}
		l := c.Leader(m4)
		return l >= 0 && strings.Contains(status, "Leader: "+c.Names[l]) && strings.Contains(status, "2 of 3 masters needed, 3 up, 1 left to lose"), status
	})
	t.Logf("skiff status:\n%s", status)
	if strings.Contains(status, "m4") {
		t.Fatalf("status still lists the removed master:\n%s", status)
	}
	var report struct {
		Leader string `json:"leader"`
		Quorum struct {
			Voters, Needed, Up, CanLose int
		} `json:"quorum"`
		Masters []struct {
			ID string `json:"id"`
		} `json:"masters"`
	}
	out := skiffCLI(t, c.Bin, "status", "--kubeconfig", kc, "-o", "json")
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if report.Leader == "" || report.Quorum.Voters != 3 || report.Quorum.CanLose != 1 || len(report.Masters) != 3 {
		t.Fatalf("status -o json: %+v\n%s", report, out)
	}

	// The removed master is started again from its data dir: it asks to be added back.
	c.Restart(m4)
	waitFor(t, "the returning master added back", 30*time.Second, func() (bool, string) {
		peers, ids, out := raftPeers(c.Bin, kc)
		return slices.Equal(ids, []string{"m1", "m2", "m3", "m4"}) && peers["m4"].State == "follower", out
	})

	// A master restarted on a new Raft address keeps its identity: the leader re-addresses
	// it, it follows again, and the cluster converges with it.
	victim := 0
	if victim == c.Leader(-1) {
		victim = 1
	}
	c.Kill(victim)
	moved := c.MoveRaft(victim) // its API address stays, so kc still reaches it
	waitFor(t, "the moved master's new address in the configuration", 30*time.Second, func() (bool, string) {
		peers, ids, out := raftPeers(c.Bin, kc)
		p := peers[c.Names[victim]]
		return len(ids) == 4 && p.Address == moved && p.State == "follower", out
	})

	// Leadership moves where the operator says, through the moved master's new address.
	out = skiffCLI(t, c.Bin, "raft", "transfer-leadership", "--kubeconfig", kc, "--to", c.Names[victim])
	if !strings.Contains(out, c.Names[victim]+" now leads") {
		t.Fatalf("transfer-leadership:\n%s", out)
	}
	waitFor(t, "the transfer's target to lead", 15*time.Second, func() (bool, string) {
		l := c.Leader(-1)
		return l == victim, fmt.Sprintf("leader index %d", l)
	})

	// An operator removes a master by hand, then stops it for good.
	out = skiffCLI(t, c.Bin, "raft", "remove-peer", "--kubeconfig", kc, "m4")
	if !strings.Contains(out, "removed m4") {
		t.Fatalf("remove-peer:\n%s", out)
	}
	c.Kill(m4)
	waitFor(t, "3 servers after remove-peer", 15*time.Second, func() (bool, string) {
		_, ids, out := raftPeers(c.Bin, kc)
		return slices.Equal(ids, []string{"m1", "m2", "m3"}), out
	})
	c.Verify()
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"skiff/test/cluster"
)

// TestRecoverFromLossOfQuorum is the runbook of README's "Backups and disaster recovery":
// two of three masters die for good, so the cluster has no quorum and takes no writes.
// `skiff recover` on the stopped survivor's data dir makes it the only voter; started
// again, it leads, holds every write acknowledged before the loss and takes new ones, and a
// fresh master joins it back to two voters.
func TestRecoverFromLossOfQuorum(t *testing.T) {
	c := cluster.Start(t, 3)
	leader := c.WaitLeader(-1)
	if leader < 0 {
		t.Fatal("no leader")
	}
	// Recover from a follower: the harder case, as the dead leader had the newest log.
	survivor := (leader + 1) % 3
	acked := map[string]string{}
	var lastRev uint64
	for i := 0; i < 30; i++ {
		key, val := fmt.Sprintf("key-%02d", i), fmt.Sprintf("value %d", i)
		rev, err := recoverPut(c, i%3, key, val)
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		acked[key], lastRev = val, max(lastRev, rev)
	}
	// An operator recovers from the most up-to-date survivor; make this one that, as the
	// harness cannot copy the other data dirs out of dead machines.
	recoverWait(t, "the survivor to apply every acknowledged write", 30*time.Second, func() (bool, string) {
		st, err := c.Stats(survivor)
		return err == nil && st.FSMRevision >= lastRev, fmt.Sprintf("%+v %v (want revision %d)", st, err, lastRev)
	})

	for i := range c.Names {
		if i != survivor {
			c.Kill(i)
		}
	}
	// Alone, the survivor cannot commit anything.
	if _, err := recoverPut(c, survivor, "without-quorum", "x"); err == nil {
		t.Fatal("a write succeeded without a quorum")
	}

	dir := filepath.Join(c.Dir, c.Names[survivor])
	name := c.Names[survivor]
	// recover refuses to touch the data dir of a running master.
	if out, err := recoverCLI(c.Bin, "recover", "--data-dir", dir, "--name", name, "--yes"); err == nil || !strings.Contains(out, "stop the master") {
		t.Fatalf("recover of a running master: %v\n%s", err, out)
	}
	c.Kill(survivor)
	out, err := recoverCLI(c.Bin, "recover", "--data-dir", dir, "--name", name, "--dry-run")
	if err != nil || !strings.Contains(out, "unreachable") || !strings.Contains(out, "Dry run: nothing changed") {
		t.Fatalf("recover --dry-run: %v\n%s", err, out)
	}
	out, err = recoverCLI(c.Bin, "recover", "--data-dir", dir, "--name", name, "--yes")
	if err != nil || !strings.Contains(out, "Recovered: "+name+" is the only voter") {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	t.Logf("skiff recover:\n%s", out)

	c.Restart(survivor)
	c.WaitReady(survivor)
	if l := c.WaitLeader(-1); l != survivor {
		t.Fatalf("leader after recovery is %d, want the survivor %d", l, survivor)
	}
	for key, want := range acked {
		got, err := recoverGet(c, survivor, key)
		if err != nil || got != want {
			t.Fatalf("acknowledged write %s = %q (%v) after recovery, want %q", key, got, err, want)
		}
	}
	if _, err := recoverPut(c, survivor, "after-recovery", "1"); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}

	// A fresh master (an empty data dir) joins the recovered one.
	fresh := c.AddMaster()
	recoverWait(t, "two voters", 30*time.Second, func() (bool, string) {
		st, err := c.Stats(survivor)
		if err != nil {
			return false, err.Error()
		}
		voters := 0
		for _, p := range st.Peers {
			if p.Voter {
				voters++
			}
		}
		return voters == 2 && len(st.Peers) == 2, fmt.Sprintf("%+v", st.Peers)
	})
	if got, err := recoverGet(c, fresh, "key-07"); err != nil || got != acked["key-07"] {
		t.Fatalf("the joined master reads key-07 = %q (%v)", got, err)
	}
	if _, err := recoverPut(c, fresh, "through-the-new-master", "1"); err != nil {
		t.Fatalf("write through the joined master: %v", err)
	}
	c.Verify()
}

// recoverPut writes key through master i and returns the write's revision.
func recoverPut(c *cluster.Cluster, i int, key, val string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, i, http.MethodPut, "/skiff/v1/kv/"+key, "application/octet-stream", []byte(val))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("%s: %s", resp.Status, b)
	}
	return strconv.ParseUint(resp.Header.Get("X-Skiff-Mod-Revision"), 10, 64)
}

// recoverGet reads key from master i, linearizably.
func recoverGet(c *cluster.Cluster, i int, key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, i, http.MethodGet, "/skiff/v1/kv/"+key, "", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), nil
}

// recoverCLI runs the skiff binary and returns its combined output.
func recoverCLI(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// recoverWait polls cond until it holds or timeout passes; cond also says what it saw.
func recoverWait(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last saw: %s", timeout, what, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

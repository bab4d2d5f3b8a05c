package faults

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"skiff/test/cluster"
)

// waitFor polls cond until it holds, failing the test after timeout with what cond last
// said.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logHas reports whether master i's log contains s.
func logHas(c *cluster.Cluster, i int, s string) (bool, string) {
	b, err := os.ReadFile(c.LogPath(i))
	if err != nil {
		return false, err.Error()
	}
	return strings.Contains(string(b), s), "log has no " + s
}

// request sends one request to master i and returns its status and body.
func request(c *cluster.Cluster, i int, method, path, body string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, i, method, path, "", []byte(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// Fill the leader's data dir (a 64 MiB tmpfs) under writes until ENOSPC, then free it.
// skiff's behaviour, which this pins down: the full master stays up. Its next log write
// fails, so it steps down (the writes of that failed log write are refused with a 503 that
// names the full disk; nothing was replicated) and the others elect a leader and carry on.
// It says so on its own log, its linearizable reads fail at once with the same clear error
// (it cannot follow the leader), and writes sent to it still reach the leader. Once space
// is freed it catches up by itself, without a restart, and nothing acknowledged is lost.
func TestLeaderDiskFull(t *testing.T) {
	c := start(t, 3)
	w := c.StartWorkload(cluster.WorkloadOptions{Clients: 6})
	progress(t, w, 20, 30*time.Second, "before the disk filled")
	full := waitLeader(t, c, -1)
	pid := c.PID(full)
	filled := time.Now()
	c.FillDisk(full)

	waitFor(t, "another master to lead", 30*time.Second, func() (bool, string) {
		l := c.Leader(full)
		return l >= 0, "no other leader"
	})
	progress(t, w, 20, 30*time.Second, "through the others while the old leader's data dir is full")
	waitFor(t, "the full master to say so on its log", 30*time.Second, func() (bool, string) {
		return logHas(c, full, "data dir full")
	})
	var readErr string
	waitFor(t, "a read through the full master to fail with a clear error", 30*time.Second, func() (bool, string) {
		code, body, err := request(c, full, http.MethodGet, "/skiff/v1/kv/probe", "")
		if err != nil {
			return false, err.Error()
		}
		readErr = body
		return code == http.StatusServiceUnavailable && strings.Contains(body, "data dir is full") &&
			strings.Contains(body, "no space left on device"), body
	})
	code, body, err := request(c, full, http.MethodPut, "/skiff/v1/kv/through-full", "x")
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("a write sent to the full master should reach the leader: %d %s %v", code, body, err)
	}
	reads, writes := 0, 0
	for _, o := range w.Ops() {
		if o.Call.After(filled) && strings.Contains(o.Err, "no space left on device") {
			if o.Status != http.StatusServiceUnavailable || !strings.Contains(o.Err, "data dir is full on master "+c.Names[full]) {
				t.Errorf("a request failed with status %d and an unclear error: %s", o.Status, o.Err)
			}
			if o.Write() {
				writes++
			} else {
				reads++
			}
		}
	}
	t.Logf("%d writes and %d reads failed saying the data dir is full, e.g. a read: %s", writes, reads, readErr)

	c.FreeDisk(full)
	waitFor(t, "the full master to say it writes again", 30*time.Second, func() (bool, string) {
		return logHas(c, full, "data dir writable again")
	})
	c.WaitReady(full) // its linearizable reads work again: it caught up
	if c.PID(full) != pid || syscall.Kill(pid, 0) != nil {
		t.Fatalf("the full master's process (pid %d) did not stay up", pid)
	}
	progress(t, w, 20, 30*time.Second, "after space was freed")
	finish(t, c, w)
}

package faults

import (
	"testing"
	"time"

	"skiff/test/cluster"
)

// electionTimeout is the masters' Raft election timeout (raft.Config's default).
const electionTimeout = 500 * time.Millisecond

// diskSize is the size of every master's tmpfs data dir: enough for the scenarios' logs
// and snapshots, small enough to fill in a moment.
const diskSize = "64m"

// start runs an isolated cluster of n masters with tmpfs data dirs.
func start(t *testing.T, n int, args ...string) *cluster.Cluster {
	t.Helper()
	return cluster.StartWith(t, cluster.Options{Masters: n, Args: args, Isolate: true, DataDirSize: diskSize})
}

// waitLeader waits for a leader other than skip and fails the test without one.
func waitLeader(t *testing.T, c *cluster.Cluster, skip int) int {
	t.Helper()
	l := c.WaitLeader(skip)
	if l < 0 {
		t.Fatal("no leader elected within 30s")
	}
	return l
}

// progress fails the test unless the workload gets n more writes acknowledged within
// timeout; what says when.
func progress(t *testing.T, w *cluster.KVWorkload, n int, timeout time.Duration, what string) {
	t.Helper()
	if !w.WaitAcked(n, timeout) {
		t.Fatalf("fewer than %d writes acknowledged within %s %s", n, timeout, what)
	}
}

// finish runs the shared verifiers: the workload's history (linearizable, every
// acknowledged write present), then the masters' state hashes and leadership histories.
func finish(t *testing.T, c *cluster.Cluster, w *cluster.KVWorkload) {
	t.Helper()
	w.Check()
	c.Verify()
}

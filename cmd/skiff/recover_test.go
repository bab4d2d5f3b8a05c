package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"skiff/raft"
	"skiff/raft/rafttest"
)

func TestRecoverCommand(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		if _, err := rafttest.Put(ctx, c.Node(c.WaitLeader()), "k"+string(rune('a'+i)), "v"); err != nil {
			t.Fatal(err)
		}
	}
	c.Converge()
	dir := c.DataDir(2)

	// While the master runs, recover refuses to touch its data dir.
	if _, err := captureOutput(t, func() error { return runRecover([]string{"--data-dir", dir, "--name", "n3", "--yes"}) }); err == nil || !strings.Contains(err.Error(), "stop the master") {
		t.Fatalf("recover of a running master: %v", err)
	}

	// n3 stops first and misses a write the other two commit, so it is behind them.
	c.Kill(2)
	if _, err := rafttest.Put(ctx, c.Node(c.WaitLeader()), "while-n3-down", "v"); err != nil {
		t.Fatal(err)
	}
	// One other master still runs: with this one it has a quorum, so recovery refuses.
	c.Kill(1)
	out, err := captureOutput(t, func() error { return runRecover([]string{"--data-dir", dir, "--name", "n3", "--yes"}) })
	if err == nil || !strings.Contains(out, "REFUSED") || !strings.Contains(out, "ANSWERS") {
		t.Fatalf("recover with a quorum still possible: %v\n%s", err, out)
	}
	c.Kill(0)

	if _, err := captureOutput(t, func() error { return runRecover([]string{"--data-dir", dir, "--name", "nobody"}) }); err == nil || !strings.Contains(err.Error(), "--name") {
		t.Fatalf("recover under a wrong name: %v", err)
	}
	// A survivor that lacks entries another one has is refused.
	ahead, err := raft.ReadDataDir(c.DataDir(0))
	if err != nil {
		t.Fatal(err)
	}
	self, err := raft.ReadDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ahead.NewerThan(self) {
		t.Fatalf("n1 (last index %d) should be ahead of n3 (last index %d)", ahead.LastIndex, self.LastIndex)
	}
	out, err = captureOutput(t, func() error {
		return runRecover([]string{"--data-dir", dir, "--name", "n3", "--peers-from", c.DataDir(0), "--yes"})
	})
	if err == nil || !strings.Contains(out, "HOLDS ENTRIES THIS ONE LACKS") {
		t.Fatalf("recover from a survivor behind another: %v\n%s", err, out)
	}
	out, err = captureOutput(t, func() error { return runRecover([]string{"--data-dir", dir, "--name", "n3", "--dry-run"}) })
	if err != nil || !strings.Contains(out, "Dry run: nothing changed") || !strings.Contains(out, "What may be lost") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if info, _ := raft.ReadDataDir(dir); len(info.Peers) != 3 {
		t.Fatal("the dry run changed the configuration")
	}
	out, err = captureOutput(t, func() error { return runRecover([]string{"--data-dir", dir, "--name", "n3"}) })
	if err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("recover without --yes: %v\n%s", err, out)
	}
	out, err = captureOutput(t, func() error {
		return runRecover([]string{"--data-dir", dir, "--name", "n3", "--peers-from", c.DataDir(1), "--yes", "--force"})
	})
	if err != nil || !strings.Contains(out, "Recovered: n3 is the only voter") {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	info, err := raft.ReadDataDir(dir)
	if err != nil || len(info.Peers) != 1 || info.Peers[0].ID != "n3" {
		t.Fatalf("after recovery: %+v %v", info, err)
	}
	c.Restart(2)
	n := c.Node(2)
	deadline := time.Now().Add(30 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the recovered master did not lead")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := rafttest.Put(ctx, n, "after", "1"); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	// What n3 held survives; what only the others held is what --force gave up.
	st := n.FSM().State()
	for i := 0; i < 20; i++ {
		if _, ok := rafttest.Get(st, "k"+string(rune('a'+i))); !ok {
			t.Fatalf("key k%c lost in the recovery", 'a'+i)
		}
	}
	if _, ok := rafttest.Get(st, "while-n3-down"); ok {
		t.Fatal("the recovered n3 holds a write it never received")
	}
}

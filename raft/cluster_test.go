package raft_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"skiff/fsm"
	"skiff/raft"
	"skiff/raft/rafttest"
	"skiff/test/verify"
)

// writeLoad keeps writing unique values to a set of keys through random running nodes and
// records what was acknowledged, so the test can prove nothing acknowledged was lost.
type writeLoad struct {
	c       *rafttest.Cluster
	mu      sync.Mutex
	acked   map[string]string
	maybe   map[string][]string
	ackN    atomic.Int64
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
	lastErr atomic.Value
	// avoid holds node slots the writers must not use (a partitioned node would only
	// time them out).
	avoid sync.Map
}

func startWrites(t *testing.T, c *rafttest.Cluster, clients int) *writeLoad {
	w := &writeLoad{c: c, acked: map[string]string{}, maybe: map[string][]string{}, stop: make(chan struct{})}
	t.Cleanup(w.halt)
	for cl := 0; cl < clients; cl++ {
		w.wg.Add(1)
		go func(cl int) {
			defer w.wg.Done()
			rng := rand.New(rand.NewSource(int64(cl)))
			for seq := 0; ; seq++ {
				select {
				case <-w.stop:
					return
				default:
				}
				var up []int
				for _, i := range c.Up() {
					if _, skip := w.avoid.Load(i); !skip {
						up = append(up, i)
					}
				}
				if len(up) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				n := c.Node(up[rng.Intn(len(up))])
				if n == nil {
					continue
				}
				// Each client owns its keys, so acknowledgements per key are ordered.
				key := fmt.Sprintf("c%d-k%d", cl, seq%8)
				val := fmt.Sprintf("c%d-v%d", cl, seq)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := rafttest.Put(ctx, n, key, val)
				cancel()
				w.mu.Lock()
				switch {
				case err == nil:
					w.acked[key] = val
					w.maybe[key] = nil
					w.ackN.Add(1)
				case errors.Is(err, raft.ErrNoLeader) || errors.Is(err, raft.ErrShutdown):
					// Known not applied... unless it was forwarded; treat conservatively.
					w.maybe[key] = append(w.maybe[key], val)
				default:
					w.maybe[key] = append(w.maybe[key], val)
					w.lastErr.Store(err)
				}
				w.mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}(cl)
	}
	return w
}

// waitAcks blocks until n more writes were acknowledged.
func (w *writeLoad) waitAcks(t *testing.T, n int64) {
	t.Helper()
	target := w.ackN.Load() + n
	deadline := time.Now().Add(60 * time.Second)
	for w.ackN.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d acknowledged writes within 60s (last error: %v)", w.ackN.Load(), target, w.lastErr.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *writeLoad) halt() {
	w.stopped.Do(func() { close(w.stop) })
	w.wg.Wait()
}

func (w *writeLoad) finish(t *testing.T) {
	w.halt()
	if w.ackN.Load() == 0 {
		t.Fatal("no write was acknowledged")
	}
}

// verifyAcked checks every acknowledged write on every running node.
func (w *writeLoad) verifyAcked(t *testing.T) {
	t.Helper()
	for _, i := range w.c.Up() {
		st := w.c.Node(i).FSM().State()
		verify.AckedWritesPresent(t, w.acked, w.maybe, func(k string) (string, bool) { return rafttest.Get(st, k) })
	}
}

func TestProposeAndReadFromEveryNode(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < c.Size(); i++ {
		n := c.Node(i)
		key := fmt.Sprintf("from-%s", n.ID())
		rev, err := rafttest.Put(ctx, n, key, "v")
		if err != nil {
			t.Fatalf("put through %s (leader=%v): %v", n.ID(), n.IsLeader(), err)
		}
		// Linearizable read on every node right after the write sees it.
		for j := 0; j < c.Size(); j++ {
			st, err := c.Node(j).LinearizableRead(ctx)
			if err != nil {
				t.Fatalf("read on %s: %v", c.Node(j).ID(), err)
			}
			if st.Revision() < rev {
				t.Fatalf("read on %s at revision %d misses write at %d", c.Node(j).ID(), st.Revision(), rev)
			}
			if v, ok := rafttest.Get(st, key); !ok || v != "v" {
				t.Fatalf("read on %s: %s=%q,%v", c.Node(j).ID(), key, v, ok)
			}
		}
	}
	// Business failures come back as results, with the current revision.
	k := fsm.Key{Resource: "kv", Name: "from-n1"}
	res, err := c.Node(1).Propose(ctx, &fsm.Txn{Ops: []fsm.Op{fsm.Create(k, []byte("x"), fsm.Meta{})}})
	if err != nil || res.Err != fsm.ErrAlreadyExists || res.Current == 0 {
		t.Fatalf("duplicate create: res=%+v err=%v", res, err)
	}
	res, err = c.Node(2).Propose(ctx, &fsm.Txn{Ops: []fsm.Op{fsm.Update(k, 1, []byte("x"), fsm.Meta{})}})
	if err != nil || res.Err != fsm.ErrConflict {
		t.Fatalf("stale update: res=%+v err=%v", res, err)
	}
	if _, err := c.Node(0).Propose(ctx, &fsm.Txn{}); err == nil {
		t.Fatal("empty transaction accepted")
	}
	c.Verify()
}

func TestKillLeaderUnderWrites(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	w := startWrites(t, c, 4)
	w.waitAcks(t, 100)
	for round := 0; round < 2; round++ {
		leader := c.WaitLeader()
		c.Kill(leader)
		w.waitAcks(t, 100) // the survivors elect a leader and take writes again
		c.Restart(leader)
		w.waitAcks(t, 50)
	}
	w.finish(t)
	c.Verify()
	w.verifyAcked(t)
}

func TestPartitionLeaderAndHeal(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	w := startWrites(t, c, 4)
	w.waitAcks(t, 50)
	old := c.WaitLeader()
	w.avoid.Store(old, true)
	c.Partition(old)
	// The majority side elects someone else and keeps acknowledging writes.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if i := c.WaitLeader(); i != old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("majority did not elect a new leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.waitAcks(t, 100)
	if c.Node(old).IsLeader() {
		// Give the lease a moment; a partitioned leader must step down.
		waitFor(t, "old leader steps down", func() bool { return !c.Node(old).IsLeader() })
	}
	c.Heal()
	w.avoid.Delete(old)
	w.waitAcks(t, 50)
	w.finish(t)
	c.Verify()
	w.verifyAcked(t)
}

func TestFollowerCatchesUpFromSnapshot(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{Config: func(cfg *raft.Config) {
		cfg.SnapshotThreshold = 64
		cfg.TrailingLogs = 16
		cfg.SnapshotInterval = 50 * time.Millisecond
	}})
	leader := c.WaitLeader()
	lagger := (leader + 1) % c.Size()
	c.Partition(lagger)
	w := startWrites(t, c, 2)
	w.avoid.Store(lagger, true)
	w.waitAcks(t, 600)
	w.finish(t)
	// The leader must have compacted past what the lagger has.
	waitFor(t, "leader snapshot", func() bool { return hasSnapshot(t, c, leader) })
	c.Heal()
	c.Verify()
	w.verifyAcked(t)
	if !hasSnapshot(t, c, lagger) {
		t.Fatalf("follower %d converged without installing a snapshot", lagger)
	}
}

func hasSnapshot(t *testing.T, c *rafttest.Cluster, i int) bool {
	dir := filepath.Join(c.DataDir(i), "snapshots")
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}

func TestRestartFromDisk(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	w := startWrites(t, c, 2)
	w.waitAcks(t, 200)
	w.finish(t)
	before := c.Converge()
	c.ShutdownAll()
	for i := 0; i < c.Size(); i++ {
		c.Restart(i)
	}
	c.WaitLeader()
	after := c.Converge()
	verify.SameHash(t, after)
	for id, h := range after {
		if h != before[id] {
			t.Fatalf("%s state changed across restart: %s → %s", id, before[id], h)
		}
	}
	w.verifyAcked(t)
	c.Verify()
}

func TestLeaderRoutinesFollowLeadership(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	var mu sync.Mutex
	running := map[string]int{}
	starts := map[string]int{}
	for i := 0; i < c.Size(); i++ {
		n := c.Node(i)
		n.OnLeader("probe", func(ctx context.Context) {
			mu.Lock()
			running[n.ID()]++
			starts[n.ID()]++
			mu.Unlock()
			<-ctx.Done()
			mu.Lock()
			running[n.ID()]--
			mu.Unlock()
		})
	}
	onlyLeaderRuns := func() bool {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for id, r := range running {
			total += r
			if r > 0 && !c.Node(c.Index(id)).IsLeader() {
				return false
			}
		}
		return total == 1
	}
	waitFor(t, "routine on the leader only", onlyLeaderRuns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for round := 0; round < 3; round++ {
		old := c.Node(c.WaitLeader())
		if err := c.Any(true).TransferLeadership(ctx, ""); err != nil {
			t.Fatalf("transfer: %v", err)
		}
		waitFor(t, "a new leader", func() bool { i := c.WaitLeader(); return c.Node(i) != old })
		waitFor(t, "routine moved to the new leader", onlyLeaderRuns)
	}
	// Lose and regain quickly: partition the leader briefly and heal.
	i := c.WaitLeader()
	id := c.Node(i).ID()
	mu.Lock()
	before := starts[id]
	mu.Unlock()
	c.Partition(i)
	waitFor(t, "partitioned leader stops its routines", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return running[id] == 0
	})
	c.Heal()
	waitFor(t, "routine on the leader only after heal", onlyLeaderRuns)
	mu.Lock()
	if running[id] > 0 && starts[id] == before {
		t.Fatalf("%s kept running its routine across a lost leadership", id)
	}
	mu.Unlock()
	c.Verify()
}

func TestMembershipJoinRemoveLeave(t *testing.T) {
	dir := t.TempDir()
	c := rafttest.New(t, rafttest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rafttest.Put(ctx, c.Node(0), "before-join", "1"); err != nil {
		t.Fatal(err)
	}
	n4, err := raft.Open(raft.Config{ID: "n4", DataDir: filepath.Join(dir, "n4"), BindAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n4.Shutdown()
	// Join through a follower: it forwards to the leader.
	if err := n4.Join(ctx, c.Any(true).Addr()); err != nil {
		t.Fatalf("join: %v", err)
	}
	st, err := n4.LinearizableRead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := rafttest.Get(st, "before-join"); !ok || v != "1" {
		t.Fatalf("joined node misses existing state")
	}
	waitFor(t, "4 peers on every node after join", func() bool {
		for i := 0; i < c.Size(); i++ {
			if p, _ := c.Node(i).Peers(); len(p) != 4 {
				return false
			}
		}
		return true
	})
	if _, err := rafttest.Put(ctx, n4, "through-n4", "1"); err != nil {
		t.Fatalf("write through joined node: %v", err)
	}
	if err := n4.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	waitFor(t, "3 peers after leave", func() bool { p, _ := c.Node(0).Peers(); return len(p) == 3 })
	// Remove a follower by ID from another node.
	victim := c.Any(true)
	if err := c.Node(c.WaitLeader()).RemovePeer(ctx, victim.ID()); err != nil {
		t.Fatalf("remove: %v", err)
	}
	waitFor(t, "2 peers after remove", func() bool {
		p, _ := c.Node(c.WaitLeader()).Peers()
		return len(p) == 2
	})
	c.Kill(c.Index(victim.ID()))
	if _, err := rafttest.Put(ctx, c.Any(false), "after-remove", "1"); err != nil {
		t.Fatalf("write after remove: %v", err)
	}
	c.Verify()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

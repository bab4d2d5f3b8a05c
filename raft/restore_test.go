package raft_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"skiff/fsm"
	"skiff/raft"
	"skiff/raft/rafttest"
	"skiff/test/verify"
)

// fill writes n keys (with values of some size, each written twice so create and mod
// revisions differ) through the cluster's nodes in turn.
func fill(t *testing.T, c *rafttest.Cluster, prefix string, n int) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]string{}
	for round := 0; round < 2; round++ {
		for i := 0; i < n; i++ {
			k := fmt.Sprintf("%s-%03d", prefix, i)
			v := fmt.Sprintf("%s round %d %s", k, round, strings.Repeat("x", 200))
			if _, err := rafttest.Put(ctx, c.Node(c.Up()[i%len(c.Up())]), k, v); err != nil {
				t.Fatalf("put %s: %v", k, err)
			}
			want[k] = v
		}
	}
	return want
}

// saveBackup takes a backup from node n as the master's snapshot endpoint does (after a
// linearizable read) into a file, and returns the file's path.
func saveBackup(t *testing.T, n *raft.Node) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := n.LinearizableRead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stats := n.Stats()
	path := filepath.Join(t.TempDir(), "backup.snap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fsm.WriteBackup(f, st, fsm.BackupInfo{Term: stats.Term, Index: stats.AppliedIndex, Node: n.ID(), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return path
}

func inspectBackup(t *testing.T, path string) *fsm.Backup {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := fsm.ReadBackup(f)
	if err != nil {
		t.Fatalf("inspect %s: %v", path, err)
	}
	return b
}

func TestSnapshotSaveInspectRestoreIntoAnotherCluster(t *testing.T) {
	src := rafttest.New(t, rafttest.Options{})
	want := fill(t, src, "k", 150)
	// Any master takes the backup: here a follower.
	path := saveBackup(t, src.Any(true))
	b := inspectBackup(t, path)
	srcHashes := src.Converge()
	if b.Info.Hash != srcHashes[src.Node(0).ID()] || b.State.Len() != len(want) || b.Info.Objects != len(want) {
		t.Fatalf("backup of %d objects hashing %s; cluster has %d hashing %s", b.State.Len(), b.Info.Hash, len(want), srcHashes[src.Node(0).ID()])
	}

	dst := rafttest.New(t, rafttest.Options{})
	fill(t, dst, "mine", 3)
	var watches []*fsm.Watch
	for _, i := range dst.Up() {
		w, err := dst.Node(i).FSM().Watch(fsm.WatchOptions{Resource: "kv", From: dst.Node(i).FSM().Revision()})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		watches = append(watches, w)
	}
	leader := dst.Node(dst.WaitLeader())
	before := leader.FSM().Revision()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := dst.Any(true).Restore(ctx, b.State, raft.RestoreOptions{}); !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("restore on a follower: err = %v, want ErrNotLeader", err)
	}
	var phases []string
	res, err := leader.Restore(ctx, b.State, raft.RestoreOptions{ChunkSize: 2 << 10, Progress: func(p raft.RestoreProgress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	// The young cluster's log was far behind the snapshot's revisions: the index moved.
	if strings.Join(phases, ",") != "advance,replicate" {
		t.Fatalf("phases %v, want advance then replicate", phases)
	}
	if !res.Done || res.Objects != len(want) || res.Revision <= fsm.MaxRevision(b.State) || res.Revision <= before || res.Total < 10 {
		t.Fatalf("result %+v (snapshot revisions up to %d, cluster was at %d)", res, fsm.MaxRevision(b.State), before)
	}
	hashes := dst.Converge()
	for id, h := range hashes {
		if h != b.Info.Hash {
			t.Fatalf("%s restored to %s, want the backup's %s", id, h, b.Info.Hash)
		}
	}
	for i, w := range watches {
		for range w.Events() {
		}
		if !errors.Is(w.Err(), fsm.ErrTooOld) {
			t.Fatalf("watch on node %d ended with %v, want ErrTooOld", i, w.Err())
		}
	}
	// The restored cluster takes writes at revisions above everything restored, and every
	// node reads what the backup held.
	rev, err := rafttest.Put(ctx, dst.Any(true), "after", "1")
	if err != nil || rev <= res.Revision {
		t.Fatalf("write after restore at %d (restore at %d): %v", rev, res.Revision, err)
	}
	for _, i := range dst.Up() {
		st, err := dst.Node(i).LinearizableRead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			if got, ok := rafttest.Get(st, k); !ok || got != v {
				t.Fatalf("node %d: %s = %q, want %q", i, k, got, v)
			}
		}
		if _, ok := rafttest.Get(st, "mine-000"); ok {
			t.Fatalf("node %d kept an object the restore replaced", i)
		}
	}
	// It all survives a restart from disk.
	after := dst.Converge()
	dst.ShutdownAll()
	for i := 0; i < dst.Size(); i++ {
		dst.Restart(i)
	}
	dst.WaitLeader()
	again := dst.Converge()
	for id, h := range again {
		if h != after[id] {
			t.Fatalf("%s changed across a restart: %s → %s", id, after[id], h)
		}
	}
	dst.Verify()
}

func TestRestoreRollsBackTheSameClusterUnderWrites(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	old := fill(t, c, "k", 40)
	path := saveBackup(t, c.Node(c.WaitLeader()))
	b := inspectBackup(t, path)
	fill(t, c, "k", 60) // changes every old key, adds more

	// Writers keep going during the restore; they must neither fail for good nor survive
	// in a way that breaks convergence.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
				_, _ = rafttest.Put(wctx, c.Any(i%2 == 0), fmt.Sprintf("during-%d-%d", w, i), "x")
				wcancel()
			}
		}()
	}
	leader := c.Node(c.WaitLeader())
	before := leader.FSM().Revision()
	var phases []string
	res, err := leader.Restore(ctx, b.State, raft.RestoreOptions{ChunkSize: 1 << 10, Progress: func(p raft.RestoreProgress) { phases = append(phases, p.Phase) }})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	for _, p := range phases {
		if p == "advance" {
			t.Fatal("restoring an older snapshot of the same cluster moved the log index")
		}
	}
	if res.Revision <= before {
		t.Fatalf("restore at revision %d, cluster was at %d", res.Revision, before)
	}
	c.Converge()
	st, err := c.Any(true).LinearizableRead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range old {
		if got, _ := rafttest.Get(st, k); got != v {
			t.Fatalf("%s = %q after rolling back, want %q", k, got, v)
		}
	}
	if _, ok := rafttest.Get(st, "k-059"); ok {
		t.Fatal("a key written after the backup survived the rollback")
	}
	// Writes that landed after the restore are there; the restore's own objects all are.
	st.Walk(func(r *fsm.Record) bool {
		if !strings.HasPrefix(r.Key.Name, "during-") && b.State.Get(r.Key) == nil {
			t.Fatalf("unexpected object %s after the rollback", r.Key)
		}
		if strings.HasPrefix(r.Key.Name, "during-") && r.ModRevision <= res.Revision {
			t.Fatalf("%s at revision %d survived the restore at %d", r.Key, r.ModRevision, res.Revision)
		}
		return true
	})
	c.Verify()
}

func TestAbandonedRestoreIsDroppedByTheNextLeader(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	fill(t, c, "k", 30)
	b := inspectBackup(t, saveBackup(t, c.Node(0)))
	fill(t, c, "k", 30)
	before := c.Converge()
	li := c.WaitLeader()
	leader := c.Node(li)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var once sync.Once
	_, err := leader.Restore(ctx, b.State, raft.RestoreOptions{ChunkSize: 1 << 10, Progress: func(p raft.RestoreProgress) {
		if p.Done == 2 {
			// The leader dies with two chunks committed and the rest never sent.
			once.Do(func() { c.Kill(li) })
		}
	}})
	if err == nil {
		t.Fatal("a restore whose leader died half way reported success")
	}
	waitFor(t, "the new leader to drop the abandoned restore", func() bool {
		for _, i := range c.Up() {
			if id, _, _ := c.Node(i).FSM().State().PendingRestore(); id != 0 {
				return false
			}
		}
		return true
	})
	c.Restart(li)
	c.WaitLeader()
	after := c.Converge()
	for id, h := range after {
		if h != before[id] {
			t.Fatalf("%s: an abandoned restore changed the state (%s → %s)", id, before[id], h)
		}
	}
	c.Verify()
}

func TestRecoverDataDirAfterLosingQuorum(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	want := fill(t, c, "k", 50)
	hashes := c.Converge()
	if _, err := raft.ReadDataDir(c.DataDir(0)); !errors.Is(err, raft.ErrDataDirInUse) {
		t.Fatalf("reading a running node's data dir: err = %v, want ErrDataDirInUse", err)
	}
	if _, err := raft.RecoverDataDir(c.DataDir(0), "n1", "", nil, nil); !errors.Is(err, raft.ErrDataDirInUse) {
		t.Fatalf("recovering a running node's data dir: err = %v, want ErrDataDirInUse", err)
	}
	c.ShutdownAll()

	var infos []*raft.DataDirInfo
	for i := 0; i < c.Size(); i++ {
		info, err := raft.ReadDataDir(c.DataDir(i))
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Peers) != 3 || info.LastIndex == 0 || info.LastTerm == 0 || info.CurrentTerm < info.LastTerm {
			t.Fatalf("node %d: %+v", i, info)
		}
		infos = append(infos, info)
	}
	if _, err := raft.ReadDataDir(t.TempDir()); err == nil {
		t.Fatal("ReadDataDir of an empty dir succeeded")
	}
	const survivor = 2
	if _, err := raft.RecoverDataDir(c.DataDir(survivor), "n9", "", nil, nil); !errors.Is(err, raft.ErrNotInConfiguration) {
		t.Fatalf("recovering as a stranger: err = %v", err)
	}
	stale := *infos[survivor]
	stale.LastIndex--
	if _, err := raft.RecoverDataDir(c.DataDir(survivor), "n3", "", &stale, nil); !errors.Is(err, raft.ErrDataDirChanged) {
		t.Fatalf("recovering a data dir that moved since it was inspected: err = %v", err)
	}
	if after, err := raft.ReadDataDir(c.DataDir(survivor)); err != nil || len(after.Peers) != 3 {
		t.Fatalf("the refused recovery changed the data dir: %+v %v", after, err)
	}
	var logBuf bytes.Buffer
	res, err := raft.RecoverDataDir(c.DataDir(survivor), "n3", "", infos[survivor], &logBuf)
	if err != nil {
		t.Fatalf("recover: %v\n%s", err, logBuf.String())
	}
	if res.Hash != hashes["n3"] || res.Objects != len(want) || len(res.Peers) != 1 || res.Peers[0].ID != "n3" {
		t.Fatalf("recovered %+v, want hash %s", res, hashes["n3"])
	}
	info, err := raft.ReadDataDir(c.DataDir(survivor))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Peers) != 1 || info.Peers[0].ID != "n3" || info.LastIndex != infos[survivor].LastIndex {
		t.Fatalf("after recovery: %+v", info)
	}

	// The survivor alone leads a one-node cluster with everything it had.
	c.Restart(survivor)
	n := c.Node(survivor)
	waitFor(t, "the survivor to lead", func() bool { return n.IsLeader() && n.LeaderRoutinesRunning() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := n.LinearizableRead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got, ok := rafttest.Get(st, k); !ok || got != v {
			t.Fatalf("%s = %q after recovery, want %q", k, got, v)
		}
	}
	if _, err := rafttest.Put(ctx, n, "after-recovery", "1"); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	// A wiped master joins it again.
	n4, err := raft.Open(raft.Config{ID: "n4", DataDir: filepath.Join(t.TempDir(), "n4"), BindAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n4.Shutdown()
	if err := n4.Join(ctx, n.Addr()); err != nil {
		t.Fatalf("join: %v", err)
	}
	waitFor(t, "n4 to catch up", func() bool { return n4.FSM().State().Hash() == n.FSM().State().Hash() })
	peers, _ := n.Peers()
	if len(peers) != 2 {
		t.Fatalf("peers after join: %+v", peers)
	}
	verify.SameHash(t, map[string]string{"n3": n.FSM().State().Hash(), "n4": n4.FSM().State().Hash()})
}

// While a restore replaces the state, ordinary writes are refused (not acknowledged and
// then replaced), through the leader and through a follower alike; afterwards they work.
func TestWritesArePausedDuringARestore(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	fill(t, c, "k", 10)
	leader := c.Node(c.WaitLeader())
	b := inspectBackup(t, saveBackup(t, leader))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var during []error
	progress := func(p raft.RestoreProgress) {
		if p.Phase != "replicate" || p.Done != 1 {
			return
		}
		for _, n := range []*raft.Node{leader, c.Any(true)} {
			_, err := rafttest.Put(ctx, n, "during", "x")
			during = append(during, err)
		}
	}
	if _, err := leader.Restore(ctx, b.State, raft.RestoreOptions{ChunkSize: 1 << 8, Progress: progress}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if len(during) != 2 {
		t.Fatalf("the restore had no second chunk to write between (%d writes tried)", len(during))
	}
	for i, err := range during {
		if !errors.Is(err, raft.ErrWritesPaused) {
			t.Fatalf("write %d during the restore: err %v, want ErrWritesPaused", i, err)
		}
	}
	if _, err := rafttest.Put(ctx, c.Any(true), "after", "x"); err != nil {
		t.Fatalf("write after the restore: %v", err)
	}
	c.Verify()
}

// Package rafttest runs in-process clusters of real raft.Nodes — real bbolt logs in temp
// dirs, real TCP on 127.0.0.1 — with fault hooks on every link. Tests and benchmarks use it.
package rafttest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"skiff/fsm"
	"skiff/raft"
	"skiff/test/verify"
)

// Cluster is a set of nodes that were bootstrapped together. Methods are safe for
// concurrent use, except that a node's slot changes while Kill or Restart runs.
type Cluster struct {
	t    testing.TB
	mu   sync.Mutex
	cfgs []raft.Config
	// nodes[i] is nil while node i is down.
	nodes  []*raft.Node
	claims []verify.TermLeader
	logs   []string
}

// Options tune a test cluster.
type Options struct {
	Size int
	// Config, when set, adjusts each node's configuration before it starts.
	Config func(*raft.Config)
	// Dir holds the nodes' data dirs; defaults to t.TempDir().
	Dir string
}

// New starts and bootstraps a cluster and waits for a ready leader.
func New(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Size == 0 {
		o.Size = 3
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t}
	// Hold every chosen port until all are chosen: a port released and asked for again can
	// come back twice.
	var held []net.Listener
	var addrs []string
	for i := 0; i < o.Size; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range held {
		ln.Close()
	}
	var peers []raft.Peer
	for i := 0; i < o.Size; i++ {
		id := fmt.Sprintf("n%d", i+1)
		logPath := filepath.Join(o.Dir, id+".log")
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logf.Close() })
		cfg := raft.Config{
			ID:        id,
			DataDir:   filepath.Join(o.Dir, id),
			BindAddr:  addrs[i],
			Faults:    raft.NewFaults(),
			LogOutput: logf,
		}
		if o.Config != nil {
			o.Config(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.logs = append(c.logs, logPath)
		peers = append(peers, raft.Peer{ID: id, Address: cfg.BindAddr, Voter: true})
	}
	c.nodes = make([]*raft.Node, o.Size)
	for i := range c.cfgs {
		c.Restart(i)
		if err := c.nodes[i].Bootstrap(peers); err != nil {
			t.Fatalf("bootstrap %s: %v", c.cfgs[i].ID, err)
		}
	}
	t.Cleanup(func() {
		verify.KeepOnFailure(t, c.logs...)
		c.ShutdownAll()
	})
	c.WaitLeader()
	return c
}

// Size is the number of node slots.
func (c *Cluster) Size() int { return len(c.cfgs) }

// Node returns node i, or nil while it is down.
func (c *Cluster) Node(i int) *raft.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Up returns the indexes of the running nodes.
func (c *Cluster) Up() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var up []int
	for i, n := range c.nodes {
		if n != nil {
			up = append(up, i)
		}
	}
	return up
}

// Index returns the slot of the node with id, or -1.
func (c *Cluster) Index(id string) int {
	for i, cfg := range c.cfgs {
		if cfg.ID == id {
			return i
		}
	}
	return -1
}

// Kill stops node i abruptly (its disk state stays).
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n == nil {
		return
	}
	c.collectClaims(n)
	_ = n.Shutdown()
}

// Restart starts node i again from its data dir on the same address.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	var n *raft.Node
	var err error
	// The old listener may linger for a moment after shutdown.
	for try := 0; try < 100; try++ {
		if n, err = raft.Open(c.cfgs[i]); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("starting %s: %v", c.cfgs[i].ID, err)
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
}

// ShutdownAll stops every node.
func (c *Cluster) ShutdownAll() {
	for i := range c.cfgs {
		c.Kill(i)
	}
}

func (c *Cluster) collectClaims(n *raft.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range n.LeadershipHistory() {
		c.claims = append(c.claims, verify.TermLeader{Term: h.Term, ID: h.ID})
	}
}

// WaitLeader waits (up to 30 s) until one running node leads with its routines started
// and returns its index.
func (c *Cluster) WaitLeader() int {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, i := range c.Up() {
			if n := c.Node(i); n != nil && n.IsLeader() && n.LeaderRoutinesRunning() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no ready leader within 30s: %s", c.describe())
	return -1
}

func (c *Cluster) describe() string {
	s := ""
	for _, i := range c.Up() {
		if n := c.Node(i); n != nil {
			st := n.Stats()
			s += fmt.Sprintf("[%s %s term=%d leader=%s commit=%d applied=%d] ", st.ID, st.State, st.Term, st.LeaderID, st.CommitIndex, st.FSMRevision)
		}
	}
	return s
}

// Partition cuts node i off from every other node.
func (c *Cluster) Partition(i int) {
	for j, cfg := range c.cfgs {
		if j != i {
			c.cfgs[i].Faults.Block(cfg.BindAddr)
			cfg.Faults.Block(c.cfgs[i].BindAddr)
		}
	}
}

// Cut severs the single link between nodes i and j.
func (c *Cluster) Cut(i, j int) {
	c.cfgs[i].Faults.Block(c.cfgs[j].BindAddr)
	c.cfgs[j].Faults.Block(c.cfgs[i].BindAddr)
}

// Delay slows every message node i sends by d.
func (c *Cluster) Delay(i int, d time.Duration) {
	for j, cfg := range c.cfgs {
		if j != i {
			c.cfgs[i].Faults.Delay(cfg.BindAddr, d)
		}
	}
}

// Heal removes every network fault.
func (c *Cluster) Heal() {
	for _, cfg := range c.cfgs {
		cfg.Faults.Heal()
	}
}

// Converge waits (up to 60 s) until every running node has applied the same revision and
// returns each node's state hash at that revision.
func (c *Cluster) Converge() map[string]string {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		hashes := map[string]string{}
		var rev uint64
		same := true
		for k, i := range c.Up() {
			n := c.Node(i)
			if n == nil {
				continue
			}
			st := n.FSM().State()
			if k == 0 {
				rev = st.Revision()
			} else if st.Revision() != rev {
				same = false
			}
			hashes[n.ID()] = st.Hash()
		}
		if same && c.settled(rev) {
			return hashes
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("replicas did not converge within 60s: %s", c.describe())
	return nil
}

// settled reports whether the leader has nothing newer than rev to hand out.
func (c *Cluster) settled(rev uint64) bool {
	for _, i := range c.Up() {
		if n := c.Node(i); n != nil && n.IsLeader() {
			return n.FSM().Revision() == rev && n.Stats().CommitIndex <= n.Stats().LastIndex
		}
	}
	return false
}

// Verify runs the shared verifiers: at most one leader per term and the same state hash
// on every running node. Acknowledged writes are checked by the caller, who knows them.
func (c *Cluster) Verify() {
	c.t.Helper()
	hashes := c.Converge()
	verify.SameHash(c.t, hashes)
	for _, i := range c.Up() {
		if n := c.Node(i); n != nil {
			c.collectClaims(n)
		}
	}
	c.mu.Lock()
	claims := append([]verify.TermLeader(nil), c.claims...)
	c.mu.Unlock()
	verify.OneLeaderPerTerm(c.t, claims)
}

// Any returns some running node, preferring followers when follower is true.
func (c *Cluster) Any(follower bool) *raft.Node {
	var fallback *raft.Node
	for _, i := range c.Up() {
		n := c.Node(i)
		if n == nil {
			continue
		}
		if n.IsLeader() != follower {
			return n
		}
		fallback = n
	}
	return fallback
}

// Put writes key=value (resource "kv", no namespace) unconditionally through node n,
// creating the key if needed, and returns the revision.
func Put(ctx context.Context, n *raft.Node, key, value string) (uint64, error) {
	k := fsm.Key{Resource: "kv", Name: key}
	res, err := n.Propose(ctx, &fsm.Txn{Ops: []fsm.Op{fsm.DeleteIfExists(k), fsm.Create(k, []byte(value), fsm.Meta{})}})
	if err != nil {
		return 0, err
	}
	if res.Err != nil {
		return 0, res.Err
	}
	return res.Revision, nil
}

// Get reads key from a state.
func Get(st *fsm.State, key string) (string, bool) {
	r := st.Get(fsm.Key{Resource: "kv", Name: key})
	if r == nil {
		return "", false
	}
	return string(r.Value), true
}

// DataDir is node i's data directory.
func (c *Cluster) DataDir(i int) string { return c.cfgs[i].DataDir }

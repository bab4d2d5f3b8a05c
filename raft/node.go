package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"skiff/fsm"
)

// Node is one member of the replicated store: a hashicorp/raft instance with its log on
// disk, the FSM it drives, the transport, and the leader-only routines it owns. All methods
// are safe for concurrent use.
type Node struct {
	cfg   Config
	raft  *hraft.Raft
	fsm   *fsm.FSM
	mux   *muxLayer
	trans *hraft.NetworkTransport
	rpc   *rpcClient
	logs  *countingLogStore
	bolt  *raftboltdb.BoltStore
	disk  *diskWatch
	snaps hraft.SnapshotStore

	leadership *leadership
	batcher    *batcher
	// restoreMu is held by the snapshot restore running on this node (restore.go).
	restoreMu sync.Mutex
	// writesPaused is set while a restore replaces the state: ordinary proposals are refused
	// (ErrWritesPaused) rather than acknowledged and then replaced.
	writesPaused atomic.Bool

	ctx      context.Context // ends at Shutdown
	cancel   context.CancelFunc
	shutOnce sync.Once
	shutErr  error
}

// Peer is one server of the Raft configuration.
type Peer struct {
	ID      string
	Address string
	Voter   bool
}

// Open starts a node from its data dir: an existing log and snapshots are replayed, a fresh
// dir starts empty and waits to be bootstrapped or joined. It does not block on elections.
func Open(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	n := &Node{cfg: cfg, fsm: fsm.New(cfg.FSM)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.open(); err != nil {
		n.closeResources()
		return nil, err
	}
	return n, nil
}

func (n *Node) open() error {
	cfg := &n.cfg
	var err error
	n.bolt, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return fmt.Errorf("opening raft log %s: %w", filepath.Join(cfg.DataDir, "raft.db"), err)
	}
	n.disk = &diskWatch{id: cfg.ID, notify: cfg.OnDiskFull}
	n.logs = &countingLogStore{LogStore: &watchedLogStore{LogStore: n.bolt, d: n.disk}}
	cached, err := hraft.NewLogCache(1024, n.logs)
	if err != nil {
		return err
	}
	n.snaps, err = hraft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.SnapshotRetain, cfg.Logger.Named("snapshot"))
	if err != nil {
		return fmt.Errorf("opening snapshot store: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return fmt.Errorf("listening for raft on %s: %w", cfg.BindAddr, err)
	}
	var adv net.Addr = ln.Addr()
	if cfg.AdvertiseAddr != "" {
		if adv, err = net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr); err != nil {
			ln.Close()
			return fmt.Errorf("resolving advertise address: %w", err)
		}
	} else if tcp := ln.Addr().(*net.TCPAddr); tcp.IP.IsUnspecified() {
		ln.Close()
		return fmt.Errorf("raft bind address %s is unspecified; set an advertise address", cfg.BindAddr)
	}
	n.mux = newMuxLayer(ln, adv, cfg.Faults, cfg.WrapConn)
	n.rpc = newRPCClient(func(addr string) (net.Conn, error) {
		return n.mux.dial(connRPC, addr, 5*time.Second)
	})
	n.trans = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream:  n.mux,
		MaxPool: 4,
		Timeout: 10 * time.Second,
		Logger:  cfg.Logger.Named("net"),
	})

	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.Logger = cfg.Logger
	notify := make(chan bool, 64)
	rc.NotifyCh = notify

	n.raft, err = hraft.NewRaft(rc, n.fsm, &diskFullLogStore{LogStore: cached, d: n.disk},
		&watchedStableStore{StableStore: n.bolt, d: n.disk}, n.snaps, n.trans)
	if err != nil {
		return fmt.Errorf("starting raft: %w", err)
	}
	n.leadership = newLeadership(n, notify)
	n.OnLeader("abandoned-restore", n.dropAbandonedRestore)
	n.batcher = newBatcher(n)
	// Only now can requests be answered: handlers need the Raft instance.
	n.mux.serve(func(c net.Conn) { serveRPC(n.ctx, c, n.handleRPC) })
	return nil
}

// closeResources releases what open acquired, for a failed Open.
func (n *Node) closeResources() {
	n.cancel()
	if n.trans != nil {
		n.trans.Close()
	} else if n.mux != nil {
		n.mux.Close()
	}
	if n.bolt != nil {
		n.bolt.Close()
	}
}

// ID is the node's server ID.
func (n *Node) ID() string { return n.cfg.ID }

// Addr is the address peers dial.
func (n *Node) Addr() string { return n.mux.Addr().String() }

// FSM is the node's state machine; read from it, never write.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// Faults is the fault injector the node was configured with, or nil.
func (n *Node) Faults() *Faults { return n.cfg.Faults }

// HasState reports whether the data dir holds an existing Raft state (log or snapshot).
func (n *Node) HasState() (bool, error) {
	return hraft.HasExistingState(n.logs, n.bolt, n.snaps)
}

// Bootstrap forms a new cluster of peers (which must include this node). Every founding
// member may call it with the same list; it is a no-op on a node that already has state.
func (n *Node) Bootstrap(peers []Peer) error {
	has, err := n.HasState()
	if err != nil {
		return fmt.Errorf("reading existing raft state: %w", err)
	}
	if has {
		return nil
	}
	conf := hraft.Configuration{}
	self := false
	for _, p := range peers {
		self = self || p.ID == n.cfg.ID
		conf.Servers = append(conf.Servers, hraft.Server{
			ID: hraft.ServerID(p.ID), Address: hraft.ServerAddress(p.Address), Suffrage: hraft.Voter,
		})
	}
	if !self {
		conf.Servers = append(conf.Servers, hraft.Server{
			ID: hraft.ServerID(n.cfg.ID), Address: hraft.ServerAddress(n.Addr()), Suffrage: hraft.Voter,
		})
	}
	err = n.raft.BootstrapCluster(conf).Error()
	if errors.Is(err, hraft.ErrCantBootstrap) {
		return nil
	}
	return err
}

// Shutdown stops the leader routines, Raft, the transport and the log store. It blocks
// until they have stopped and is safe to call more than once.
func (n *Node) Shutdown() error {
	n.shutOnce.Do(func() {
		n.leadership.stop()
		err := n.raft.Shutdown().Error()
		n.cancel()
		n.rpc.closeAll()
		n.trans.Close()
		n.mux.wg.Wait()
		if cerr := n.bolt.Close(); err == nil {
			err = cerr
		}
		n.shutErr = err
	})
	return n.shutErr
}

// IsLeader reports whether this node is the leader right now.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

// Leader returns the known leader's ID and address, empty when none is known.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// waitLeader returns the leader's address, waiting up to LeaderWait for one.
func (n *Node) waitLeader(ctx context.Context) (id, addr string, err error) {
	deadline := time.NewTimer(n.cfg.LeaderWait)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if id, addr = n.Leader(); addr != "" {
			return id, addr, nil
		}
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
		case <-n.ctx.Done():
			return "", "", ErrShutdown
		case <-deadline.C:
			return "", "", fmt.Errorf("%w after waiting %s", ErrNoLeader, n.cfg.LeaderWait)
		case <-tick.C:
		}
	}
}

// Peers returns the current Raft configuration.
func (n *Node) Peers() ([]Peer, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []Peer
	for _, s := range f.Configuration().Servers {
		out = append(out, Peer{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == hraft.Voter})
	}
	return out, nil
}

// Stats is a point-in-time view of the node for status pages and tests.
type Stats struct {
	ID, Address      string
	State            string
	Term             uint64
	LeaderID         string
	LeaderAddress    string
	LastIndex        uint64
	CommitIndex      uint64
	AppliedIndex     uint64
	FSMRevision      uint64
	LastContact      time.Time
	Peers            []Peer
	LogWrites        uint64 // batched log writes (each one fsync)
	LogEntries       uint64 // entries written by them
	LeaderRoutinesOn bool
}

// Stats reports the node's Raft state.
func (n *Node) Stats() Stats {
	lid, laddr := n.Leader()
	peers, _ := n.Peers()
	return Stats{
		ID: n.cfg.ID, Address: n.Addr(),
		State:    n.raft.State().String(),
		Term:     n.raft.CurrentTerm(),
		LeaderID: lid, LeaderAddress: laddr,
		LastIndex:        n.raft.LastIndex(),
		CommitIndex:      n.raft.CommitIndex(),
		AppliedIndex:     n.raft.AppliedIndex(),
		FSMRevision:      n.fsm.Revision(),
		LastContact:      n.raft.LastContact(),
		Peers:            peers,
		LogWrites:        n.logs.writes.Load(),
		LogEntries:       n.logs.entries.Load(),
		LeaderRoutinesOn: n.leadership.running(),
	}
}

package raft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"skiff/fsm"
)

// Recovery from the loss of quorum works on a stopped master's data dir, laid out as Open
// lays it out: raft.db (raft-boltdb log and stable store) and snapshots/ (hashicorp/raft's
// file snapshot store). ReadDataDir tells what a survivor holds; RecoverDataDir rewrites
// its Raft configuration to itself alone with hashicorp/raft's RecoverCluster, after which
// the master starts as the only voter of a one-master cluster that others join again.

// ErrDataDirInUse is returned when another process, normally the master itself, holds the
// data dir's raft.db open.
var ErrDataDirInUse = errors.New("raft.db is locked by another process: stop the master first")

// ErrNotInConfiguration is returned when recovery names a server that is not in the data
// dir's last Raft configuration.
var ErrNotInConfiguration = errors.New("server is not in the last raft configuration")

// ErrDataDirChanged is returned when a data dir's Raft state moved between the inspection a
// recovery was decided on and the recovery itself (a master ran in between).
var ErrDataDirChanged = errors.New("the data dir changed since it was inspected")

// DataDirInfo is what a stopped master's data dir says about its Raft state.
type DataDirInfo struct {
	Dir string
	// LastIndex and LastTerm are the newest entry this master holds, in its log or covered
	// by its latest snapshot. Among survivors of one cluster, the one with the highest
	// (LastTerm, LastIndex) has every entry the others have.
	LastIndex, LastTerm uint64
	// SnapshotIndex and SnapshotTerm are those of the latest snapshot (zero without one).
	// Entries up to SnapshotIndex were certainly committed; hashicorp/raft does not persist
	// the commit index, so whether later ones were is unknowable from one data dir.
	SnapshotIndex, SnapshotTerm uint64
	// FirstLogIndex is the oldest entry left in the log, zero when the log is empty.
	FirstLogIndex uint64
	// CurrentTerm is the newest term this master knew of.
	CurrentTerm uint64
	// Peers is the newest Raft configuration this master knew (committed or not), from the
	// entry at ConfigurationIndex.
	Peers              []Peer
	ConfigurationIndex uint64
}

// Peer returns the configuration's server id, if present.
func (d *DataDirInfo) Peer(id string) (Peer, bool) {
	for _, p := range d.Peers {
		if p.ID == id {
			return p, true
		}
	}
	return Peer{}, false
}

// NewerThan reports whether d holds entries o cannot have: a later last term, or the same
// last term and a later last index (Raft's "at least as up to date" order).
func (d *DataDirInfo) NewerThan(o *DataDirInfo) bool {
	if d.LastTerm != o.LastTerm {
		return d.LastTerm > o.LastTerm
	}
	return d.LastIndex > o.LastIndex
}

// ReadDataDir reads the Raft state of a stopped master's data dir without changing it.
// It fails with ErrDataDirInUse while the master runs.
func ReadDataDir(dir string) (*DataDirInfo, error) {
	store, err := openDataDirStore(dir, true)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	snaps, err := listSnapshots(dir)
	if err != nil {
		return nil, err
	}
	return readDataDir(dir, store, snaps)
}

// RecoverResult is what RecoverDataDir did.
type RecoverResult struct {
	// Before is the data dir's state before the rewrite.
	Before *DataDirInfo
	// Peers is the new configuration: this server alone.
	Peers []Peer
	// Revision, Objects and Hash describe the store state the master resumes with: every
	// entry of its log applied, committed or not.
	Revision uint64
	Objects  int
	Hash     string
}

// RecoverDataDir makes server id the only voter of the Raft configuration in its stopped
// data dir, at addr (empty: the address the last configuration has for it), using
// hashicorp/raft's RecoverCluster: every entry in the log is applied (and so committed,
// whether or not it was before), the result is written as a snapshot that carries the new
// configuration, and the log is emptied. Started again, the master elects itself and leads
// a one-master cluster. hashicorp/raft writes its log lines to logOut. With expect set (what
// ReadDataDir said when the recovery was decided), a data dir that moved since is refused
// with ErrDataDirChanged and left alone.
func RecoverDataDir(dir, id, addr string, expect *DataDirInfo, logOut io.Writer) (*RecoverResult, error) {
	store, err := openDataDirStore(dir, false)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	snapList, err := listSnapshots(dir)
	if err != nil {
		return nil, err
	}
	before, err := readDataDir(dir, store, snapList)
	if err != nil {
		return nil, err
	}
	if expect != nil && (before.LastIndex != expect.LastIndex || before.LastTerm != expect.LastTerm ||
		before.CurrentTerm != expect.CurrentTerm || before.ConfigurationIndex != expect.ConfigurationIndex) {
		return nil, fmt.Errorf("%w: it was at term %d, index %d and is now at term %d, index %d; inspect it again",
			ErrDataDirChanged, expect.LastTerm, expect.LastIndex, before.LastTerm, before.LastIndex)
	}
	self, ok := before.Peer(id)
	if !ok {
		var ids []string
		for _, p := range before.Peers {
			ids = append(ids, p.ID)
		}
		return nil, fmt.Errorf("%w: %q (it has %s)", ErrNotInConfiguration, id, strings.Join(ids, ", "))
	}
	if addr == "" {
		addr = self.Address
	}
	if logOut == nil {
		logOut = io.Discard
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: logOut})
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(dir, 2, logger.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("opening snapshot store: %w", err)
	}
	conf := hraft.DefaultConfig()
	conf.LocalID = hraft.ServerID(id)
	conf.Logger = logger
	_, trans := hraft.NewInmemTransport(hraft.ServerAddress(addr))
	defer trans.Close()
	machine := fsm.New(fsm.Options{})
	configuration := hraft.Configuration{Servers: []hraft.Server{{Suffrage: hraft.Voter, ID: hraft.ServerID(id), Address: hraft.ServerAddress(addr)}}}
	if err := hraft.RecoverCluster(conf, machine, store, store, snaps, trans, configuration); err != nil {
		return nil, fmt.Errorf("rewriting the raft configuration: %w", err)
	}
	st := machine.State()
	return &RecoverResult{
		Before:   before,
		Peers:    []Peer{{ID: id, Address: addr, Voter: true}},
		Revision: st.Revision(),
		Objects:  st.Len(),
		Hash:     st.Hash(),
	}, nil
}

// PeerProbe is whether a peer's Raft address accepts connections.
type PeerProbe struct {
	Peer
	Reachable bool
	Err       error
}

// ProbePeers dials each peer's Raft address (concurrently, each for at most timeout) and
// reports which accept a connection: a master that does still runs.
func ProbePeers(ctx context.Context, peers []Peer, timeout time.Duration) []PeerProbe {
	out := make([]PeerProbe, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		out[i].Peer = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: timeout}
			c, err := d.DialContext(ctx, "tcp", p.Address)
			if err != nil {
				out[i].Err = err
				return
			}
			c.Close()
			out[i].Reachable = true
		}()
	}
	wg.Wait()
	return out
}

// openDataDirStore opens dir's raft.db as Open does, refusing to create one, and without
// waiting for a lock held by a running master.
func openDataDirStore(dir string, readOnly bool) (*raftboltdb.BoltStore, error) {
	path := filepath.Join(dir, "raft.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s is not a master's data dir: %w", dir, err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        path,
		BoltOptions: &bbolt.Options{ReadOnly: readOnly, Timeout: time.Second},
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrDataDirInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return store, nil
}

// listSnapshots reads the metadata of dir's file snapshots, newest first as hashicorp/raft
// orders them, without the side effects of opening a FileSnapshotStore.
func listSnapshots(dir string) ([]*hraft.SnapshotMeta, error) {
	root := filepath.Join(dir, "snapshots")
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	var out []*hraft.SnapshotMeta
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, e.Name(), "meta.json"))
		if err != nil {
			continue // hashicorp/raft skips unreadable snapshots too
		}
		var m hraft.SnapshotMeta
		if err := json.Unmarshal(b, &m); err != nil {
			continue
		}
		out = append(out, &m)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Term != b.Term {
			return a.Term > b.Term
		}
		if a.Index != b.Index {
			return a.Index > b.Index
		}
		return a.ID > b.ID
	})
	return out, nil
}

// readDataDir works out what NewRaft would: the latest snapshot, then the log after it,
// whose configuration entries override the snapshot's configuration.
func readDataDir(dir string, store *raftboltdb.BoltStore, snaps []*hraft.SnapshotMeta) (*DataDirInfo, error) {
	info := &DataDirInfo{Dir: dir}
	if t, err := store.GetUint64([]byte("CurrentTerm")); err == nil {
		info.CurrentTerm = t
	}
	first, err := store.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("reading the log: %w", err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("reading the log: %w", err)
	}
	info.FirstLogIndex = first
	if len(snaps) > 0 {
		s := snaps[0]
		info.SnapshotIndex, info.SnapshotTerm = s.Index, s.Term
		info.LastIndex, info.LastTerm = s.Index, s.Term
		info.Peers, info.ConfigurationIndex = peersOf(s.Configuration), s.ConfigurationIndex
	}
	for idx := max(first, info.SnapshotIndex+1); last > 0 && idx <= last; idx++ {
		var l hraft.Log
		if err := store.GetLog(idx, &l); err != nil {
			return nil, fmt.Errorf("reading log entry %d: %w", idx, err)
		}
		if l.Type == hraft.LogConfiguration {
			info.Peers, info.ConfigurationIndex = peersOf(hraft.DecodeConfiguration(l.Data)), l.Index
		}
		if l.Index > info.LastIndex {
			info.LastIndex, info.LastTerm = l.Index, l.Term
		}
	}
	if info.LastIndex == 0 && len(info.Peers) == 0 {
		return nil, fmt.Errorf("%s holds no raft state (a master that never joined a cluster)", dir)
	}
	return info, nil
}

func peersOf(c hraft.Configuration) []Peer {
	var out []Peer
	for _, s := range c.Servers {
		out = append(out, Peer{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == hraft.Voter})
	}
	return out
}

package raft

import (
	"errors"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"
	"skiff/fsm"
)

// Config configures one Raft node. ID, DataDir and BindAddr are required.
type Config struct {
	// ID is the node's stable server ID; it never changes, even if the address does.
	ID string
	// DataDir holds raft.db (log and stable store) and snapshots/.
	DataDir string
	// BindAddr is the TCP address to listen on (host:port; port 0 picks one).
	BindAddr string
	// AdvertiseAddr is the address peers dial; defaults to the listener's address.
	AdvertiseAddr string

	// Timing. The defaults suit masters on one LAN (round trips well under 1 ms, fsync a few
	// ms): a follower notices a dead leader after HeartbeatTimeout..2×HeartbeatTimeout and
	// elects a new one within a few more milliseconds, which keeps failover under the
	// 1.5 s p50 target with margin, while 500 ms is still 100× a LAN round trip and 10× a
	// slow fsync, so a busy but healthy leader is not deposed. hashicorp/raft's own
	// defaults (1 s) are tuned for WANs and cloud VMs with noisy neighbours.
	HeartbeatTimeout   time.Duration // default 500 ms
	ElectionTimeout    time.Duration // default 500 ms
	LeaderLeaseTimeout time.Duration // default 250 ms: a partitioned leader steps down quickly
	// CommitTimeout bounds how long followers wait to learn a new commit index when there
	// is no other traffic; short, because follower reads wait on it.
	CommitTimeout time.Duration // default 10 ms

	// MaxAppendEntries bounds entries per replication RPC and per group-committed fsync.
	MaxAppendEntries int // default 256
	// SnapshotThreshold is how many new entries trigger a snapshot; SnapshotInterval how
	// often that is checked; TrailingLogs how many entries stay after one, so a briefly
	// lagging follower catches up from the log instead of a snapshot.
	SnapshotThreshold uint64        // default 8192
	SnapshotInterval  time.Duration // default 30 s
	TrailingLogs      uint64        // default 10240
	SnapshotRetain    int           // default 2

	// LeaderWait is how long an operation that needs the leader waits for one to be elected
	// before failing with ErrNoLeader.
	LeaderWait time.Duration // default 3 s

	FSM fsm.Options

	// Faults, when set, injects network faults (tests and drills).
	Faults *Faults
	// WrapConn secures node-to-node connections (TLS); nil means plain TCP.
	WrapConn ConnWrapper

	// OnDiskFull, when set, is called when the data dir becomes too full to write the Raft
	// log or term (full, with the failure) and when a write succeeds again (not full, nil
	// error). See diskfull.go for how the node behaves meanwhile. It must not block.
	OnDiskFull func(full bool, err error)

	// Logger receives Raft's logs; nil writes warnings and errors to LogOutput.
	Logger    hclog.Logger
	LogOutput io.Writer
}

func (c *Config) setDefaults() error {
	if c.ID == "" || c.DataDir == "" || c.BindAddr == "" {
		return errors.New("raft config needs ID, DataDir and BindAddr")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 500*time.Millisecond)
	def(&c.ElectionTimeout, 500*time.Millisecond)
	def(&c.LeaderLeaseTimeout, 250*time.Millisecond)
	def(&c.CommitTimeout, 10*time.Millisecond)
	def(&c.SnapshotInterval, 30*time.Second)
	def(&c.LeaderWait, 3*time.Second)
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = 256
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.SnapshotRetain == 0 {
		c.SnapshotRetain = 2
	}
	if c.Logger == nil {
		out := c.LogOutput
		if out == nil {
			out = io.Discard
		}
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: out})
	}
	return nil
}

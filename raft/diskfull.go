package raft

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	hraft "github.com/hashicorp/raft"
)

// Running out of disk.
//
// A node whose data dir fills up cannot append to its Raft log. hashicorp/raft copes with
// that by itself: a leader whose log write fails answers the entries of that write with
// the error and steps down (nothing it failed to write was replicated, so those writes did
// not take effect), and a follower refuses the entries, which the leader resends with
// back-off. The node therefore stays up and out of the quorum's way: the others elect a
// leader and carry on, writes sent to it are forwarded to that leader as usual, and its
// linearizable reads fail at once with ErrDiskFull instead of waiting for a catch-up that
// cannot happen. Once space is freed, its next append succeeds and it catches up by
// itself; it needs no restart.
//
// The one write hashicorp/raft cannot do without is its term (and vote): when persisting a
// new term fails it panics ("failed to save current term"), because going on could vote
// twice in a term. On a full disk that happens only when bbolt has no free page left to
// reuse for the small write. The node reports why just before, the process exits, and its
// supervisor's restart resumes once space is freed.
//
// Config.OnDiskFull hears each transition (full, writable again), so the master can say so
// in its own log: Raft's log file lives in the data dir that is full.

// ErrDiskFull is returned when the node could not write its Raft log or state because the
// data dir's file system is out of space. A write refused with it was not applied.
var ErrDiskFull = errors.New("raft data dir is full")

// isNoSpace reports whether err says the file system is full (or the quota spent).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// diskWatch follows whether the node's stores can write. Its methods are safe for
// concurrent use; mu guards the fields below it.
type diskWatch struct {
	id     string
	notify func(full bool, err error) // Config.OnDiskFull; may be nil

	mu         sync.Mutex
	logFull    bool  // the last log write failed for lack of space
	stableFull bool  // the last term/vote write failed for lack of space
	err        error // the last such failure
}

// observe records the outcome of a write to the log store (log) or stable store (!log).
// Failures other than a full disk leave the state alone.
func (d *diskWatch) observe(log bool, err error) {
	noSpace := err != nil && isNoSpace(err)
	if err != nil && !noSpace {
		return
	}
	d.mu.Lock()
	before := d.logFull || d.stableFull
	if log {
		d.logFull = noSpace
	} else {
		d.stableFull = noSpace
	}
	if noSpace {
		d.err = err
	}
	after := d.logFull || d.stableFull
	d.mu.Unlock()
	if before != after && d.notify != nil {
		d.notify(after, err)
	}
}

// check returns ErrDiskFull, with the last failure, while a store cannot write; nil
// otherwise.
func (d *diskWatch) check() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.logFull && !d.stableFull {
		return nil
	}
	return fmt.Errorf("%w on master %s: %w", ErrDiskFull, d.id, d.err)
}

// watchedLogStore sits right on the log store, under hashicorp/raft's LogCache, where the
// store's own errors (ENOSPC among them) are still intact.
type watchedLogStore struct {
	hraft.LogStore
	d *diskWatch
}

func (s *watchedLogStore) StoreLog(l *hraft.Log) error {
	return s.StoreLogs([]*hraft.Log{l})
}

func (s *watchedLogStore) StoreLogs(logs []*hraft.Log) error {
	err := s.LogStore.StoreLogs(logs)
	s.d.observe(true, err)
	return err
}

// diskFullLogStore is what hashicorp/raft writes through, above its LogCache. The cache
// reports a failed write of the store beneath as text only; this gives a full disk its
// sentinel back, so the writes refused because of it say why.
type diskFullLogStore struct {
	hraft.LogStore
	d *diskWatch
}

func (s *diskFullLogStore) StoreLog(l *hraft.Log) error {
	return s.StoreLogs([]*hraft.Log{l})
}

func (s *diskFullLogStore) StoreLogs(logs []*hraft.Log) error {
	err := s.LogStore.StoreLogs(logs)
	if err != nil {
		if full := s.d.check(); full != nil {
			return full
		}
	}
	return err
}

// watchedStableStore watches the term and vote writes.
type watchedStableStore struct {
	hraft.StableStore
	d *diskWatch
}

func (s *watchedStableStore) Set(key, val []byte) error {
	return s.stableErr(s.StableStore.Set(key, val))
}

func (s *watchedStableStore) SetUint64(key []byte, val uint64) error {
	return s.stableErr(s.StableStore.SetUint64(key, val))
}

func (s *watchedStableStore) stableErr(err error) error {
	if err != nil && isNoSpace(err) {
		// Said before hashicorp/raft panics on it (see above).
		err = fmt.Errorf("%w on master %s: cannot persist the Raft term or vote, so Raft stops this process; "+
			"restart it once space is freed: %w", ErrDiskFull, s.d.id, err)
	}
	s.d.observe(false, err)
	return err
}

// DiskFull returns ErrDiskFull (with the failure) while the node's data dir is too full to
// write its Raft log or term, nil otherwise.
func (n *Node) DiskFull() error { return n.disk.check() }

package raft

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	hraft "github.com/hashicorp/raft"
)

// failingLogStore fails StoreLogs with err while it is set.
type failingLogStore struct {
	hraft.LogStore
	mu  sync.Mutex
	err error
}

func (s *failingLogStore) fail(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *failingLogStore) StoreLogs(logs []*hraft.Log) error {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.LogStore.StoreLogs(logs)
}

func (s *failingLogStore) StoreLog(l *hraft.Log) error { return s.StoreLogs([]*hraft.Log{l}) }

// The stores stacked as Open stacks them: a full disk under hashicorp/raft's LogCache
// (which flattens its store's errors into text) comes out as ErrDiskFull, still naming
// the file and ENOSPC; the transitions are reported once each; other failures are passed
// on as they are and change nothing.
func TestDiskFullThroughLogCache(t *testing.T) {
	type event struct {
		full bool
		err  error
	}
	var events []event
	d := &diskWatch{id: "m1", notify: func(full bool, err error) { events = append(events, event{full, err}) }}
	inmem := hraft.NewInmemStore()
	failing := &failingLogStore{LogStore: inmem}
	cached, err := hraft.NewLogCache(16, &watchedLogStore{LogStore: failing, d: d})
	if err != nil {
		t.Fatal(err)
	}
	store := &diskFullLogStore{LogStore: cached, d: d}
	put := func(i uint64) error { return store.StoreLogs([]*hraft.Log{{Index: i, Term: 1}}) }

	if err := put(1); err != nil || d.check() != nil || len(events) != 0 {
		t.Fatalf("healthy write: err %v, check %v, events %v", err, d.check(), events)
	}
	// A failure that is not about space is passed on and is no full disk.
	failing.fail(syscall.EIO)
	if err := put(2); err == nil || errors.Is(err, ErrDiskFull) || d.check() != nil || len(events) != 0 {
		t.Fatalf("I/O error: err %v, check %v, events %v", err, d.check(), events)
	}
	enospc := &os.PathError{Op: "write", Path: "/data/raft.db", Err: syscall.ENOSPC}
	failing.fail(enospc)
	for i := uint64(2); i < 5; i++ {
		err := put(i)
		if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) ||
			!strings.Contains(err.Error(), "master m1") || !strings.Contains(err.Error(), "/data/raft.db") {
			t.Fatalf("write on a full disk: %v; want ErrDiskFull naming the master, the file and ENOSPC", err)
		}
	}
	if len(events) != 1 || !events[0].full || !errors.Is(events[0].err, syscall.ENOSPC) {
		t.Fatalf("events after the disk filled: %+v, want one full event", events)
	}
	if err := d.check(); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("check while full: %v", err)
	}

	failing.fail(nil)
	if err := put(6); err != nil {
		t.Fatal(err)
	}
	if d.check() != nil || len(events) != 2 || events[1].full {
		t.Fatalf("after space was freed: check %v, events %+v", d.check(), events)
	}
}

// failingStable fails every write with err.
type failingStable struct {
	hraft.StableStore
	err error
}

func (s failingStable) Set(k, v []byte) error              { return s.err }
func (s failingStable) SetUint64(k []byte, v uint64) error { return s.err }

// A term that cannot be saved for lack of space is reported, with what happens next,
// before hashicorp/raft panics on it; a log store that still writes does not hide it.
func TestDiskFullStableStore(t *testing.T) {
	var got []string
	d := &diskWatch{id: "m2", notify: func(full bool, err error) { got = append(got, fmt.Sprint(full, " ", err)) }}
	s := &watchedStableStore{StableStore: hraft.NewInmemStore(), d: d}
	if err := s.SetUint64([]byte("CurrentTerm"), 2); err != nil {
		t.Fatal(err)
	}
	s.StableStore = failingStable{err: &os.PathError{Op: "write", Path: "/data/raft.db", Err: syscall.ENOSPC}}
	err := s.SetUint64([]byte("CurrentTerm"), 3)
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "stops this process") {
		t.Fatalf("term write on a full disk: %v", err)
	}
	d.observe(true, nil) // a log write succeeds meanwhile
	if d.check() == nil {
		t.Fatal("a successful log write cleared the stable store's failure")
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "true ") {
		t.Fatalf("notifications: %q", got)
	}
}

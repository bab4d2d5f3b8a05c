package fsm

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Options tune the FSM's in-memory bookkeeping.
type Options struct {
	// HistorySize is how many events the watch history keeps (default 10,000).
	HistorySize int
	// WatchQueueLimit is how many undelivered events a watch may hold before it is cut off
	// with ErrSlowWatcher (default 10,000).
	WatchQueueLimit int
}

// FSM is skiff's replicated state machine. Raft calls Apply, Snapshot and Restore from its
// single FSM goroutine; every read method is safe to call concurrently with them and with
// each other, and none of them blocks Apply.
type FSM struct {
	state atomic.Pointer[State]
	hub   *hub

	// appliedMu guards appliedCh, which is closed and replaced whenever the applied
	// revision moves, waking WaitApplied callers.
	appliedMu sync.Mutex
	appliedCh chan struct{}
}

var _ raft.FSM = (*FSM)(nil)

// New returns an empty FSM.
func New(opts Options) *FSM {
	if opts.HistorySize <= 0 {
		opts.HistorySize = 10000
	}
	if opts.WatchQueueLimit <= 0 {
		opts.WatchQueueLimit = 10000
	}
	f := &FSM{hub: newHub(opts.HistorySize, opts.WatchQueueLimit), appliedCh: make(chan struct{})}
	f.state.Store(emptyState())
	return f
}

// State returns the current immutable view.
func (f *FSM) State() *State { return f.state.Load() }

// Revision is the log index of the last command applied.
func (f *FSM) Revision() uint64 { return f.state.Load().revision }

// Watch opens a watch; see WatchOptions. It fails with ErrTooOld if From is older than the
// retained history.
func (f *FSM) Watch(opts WatchOptions) (*Watch, error) {
	return f.hub.watch(opts)
}

// OldestWatchRevision is the lowest revision a watch may resume from.
func (f *FSM) OldestWatchRevision() uint64 { return f.hub.oldest() }

// WaitApplied blocks until the FSM has applied revision index or ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.appliedMu.Lock()
		ch := f.appliedCh
		f.appliedMu.Unlock()
		if f.Revision() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for revision %d (applied %d): %w", index, f.Revision(), ctx.Err())
		}
	}
}

func (f *FSM) setState(s *State) {
	f.state.Store(s)
	f.appliedMu.Lock()
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.appliedMu.Unlock()
}

// Apply applies one committed entry. It dispatches on the type byte; an undecodable entry
// panics, because a replica that skipped it would silently diverge from the others.
func (f *FSM) Apply(l *raft.Log) interface{} {
	if len(l.Data) == 0 {
		panic(fmt.Sprintf("fsm: empty entry at index %d", l.Index))
	}
	msg, payload := MessageType(l.Data[0]), l.Data[1:]
	switch msg {
	case TxnType:
		return f.applyTxn(l.Index, payload)
	case BatchType:
		return f.applyBatch(l.Index, payload)
	case NoopType:
		return f.applyNoop(l.Index)
	case RestoreType:
		return f.applyRestore(l.Index, payload)
	}
	if msg&IgnoreUnknownFlag != 0 {
		return f.applyNoop(l.Index)
	}
	panic(fmt.Sprintf("fsm: unknown message type %d at index %d", msg, l.Index))
}

func (f *FSM) applyTxn(index uint64, payload []byte) *TxnResult {
	t, err := DecodeTxn(payload)
	if err != nil {
		panic(fmt.Sprintf("fsm: decoding txn at index %d: %v", index, err))
	}
	cur := f.state.Load()
	next, res, events := applyTxn(cur, t, index)
	if next == nil {
		// Nothing changed, but the revision still moves so WaitApplied sees the entry.
		next = cur.at(index)
	}
	f.setState(next)
	f.hub.publish(events)
	return res
}

// applyBatch applies each transaction of the entry in order, each all-or-nothing on its
// own, and publishes the state once.
func (f *FSM) applyBatch(index uint64, payload []byte) *BatchResult {
	txns, err := DecodeBatch(payload)
	if err != nil {
		panic(fmt.Sprintf("fsm: decoding batch at index %d: %v", index, err))
	}
	cur := f.state.Load()
	out := &BatchResult{Results: make([]*TxnResult, len(txns))}
	var events []Event
	for i, t := range txns {
		next, res, evs := applyTxn(cur, t, index)
		if next != nil {
			cur = next
		}
		out.Results[i] = res
		events = append(events, evs...)
	}
	f.setState(cur.at(index))
	f.hub.publish(events)
	return out
}

func (f *FSM) applyNoop(index uint64) interface{} {
	cur := f.state.Load()
	f.setState(cur.at(index))
	return nil
}

package fsm

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestWaitAppliedReturnsAtOnceWhenApplied(t *testing.T) {
	f := New(Options{})
	ctx := t.Context()
	if err := f.WaitApplied(ctx, 0); err != nil {
		t.Fatalf("WaitApplied(0) on a new FSM: %v", err)
	}
	mustApply(t, f, 5, Create(pod("a", "p"), nil, Meta{}))
	for _, idx := range []uint64{0, 1, 4, 5} {
		if err := f.WaitApplied(ctx, idx); err != nil {
			t.Fatalf("WaitApplied(%d) at revision 5: %v", idx, err)
		}
	}
	// Even with a context that is already done, an applied index succeeds.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.WaitApplied(done, 5); err != nil {
		t.Fatalf("WaitApplied with a cancelled context on an applied index: %v", err)
	}
}

func TestWaitAppliedUnblocksWhenApplied(t *testing.T) {
	f := New(Options{})
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- f.WaitApplied(ctx, 4) }()

	// Entries below the awaited index, including failed txns and noops, do not release it.
	mustApply(t, f, 1, Create(pod("a", "p"), nil, Meta{}))
	apply(t, f, 2, Create(pod("a", "p"), nil, Meta{})) // fails, still applied
	f.Apply(&raft.Log{Index: 3, Data: EncodeNoop()})
	select {
	case err := <-result:
		t.Fatalf("WaitApplied(4) returned %v at revision %d", err, f.Revision())
	default:
	}
	// A failed txn at the awaited index releases it: the entry is applied.
	go func() { apply(t, f, 4, Update(pod("a", "p"), 99, nil, Meta{})) }()
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("WaitApplied: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("WaitApplied(4) not released")
	}
	if f.Revision() < 4 {
		t.Fatalf("released at revision %d", f.Revision())
	}
}

func TestWaitAppliedManyWaitersAndJumps(t *testing.T) {
	f := New(Options{})
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	const n = 20
	results := make(chan error, n)
	for i := uint64(1); i <= n; i++ {
		go func(idx uint64) {
			err := f.WaitApplied(ctx, idx)
			if err == nil && f.Revision() < idx {
				err = errors.New("released early")
			}
			results <- err
		}(i)
	}
	// Indexes jump: one entry can release many waiters; a restore moves the revision too.
	for _, idx := range []uint64{3, 7, 8} {
		mustApply(t, f, idx, Create(pod("a", string(rune('a'+idx))), nil, Meta{}))
	}
	src := New(Options{})
	mustApply(t, src, n+5, Create(pod("a", "z"), nil, Meta{}))
	restore(t, f, snapshotBytes(t, src))
	for i := 0; i < n; i++ {
		if err := <-results; err != nil {
			t.Fatalf("waiter: %v", err)
		}
	}
}

func TestWaitAppliedHonoursContext(t *testing.T) {
	f := New(Options{})
	mustApply(t, f, 1, Create(pod("a", "p"), nil, Meta{}))

	ctx, cancel := context.WithCancel(t.Context())
	result := make(chan error, 1)
	go func() { result <- f.WaitApplied(ctx, 10) }()
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("WaitApplied after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("WaitApplied ignored cancellation")
	}

	short, cancel2 := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel2()
	if err := f.WaitApplied(short, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied past deadline = %v, want context.DeadlineExceeded", err)
	}
}

func TestNewDefaultsAndFSMInterface(t *testing.T) {
	f := New(Options{HistorySize: -1, WatchQueueLimit: 0})
	if len(f.hub.history) != 10000 || f.hub.queueLimit != 10000 {
		t.Fatalf("defaults: history %d, queue limit %d", len(f.hub.history), f.hub.queueLimit)
	}
	if f.Revision() != 0 || f.State().Len() != 0 || f.State().Revision() != 0 {
		t.Fatalf("a new FSM is not empty")
	}
	var _ raft.FSM = f
	if h := New(Options{}).State().Hash(); h != f.State().Hash() {
		t.Fatalf("empty states hash differently")
	}
}

package raft_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"skiff/fsm"
	"skiff/raft"
	"skiff/raft/rafttest"
)

// Concurrent proposals share log entries, yet two writers of one key never share one:
// exactly one of many racing creates of a key wins, and every conditional update at a
// revision succeeds at most once.
func TestConcurrentProposalsBatchWithoutSharingKeys(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	leader := c.Node(c.WaitLeader())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before := leader.Stats()
	const writers = 48
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[string]int{}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			n := c.Node(w % c.Size())
			for i := 0; i < 20; i++ {
				// Everyone races on the shared key, and writes one key of its own.
				shared := fsm.Key{Resource: "kv", Name: fmt.Sprintf("shared-%d", i)}
				own := fsm.Key{Resource: "kv", Name: fmt.Sprintf("own-%d-%d", w, i)}
				for _, k := range []fsm.Key{shared, own} {
					res, err := n.Propose(ctx, &fsm.Txn{Ops: []fsm.Op{fsm.Create(k, []byte(fmt.Sprint(w)), fsm.Meta{})}})
					if err != nil {
						t.Errorf("propose: %v", err)
						return
					}
					if res.Err == nil {
						mu.Lock()
						wins[k.Name]++
						mu.Unlock()
					} else if res.Err != fsm.ErrAlreadyExists {
						t.Errorf("create %s: %v", k, res.Err)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	for i := 0; i < 20; i++ {
		if n := wins[fmt.Sprintf("shared-%d", i)]; n != 1 {
			t.Fatalf("shared-%d created %d times", i, n)
		}
	}
	if len(wins) != 20+writers*20 {
		t.Fatalf("%d keys created, want %d", len(wins), 20+writers*20)
	}
	after := leader.Stats()
	entries := after.LogEntries - before.LogEntries
	if entries >= uint64(writers*40) {
		t.Fatalf("%d proposals took %d log entries: nothing was batched", writers*40, entries)
	}
	t.Logf("%d proposals in %d log entries", writers*40, entries)
	c.Verify()
}

// ProposeAsLeader writes only on the leader whose routines run, never forwards, and
// refuses a cancelled caller.
func TestProposeAsLeaderNeverForwards(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{Size: 3})
	li := c.WaitLeader()
	leader := c.Node(li)
	txn := func(name string) *fsm.Txn {
		return &fsm.Txn{Ops: []fsm.Op{fsm.Create(fsm.Key{Resource: "r", Name: name}, []byte("v"), fsm.Meta{})}}
	}
	// Leader routines may not have started yet right after the election.
	deadline := time.Now().Add(30 * time.Second)
	for !leader.LeaderRoutinesRunning() {
		if time.Now().After(deadline) {
			t.Fatal("leader routines never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := leader.ProposeAsLeader(context.Background(), txn("ok")); err != nil {
		t.Fatalf("on the leader: %v", err)
	}
	for i := 0; i < c.Size(); i++ {
		if i == li {
			continue
		}
		if _, err := c.Node(i).ProposeAsLeader(context.Background(), txn("forwarded")); !errors.Is(err, raft.ErrNotLeader) {
			t.Fatalf("on a follower: err %v, want ErrNotLeader", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := leader.ProposeAsLeader(ctx, txn("cancelled")); err == nil {
		t.Fatal("a cancelled caller's proposal was accepted")
	}
	if leader.FSM().State().Get(fsm.Key{Resource: "r", Name: "forwarded"}) != nil || leader.FSM().State().Get(fsm.Key{Resource: "r", Name: "cancelled"}) != nil {
		t.Fatal("a refused proposal was applied")
	}
}

// A caller whose context ends while its proposal still waits in the batcher gets its
// context's error (not "outcome unknown") and the proposal never reaches the log.
func TestQueuedProposalIsDroppedWhenItsCallerGivesUp(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	leader := c.Node(c.WaitLeader())
	release := leader.HoldBatcherSlots()
	errs := make(chan error, 2)
	for _, name := range []string{"first", "second"} {
		go func(name string) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := leader.Propose(ctx, &fsm.Txn{Ops: []fsm.Op{fsm.Create(fsm.Key{Resource: "r", Name: name}, []byte("v"), fsm.Meta{})}})
			errs <- err
		}(name)
	}
	for i := 0; i < 2; i++ {
		err := <-errs
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, raft.ErrUnknownOutcome) {
			t.Fatalf("queued proposal whose caller gave up: err = %v, want a deadline error with a known outcome", err)
		}
	}
	release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rafttest.Put(ctx, leader, "after", "1"); err != nil {
		t.Fatal(err)
	}
	st := leader.FSM().State()
	for _, name := range []string{"first", "second"} {
		if st.Get(fsm.Key{Resource: "r", Name: name}) != nil {
			t.Fatalf("proposal %q was applied after its caller gave up", name)
		}
	}
	c.Verify()
}

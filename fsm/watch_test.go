package fsm

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

type wantEvent struct {
	typ   EventType
	key   Key
	rev   uint64
	value string
}

func checkEvents(t *testing.T, got []Event, want []wantEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events %v, want %d", len(got), describeEvents(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Type != w.typ || g.Record.Key != w.key || g.Revision != w.rev || string(g.Record.Value) != w.value {
			t.Fatalf("event %d = %s %s@%d %q, want %s %s@%d %q", i, g.Type, g.Record.Key, g.Revision, g.Record.Value, w.typ, w.key, w.rev, w.value)
		}
	}
}

func mustWatch(t *testing.T, f *FSM, o WatchOptions) *Watch {
	t.Helper()
	w, err := f.Watch(o)
	if err != nil {
		t.Fatalf("Watch(%+v): %v", o, err)
	}
	t.Cleanup(w.Stop)
	return w
}

func TestEventTypeString(t *testing.T) {
	for typ, want := range map[EventType]string{Added: "ADDED", Modified: "MODIFIED", Deleted: "DELETED", 0: "UNKNOWN", 9: "UNKNOWN"} {
		if got := typ.String(); got != want {
			t.Errorf("%d: %q, want %q", typ, got, want)
		}
	}
}

func TestWatchEventsInOrder(t *testing.T) {
	f := New(Options{})
	w := mustWatch(t, f, WatchOptions{Resource: "pods"})
	if w.Err() != nil {
		t.Fatalf("Err of a running watch = %v", w.Err())
	}
	x, y := pod("a", "x"), pod("b", "y")
	mustApply(t, f, 1, Create(x, val("x1"), Meta{}))
	mustApply(t, f, 2, Update(x, 1, val("x2"), Meta{}))
	apply(t, f, 3, Update(x, 1, val("nope"), Meta{})) // fails: no event
	f.Apply(&raft.Log{Index: 4, Data: EncodeNoop()})
	mustApply(t, f, 5, Create(y, val("y1"), Meta{}), Update(x, 2, val("x3"), Meta{}), Delete(x, 5), DeleteIfExists(pod("a", "absent")))
	mustApply(t, f, 6, DeleteIfExists(y))
	evs := recvN(t, w, 6)
	checkEvents(t, evs, []wantEvent{
		{Added, x, 1, "x1"},
		{Modified, x, 2, "x2"},
		{Added, y, 5, "y1"},
		{Modified, x, 5, "x3"},
		{Deleted, x, 5, "x3"},
		{Deleted, y, 6, "y1"},
	})
	if evs[0].Prev != nil {
		t.Errorf("Added carries Prev %+v", evs[0].Prev)
	}
	if evs[1].Prev == nil || string(evs[1].Prev.Value) != "x1" || evs[1].Record.CreateRevision != 1 || evs[1].Record.ModRevision != 2 {
		t.Errorf("Modified event: %+v prev %+v", evs[1].Record, evs[1].Prev)
	}
	if evs[4].Prev == nil || string(evs[4].Prev.Value) != "x3" {
		t.Errorf("Deleted event prev %+v", evs[4].Prev)
	}
}

func TestWatchFilters(t *testing.T) {
	f := New(Options{})
	entries := [][]Op{
		{Create(pod("a", "p"), val("1"), Meta{})},
		{Create(pod("b", "p"), val("2"), Meta{})},
		{Create(node("a"), val("3"), Meta{})},
		{Create(Key{Resource: "podsx", Namespace: "a", Name: "p"}, val("4"), Meta{})},
		{Create(Key{Resource: "pod", Namespace: "a", Name: "p"}, val("5"), Meta{})},
		{Create(pod("ab", "p"), val("6"), Meta{})},
		{Delete(pod("a", "p"), 0)},
	}
	for i, ops := range entries {
		mustApply(t, f, uint64(i+1), ops...)
	}
	cases := []struct {
		opts WatchOptions
		want []string
	}{
		{WatchOptions{Resource: "pods"}, []string{"pods/a/p@1", "pods/b/p@2", "pods/ab/p@6", "pods/a/p@7"}},
		{WatchOptions{Resource: "pods", Namespace: "a"}, []string{"pods/a/p@1", "pods/a/p@7"}},
		{WatchOptions{Resource: "pods", Namespace: "b"}, []string{"pods/b/p@2"}},
		{WatchOptions{Resource: "nodes"}, []string{"nodes/a@3"}},
		{WatchOptions{Resource: "nodes", Namespace: "a"}, nil},
		{WatchOptions{Resource: "podsx"}, []string{"podsx/a/p@4"}},
		{WatchOptions{Resource: "pods", Namespace: "a", From: 1}, []string{"pods/a/p@7"}},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			// Backlog from history, then the same filter on live events after a marker.
			w := mustWatch(t, f, tc.opts)
			var got []string
			for range tc.want {
				ev := recv(t, w)
				got = append(got, fmt.Sprintf("%s@%d", ev.Record.Key, ev.Revision))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("backlog %v, want %v", got, tc.want)
			}
		})
	}
	// Live delivery uses the same filter.
	wa := mustWatch(t, f, WatchOptions{Resource: "pods", Namespace: "b", From: f.Revision()})
	mustApply(t, f, 8, Create(pod("a", "q"), nil, Meta{}), Create(node("q"), nil, Meta{}))
	mustApply(t, f, 9, Create(pod("b", "q"), nil, Meta{}))
	if ev := recv(t, wa); ev.Record.Key != pod("b", "q") || ev.Revision != 9 {
		t.Fatalf("live event %s@%d", ev.Record.Key, ev.Revision)
	}
}

func TestWatchPredicate(t *testing.T) {
	f := New(Options{})
	web := func(r *Record) bool { return r.Meta.Labels["app"] == "web" }
	w := mustWatch(t, f, WatchOptions{Resource: "pods", Predicate: web})
	all := mustWatch(t, f, WatchOptions{Resource: "pods"})
	k, other := pod("a", "p"), pod("a", "other")
	mustApply(t, f, 1, Create(k, val("1"), labels("app", "db")))     // not selected
	mustApply(t, f, 2, Update(k, 0, val("2"), labels("app", "web"))) // enters: Added
	mustApply(t, f, 3, Update(k, 0, val("3"), labels("app", "web"))) // stays: Modified
	mustApply(t, f, 4, Update(k, 0, val("4"), labels("app", "db")))  // leaves: Deleted
	mustApply(t, f, 5, Update(k, 0, val("5"), labels("app", "db")))  // outside: nothing
	mustApply(t, f, 6, Delete(k, 0))                                 // outside: nothing
	mustApply(t, f, 7, Create(other, val("7"), labels("app", "web")))
	mustApply(t, f, 8, Delete(other, 0))
	evs := recvN(t, w, 5)
	checkEvents(t, evs, []wantEvent{
		{Added, k, 2, "2"},
		{Modified, k, 3, "3"},
		{Deleted, k, 4, "4"}, // the state that left the selection is reported
		{Added, other, 7, "7"},
		{Deleted, other, 8, "7"},
	})
	// The event of a leaving object still carries the previous (matching) record.
	if evs[2].Prev == nil || string(evs[2].Prev.Value) != "3" {
		t.Fatalf("leave event prev %+v", evs[2].Prev)
	}
	// An unfiltered watch sees the real types.
	checkEvents(t, recvN(t, all, 8), []wantEvent{
		{Added, k, 1, "1"}, {Modified, k, 2, "2"}, {Modified, k, 3, "3"}, {Modified, k, 4, "4"},
		{Modified, k, 5, "5"}, {Deleted, k, 6, "5"}, {Added, other, 7, "7"}, {Deleted, other, 8, "7"},
	})
	// The same translation applies to the backlog of a resumed watch.
	resumed := mustWatch(t, f, WatchOptions{Resource: "pods", Predicate: web, From: 2})
	checkEvents(t, recvN(t, resumed, 4), []wantEvent{
		{Modified, k, 3, "3"}, {Deleted, k, 4, "4"}, {Added, other, 7, "7"}, {Deleted, other, 8, "7"},
	})
}

// singleEventLog applies n entries that each produce one event, interleaved with entries
// that produce none, and returns the revisions that produced events.
func singleEventLog(t *testing.T, f *FSM, first uint64, n int) []uint64 {
	t.Helper()
	var revs []uint64
	idx := first
	for i := 0; i < n; i++ {
		k := pod(fmt.Sprintf("ns%d", i%2), fmt.Sprintf("p%d", i%3))
		if f.State().Get(k) == nil {
			mustApply(t, f, idx, Create(k, val(fmt.Sprint(idx)), Meta{}))
		} else if i%4 == 0 {
			mustApply(t, f, idx, Delete(k, 0))
		} else {
			mustApply(t, f, idx, Update(k, 0, val(fmt.Sprint(idx)), Meta{}))
		}
		revs = append(revs, idx)
		idx++
		if i%5 == 0 { // an entry without events in between
			apply(t, f, idx, Create(pod("none", "dup"), nil, Meta{}), Create(pod("none", "dup"), nil, Meta{}))
			idx++
		}
	}
	return revs
}

func eventRevs(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Revision
	}
	return out
}

func TestWatchResume(t *testing.T) {
	f := New(Options{})
	revs := singleEventLog(t, f, 1, 30)
	last := f.Revision()
	for from := uint64(0); from <= last; from++ {
		var want []uint64
		for _, r := range revs {
			if r > from {
				want = append(want, r)
			}
		}
		w := mustWatch(t, f, WatchOptions{Resource: "pods", From: from})
		got := eventRevs(recvN(t, w, len(want)))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("From %d: revisions %v, want %v", from, got, want)
		}
		if from%7 == 0 {
			// The backlog flows straight into live events, with no gap and no repeat.
			idx := f.Revision() + 1
			mustApply(t, f, idx, Create(pod("live", fmt.Sprint(idx)), nil, Meta{}))
			if ev := recv(t, w); ev.Revision != idx {
				t.Fatalf("From %d: first live event at %d, want %d", from, ev.Revision, idx)
			}
			revs = append(revs, idx)
			last = idx
		}
		w.Stop()
	}
}

func TestWatchFromCurrentDeliversOnlyNewEvents(t *testing.T) {
	f := New(Options{})
	singleEventLog(t, f, 1, 10)
	cur := f.Revision()
	w := mustWatch(t, f, WatchOptions{Resource: "pods", From: cur})
	mustApply(t, f, cur+1, Create(pod("new", "p"), val("n"), Meta{}))
	checkEvents(t, recvN(t, w, 1), []wantEvent{{Added, pod("new", "p"), cur + 1, "n"}})
}

// A client may list on one replica and then watch on another that has not yet applied the
// list's revision. Events up to From are already in the client's list and must not be
// delivered again when the lagging replica applies them.
func TestWatchFromAheadOfAppliedSkipsEventsUpToFrom(t *testing.T) {
	f := New(Options{})
	mustApply(t, f, 1, Create(pod("a", "p"), val("1"), Meta{}))
	w := mustWatch(t, f, WatchOptions{Resource: "pods", From: 3})
	mustApply(t, f, 2, Update(pod("a", "p"), 0, val("2"), Meta{}))
	mustApply(t, f, 3, Create(pod("a", "q"), val("3"), Meta{}))
	mustApply(t, f, 4, Create(pod("a", "r"), val("4"), Meta{}))
	checkEvents(t, recvN(t, w, 1), []wantEvent{{Added, pod("a", "r"), 4, "4"}})
}

func TestWatchTooOld(t *testing.T) {
	f := New(Options{HistorySize: 5})
	if got := f.OldestWatchRevision(); got != 0 {
		t.Fatalf("OldestWatchRevision of a new FSM = %d", got)
	}
	for i := uint64(1); i <= 10; i++ {
		mustApply(t, f, i, Create(pod("a", fmt.Sprint(i)), nil, Meta{}))
	}
	// History holds the events of 6..10.
	if got := f.OldestWatchRevision(); got != 5 {
		t.Fatalf("OldestWatchRevision = %d, want 5", got)
	}
	for _, from := range []uint64{0, 1, 4} {
		if _, err := f.Watch(WatchOptions{Resource: "pods", From: from}); err != ErrTooOld {
			t.Fatalf("From %d: err = %v, want ErrTooOld", from, err)
		}
	}
	w := mustWatch(t, f, WatchOptions{Resource: "pods", From: 5})
	if got := eventRevs(recvN(t, w, 5)); !reflect.DeepEqual(got, []uint64{6, 7, 8, 9, 10}) {
		t.Fatalf("From 5: %v", got)
	}
	w.Stop()

	// An entry with three events; then evictions that split its events.
	mustApply(t, f, 11, Create(pod("b", "1"), nil, Meta{}), Create(pod("b", "2"), nil, Meta{}), Create(pod("b", "3"), nil, Meta{}))
	if got := f.OldestWatchRevision(); got != 8 {
		t.Fatalf("OldestWatchRevision = %d, want 8", got)
	}
	for i := uint64(12); i <= 14; i++ {
		mustApply(t, f, i, Create(pod("c", fmt.Sprint(i)), nil, Meta{}))
	}
	// Ring: 11 11 12 13 14 — one event of 11 is gone, so 10 cannot resume but 11 can.
	if got := f.OldestWatchRevision(); got != 11 {
		t.Fatalf("OldestWatchRevision = %d, want 11", got)
	}
	if _, err := f.Watch(WatchOptions{Resource: "pods", From: 10}); err != ErrTooOld {
		t.Fatalf("From 10: err = %v, want ErrTooOld", err)
	}
	w = mustWatch(t, f, WatchOptions{Resource: "pods", From: 11})
	if got := eventRevs(recvN(t, w, 3)); !reflect.DeepEqual(got, []uint64{12, 13, 14}) {
		t.Fatalf("From 11: %v", got)
	}
	// A filter does not change what is too old.
	if _, err := f.Watch(WatchOptions{Resource: "nodes", From: 3}); err != ErrTooOld {
		t.Fatalf("other resource From 3: err = %v, want ErrTooOld", err)
	}
}

func hubWatches(f *FSM) int {
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	return len(f.hub.watches)
}

func TestSlowWatcherIsCutOffAndApplyNeverBlocks(t *testing.T) {
	const entries = 2000
	f := New(Options{WatchQueueLimit: 8, HistorySize: 16})
	slow := mustWatch(t, f, WatchOptions{Resource: "pods"})
	filtered := mustWatch(t, f, WatchOptions{Resource: "nodes"}) // matches nothing: never cut off

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i <= entries; i++ {
			f.Apply(&raft.Log{Index: i, Data: EncodeTxn(&Txn{Ops: []Op{Create(pod("a", fmt.Sprint(i)), nil, Meta{})}})})
		}
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatalf("Apply blocked on a watch nobody reads")
	}
	got := drainUntilClosed(t, slow)
	if slow.Err() != ErrSlowWatcher {
		t.Fatalf("slow watch Err = %v, want ErrSlowWatcher", slow.Err())
	}
	if len(got) >= entries {
		t.Fatalf("slow watch received all %d events", len(got))
	}
	// What it did receive is a gap-free prefix.
	for i, ev := range got {
		if ev.Revision != uint64(i+1) {
			t.Fatalf("event %d has revision %d", i, ev.Revision)
		}
	}
	if filtered.Err() != nil {
		t.Fatalf("idle watch ended: %v", filtered.Err())
	}
	if n := hubWatches(f); n != 1 {
		t.Fatalf("hub holds %d watches, want 1", n)
	}
	slow.Stop() // stopping an ended watch is harmless and keeps its reason
	if slow.Err() != ErrSlowWatcher {
		t.Fatalf("Stop replaced the end reason: %v", slow.Err())
	}
}

func TestWatchStop(t *testing.T) {
	f := New(Options{})
	w, err := f.Watch(WatchOptions{Resource: "pods"})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, 1, Create(pod("a", "p"), nil, Meta{}))
	recv(t, w)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); w.Stop() }()
	}
	wg.Wait()
	drainUntilClosed(t, w)
	if w.Err() != ErrWatchStopped {
		t.Fatalf("Err = %v, want ErrWatchStopped", w.Err())
	}
	if n := hubWatches(f); n != 0 {
		t.Fatalf("hub still holds %d watches", n)
	}
	// Applying after the stop neither blocks nor revives the watch.
	for i := uint64(2); i < 100; i++ {
		mustApply(t, f, i, Create(pod("a", fmt.Sprint(i)), nil, Meta{}))
	}
	if _, ok := <-w.Events(); ok {
		t.Fatalf("stopped watch delivered an event")
	}
	w.Stop()
	if w.Err() != ErrWatchStopped {
		t.Fatalf("Err after second Stop = %v", w.Err())
	}
}

func TestWatchStopWithUndeliveredEvents(t *testing.T) {
	f := New(Options{})
	for i := uint64(1); i <= 500; i++ {
		mustApply(t, f, i, Create(pod("a", fmt.Sprint(i)), nil, Meta{}))
	}
	w, err := f.Watch(WatchOptions{Resource: "pods"})
	if err != nil {
		t.Fatal(err)
	}
	recv(t, w)
	w.Stop()
	drainUntilClosed(t, w) // the pump gives up on its backlog and closes
	if w.Err() != ErrWatchStopped {
		t.Fatalf("Err = %v", w.Err())
	}
}

func TestRestoreEndsWatchesAndRefusesOlderResumes(t *testing.T) {
	src := New(Options{})
	singleEventLog(t, src, 1, 20)
	snapRev := src.Revision()
	snap := snapshotBytes(t, src)

	f := New(Options{})
	singleEventLog(t, f, 1, 5)
	w1 := mustWatch(t, f, WatchOptions{Resource: "pods"})
	w2 := mustWatch(t, f, WatchOptions{Resource: "nodes", From: f.Revision()})
	recv(t, w1)
	restore(t, f, snap)
	for i, w := range []*Watch{w1, w2} {
		drainUntilClosed(t, w)
		if w.Err() != ErrTooOld {
			t.Fatalf("watch %d: Err = %v, want ErrTooOld", i, w.Err())
		}
	}
	if f.Revision() != snapRev || f.OldestWatchRevision() != snapRev {
		t.Fatalf("after restore: revision %d, oldest watch %d; want %d", f.Revision(), f.OldestWatchRevision(), snapRev)
	}
	if f.State().Hash() != src.State().Hash() {
		t.Fatalf("restored hash differs")
	}
	for _, from := range []uint64{0, 1, snapRev - 1} {
		if _, err := f.Watch(WatchOptions{Resource: "pods", From: from}); err != ErrTooOld {
			t.Fatalf("From %d after restore: err = %v, want ErrTooOld", from, err)
		}
	}
	// From the snapshot revision on, watches work and see only new events.
	w := mustWatch(t, f, WatchOptions{Resource: "pods", From: snapRev})
	mustApply(t, f, snapRev+1, Create(pod("after", "restore"), val("x"), Meta{}))
	checkEvents(t, recvN(t, w, 1), []wantEvent{{Added, pod("after", "restore"), snapRev + 1, "x"}})
	if n := hubWatches(f); n != 1 {
		t.Fatalf("hub holds %d watches, want 1", n)
	}
}

// TestWatchOpenedWhileApplyingIsGapFree is the list-then-watch pattern under concurrency:
// a reader takes the State, then watches from its revision, while entries keep arriving.
// Every entry creates exactly one event, so the watch must see From+1, From+2, ... with no
// gap and no repeat, however the watch registration interleaves with Apply.
func TestWatchOpenedWhileApplyingIsGapFree(t *testing.T) {
	const entries = 3000
	f := New(Options{HistorySize: entries + 10, WatchQueueLimit: entries + 10})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i <= entries; i++ {
			f.Apply(&raft.Log{Index: i, Data: EncodeTxn(&Txn{Ops: []Op{Create(pod("a", fmt.Sprint(i)), nil, Meta{})}})})
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 40; n++ {
				from := f.State().Revision()
				if from >= entries {
					return
				}
				w, err := f.Watch(WatchOptions{Resource: "pods", From: from})
				if err != nil {
					errs <- err
					return
				}
				// Read a few events and check they continue From exactly.
				for want := from + 1; want <= from+5 && want <= entries; want++ {
					select {
					case ev, ok := <-w.Events():
						if !ok {
							errs <- fmt.Errorf("watch from %d ended: %v", from, w.Err())
							return
						}
						if ev.Revision != want {
							errs <- fmt.Errorf("watch from %d: got revision %d, want %d", from, ev.Revision, want)
							w.Stop()
							return
						}
					case <-time.After(waitTimeout):
						errs <- fmt.Errorf("watch from %d: no event %d", from, want)
						w.Stop()
						return
					}
				}
				w.Stop()
			}
		}()
	}
	wg.Wait()
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// waitTimeout bounds every wait on a channel in the tests. It is generous on purpose: the
// tests never assert on how long something took, only that it happened.
const waitTimeout = 10 * time.Second

// apply feeds one txn entry at index to f and returns its result.
func apply(t testing.TB, f *FSM, index uint64, ops ...Op) *TxnResult {
	t.Helper()
	res, ok := f.Apply(&raft.Log{Index: index, Data: EncodeTxn(&Txn{Ops: ops})}).(*TxnResult)
	if !ok {
		t.Fatalf("Apply at %d did not return a *TxnResult", index)
	}
	return res
}

// mustApply is apply that fails the test when the txn fails.
func mustApply(t testing.TB, f *FSM, index uint64, ops ...Op) *TxnResult {
	t.Helper()
	res := apply(t, f, index, ops...)
	if res.Err != nil {
		t.Fatalf("txn at %d failed: %v (op %d, current %d)", index, res.Err, res.Failed, res.Current)
	}
	return res
}

// panics reports whether fn panicked, and with what.
func panics(fn func()) (v interface{}, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			v, panicked = r, true
		}
	}()
	fn()
	return nil, false
}

// recordBytes is the canonical encoding of a record, used to compare records exactly.
func recordBytes(r *Record) []byte {
	if r == nil {
		return nil
	}
	var e encoder
	e.record(r)
	return e.buf
}

func sameRecord(a, b *Record) bool { return bytes.Equal(recordBytes(a), recordBytes(b)) }

func sameRecords(a, b []*Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameRecord(a[i], b[i]) {
			return false
		}
	}
	return true
}

func keysOf(rs []*Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Key.String()
	}
	return out
}

func describeEvents(evs []Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("%s %s@%d", ev.Type, ev.Record.Key, ev.Revision)
	}
	return out
}

// recv waits for the next event of w; it fails the test if the watch ends or nothing
// arrives in time.
func recv(t testing.TB, w *Watch) Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watch ended unexpectedly: %v", w.Err())
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatalf("no event within %v", waitTimeout)
	}
	panic("unreachable")
}

// recvN receives exactly n events.
func recvN(t testing.TB, w *Watch, n int) []Event {
	t.Helper()
	out := make([]Event, 0, n)
	for len(out) < n {
		out = append(out, recv(t, w))
	}
	return out
}

// drainUntilClosed reads w until Events is closed and returns what it read.
func drainUntilClosed(t testing.TB, w *Watch) []Event {
	t.Helper()
	var out []Event
	deadline := time.After(waitTimeout)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-deadline:
			t.Fatalf("watch not closed within %v (read %d events)", waitTimeout, len(out))
		}
	}
}

// expectNoEventBefore proves that w received nothing before the event for marker, which the
// test applied after the entries whose events must not appear.
func expectNoEventBefore(t testing.TB, w *Watch, marker Key) {
	t.Helper()
	ev := recv(t, w)
	if ev.Record.Key != marker {
		t.Fatalf("got unexpected event %s %s@%d before marker %s", ev.Type, ev.Record.Key, ev.Revision, marker)
	}
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	failWrites error
	closed     int
	cancelled  int
}

func (s *memSink) Write(p []byte) (int, error) {
	if s.failWrites != nil {
		return 0, s.failWrites
	}
	return s.Buffer.Write(p)
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed++; return nil }
func (s *memSink) Cancel() error { s.cancelled++; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// snapshotBytes takes a snapshot of f through the raft.FSMSnapshot interface.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if sink.closed != 1 || sink.cancelled != 0 {
		t.Fatalf("Persist: sink closed %d times, cancelled %d times; want 1 and 0", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// readCloser records whether Restore closed it.
type readCloser struct {
	*bytes.Reader
	closed bool
}

func (r *readCloser) Close() error { r.closed = true; return nil }

func restore(t testing.TB, f *FSM, snap []byte) {
	t.Helper()
	rc := &readCloser{Reader: bytes.NewReader(snap)}
	if err := f.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !rc.closed {
		t.Fatalf("Restore did not close its reader")
	}
}

func wantErr(t testing.TB, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: err = %v, want %v", what, got, want)
	}
}

func pod(ns, name string) Key  { return Key{Resource: "pods", Namespace: ns, Name: name} }
func node(name string) Key     { return Key{Resource: "nodes", Name: name} }
func val(s string) []byte      { return []byte(s) }
func labels(kv ...string) Meta { return Meta{Labels: pairs(kv)} }
func onNode(n string) Meta     { return Meta{Fields: map[string]string{"spec.nodeName": n}} }

func pairs(kv []string) map[string]string {
	if len(kv)%2 != 0 {
		panic("odd key/value list")
	}
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

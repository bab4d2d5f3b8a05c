package controller

import (
	"testing"
	"time"

	"skiff/fsm"
)

func TestQueueDeduplicatesAndRequeuesKeysChangedWhileProcessing(t *testing.T) {
	q := newQueue()
	a, b := fsm.Key{Resource: "x", Name: "a"}, fsm.Key{Resource: "x", Name: "b"}
	q.add(a)
	q.add(b)
	q.add(a)
	if q.len() != 2 {
		t.Fatalf("len = %d, want 2 (a queued once)", q.len())
	}
	k, _ := q.get()
	if k != a {
		t.Fatalf("got %v first, want a", k)
	}
	q.add(a) // changed while processing: must come back once done, not go to a second worker
	if q.len() != 1 {
		t.Fatalf("a key being processed was queued beside itself")
	}
	q.done(a, false)
	if q.len() != 2 {
		t.Fatalf("a dirty key did not come back after done: len %d", q.len())
	}
	q.close()
	if _, ok := q.get(); ok {
		t.Fatal("get on a closed queue returned a key")
	}
}

func TestQueueBacksOffFailuresExponentially(t *testing.T) {
	q := newQueue()
	k := fsm.Key{Resource: "x", Name: "a"}
	for i := range 5 {
		q.add(k)
		got, _ := q.get()
		q.done(got, true)
		if q.failures[k] != i+1 {
			t.Fatalf("failures = %d after %d failures", q.failures[k], i+1)
		}
	}
	// The key comes back on its own after the back-off.
	got, ok := q.get()
	if !ok || got != k {
		t.Fatalf("failed key never came back")
	}
	q.done(got, false)
	if _, ok := q.failures[k]; ok {
		t.Fatal("success did not reset the failure count")
	}
}

// A key asked to come back many times keeps one timer, the earliest; closing stops it.
func TestQueueKeepsOneTimerPerKey(t *testing.T) {
	q := newQueue()
	k := fsm.Key{Resource: "x", Name: "a"}
	for range 100 {
		q.addAfter(k, time.Hour)
	}
	q.addAfter(k, 10*time.Millisecond)
	q.addAfter(k, time.Hour) // later than what is pending: ignored
	q.mu.Lock()
	n := len(q.later)
	q.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d timers for one key", n)
	}
	got, ok := q.get()
	if !ok || got != k {
		t.Fatal("the earliest timer did not bring the key back")
	}
	q.done(got, false)
	q.addAfter(k, time.Hour)
	q.close()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.later) != 0 {
		t.Fatal("close left timers running")
	}
}

package agent

import (
	"testing"
	"time"
)

// The back-off follows kubelet's: the first restart is immediate, later ones wait a
// doubling delay counted from the exit, capped at backoffMax, and a container that ran
// long enough between failures starts over.
func TestCrashBackoff(t *testing.T) {
	b := newCrashBackoff()
	t0 := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	if w := b.wait("c", t0, t0); w != 0 {
		t.Fatalf("first failure waits %s, want an immediate restart", w)
	}
	if d := b.restarted("c", t0); d != backoffBase {
		t.Fatalf("delay after the first restart %s, want %s", d, backoffBase)
	}
	// Crashes 1 s after starting: waits the delay counted from the exit, not from the start.
	exit := t0.Add(time.Second)
	if w := b.wait("c", exit, exit.Add(3*time.Second)); w != backoffBase-3*time.Second {
		t.Fatalf("3 s after the second exit: wait %s, want %s", w, backoffBase-3*time.Second)
	}
	if w := b.wait("c", exit, exit.Add(backoffBase)); w != 0 {
		t.Fatalf("a delay after the exit: still waits %s", w)
	}
	want := backoffBase
	for i := 0; i < 10; i++ {
		want = min(2*want, backoffMax)
		exit = exit.Add(time.Minute)
		if d := b.restarted("c", exit); d != want {
			t.Fatalf("restart %d: delay %s, want %s", i+2, d, want)
		}
	}
	if b.current("c") != backoffMax {
		t.Fatalf("delay not capped: %s", b.current("c"))
	}
	// Ran for longer than two maximum delays before failing: restarts at once, delay starts over.
	later := exit.Add(2*backoffMax + time.Minute)
	if w := b.wait("c", later, later); w != 0 {
		t.Fatalf("after a long run: wait %s, want none", w)
	}
	if d := b.restarted("c", later); d != backoffBase {
		t.Fatalf("after a long run: delay %s, want %s", d, backoffBase)
	}
	// Containers of one pod back off independently.
	if w := b.wait("other", later, later); w != 0 || b.current("other") != 0 {
		t.Fatalf("another container inherited a back-off")
	}
}

package gossip

import (
	"errors"
	"testing"
)

// TestIsolateAndReconnect cuts one member off: every side declares the other dead, and
// after Reconnect everyone is alive again without waiting for a periodic push/pull.
func TestIsolateAndReconnect(t *testing.T) {
	net := newMockNet("m1", "m2", "a1")
	faults := NewFaults()
	m1 := startPool(t, testConfig("m1", RoleMaster, net.transport("m1")))
	cfg := testConfig("m2", RoleMaster, net.transport("m2"))
	cfg.Faults = faults
	m2 := startPool(t, cfg)
	a1 := startPool(t, testConfig("a1", RoleAgent, net.transport("a1")))
	for _, p := range []*Pool{m2, a1} {
		if n, err := p.Join([]string{m1.Addr()}); err != nil || n != 1 {
			t.Fatalf("%s Join: n=%d err=%v", p.Local().Name, n, err)
		}
	}
	pools := []*Pool{m1, m2, a1}
	for _, p := range pools {
		waitFor(t, p.Local().Name+" sees all three alive", func() bool { return len(p.Alive("")) == 3 })
	}

	if err := m2.Isolate(); err != nil {
		t.Fatal(err)
	}
	if !faults.Isolated() {
		t.Fatal("Isolated() = false after Isolate")
	}
	waitFor(t, "m1 declares m2 dead", stateIs(m1, "m2", StateDead))
	waitFor(t, "a1 declares m2 dead", stateIs(a1, "m2", StateDead))
	waitFor(t, "m2 declares m1 and a1 dead", func() bool {
		return stateIs(m2, "m1", StateDead)() && stateIs(m2, "a1", StateDead)()
	})
	if got := len(m1.Alive("")); got != 2 {
		t.Fatalf("m1 sees %d alive during the isolation, want 2 (itself and a1)", got)
	}

	n, err := m2.Reconnect()
	if err != nil || n == 0 {
		t.Fatalf("Reconnect: n=%d err=%v", n, err)
	}
	for _, p := range pools {
		waitFor(t, p.Local().Name+" sees all three alive again", func() bool { return len(p.Alive("")) == 3 })
	}
}

func TestIsolateWithoutFaults(t *testing.T) {
	net := newMockNet("m1")
	p := startPool(t, testConfig("m1", RoleMaster, net.transport("m1")))
	if err := p.Isolate(); !errors.Is(err, ErrNoFaults) {
		t.Fatalf("Isolate without Faults: %v, want ErrNoFaults", err)
	}
	if _, err := p.Reconnect(); !errors.Is(err, ErrNoFaults) {
		t.Fatalf("Reconnect without Faults: %v, want ErrNoFaults", err)
	}
}

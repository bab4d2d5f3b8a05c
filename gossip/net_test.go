package gossip

import (
	"bytes"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRealNetworkEncryption is the one test over real UDP and TCP (127.0.0.1, port 0).
// Members sharing a key join and see each other; a member with another key, or with
// none, cannot join and is never listed, because encryption is on the wire.
func TestRealNetworkEncryption(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	realConfig := func(name string, key []byte) Config {
		cfg := testConfig(name, RoleMaster, nil)
		cfg.BindAddr = "127.0.0.1:0"
		cfg.SecretKey = key
		return cfg
	}
	a := startPool(t, realConfig("a", key))
	b := startPool(t, realConfig("b", key))

	host, port, err := net.SplitHostPort(a.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q", a.Addr())
	}
	if a.Addr() == b.Addr() {
		t.Fatalf("a and b both advertise %s", a.Addr())
	}

	if n, err := b.Join([]string{a.Addr()}); err != nil || n != 1 {
		t.Fatalf("b Join(a) = %d, %v", n, err)
	}
	for _, p := range []*Pool{a, b} {
		waitFor(t, p.Local().Name+" sees a and b alive", func() bool {
			return slices.Equal(names(p.Alive(RoleMaster)), []string{"a", "b"})
		})
	}
	if m, _ := memberOf(a, "b"); m.Addr != b.Addr() || m.Meta != b.Local().Meta {
		t.Errorf("a sees b as %+v, b is %+v", m, b.Local())
	}

	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"wrongkey", bytes.Repeat([]byte{0x17}, 32)},
		{"nokey", nil},
	} {
		o := startPool(t, realConfig(tc.name, tc.key))
		n, err := o.Join([]string{a.Addr()})
		if err == nil || n != 0 {
			t.Fatalf("%s Join(a) = %d, %v; want an error", tc.name, n, err)
		}
		if !strings.Contains(err.Error(), a.Addr()) {
			t.Errorf("%s Join error does not name %s: %v", tc.name, a.Addr(), err)
		}
		// Give any stray packet time to arrive, then check nobody listed the outsider.
		time.Sleep(5 * testProbeInterval)
		for _, p := range []*Pool{a, b} {
			if _, ok := memberOf(p, tc.name); ok {
				t.Errorf("%s lists %s, which has the wrong key", p.Local().Name, tc.name)
			}
		}
		if got := names(o.Members()); !slices.Equal(got, []string{tc.name}) {
			t.Errorf("%s knows %v", tc.name, got)
		}
		_ = o.Shutdown()
	}

	// The keyed pair still works: a leave is seen over the real network.
	if err := b.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a sees b left", stateIs(a, "b", StateLeft))
}

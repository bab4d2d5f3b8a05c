package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// Test timing: fast probes so deaths are noticed quickly. Nothing asserts on durations;
// waits poll with generous deadlines.
const (
	testProbeInterval  = 200 * time.Millisecond
	testProbeTimeout   = 100 * time.Millisecond
	testGossipInterval = 20 * time.Millisecond
	testSuspicionMult  = 2
	waitTimeout        = 20 * time.Second
	pollEvery          = 20 * time.Millisecond
)

func testLogger() *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func testConfig(name, role string, tr memberlist.NodeAwareTransport) Config {
	return Config{
		Name:           name,
		Meta:           Meta{Role: role, Name: name, API: name + ".api:6443", Version: "v1"},
		ProbeInterval:  testProbeInterval,
		ProbeTimeout:   testProbeTimeout,
		GossipInterval: testGossipInterval,
		SuspicionMult:  testSuspicionMult,
		Logger:         testLogger(),
		Transport:      tr,
	}
}

func startPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", cfg.Name, err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

// waitFor polls cond every 20 ms until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(pollEvery)
	}
}

func memberOf(p *Pool, name string) (Member, bool) {
	for _, m := range p.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

func stateIs(p *Pool, name string, st State) func() bool {
	return func() bool {
		m, ok := memberOf(p, name)
		return ok && m.State == st
	}
}

func names(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// cluster starts masters m1, m2 and agent a1 on a mock network that also has spare
// transports, and joins m2 and a1 through m1.
func cluster(t *testing.T, spare ...string) (*mockNet, []*Pool) {
	t.Helper()
	net := newMockNet(append([]string{"m1", "m2", "a1"}, spare...)...)
	m1 := startPool(t, testConfig("m1", RoleMaster, net.transport("m1")))
	m2 := startPool(t, testConfig("m2", RoleMaster, net.transport("m2")))
	a1 := startPool(t, testConfig("a1", RoleAgent, net.transport("a1")))
	for _, p := range []*Pool{m2, a1} {
		n, err := p.Join([]string{m1.Addr()})
		if err != nil || n != 1 {
			t.Fatalf("%s Join: n=%d err=%v", p.Local().Name, n, err)
		}
	}
	pools := []*Pool{m1, m2, a1}
	for _, p := range pools {
		waitFor(t, p.Local().Name+" sees all three alive", func() bool { return len(p.Alive("")) == 3 })
	}
	return net, pools
}

func TestThreePoolsSeeEachOther(t *testing.T) {
	_, pools := cluster(t)
	want := map[string]Member{}
	for _, p := range pools {
		l := p.Local()
		if l.State != StateAlive || l.Addr != p.Addr() {
			t.Fatalf("Local() = %+v, Addr() = %q", l, p.Addr())
		}
		want[l.Name] = l
	}
	for _, p := range pools {
		ms := p.Members()
		if got := names(ms); !slices.Equal(got, []string{"a1", "m1", "m2"}) {
			t.Fatalf("%s Members() names = %v, want sorted [a1 m1 m2]", p.Local().Name, got)
		}
		for _, m := range ms {
			if m != want[m.Name] {
				t.Errorf("%s sees %+v, want %+v", p.Local().Name, m, want[m.Name])
			}
		}
	}
	if m := want["m1"].Meta; m.Role != RoleMaster || m.Name != "m1" || m.API != "m1.api:6443" || m.Version != "v1" {
		t.Errorf("m1 meta = %+v", m)
	}
}

func TestAliveFiltersByRole(t *testing.T) {
	_, pools := cluster(t)
	for _, p := range pools {
		if got := names(p.Alive(RoleMaster)); !slices.Equal(got, []string{"m1", "m2"}) {
			t.Errorf("%s Alive(master) = %v", p.Local().Name, got)
		}
		if got := names(p.Alive(RoleAgent)); !slices.Equal(got, []string{"a1"}) {
			t.Errorf("%s Alive(agent) = %v", p.Local().Name, got)
		}
		if got := names(p.Alive("")); !slices.Equal(got, []string{"a1", "m1", "m2"}) {
			t.Errorf("%s Alive(\"\") = %v", p.Local().Name, got)
		}
		if got := p.Alive("nope"); len(got) != 0 {
			t.Errorf("%s Alive(nope) = %v", p.Local().Name, got)
		}
	}
}

func TestUpdateMetaPropagates(t *testing.T) {
	_, pools := cluster(t)
	m2 := pools[1]
	nm := Meta{Role: RoleMaster, API: "10.0.0.2:6443", Raft: "10.0.0.2:7000", Version: "v2"}
	if err := m2.UpdateMeta(nm); err != nil {
		t.Fatal(err)
	}
	nm.Name = "m2" // defaulted
	if got := m2.Local().Meta; got != nm {
		t.Fatalf("Local().Meta = %+v right after UpdateMeta, want %+v", got, nm)
	}
	for _, p := range pools {
		waitFor(t, p.Local().Name+" sees m2's new meta", func() bool {
			m, ok := memberOf(p, "m2")
			return ok && m.Meta == nm && m.State == StateAlive
		})
	}
}

func TestLeaveIsSeenAsLeft(t *testing.T) {
	_, pools := cluster(t)
	m1, m2, a1 := pools[0], pools[1], pools[2]
	if err := a1.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if st := a1.Local().State; st != StateLeft {
		t.Errorf("a1 Local().State after Leave = %v", st)
	}
	for _, p := range []*Pool{m1, m2} {
		waitFor(t, p.Local().Name+" sees a1 left", stateIs(p, "a1", StateLeft))
		if got := names(p.Alive("")); !slices.Equal(got, []string{"m1", "m2"}) {
			t.Errorf("%s Alive after a1 left = %v", p.Local().Name, got)
		}
		if got := p.Alive(RoleAgent); len(got) != 0 {
			t.Errorf("%s Alive(agent) after a1 left = %v", p.Local().Name, got)
		}
	}
	if err := a1.UpdateMeta(Meta{Role: RoleAgent}); err == nil {
		t.Error("UpdateMeta after Leave succeeded")
	}
	if err := a1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// Still left, not dead, after the shutdown that follows a leave.
	time.Sleep(5 * testProbeInterval)
	for _, p := range []*Pool{m1, m2} {
		if m, _ := memberOf(p, "a1"); m.State != StateLeft {
			t.Errorf("%s sees a1 as %v after its shutdown, want left", p.Local().Name, m.State)
		}
	}
}

func TestShutdownIsSeenAsDead(t *testing.T) {
	_, pools := cluster(t)
	m1, m2, a1 := pools[0], pools[1], pools[2]
	if err := a1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := a1.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	for _, p := range []*Pool{m1, m2} {
		waitFor(t, p.Local().Name+" sees a1 dead", stateIs(p, "a1", StateDead))
		if got := names(p.Alive("")); !slices.Equal(got, []string{"m1", "m2"}) {
			t.Errorf("%s Alive after a1 died = %v", p.Local().Name, got)
		}
		if got := names(p.Members()); !slices.Equal(got, []string{"a1", "m1", "m2"}) {
			t.Errorf("%s Members after a1 died = %v (dead members stay listed)", p.Local().Name, got)
		}
	}
	if _, err := a1.Join([]string{m1.Addr()}); !errors.Is(err, ErrShutdown) {
		t.Errorf("Join after Shutdown: %v", err)
	}
	if err := a1.UpdateMeta(Meta{Role: RoleAgent}); !errors.Is(err, ErrShutdown) {
		t.Errorf("UpdateMeta after Shutdown: %v", err)
	}
	if err := a1.Leave(time.Second); !errors.Is(err, ErrShutdown) {
		t.Errorf("Leave after Shutdown: %v", err)
	}
}

func TestMemberComesBack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leave  bool   // Leave before Shutdown
		newTr  string // transport (address) the member comes back on; "" = its old one
		want   State  // what the others see before it comes back
		joinAt int    // index of the pool the returning member joins through
		quick  bool   // come back before the others notice it was gone
	}{
		{"after dying", false, "", StateDead, 1, false},
		{"after leaving", true, "", StateLeft, 1, false},
		{"after dying, on a new address", false, "a1-new", StateDead, 0, false},
		{"after leaving, on a new address", true, "a1-new", StateLeft, 0, false},
		{"restarted at once", false, "", StateDead, 0, true},
		{"restarted at once, on a new address", false, "a1-new", StateDead, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net, pools := cluster(t, "a1-new")
			m1, m2, a1 := pools[0], pools[1], pools[2]
			oldAddr := a1.Addr()
			if tc.leave {
				if err := a1.Leave(5 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if err := a1.Shutdown(); err != nil {
				t.Fatal(err)
			}
			for _, p := range []*Pool{m1, m2} {
				if !tc.quick {
					waitFor(t, p.Local().Name+" sees a1 "+tc.want.String(), stateIs(p, "a1", tc.want))
				}
			}

			tr := "a1"
			if tc.newTr != "" {
				tr = tc.newTr
			}
			cfg := testConfig("a1", RoleAgent, net.transport(tr))
			cfg.Meta.Version = "v2"
			again := startPool(t, cfg)
			if tc.newTr != "" && again.Addr() == oldAddr {
				t.Fatalf("came back on the old address %s", oldAddr)
			}
			if _, err := again.Join([]string{pools[tc.joinAt].Addr()}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []*Pool{m1, m2, again} {
				waitFor(t, p.Local().Name+" sees a1 alive again with its new meta and address", func() bool {
					m, ok := memberOf(p, "a1")
					return ok && m.State == StateAlive && m.Meta.Version == "v2" && m.Addr == again.Addr()
				})
				waitFor(t, p.Local().Name+" sees all three alive", func() bool { return len(p.Alive("")) == 3 })
			}
		})
	}
}

// waitSignal behaves like a level-triggered consumer: it looks at the state only after
// a signal on ch, and fails if the state it waits for shows up without a signal.
func waitSignal(t *testing.T, ch <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case <-ch:
			if cond() {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for a change signal showing %s (state now: %v)", what, cond())
		}
	}
}

func TestChangesFiresAndNeverBlocks(t *testing.T) {
	net := newMockNet("m1", "m2", "a1", "deaf")
	m1 := startPool(t, testConfig("m1", RoleMaster, net.transport("m1")))
	// deaf's Changes channel is never read: memberlist must carry on regardless.
	deaf := startPool(t, testConfig("deaf", RoleAgent, net.transport("deaf")))
	if _, err := deaf.Join([]string{m1.Addr()}); err != nil {
		t.Fatal(err)
	}
	ch := m1.Changes()
	if ch != m1.Changes() {
		t.Fatal("Changes() returned different channels")
	}
	waitSignal(t, ch, "deaf joined", stateIs(m1, "deaf", StateAlive))

	m2 := startPool(t, testConfig("m2", RoleMaster, net.transport("m2")))
	if _, err := m2.Join([]string{deaf.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "m2 joined", stateIs(m1, "m2", StateAlive))

	for i := range 30 {
		if err := m2.UpdateMeta(Meta{Role: RoleMaster, Version: fmt.Sprintf("v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	metaIs := func(p *Pool, v string) func() bool {
		return func() bool { m, ok := memberOf(p, "m2"); return ok && m.Meta.Version == v }
	}
	waitSignal(t, ch, "m2's last meta", metaIs(m1, "v29"))
	waitFor(t, "deaf sees m2's last meta", metaIs(deaf, "v29"))

	a1 := startPool(t, testConfig("a1", RoleAgent, net.transport("a1")))
	if _, err := a1.Join([]string{m1.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "a1 joined", stateIs(m1, "a1", StateAlive))
	if err := a1.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "a1 left", stateIs(m1, "a1", StateLeft))

	if err := m2.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "m2 dead", stateIs(m1, "m2", StateDead))

	// deaf, never read, still tracked everything and still gossips.
	waitFor(t, "deaf sees m2 dead and a1 left", func() bool {
		return stateIs(deaf, "m2", StateDead)() && stateIs(deaf, "a1", StateLeft)()
	})
	if err := deaf.UpdateMeta(Meta{Role: RoleAgent, Version: "deaf-2"}); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "deaf's new meta", func() bool {
		m, ok := memberOf(m1, "deaf")
		return ok && m.Meta.Version == "deaf-2"
	})
	select {
	case <-deaf.Changes():
	default:
		t.Error("deaf's Changes() holds no pending signal")
	}
}

func TestPruneDropsLongDeadMembers(t *testing.T) {
	_, pools := cluster(t)
	m1, a1 := pools[0], pools[2]
	if err := a1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "m1 sees a1 dead", stateIs(m1, "a1", StateDead))
	for len(m1.Changes()) > 0 {
		<-m1.Changes()
	}
	m1.prune(time.Now()) // too early: nothing to drop
	if _, ok := memberOf(m1, "a1"); !ok {
		t.Fatal("a1 pruned before deadRetention")
	}
	m1.prune(time.Now().Add(deadRetention + time.Second))
	if got := names(m1.Members()); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("Members after prune = %v", got)
	}
	select {
	case <-m1.Changes():
	default:
		t.Error("prune did not signal a change")
	}
}

func TestMetaTooLarge(t *testing.T) {
	net := newMockNet("m1")
	big := Meta{Role: RoleMaster, API: strings.Repeat("x", memberlist.MetaMaxSize)}
	cfg := testConfig("m1", RoleMaster, net.transport("m1"))
	cfg.Meta = big
	if _, err := Start(cfg); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("Start with oversized meta: %v", err)
	}

	cfg = testConfig("m1", RoleMaster, net.transport("m1"))
	p := startPool(t, cfg)
	before := p.Local().Meta
	if err := p.UpdateMeta(big); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("UpdateMeta with oversized meta: %v", err)
	}
	if got := p.Local().Meta; got != before {
		t.Errorf("meta changed by a rejected update: %+v", got)
	}
	// Just under the limit is fine.
	ok := Meta{Role: RoleMaster, Name: "m1"}
	base, _ := encodeMeta(ok)
	ok.API = strings.Repeat("y", memberlist.MetaMaxSize-len(base)-len(`,"api":""`))
	if b, err := encodeMeta(ok); err != nil || len(b) != memberlist.MetaMaxSize {
		t.Fatalf("meta of exactly %d bytes: len=%d err=%v", memberlist.MetaMaxSize, len(b), err)
	}
	if err := p.UpdateMeta(ok); err != nil {
		t.Fatalf("UpdateMeta at the limit: %v", err)
	}
}

func TestJoinErrors(t *testing.T) {
	net := newMockNet("m1", "m2")
	m1 := startPool(t, testConfig("m1", RoleMaster, net.transport("m1")))
	m2 := startPool(t, testConfig("m2", RoleMaster, net.transport("m2")))

	const nowhere = "127.0.0.1:9999"
	n, err := m2.Join([]string{nowhere})
	if err == nil || n != 0 {
		t.Fatalf("Join(nowhere) = %d, %v", n, err)
	}
	if !strings.Contains(err.Error(), nowhere) || errors.Unwrap(err) == nil {
		t.Errorf("Join error should name %s and wrap memberlist's error: %v", nowhere, err)
	}

	n, err = m2.Join([]string{nowhere, m1.Addr()})
	if err != nil || n != 1 {
		t.Fatalf("Join(nowhere, m1) = %d, %v; want 1, nil", n, err)
	}
	waitFor(t, "m1 sees m2", stateIs(m1, "m2", StateAlive))

	if n, err := m2.Join(nil); n != 0 || err != nil {
		t.Errorf("Join(nil) = %d, %v", n, err)
	}
}

func TestConfigValidation(t *testing.T) {
	net := newMockNet("x")
	tr := net.transport("x")
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no name", Config{Transport: tr}},
		{"bad key", Config{Name: "x", Transport: tr, SecretKey: []byte("short")}},
		{"probe timeout not below interval", Config{Name: "x", Transport: tr, ProbeInterval: time.Second, ProbeTimeout: time.Second}},
		{"unspecified bind without advertise", Config{Name: "x", BindAddr: "0.0.0.0:0"}},
		{"empty bind host without advertise", Config{Name: "x", BindAddr: ":0"}},
		{"hostname bind", Config{Name: "x", BindAddr: "localhost:0"}},
		{"bad advertise", Config{Name: "x", BindAddr: "127.0.0.1:0", AdvertiseAddr: "0.0.0.0:1"}},
	} {
		if p, err := Start(tc.cfg); err == nil {
			_ = p.Shutdown()
			t.Errorf("%s: Start succeeded", tc.name)
		}
	}
}

func TestNodeStateLayout(t *testing.T) {
	// Telling left from dead relies on memberlist's unexported nodeState layout; the
	// pinned version must match the mirror.
	if !nodeStateLayoutOK {
		t.Fatal("memberlist's nodeState no longer matches nodeStateHead")
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateAlive: "alive", StateSuspect: "suspect", StateDead: "dead", StateLeft: "left", 7: "State(7)"} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestSlogWriterLevels(t *testing.T) {
	var got []string
	h := &recordHandler{fn: func(r slog.Record) { got = append(got, r.Level.String()+" "+r.Message) }}
	w := slogWriter{slog.New(h)}
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=1.2.3.4:5\n",
		"[WARN] memberlist: Refuting a suspect message (from: a)\n",
		"[ERR] memberlist: boom\n",
		"[INFO] memberlist: Marking x as failed\n",
		"plain\n",
	} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"DEBUG Stream connection from=1.2.3.4:5",
		"WARN Refuting a suspect message (from: a)",
		"ERROR boom",
		"INFO Marking x as failed",
		"INFO plain",
	}
	if !slices.Equal(got, want) {
		t.Errorf("records = %q, want %q", got, want)
	}
}

type recordHandler struct{ fn func(slog.Record) }

func (h *recordHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error { h.fn(r); return nil }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h *recordHandler) WithGroup(string) slog.Handler                 { return h }

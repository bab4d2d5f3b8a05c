package master

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"skiff/gossip"
	"skiff/raft"
)

func TestAutopilotDecide(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	cfg := AutopilotConfig{DeadServerCleanup: 30 * time.Second}.withDefaults()
	alive := func(id string) serverStatus {
		return serverStatus{ID: id, Voter: true, Health: healthAlive, Since: now.Add(-time.Hour)}
	}
	dead := func(id string, ago time.Duration) serverStatus {
		return serverStatus{ID: id, Voter: true, Health: healthDead, Since: now.Add(-ago), Detail: "dead in gossip"}
	}
	left := func(id string, ago time.Duration) serverStatus {
		return serverStatus{ID: id, Voter: true, Health: healthLeft, Since: now.Add(-ago), Detail: "left gossip"}
	}
	nonVoter := func(s serverStatus) serverStatus { s.Voter = false; return s }
	type want map[string]string // ID → rule
	tests := []struct {
		name    string
		servers []serverStatus
		cfg     AutopilotConfig
		want    want
	}{
		{"all alive: nothing to decide",
			[]serverStatus{alive("m1"), alive("m2"), alive("m3"), alive("m4")}, cfg, want{}},
		{"dead shorter than the threshold is kept",
			[]serverStatus{alive("m1"), alive("m2"), alive("m3"), dead("m4", 29*time.Second)}, cfg,
			want{"m4": ruleWaiting}},
		{"dead for the threshold with a safe quorum is removed",
			[]serverStatus{alive("m1"), alive("m2"), alive("m3"), dead("m4", 30*time.Second)}, cfg,
			want{"m4": ruleRemove}},
		{"removal below the minimum quorum is refused",
			[]serverStatus{alive("m1"), alive("m2"), dead("m3", time.Hour)}, cfg,
			want{"m3": ruleMinQuorum}},
		{"a lower minimum allows shrinking to it",
			[]serverStatus{alive("m1"), alive("m2"), dead("m3", time.Hour)}, AutopilotConfig{DeadServerCleanup: time.Second, MinQuorum: 2}.withDefaults(),
			want{"m3": ruleRemove}},
		{"left is removed at once",
			[]serverStatus{alive("m1"), alive("m2"), alive("m3"), left("m4", 0)}, cfg,
			want{"m4": ruleRemove}},
		{"left still respects the minimum quorum",
			[]serverStatus{alive("m1"), alive("m2"), left("m3", 0)}, cfg,
			want{"m3": ruleMinQuorum}},
		{"two dead: at most one removal per pass, the longest dead first",
			[]serverStatus{alive("m1"), alive("m2"), alive("m3"), dead("m4", time.Minute), dead("m5", 2*time.Minute)}, cfg,
			want{"m5": ruleRemove, "m4": ruleOnePerPass}},
		{"left goes before dead",
			[]serverStatus{alive("m1"), alive("m2"), alive("m3"), dead("m4", time.Hour), left("m5", 0)}, cfg,
			want{"m5": ruleRemove, "m4": ruleOnePerPass}},
		{"fewer than a quorum alive: the removal could not commit",
			[]serverStatus{alive("m1"), alive("m2"), dead("m3", time.Hour), dead("m4", time.Hour), dead("m5", time.Hour)}, cfg,
			want{"m3": ruleNoQuorum, "m4": ruleNoQuorum, "m5": ruleNoQuorum}},
		{"exactly a quorum alive: one removal",
			[]serverStatus{alive("m1"), alive("m2"), alive("m3"), dead("m4", time.Hour), dead("m5", time.Hour)}, cfg,
			want{"m4": ruleRemove, "m5": ruleOnePerPass}},
		{"the leader counts as alive whatever gossip says",
			[]serverStatus{dead("m1", time.Hour), alive("m2"), alive("m3"), dead("m4", time.Hour)}, cfg,
			want{"m4": ruleRemove}},
		{"a dead non-voter goes without quorum checks",
			[]serverStatus{alive("m1"), alive("m2"), nonVoter(dead("m3", time.Hour))}, cfg,
			want{"m3": ruleRemove}},
		{"after the pass's removal the rest wait, even a left one",
			[]serverStatus{alive("m1"), alive("m2"), alive("m3"), alive("m4"), left("m5", 0), left("m6", 0)}, cfg,
			want{"m5": ruleRemove, "m6": ruleOnePerPass}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decide("m1", tc.servers, now, tc.cfg)
			gotRules := want{}
			removals := 0
			for _, d := range got {
				if _, dup := gotRules[d.ID]; dup {
					t.Fatalf("two decisions for %s: %+v", d.ID, got)
				}
				gotRules[d.ID] = d.Rule
				if d.Rule == ruleRemove {
					removals++
				}
				if d.Reason == "" {
					t.Errorf("decision for %s has no reason", d.ID)
				}
			}
			if removals > 1 {
				t.Fatalf("%d removals in one pass: %+v", removals, got)
			}
			if len(gotRules) != len(tc.want) {
				t.Fatalf("decisions %+v, want rules %v", got, tc.want)
			}
			for id, rule := range tc.want {
				if gotRules[id] != rule {
					t.Errorf("%s: rule %q, want %q (decisions %+v)", id, gotRules[id], rule, got)
				}
			}
		})
	}
}

func TestMasterHealthFromGossip(t *testing.T) {
	master := func(name string, st gossip.State) gossip.Member {
		return gossip.Member{Name: name, State: st, Meta: gossip.Meta{Role: gossip.RoleMaster, Name: name}}
	}
	members := []gossip.Member{
		master("m1", gossip.StateAlive),
		master("m2", gossip.StateDead),
		master("m3", gossip.StateLeft),
		master("m4", gossip.StateSuspect),
		{Name: "m5", State: gossip.StateAlive, Meta: gossip.Meta{Role: gossip.RoleAgent, Name: "m5"}},
	}
	for id, want := range map[string]health{"m1": healthAlive, "m2": healthDead, "m3": healthLeft, "m4": healthAlive, "m5": healthDead, "m9": healthDead} {
		if got, detail := masterHealth(members, id); got != want {
			t.Errorf("%s: %v (%s), want %v", id, got, detail, want)
		}
	}
}

// fakeRaft is a Raft configuration that autopilot reads and shrinks.
type fakeRaft struct {
	mu      sync.Mutex
	peers   []raft.Peer
	removed []string
	fail    error
}

func (f *fakeRaft) ID() string { return "m1" }

func (f *fakeRaft) Peers() ([]raft.Peer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.peers), nil
}

func (f *fakeRaft) RemovePeer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.removed = append(f.removed, id)
	f.peers = slices.DeleteFunc(f.peers, func(p raft.Peer) bool { return p.ID == id })
	return nil
}

type fakeGossip struct {
	mu      sync.Mutex
	members []gossip.Member
}

func (f *fakeGossip) Members() []gossip.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members)
}

func (f *fakeGossip) set(name string, st gossip.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.members {
		if f.members[i].Name == name {
			f.members[i].State = st
			return
		}
	}
	f.members = append(f.members, gossip.Member{Name: name, State: st, Meta: gossip.Meta{Role: gossip.RoleMaster, Name: name}})
}

// The routine times "dead for how long" itself, removes one master per pass, forgets a
// master that came back, and retries a removal that failed.
func TestAutopilotPasses(t *testing.T) {
	r := &fakeRaft{}
	g := &fakeGossip{}
	for _, id := range []string{"m1", "m2", "m3", "m4", "m5"} {
		r.peers = append(r.peers, raft.Peer{ID: id, Address: id + ":7400", Voter: true})
		g.set(id, gossip.StateAlive)
	}
	clock := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	a := newAutopilot(AutopilotConfig{DeadServerCleanup: 10 * time.Second}, r, g, slog.New(slog.DiscardHandler))
	a.now = func() time.Time { return clock }
	a.seen, a.logged, a.inGossip = map[string]serverStatus{}, map[string]string{}, map[string]bool{}
	ctx := context.Background()
	step := func(d time.Duration) { clock = clock.Add(d); a.pass(ctx) }
	removed := func() []string { r.mu.Lock(); defer r.mu.Unlock(); return slices.Clone(r.removed) }

	step(0)
	g.set("m4", gossip.StateDead)
	step(time.Second) // m4 first seen dead now
	step(9 * time.Second)
	if got := removed(); len(got) != 0 {
		t.Fatalf("removed %v before the threshold", got)
	}
	g.set("m4", gossip.StateAlive) // it came back: the clock resets
	step(time.Second)
	g.set("m4", gossip.StateDead)
	step(time.Second)
	step(9 * time.Second)
	if got := removed(); len(got) != 0 {
		t.Fatalf("removed %v although m4 was back in between", got)
	}
	g.set("m5", gossip.StateDead)
	r.fail = errors.New("no leader")
	step(time.Second) // m4 dead 10 s: due, but the removal fails
	if got := removed(); len(got) != 0 {
		t.Fatalf("removed %v while removals fail", got)
	}
	r.fail = nil
	step(time.Second)
	if got := removed(); !slices.Equal(got, []string{"m4"}) {
		t.Fatalf("removed %v, want [m4]", got)
	}
	step(10 * time.Second) // m5 is due too: 4 voters → 3 still meets the minimum
	if got := removed(); !slices.Equal(got, []string{"m4", "m5"}) {
		t.Fatalf("removed %v, want [m4 m5]", got)
	}
	g.set("m3", gossip.StateLeft)
	step(time.Hour)
	if got := removed(); !slices.Equal(got, []string{"m4", "m5"}) {
		t.Fatalf("removed %v: shrank below the minimum quorum of 3", got)
	}
	if a.logged["m3"] != ruleMinQuorum {
		t.Fatalf("m3's last logged rule is %q, want %q", a.logged["m3"], ruleMinQuorum)
	}
}

// A master this leader's gossip has never listed (its gossip join failed, or gossip forgot
// it before this term) is never removed automatically; one gossip listed and then forgot is.
func TestAutopilotKeepsMastersGossipNeverListed(t *testing.T) {
	r := &fakeRaft{}
	g := &fakeGossip{}
	for _, id := range []string{"m1", "m2", "m3", "m4", "m5"} {
		r.peers = append(r.peers, raft.Peer{ID: id, Address: id + ":7400", Voter: true})
		if id != "m5" {
			g.set(id, gossip.StateAlive)
		}
	}
	clock := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	a := newAutopilot(AutopilotConfig{DeadServerCleanup: 10 * time.Second}, r, g, slog.New(slog.DiscardHandler))
	a.now = func() time.Time { return clock }
	a.seen, a.logged, a.inGossip = map[string]serverStatus{}, map[string]string{}, map[string]bool{}
	step := func(d time.Duration) { clock = clock.Add(d); a.pass(context.Background()) }
	step(0)
	step(time.Hour)
	if len(r.removed) != 0 || a.logged["m5"] != ruleWaiting {
		t.Fatalf("a master gossip never listed was removed (%v) or not kept waiting (%q)", r.removed, a.logged["m5"])
	}
	// m4 was listed, then gossip forgot it: that counts as dead.
	g.mu.Lock()
	g.members = slices.DeleteFunc(g.members, func(m gossip.Member) bool { return m.Name == "m4" })
	g.mu.Unlock()
	step(time.Second)
	step(11 * time.Second)
	if !slices.Equal(r.removed, []string{"m4"}) {
		t.Fatalf("removed %v, want [m4]", r.removed)
	}
}

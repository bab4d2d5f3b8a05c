package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"skiff/raft"
)

// fakeMaster serves the operations endpoints status and raft peers read.
func fakeMaster(t *testing.T, stats raft.Stats, masters func() []masterInfo, members []memberInfo) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, r *http.Request, v any) {
		if r.Header.Get("Authorization") != "Bearer token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /skiff/v1/raft", func(w http.ResponseWriter, r *http.Request) { reply(w, r, stats) })
	mux.HandleFunc("GET /skiff/v1/masters", func(w http.ResponseWriter, r *http.Request) { reply(w, r, masters()) })
	mux.HandleFunc("GET /skiff/v1/members", func(w http.ResponseWriter, r *http.Request) {
		if members == nil {
			http.Error(w, `{"message":"gossip is disabled on this master"}`, http.StatusNotFound)
			return
		}
		reply(w, r, members)
	})
	s := httptest.NewTLSServer(mux)
	t.Cleanup(s.Close)
	return s
}

// Three masters: m1 leads, m2 trails by 1500 entries, m3 does not answer; one agent is
// dead. Status must name the leader, compute lag and quorum, and warn about each problem.
func TestGatherAndPrintStatus(t *testing.T) {
	var list []masterInfo
	masters := func() []masterInfo { return list }
	members := []memberInfo{
		{Name: "m1", Role: "master", State: "alive"}, {Name: "m2", Role: "master", State: "alive"},
		{Name: "m3", Role: "master", State: "dead"},
		{Name: "a1", Role: "agent", State: "alive", Addr: "10.0.0.9:7946"}, {Name: "a2", Role: "agent", State: "dead"},
	}
	now := time.Now()
	m1 := fakeMaster(t, raft.Stats{ID: "m1", State: "Leader", Term: 4, LeaderID: "m1", CommitIndex: 2000, AppliedIndex: 2000, LastIndex: 2000}, masters, members)
	m2 := fakeMaster(t, raft.Stats{ID: "m2", State: "Follower", Term: 4, LeaderID: "m1", CommitIndex: 600, AppliedIndex: 500, LastContact: now}, masters, members)
	dead := httptest.NewTLSServer(http.NotFoundHandler())
	deadAddr := dead.Listener.Addr().String()
	dead.Close()
	addr := func(s *httptest.Server) string { return s.Listener.Addr().String() }
	list = []masterInfo{
		{ID: "m1", API: addr(m1), Raft: "10.0.0.1:7400", Voter: true},
		{ID: "m2", API: addr(m2), Raft: "10.0.0.2:7400", Voter: true},
		{ID: "m3", API: deadAddr, Raft: "10.0.0.3:7400", Voter: true},
	}
	c := &apiClient{server: m2.URL, token: "token", http: m1.Client()}
	c.http.Timeout = 5 * time.Second

	r, err := gatherStatus(c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Leader != "m1" || r.LeaderTerm != 4 {
		t.Fatalf("leader %q term %d, want m1 term 4", r.Leader, r.LeaderTerm)
	}
	if q := r.Quorum; q.Voters != 3 || q.Needed != 2 || q.Up != 2 || q.CanLose != 0 {
		t.Fatalf("quorum %+v", q)
	}
	byID := map[string]masterStatus{}
	for _, m := range r.Masters {
		byID[m.ID] = m
	}
	if l := byID["m2"].Lag; l == nil || *l != 1500 {
		t.Fatalf("m2 lag %v, want 1500", l)
	}
	if byID["m3"].Reachable || byID["m3"].State != "unreachable" || byID["m3"].Gossip != "dead" {
		t.Fatalf("m3: %+v", byID["m3"])
	}
	if len(r.Agents) != 2 {
		t.Fatalf("agents %+v", r.Agents)
	}
	warnings := strings.Join(r.Warnings, "\n")
	for _, want := range []string{
		"2 of 3 masters needed, 2 up, 0 left to lose: losing one more master stops the cluster",
		"master m3 unreachable",
		"master m2 is 1500 entries behind the leader",
		"agent a2 is dead in gossip",
	} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	if strings.Contains(warnings, "no leader") {
		t.Errorf("warns of no leader although m1 leads:\n%s", warnings)
	}

	var out strings.Builder
	if err := printStatus(&out, r); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Logf("\n%s", text)
	for _, want := range []string{"Leader: m1 (term 4)", "Quorum: 2 of 3 masters needed, 2 up, 0 left to lose", "AGENT", "a1"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Columns line up: every master row starts its ROLE column where the header does.
	lines := strings.Split(text, "\n")
	var header string
	for _, l := range lines {
		if strings.HasPrefix(l, "MASTER") {
			header = l
		}
	}
	col := strings.Index(header, "ROLE")
	for _, l := range lines {
		if strings.HasPrefix(l, "m") && len(l) > col && l[col-1] != ' ' {
			t.Errorf("row %q is not aligned with the header %q", l, header)
		}
	}
}

func TestStatusWithoutLeaderOrGossip(t *testing.T) {
	var list []masterInfo
	m1 := fakeMaster(t, raft.Stats{ID: "m1", State: "Candidate", Term: 9}, func() []masterInfo { return list }, nil)
	list = []masterInfo{{ID: "m1", API: m1.Listener.Addr().String(), Voter: true}, {ID: "m2", API: "127.0.0.1:1", Voter: true}, {ID: "m3", Voter: true}}
	c := &apiClient{server: m1.URL, token: "token", http: m1.Client()}
	r, err := gatherStatus(c)
	if err != nil {
		t.Fatal(err)
	}
	warnings := strings.Join(r.Warnings, "\n")
	for _, want := range []string{"no leader", "quorum lost: 2 of 3 masters needed, only 1 up", "master m3 unreachable: its API address is not recorded yet"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	if r.Agents != nil || !strings.Contains(r.GossipNote, "without gossip") {
		t.Errorf("agents %v, note %q", r.Agents, r.GossipNote)
	}
	for _, m := range r.Masters {
		if m.Lag != nil {
			t.Errorf("%s has a lag without a leader to measure it against", m.ID)
		}
	}
}

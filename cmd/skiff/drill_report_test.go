package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func acked(name string, start, end time.Duration, rv uint64) drillWrite {
	return drillWrite{Name: name, Start: start, End: end, Outcome: writeAcked, RV: rv, Read: readFound}
}

func added(name string, rv uint64) drillEvent { return drillEvent{Type: "ADDED", Name: name, RV: rv} }

const ms1 = time.Millisecond

func TestSummarizeWritesLostAndWritesBack(t *testing.T) {
	writes := []drillWrite{
		acked("w0", -300*ms1, -290*ms1, 10),
		acked("w1", -20*ms1, 5*ms1, 11), // issued before the fault: not the recovery point
		{Name: "w2", Start: 10 * ms1, End: 400 * ms1, Outcome: writeFailed, Reason: "503 Service Unavailable"},
		{Name: "w3", Start: 400 * ms1, End: 1400 * ms1, Outcome: writeUnknown, Reason: "no answer"},
		{Name: "w4", Start: 1400 * ms1, End: 1500 * ms1, Outcome: writeUnknown, Reason: "no answer"},
		acked("w5", 1500*ms1, 1650*ms1, 15),
		acked("w6", 1700*ms1, 1710*ms1, 16),
	}
	writes[6].Read = readStale
	writes[1].Read = readError
	found := map[string]bool{"w0": true, "w1": true, "w4": true, "w5": true} // w6 lost; w4 applied despite no answer
	ws, rs, back := summarizeWrites(writes, found)
	if ws.Attempted != 7 || ws.Acknowledged != 4 || ws.Failed != 1 || ws.Unknown != 2 || ws.Found != 3 || ws.Lost != 1 ||
		!slices.Equal(ws.LostNames, []string{"w6"}) || ws.UnknownApplied != 1 {
		t.Errorf("writes = %+v, want 7 attempted, 4 acknowledged, 1 failed, 2 unknown (1 applied), 3 found, w6 lost", ws)
	}
	if ws.NotAcknowledged["503 Service Unavailable"] != 1 || ws.NotAcknowledged["no answer"] != 2 ||
		*ws.UnavailableFromMs != 10 || *ws.UnavailableToMs != 1500 {
		t.Errorf("not acknowledged = %v from %v to %v, want one 503 and two without answer, from 10 to 1500 ms",
			ws.NotAcknowledged, *ws.UnavailableFromMs, *ws.UnavailableToMs)
	}
	if rs.Reads != 3 || rs.Stale != 1 || rs.Errors != 1 || !slices.Equal(rs.StaleNames, []string{"w6"}) {
		t.Errorf("reads = %+v, want 3 reads, 1 stale (w6), 1 error", rs)
	}
	if back == nil || *back != 1650 {
		t.Errorf("writes back = %v, want 1650 ms (w5, the first acknowledged write issued after the fault)", back)
	}
}

func TestSummarizeWritesNeverBack(t *testing.T) {
	writes := []drillWrite{acked("w0", -10*ms1, -5*ms1, 3), {Name: "w1", Start: 0, End: time.Second, Outcome: writeFailed}}
	_, _, back := summarizeWrites(writes, map[string]bool{"w0": true})
	if back != nil {
		t.Fatalf("writes back = %v, want nil when no write after the fault was acknowledged", *back)
	}
}

func TestSummarizeWatch(t *testing.T) {
	writes := []drillWrite{
		acked("a", 0, 1, 10),
		{Name: "u", Outcome: writeUnknown},
		acked("b", 2, 3, 12),
		acked("c", 4, 5, 13),
	}
	cases := []struct {
		name   string
		events []drillEvent
		check  func(WatchStats) string
	}{
		{"every write once in order, an applied unknown write in between", []drillEvent{added("a", 10), added("u", 11), {Type: "BOOKMARK", RV: 11}, added("b", 12), added("c", 13), {Type: "DELETED", Name: "a", RV: 14}},
			func(w WatchStats) string {
				if w.Gaps() != 0 || w.Events != 4 {
					return fmt.Sprintf("want no gaps and 4 ADDED events, got %+v", w)
				}
				return ""
			}},
		{"a missing write", []drillEvent{added("a", 10), added("c", 13)},
			func(w WatchStats) string {
				if w.Missing != 1 || !slices.Equal(w.MissingNames, []string{"b"}) || w.Gaps() != 1 {
					return fmt.Sprintf("want b missing, got %+v", w)
				}
				return ""
			}},
		{"out of order", []drillEvent{added("b", 12), added("a", 10), added("c", 13)},
			func(w WatchStats) string {
				if w.OutOfOrder == 0 || w.Missing != 0 {
					return fmt.Sprintf("want out of order, nothing missing, got %+v", w)
				}
				return ""
			}},
		{"a duplicate after a resume", []drillEvent{added("a", 10), added("b", 12), added("b", 12), added("c", 13)},
			func(w WatchStats) string {
				if w.Duplicates != 1 || w.Missing != 0 {
					return fmt.Sprintf("want one duplicate, got %+v", w)
				}
				return ""
			}},
		{"another revision than acknowledged", []drillEvent{added("a", 10), added("b", 99), added("c", 130)},
			func(w WatchStats) string {
				if w.WrongRevision != 2 {
					return fmt.Sprintf("want 2 wrong revisions, got %+v", w)
				}
				return ""
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if msg := tc.check(summarizeWatch(writes, tc.events, 0, 0)); msg != "" {
				t.Error(msg)
			}
		})
	}
	if w := summarizeWatch(writes, []drillEvent{added("a", 10), added("b", 12), added("c", 13)}, 2, 1); w.Gaps() != 1 || w.Resumed != 2 {
		t.Errorf("an expired resume is a gap, resumes are not: %+v", w)
	}
}

func TestSummarizeCanary(t *testing.T) {
	s := func(at time.Duration, ready int) drillSample { return drillSample{At: at, Ready: ready} }
	cs := summarizeCanary([]drillSample{
		s(-500*ms1, 3), s(-250*ms1, 3),
		s(0, 3), s(250*ms1, -1), s(500*ms1, 2), s(750*ms1, 1), s(1000*ms1, 2), s(1250*ms1, 3), s(1500*ms1, 3),
	}, 3)
	if cs.ReadyBefore != 3 || cs.MinReady != 1 || cs.Unmeasured != 1 || cs.Samples != 9 {
		t.Errorf("canary = %+v, want 3 before, min 1, one unmeasured of 9", cs)
	}
	if cs.FullAgainMs == nil || *cs.FullAgainMs != 1250 {
		t.Errorf("full again = %v, want 1250 ms", cs.FullAgainMs)
	}
	want := []CanaryPoint{{500, 2}, {750, 1}, {1000, 2}, {1250, 3}}
	if !slices.Equal(cs.Timeline, want) {
		t.Errorf("timeline = %v, want only the changes %v", cs.Timeline, want)
	}

	steady := summarizeCanary([]drillSample{s(-100*ms1, 3), s(100*ms1, 3), s(200*ms1, 3)}, 3)
	if steady.MinReady != 3 || steady.FullAgainMs != nil || len(steady.Timeline) != 0 {
		t.Errorf("steady canary = %+v, want min 3, no drop, no changes", steady)
	}
	none := summarizeCanary([]drillSample{s(100*ms1, -1)}, 3)
	if none.MinReady != -1 {
		t.Errorf("unmeasured canary min = %d, want -1", none.MinReady)
	}
}

func TestJudge(t *testing.T) {
	ok := func() DrillReport {
		v := 900.0
		return DrillReport{Drill: "leader-crash", Target: "m1", TargetRole: "leader", LeaderBefore: "m1", LeaderAfter: "m2",
			NewLeaderMs: &v, WritesBackMs: &v, SchedulerMs: &v, ControllersMs: &v, HealedMs: &v,
			Writes:      WriteStats{Acknowledged: 10, Found: 10},
			Convergence: Convergence{Converged: true, OneLeaderPerTerm: true, Masters: []MasterHash{{Name: "m1", Revision: 5, Hash: "abc"}}}}
	}
	r := ok()
	judgeDrill(&r)
	if !r.Passed || len(r.Problems) != 0 {
		t.Fatalf("a clean drill failed: %v", r.Problems)
	}
	breakers := map[string]func(*DrillReport){
		"acknowledged writes lost": func(r *DrillReport) { r.Writes.Lost, r.Writes.LostNames = 1, []string{"w7"} },
		"reads missed":             func(r *DrillReport) { r.Reads.Stale = 1 },
		"watch missed":             func(r *DrillReport) { r.Watch.Missing = 2 },
		"out of order":             func(r *DrillReport) { r.Watch.OutOfOrder = 1 },
		"no new leader":            func(r *DrillReport) { r.NewLeaderMs = nil },
		"did not converge":         func(r *DrillReport) { r.Convergence.Converged = false },
		"same term":                func(r *DrillReport) { r.Convergence.OneLeaderPerTerm = false },
		"did not come back":        func(r *DrillReport) { r.HealedMs = nil },
		"scheduler did not act":    func(r *DrillReport) { r.SchedulerMs = nil },
		"controller did not act":   func(r *DrillReport) { r.ControllersMs = nil },
		"issued after the fault":   func(r *DrillReport) { r.WritesBackMs = nil },
	}
	for want, breakIt := range breakers {
		r := ok()
		breakIt(&r)
		judgeDrill(&r)
		if r.Passed || !strings.Contains(strings.Join(r.Problems, "\n"), want) {
			t.Errorf("%s: passed=%v problems=%q", want, r.Passed, r.Problems)
		}
	}
	// A transfer that did not move leadership is a problem; a follower pause needs no new leader.
	r = ok()
	r.Drill, r.LeaderAfter = "leader-transfer", "m1"
	judgeDrill(&r)
	if r.Passed {
		t.Error("a leader-transfer that left m1 leading passed")
	}
	r = ok()
	r.Drill, r.TargetRole, r.NewLeaderMs = "master-pause", "follower", nil
	judgeDrill(&r)
	if !r.Passed {
		t.Errorf("a follower pause without a new leader failed: %v", r.Problems)
	}
}

func TestTermConflicts(t *testing.T) {
	claims := map[string][]drillTermClaim{
		"m1": {{Term: 2, ID: "m1"}, {Term: 5, ID: "m1"}},
		"m2": {{Term: 3, ID: "m2"}, {Term: 5, ID: "m2"}},
	}
	got := drillTermConflicts(claims)
	if len(got) != 1 || !strings.Contains(got[0], "term 5") {
		t.Fatalf("conflicts = %v, want term 5", got)
	}
	if got := drillTermConflicts(map[string][]drillTermClaim{"m1": {{Term: 2, ID: "m1"}}, "m2": {{Term: 2, ID: "m1"}}}); len(got) != 0 {
		t.Fatalf("the same claim seen twice is no conflict: %v", got)
	}
}

// TestSummarizeWatchConcurrentWriters: writes that overlapped may arrive in either order;
// a write acknowledged before another was issued may not arrive after it.
func TestSummarizeWatchConcurrentWriters(t *testing.T) {
	writes := []drillWrite{
		acked("a", 0, 10*ms1, 11), // overlaps b
		acked("b", 5*ms1, 8*ms1, 10),
		acked("c", 20*ms1, 30*ms1, 12), // issued after a and b were acknowledged
	}
	if w := summarizeWatch(writes, []drillEvent{added("b", 10), added("a", 11), added("c", 12)}, 0, 0); w.Gaps() != 0 {
		t.Errorf("overlapping writes in revision order: %+v, want no gaps", w)
	}
	late := []drillWrite{acked("a", 0, 10*ms1, 12), acked("c", 20*ms1, 30*ms1, 11)}
	if w := summarizeWatch(late, []drillEvent{added("c", 11), added("a", 12)}, 0, 0); w.OutOfOrder != 1 {
		t.Errorf("a write acknowledged before c was issued but delivered after it: %+v, want 1 out of order", w)
	}
}

// TestSummarizeWatchSharedRevision: writes batched into one Raft entry share its revision.
func TestSummarizeWatchSharedRevision(t *testing.T) {
	writes := []drillWrite{acked("a", 0, 10*ms1, 20), acked("b", 1*ms1, 10*ms1, 20)}
	if w := summarizeWatch(writes, []drillEvent{added("b", 20), added("a", 20)}, 0, 0); w.Gaps() != 0 {
		t.Errorf("two writes of one entry: %+v, want no gaps", w)
	}
}

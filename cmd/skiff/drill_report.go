package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// DrillReport is what one drill measured. Times are milliseconds from the moment the
// fault was injected; a nil time was not observed (within the drill's time limit, or it
// does not apply to this drill). It is stored in the cluster as JSON and printed by
// `skiff drill` and `skiff drill list`.
type DrillReport struct {
	ID     string `json:"id"`
	Drill  string `json:"drill"`
	Target string `json:"target"`
	// TargetRole is the target's role when the drill started: leader, follower or agent.
	TargetRole string    `json:"targetRole"`
	Started    time.Time `json:"started"`
	// FaultMs is how long the fault was asked to last (partitions and pauses).
	FaultMs float64 `json:"faultMs,omitempty"`
	// Method says how the fault was made, e.g. "SIGSTOP/SIGCONT from the drill client".
	Method  string `json:"method"`
	Masters int    `json:"masters"`
	Agents  int    `json:"agents"`

	LeaderBefore string `json:"leaderBefore"`
	TermBefore   uint64 `json:"termBefore"`
	LeaderAfter  string `json:"leaderAfter"`
	TermAfter    uint64 `json:"termAfter"`

	NewLeaderMs   *float64 `json:"newLeaderMs"`
	WritesBackMs  *float64 `json:"writesBackMs"`
	SchedulerMs   *float64 `json:"schedulerActedMs"`
	ControllersMs *float64 `json:"controllersActedMs"`
	// NodeUnreachableMs and NodeReadyMs follow the target agent's Node (agent drills).
	NodeUnreachableMs *float64 `json:"nodeUnreachableMs,omitempty"`
	NodeReadyMs       *float64 `json:"nodeReadyMs,omitempty"`
	// HealedMs is when the target was back: answering again (masters) or Ready (agents).
	HealedMs *float64 `json:"healedMs"`

	Writes      WriteStats  `json:"writes"`
	Reads       ReadStats   `json:"reads"`
	Watch       WatchStats  `json:"watch"`
	Canary      CanaryStats `json:"canary"`
	Convergence Convergence `json:"convergence"`

	Notes    []string `json:"notes,omitempty"`
	Problems []string `json:"problems,omitempty"`
	Passed   bool     `json:"passed"`
}

// WriteStats accounts for the probe writes: each one a new ConfigMap with a unique value.
type WriteStats struct {
	Attempted    int `json:"attempted"`
	Acknowledged int `json:"acknowledged"`
	// Failed writes surely were not applied (refused connection, 503); Unknown ones may
	// have been (timeouts, 504): neither counts as acknowledged.
	Failed  int `json:"failed"`
	Unknown int `json:"unknown"`
	// Found is how many acknowledged writes the final linearizable list holds; Lost the
	// others (must be 0). UnknownApplied counts unknown-outcome writes that turned out
	// applied.
	Found          int      `json:"found"`
	Lost           int      `json:"lost"`
	LostNames      []string `json:"lostNames,omitempty"`
	UnknownApplied int      `json:"unknownApplied"`
	// NotAcknowledged counts the failed and unknown writes by what the client saw; the
	// first of them was issued at UnavailableFromMs, the last ended at UnavailableToMs.
	NotAcknowledged   map[string]int `json:"notAcknowledged,omitempty"`
	UnavailableFromMs *float64       `json:"unavailableFromMs,omitempty"`
	UnavailableToMs   *float64       `json:"unavailableToMs,omitempty"`
}

// ReadStats accounts for the linearizable reads: after each acknowledged write, a read of
// it through another master. A read that does not see the write is stale (must be 0).
type ReadStats struct {
	Reads      int      `json:"reads"`
	Stale      int      `json:"stale"`
	StaleNames []string `json:"staleNames,omitempty"`
	Errors     int      `json:"errors"`
}

// WatchStats accounts for the probe watch: every acknowledged write must arrive as an
// ADDED event, once, in the order of the writes.
type WatchStats struct {
	Events       int      `json:"events"`
	Resumed      int      `json:"resumed"`
	Expired      int      `json:"expired"`
	Missing      int      `json:"missing"`
	MissingNames []string `json:"missingNames,omitempty"`
	OutOfOrder   int      `json:"outOfOrder"`
	// OutOfOrderAt describes the first events found out of order.
	OutOfOrderAt []string `json:"outOfOrderAt,omitempty"`
	Duplicates   int      `json:"duplicates"`
	// WrongRevision counts events whose resourceVersion differs from the acknowledged one.
	WrongRevision int `json:"wrongRevision"`
}

// Gaps is the number of ways the watch failed to show the acknowledged writes.
func (w WatchStats) Gaps() int {
	return w.Missing + w.OutOfOrder + w.Duplicates + w.Expired + w.WrongRevision
}

// CanaryStats is the availability of the canary Deployment's pods over the drill.
type CanaryStats struct {
	Enabled  bool `json:"enabled"`
	Replicas int  `json:"replicas"`
	// ReadyBefore is the ready count when the fault was injected; MinReady the least seen
	// from then on (-1: never measured).
	ReadyBefore int `json:"readyBefore"`
	MinReady    int `json:"minReady"`
	Samples     int `json:"samples"`
	Unmeasured  int `json:"unmeasured"`
	// FullAgainMs is when all replicas were ready again after a drop.
	FullAgainMs *float64      `json:"fullAgainMs,omitempty"`
	Timeline    []CanaryPoint `json:"timeline,omitempty"`
}

// CanaryPoint is a change of the ready count.
type CanaryPoint struct {
	Ms    float64 `json:"ms"`
	Ready int     `json:"ready"`
}

// Convergence is the masters' state after the drill.
type Convergence struct {
	Converged bool         `json:"converged"`
	Revision  uint64       `json:"revision"`
	Masters   []MasterHash `json:"masters"`
	// OneLeaderPerTerm is false when two masters claim to have led the same term.
	OneLeaderPerTerm bool     `json:"oneLeaderPerTerm"`
	TermConflicts    []string `json:"termConflicts,omitempty"`
}

// MasterHash is one master's applied revision and state hash.
type MasterHash struct {
	Name     string `json:"name"`
	Revision uint64 `json:"revision"`
	Hash     string `json:"hash,omitempty"`
	Error    string `json:"error,omitempty"`
}

// drillWriteOutcome classifies a probe write.
type drillWriteOutcome int

const (
	writeAcked drillWriteOutcome = iota
	writeFailed
	writeUnknown
)

// drillReadOutcome classifies the read that follows an acknowledged write.
type drillReadOutcome int

const (
	readNone drillReadOutcome = iota
	readFound
	readStale
	readError
)

// drillWrite is one probe write as the drill saw it. Start and End are relative to the
// fault (negative before it).
type drillWrite struct {
	Name       string
	Start, End time.Duration
	Outcome    drillWriteOutcome
	Reason     string // why it was not acknowledged
	RV         uint64 // resourceVersion of an acknowledged write
	Read       drillReadOutcome
}

// drillEvent is one event the probe watch delivered.
type drillEvent struct {
	Type string
	Name string
	RV   uint64
	At   time.Duration
}

// drillSample is one count of the canary's ready pods (-1: the count failed).
type drillSample struct {
	At    time.Duration
	Ready int
}

// drillMaxNames bounds the names listed in a report.
const drillMaxNames = 20

func drillAddName(list []string, name string) []string {
	if len(list) < drillMaxNames {
		return append(list, name)
	}
	return list
}

func drillMillis(d time.Duration) *float64 {
	v := float64(d.Microseconds()) / 1000
	return &v
}

// summarizeWrites accounts for the writes against found (the names the final list holds)
// and says when writes worked again: the end of the first acknowledged write issued after
// the fault (nil if none was).
func summarizeWrites(writes []drillWrite, found map[string]bool) (WriteStats, ReadStats, *float64) {
	var ws WriteStats
	var rs ReadStats
	var back *float64
	for _, w := range writes {
		ws.Attempted++
		switch w.Outcome {
		case writeAcked:
			ws.Acknowledged++
			if found[w.Name] {
				ws.Found++
			} else {
				ws.Lost++
				ws.LostNames = drillAddName(ws.LostNames, w.Name)
			}
			if back == nil && w.Start >= 0 {
				back = drillMillis(w.End)
			}
		case writeFailed:
			ws.Failed++
		case writeUnknown:
			ws.Unknown++
			if found[w.Name] {
				ws.UnknownApplied++
			}
		}
		if w.Outcome != writeAcked {
			if ws.NotAcknowledged == nil {
				ws.NotAcknowledged = map[string]int{}
			}
			ws.NotAcknowledged[w.Reason]++
			if ws.UnavailableFromMs == nil {
				ws.UnavailableFromMs = drillMillis(w.Start)
			}
			ws.UnavailableToMs = drillMillis(w.End)
		}
		switch w.Read {
		case readFound:
			rs.Reads++
		case readStale:
			rs.Reads++
			rs.Stale++
			rs.StaleNames = drillAddName(rs.StaleNames, w.Name)
		case readError:
			rs.Errors++
		}
	}
	return ws, rs, back
}

// summarizeWatch checks the watch against the acknowledged writes: each must arrive as one
// ADDED event carrying its revision, events must come in revision order (writes batched
// into one Raft entry share a revision), and a write acknowledged before another was
// issued must arrive before it (real-time order; writes that overlapped may arrive either
// way). Events of writes with unknown outcomes may appear anywhere; expired counts watch
// resumptions refused with 410 Gone, after which nothing can be proven about the gap.
func summarizeWatch(writes []drillWrite, events []drillEvent, resumed, expired int) WatchStats {
	ws := WatchStats{Resumed: resumed, Expired: expired}
	pos := map[string]int{}
	rev := map[string]uint64{}
	var lastRV uint64
	for i, e := range events {
		if e.Type != "ADDED" {
			continue
		}
		ws.Events++
		if _, dup := pos[e.Name]; dup {
			ws.Duplicates++
			continue
		}
		pos[e.Name], rev[e.Name] = i, e.RV
		// Writes batched into one Raft entry share its revision, so equal is in order.
		if e.RV < lastRV {
			ws.OutOfOrder++
			ws.OutOfOrderAt = drillAddName(ws.OutOfOrderAt, fmt.Sprintf("%s at revision %d after revision %d", e.Name, e.RV, lastRV))
		}
		lastRV = max(lastRV, e.RV)
	}
	type seen struct {
		name       string
		start, end time.Duration
		pos        int
	}
	var delivered []seen
	for _, w := range writes {
		if w.Outcome != writeAcked {
			continue
		}
		p, ok := pos[w.Name]
		if !ok {
			ws.Missing++
			ws.MissingNames = drillAddName(ws.MissingNames, w.Name)
			continue
		}
		if rev[w.Name] != w.RV {
			ws.WrongRevision++
		}
		delivered = append(delivered, seen{w.Name, w.Start, w.End, p})
	}
	// byEnd[i] is the latest watch position among the i+1 earliest-acknowledged writes.
	byEnd := append([]seen(nil), delivered...)
	sort.Slice(byEnd, func(i, j int) bool { return byEnd[i].end < byEnd[j].end })
	latest := make([]int, len(byEnd))
	for i, d := range byEnd {
		latest[i] = d.pos
		if i > 0 {
			latest[i] = max(latest[i], latest[i-1])
		}
	}
	for _, d := range delivered {
		// The writes acknowledged before d was issued must all have come before it.
		n := sort.Search(len(byEnd), func(i int) bool { return byEnd[i].end >= d.start })
		if n > 0 && latest[n-1] > d.pos {
			ws.OutOfOrder++
			ws.OutOfOrderAt = drillAddName(ws.OutOfOrderAt, fmt.Sprintf("%s (issued at %s) delivered before a write acknowledged earlier", d.name, d.start))
		}
	}
	return ws
}

// summarizeCanary reads the ready counts: the count at the fault, the least from then on,
// when it was full again after a drop, and the changes.
func summarizeCanary(samples []drillSample, replicas int) CanaryStats {
	cs := CanaryStats{Enabled: true, Replicas: replicas, ReadyBefore: -1, MinReady: -1}
	prev := -2
	dropped := false
	for _, s := range samples {
		cs.Samples++
		if s.Ready < 0 {
			cs.Unmeasured++
			continue
		}
		if s.At < 0 {
			cs.ReadyBefore = s.Ready
			prev = s.Ready
			continue
		}
		if cs.MinReady < 0 || s.Ready < cs.MinReady {
			cs.MinReady = s.Ready
		}
		if s.Ready != prev {
			cs.Timeline = append(cs.Timeline, CanaryPoint{Ms: *drillMillis(s.At), Ready: s.Ready})
			prev = s.Ready
		}
		if s.Ready < replicas {
			dropped = true
		} else if dropped && cs.FullAgainMs == nil {
			cs.FullAgainMs = drillMillis(s.At)
		}
	}
	return cs
}

// judge lists what the drill proved wrong (Problems) and sets Passed. Lower canary
// availability is a note, not a problem: it depends on the fault.
func judgeDrill(r *DrillReport) {
	var p []string
	if r.Writes.Lost > 0 {
		p = append(p, fmt.Sprintf("%d acknowledged writes lost (%s)", r.Writes.Lost, strings.Join(r.Writes.LostNames, ", ")))
	}
	if r.Reads.Stale > 0 {
		p = append(p, fmt.Sprintf("%d linearizable reads missed an acknowledged write (%s)", r.Reads.Stale, strings.Join(r.Reads.StaleNames, ", ")))
	}
	w := r.Watch
	if w.Missing > 0 {
		p = append(p, fmt.Sprintf("the watch missed %d acknowledged writes (%s)", w.Missing, strings.Join(w.MissingNames, ", ")))
	}
	if w.OutOfOrder > 0 {
		p = append(p, fmt.Sprintf("the watch delivered %d events out of order (%s)", w.OutOfOrder, strings.Join(w.OutOfOrderAt, "; ")))
	}
	if w.Duplicates > 0 {
		p = append(p, fmt.Sprintf("the watch delivered %d events twice", w.Duplicates))
	}
	if w.WrongRevision > 0 {
		p = append(p, fmt.Sprintf("%d watch events carried another resourceVersion than the write's answer", w.WrongRevision))
	}
	if w.Expired > 0 {
		p = append(p, fmt.Sprintf("the watch could not resume %d times (410 Gone): events may be missing", w.Expired))
	}
	if r.Writes.Acknowledged == 0 {
		p = append(p, "no write was acknowledged during the drill")
	}
	if r.WritesBackMs == nil {
		p = append(p, "no write issued after the fault was acknowledged within the time limit")
	}
	if r.TargetRole == "leader" {
		switch {
		case r.NewLeaderMs == nil:
			p = append(p, "no new leader was elected within the time limit")
		case r.Drill == "leader-transfer" && r.LeaderAfter == r.LeaderBefore:
			p = append(p, "leadership did not move to another master")
		}
	}
	if r.SchedulerMs == nil {
		p = append(p, "the scheduler did not act on the probe pod within the time limit")
	}
	if r.ControllersMs == nil {
		p = append(p, "the ReplicaSet controller did not act on the probe ReplicaSet within the time limit")
	}
	if r.HealedMs == nil && r.Drill != "leader-transfer" {
		p = append(p, fmt.Sprintf("%s did not come back within the time limit", r.Target))
	}
	c := r.Convergence
	if !c.Converged {
		var parts []string
		for _, m := range c.Masters {
			if m.Error != "" {
				parts = append(parts, fmt.Sprintf("%s: %s", m.Name, m.Error))
			} else {
				parts = append(parts, fmt.Sprintf("%s at %d %s", m.Name, m.Revision, drillShortHash(m.Hash)))
			}
		}
		p = append(p, "the masters did not converge on one state: "+strings.Join(parts, "; "))
	}
	if !c.OneLeaderPerTerm {
		p = append(p, "two masters led the same term: "+strings.Join(c.TermConflicts, "; "))
	}
	r.Problems = p
	r.Passed = len(p) == 0
}

func drillShortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// termConflicts returns the terms two masters claim to have led.
func drillTermConflicts(claims map[string][]drillTermClaim) []string {
	byTerm := map[uint64]string{}
	var out []string
	names := make([]string, 0, len(claims))
	for n := range claims {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, c := range claims[n] {
			if prev, ok := byTerm[c.Term]; ok && prev != c.ID {
				out = append(out, fmt.Sprintf("term %d: %s and %s", c.Term, prev, c.ID))
				continue
			}
			byTerm[c.Term] = c.ID
		}
	}
	return out
}

// drillTermClaim is one entry of /skiff/v1/raft/leadership-history.
type drillTermClaim struct {
	Term uint64
	ID   string
}

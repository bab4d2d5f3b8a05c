package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"skiff/master"
)

// Where the drill keeps its objects.
const (
	drillNamespace  = "skiff-system"
	drillLabel      = "skiff.dev/drill"
	drillProbeLabel = "skiff.dev/drill-probe"
	reportLabel     = "skiff.dev/drill-report"
	canaryName      = "skiff-drill-canary"
	canaryReplicas  = 3
)

// Probe workload pacing. Attempts are short so a request stuck on a dead path is abandoned
// and the next one goes elsewhere: the figures say when the cluster works again, not when
// a client timeout fires.
const (
	probeWriters  = 2
	writeTimeout  = 500 * time.Millisecond
	writePause    = 20 * time.Millisecond
	pollTimeout   = 400 * time.Millisecond
	leaderPollGap = 25 * time.Millisecond
	canaryPollGap = 250 * time.Millisecond
	warmUp        = time.Second
	settleAfter   = time.Second
)

// drillOptions are the flags of `skiff drill NAME`.
type drillOptions struct {
	kubeconfig string
	duration   time.Duration
	timeout    time.Duration
	target     string
	progress   io.Writer
}

// drillRunner runs one drill. The probe workload's goroutines record into the fields
// under mu; everything else belongs to the goroutine that called run.
type drillRunner struct {
	name    string
	opts    drillOptions
	creds   *drillCreds
	masters []*drillMaster
	via     []*drillMaster // the masters the workload goes through (never the target)
	viaNext atomic.Uint64
	seq     atomic.Uint64 // probe write numbers
	rep     DrillReport

	target      *drillMaster // master drills
	targetDrill master.DrillStatus
	agent       string // agent-partition
	localPID    int    // master-pause through SIGSTOP, when the master runs here
	safetyNet   *exec.Cmd
	faultOn     bool // the fault was injected and may not be healed yet
	rv0         string
	t0          time.Time

	mu          sync.Mutex
	writes      []drillRawWrite
	events      []drillRawEvent
	resumed     int
	expired     int
	watchRV     uint64
	canary      []drillRawSample
	leaderAt    time.Time // first leader of a later term
	leaderID    string
	lastLeader  string
	lastTerm    uint64
	nodeDownAt  time.Time
	nodeReadyAt time.Time
}

// drillRawWrite, drillRawEvent and drillRawSample are what the workload records, in wall
// clock time; summarize makes them relative to the fault.
type drillRawWrite struct {
	name       string
	start, end time.Time
	outcome    drillWriteOutcome
	reason     string // why it was not acknowledged
	rv         uint64
	read       drillReadOutcome
}

type drillRawEvent struct {
	typ, name string
	rv        uint64
	at        time.Time
}

type drillRawSample struct {
	at    time.Time
	ready int
}

// newDrillID names a drill by its start time (UTC) and a random suffix.
func newDrillID() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// say prints a progress line, stamped with the time since the fault once there is one.
func (r *drillRunner) say(format string, args ...any) {
	stamp := "        "
	if t0 := r.faultTime(); !t0.IsZero() {
		stamp = fmt.Sprintf("%+7.3fs", time.Since(t0).Seconds())
	}
	fmt.Fprintf(r.opts.progress, "%s  %s\n", stamp, fmt.Sprintf(format, args...))
}

func (r *drillRunner) nextVia() *drillMaster {
	return r.via[int(r.viaNext.Add(1))%len(r.via)]
}

// run carries out the drill and returns its report. It heals whatever it broke before it
// returns, also when ctx ends early (Ctrl-C).
func (r *drillRunner) run(ctx context.Context) (*DrillReport, error) {
	r.rep = DrillReport{ID: newDrillID(), Drill: r.name, Started: time.Now().UTC()}
	if err := r.prepare(ctx); err != nil {
		return nil, err
	}
	defer r.healAll()
	finished := false
	defer func() {
		if !finished {
			r.say("drill interrupted: healing the fault and deleting the probe objects")
			r.healAll()
			r.cleanup()
		}
	}()

	wctx, stopWorkload := context.WithCancel(ctx)
	var wg sync.WaitGroup
	writerCtx, stopWriter := context.WithCancel(wctx)
	defer stopWorkload()
	defer stopWriter()
	var writers sync.WaitGroup
	for i := 0; i < probeWriters; i++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			_ = drillSleep(writerCtx, time.Duration(i)*writePause/probeWriters)
			r.writer(writerCtx)
		}()
	}
	wg.Add(2)
	go func() { defer wg.Done(); r.watcher(wctx) }()
	go func() { defer wg.Done(); r.pollLeaders(wctx) }()
	if r.rep.Canary.Enabled {
		wg.Add(1)
		go func() { defer wg.Done(); r.sampleCanary(wctx) }()
	}
	if r.agent != "" {
		wg.Add(1)
		go func() { defer wg.Done(); r.pollNode(wctx) }()
	}
	r.say("probe workload running through %s: unique writes, a linearizable read after each, one watch", drillMasterNames(r.via))
	if err := drillSleep(ctx, warmUp); err != nil {
		return nil, err
	}
	if r.acked() == 0 {
		stopWorkload()
		wg.Wait()
		return nil, errors.New("the cluster acknowledged no probe write before the fault; drill a healthy cluster")
	}

	if err := r.inject(ctx); err != nil {
		return nil, err
	}
	deadline := r.t0.Add(r.opts.timeout)
	r.waitRecovery(ctx, deadline)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	stopWriter()
	writers.Wait() // their last writes are recorded: the watch must show them too
	r.waitWatchCatchUp(ctx, 10*time.Second)
	stopWorkload()
	wg.Wait()

	found, err := r.finalList(ctx)
	if err != nil {
		r.rep.Notes = append(r.rep.Notes, "could not list the probe writes afterwards: "+err.Error())
	}
	r.say("checking that every master converged on the same state…")
	r.rep.Convergence = r.converge(ctx, 30*time.Second)
	r.cleanup()
	finished = true
	r.summarize(found)
	judgeDrill(&r.rep)
	r.store(ctx)
	return &r.rep, nil
}

// waitRecovery waits until the cluster has recovered (new leader if one is due, writes
// back, scheduler and controllers acted, the target back) or the deadline passes,
// reporting each milestone as it happens.
func (r *drillRunner) waitRecovery(ctx context.Context, deadline time.Time) {
	expectLeader := r.rep.TargetRole == "leader"
	faultEnds := time.Time{}
	if r.rep.FaultMs > 0 {
		faultEnds = r.t0.Add(r.opts.duration)
	}
	var (
		leaderSaid, writesSaid, waitingSaid, healedSaid bool
		probes                                          *drillProbes
		healedAt                                        time.Time
	)
	for ctx.Err() == nil {
		now := time.Now()
		r.mu.Lock()
		leaderAt, leaderID, lastTerm := r.leaderAt, r.leaderID, r.lastTerm
		nodeDown, nodeReady := r.nodeDownAt, r.nodeReadyAt
		var backAt time.Time
		for _, w := range r.writes {
			if w.outcome == writeAcked && !w.start.Before(r.t0) {
				backAt = w.end
				break
			}
		}
		r.mu.Unlock()

		if !leaderAt.IsZero() && !leaderSaid {
			leaderSaid = true
			r.say("new leader %s (term %d) after %s", leaderID, lastTerm, drillMs(leaderAt.Sub(r.t0)))
		}
		if !backAt.IsZero() && !writesSaid {
			writesSaid = true
			r.say("writes acknowledged again after %s", drillMs(backAt.Sub(r.t0)))
		}
		if probes == nil && (!expectLeader || !leaderAt.IsZero()) {
			probes = r.startProbes(ctx)
		}
		if r.localPID > 0 && !faultEnds.IsZero() && now.After(faultEnds) {
			r.say("resuming %s (SIGCONT)", r.target.name)
			_ = syscall.Kill(r.localPID, syscall.SIGCONT)
			r.localPID = 0
		}
		if r.agent != "" && !nodeDown.IsZero() && r.rep.NodeUnreachableMs == nil {
			r.rep.NodeUnreachableMs = drillMillis(nodeDown.Sub(r.t0))
			r.say("the leader marked node %s not Ready after %s", r.agent, drillMs(nodeDown.Sub(r.t0)))
		}
		if healedAt.IsZero() && (faultEnds.IsZero() || now.After(faultEnds)) {
			switch {
			case r.name == "leader-transfer":
			case r.agent != "":
				n := drillNode{}
				if !nodeReady.IsZero() {
					healedAt = nodeReady
				} else if nodeDown.IsZero() && r.nextVia().call(ctx, pollTimeout, http.MethodGet, "/api/v1/nodes/"+url.PathEscape(r.agent), nil, &n) == nil && n.ready() == "True" {
					healedAt = time.Now() // the partition ended before the leader noticed it
				}
			default:
				if !waitingSaid && r.name == "leader-crash" && !backAt.IsZero() {
					waitingSaid = true
					r.say("waiting for %s to come back (skiff dev restarts crashed masters; elsewhere, restart it yourself) — up to %s more",
						r.target.name, time.Until(deadline).Round(time.Second))
				}
				if r.target.call(ctx, pollTimeout, http.MethodGet, "/readyz", nil, nil) == nil {
					healedAt = time.Now()
				}
			}
			if !healedAt.IsZero() && !healedSaid {
				healedSaid = true
				r.rep.HealedMs = drillMillis(healedAt.Sub(r.t0))
				if r.agent != "" {
					r.rep.NodeReadyMs = r.rep.HealedMs
					r.say("node %s Ready again after %s", r.agent, drillMs(healedAt.Sub(r.t0)))
				} else {
					r.say("%s is back after %s", r.target.name, drillMs(healedAt.Sub(r.t0)))
				}
			}
		}
		healed := r.name == "leader-transfer" || !healedAt.IsZero()
		probesDone := probes != nil && probes.done()
		if (!expectLeader || !leaderAt.IsZero()) && !backAt.IsZero() && probesDone && healed &&
			(healedAt.IsZero() || now.Sub(healedAt) >= settleAfter) && now.Sub(r.t0) >= settleAfter {
			break
		}
		if now.After(deadline) {
			r.say("time limit reached (--timeout %s)", r.opts.timeout)
			break
		}
		_ = drillSleep(ctx, 50*time.Millisecond)
	}
	if probes != nil {
		probes.stop()
		sched, ctrl := probes.results()
		if !sched.IsZero() {
			r.rep.SchedulerMs = drillMillis(sched.Sub(r.t0))
		}
		if !ctrl.IsZero() {
			r.rep.ControllersMs = drillMillis(ctrl.Sub(r.t0))
		}
	}
	r.healAll()
}

func drillMasterNames(ms []*drillMaster) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.name)
	}
	return strings.Join(out, ", ")
}

func drillMs(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func drillSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

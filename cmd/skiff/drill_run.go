package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"skiff/agent/testimage"
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

// prepare finds the masters, the leader and the target, checks the target allows the
// drill, and sets up the namespace, the canary and the watch's starting point.
func (r *drillRunner) prepare(ctx context.Context) error {
	creds, err := readDrillCreds(r.opts.kubeconfig)
	if err != nil {
		return err
	}
	r.creds = creds
	if r.masters, err = discoverDrillMasters(ctx, creds); err != nil {
		return err
	}
	r.rep.Masters = len(r.masters)
	statuses := r.raftStatuses(ctx, 2*time.Second)
	var leader *drillMaster
	for _, m := range r.masters {
		st, ok := statuses[m.name]
		if !ok {
			return fmt.Errorf("master %s (%s) does not answer: drill a healthy cluster (see skiff status)", m.name, m.base)
		}
		if st.State == "Leader" {
			leader = m
			r.rep.LeaderBefore, r.rep.TermBefore = m.name, st.Term
		}
	}
	if leader == nil {
		return errors.New("no master is the leader right now: drill a healthy cluster (see skiff status)")
	}
	r.lastLeader, r.lastTerm = r.rep.LeaderBefore, r.rep.TermBefore

	switch r.name {
	case "leader-transfer", "leader-crash", "leader-partition", "master-pause":
		if len(r.masters) < 3 {
			return fmt.Errorf("%s needs at least 3 masters (this cluster has %d): with fewer, losing one stops the cluster", r.name, len(r.masters))
		}
		r.target = leader
		if r.name == "master-pause" && r.opts.target != "" {
			r.target = nil
			for _, m := range r.masters {
				if m.name == r.opts.target {
					r.target = m
				}
			}
			if r.target == nil {
				return fmt.Errorf("--target %s: no such master (masters: %s)", r.opts.target, drillMasterNames(r.masters))
			}
		} else if r.opts.target != "" && r.opts.target != leader.name {
			return fmt.Errorf("%s always targets the leader (%s); --target is for master-pause and agent-partition", r.name, leader.name)
		}
		r.rep.Target = r.target.name
		for _, m := range r.masters {
			if m != r.target {
				r.via = append(r.via, m)
			}
		}
	case "agent-partition":
		r.via = r.masters
	}

	if err := r.ensureNamespace(ctx); err != nil {
		return err
	}
	ready, err := r.readyAgents(ctx)
	if err != nil {
		return err
	}
	r.rep.Agents = len(ready)
	if r.name == "agent-partition" {
		if len(ready) == 0 {
			return errors.New("agent-partition needs a Ready agent, and this cluster has none")
		}
		r.agent = ready[0]
		if r.opts.target != "" {
			r.agent = ""
			for _, a := range ready {
				if a == r.opts.target {
					r.agent = a
				}
			}
			if r.agent == "" {
				return fmt.Errorf("--target %s: no Ready agent of that name (Ready agents: %s)", r.opts.target, strings.Join(ready, ", "))
			}
		}
		r.rep.Target = r.agent
	}
	if err := r.checkDrillsAllowed(ctx); err != nil {
		return err
	}

	role := "leader"
	switch {
	case r.agent != "":
		role = "agent"
	case r.target.name != r.rep.LeaderBefore:
		role = "follower"
	}
	r.rep.TargetRole = role
	r.say("drill %s (id %s): %d masters, leader %s (term %d); target %s (%s); %d Ready agents",
		r.name, r.rep.ID, len(r.masters), r.rep.LeaderBefore, r.rep.TermBefore, r.rep.Target, role, len(ready))

	if len(ready) > 0 {
		if err := r.ensureCanary(ctx); err != nil {
			return err
		}
	} else {
		r.rep.Notes = append(r.rep.Notes, "no Ready agents: the canary Deployment was skipped, and the scheduler's measured action is marking the probe pod unschedulable")
		r.say("no Ready agents: skipping the canary Deployment")
	}
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := r.via[0].call(ctx, 5*time.Second, http.MethodGet, drillConfigMaps()+"?labelSelector="+url.QueryEscape(drillLabel+"="+r.rep.ID), nil, &list); err != nil {
		return fmt.Errorf("listing through %s: %w", r.via[0], err)
	}
	r.rv0 = list.Metadata.ResourceVersion
	return nil
}

// checkDrillsAllowed asks the target's drill endpoint (through a master for agents), so a
// cluster without --allow-drills fails before any workload starts.
func (r *drillRunner) checkDrillsAllowed(ctx context.Context) error {
	switch r.name {
	case "leader-transfer":
		return nil
	case "agent-partition":
		err := r.via[0].call(ctx, 5*time.Second, http.MethodGet, "/skiff/v1/drill/agents/"+url.PathEscape(r.agent), nil, nil)
		if err != nil {
			return fmt.Errorf("agent %s (through master %s) refuses drills: %w", r.agent, r.via[0], err)
		}
		return nil
	}
	if err := r.target.call(ctx, 5*time.Second, http.MethodGet, "/skiff/v1/drill", nil, &r.targetDrill); err != nil {
		return fmt.Errorf("master %s refuses drills: %w", r.target.name, err)
	}
	return nil
}

func (r *drillRunner) ensureNamespace(ctx context.Context) error {
	m := r.via[0]
	err := m.call(ctx, 5*time.Second, http.MethodGet, "/api/v1/namespaces/"+drillNamespace, nil, nil)
	if drillCode(err) == http.StatusNotFound {
		ns := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": drillNamespace}}
		err = m.call(ctx, 5*time.Second, http.MethodPost, "/api/v1/namespaces", ns, nil)
		if drillCode(err) == http.StatusConflict {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("namespace %s: %w", drillNamespace, err)
	}
	return nil
}

// readyAgents lists the Nodes whose Ready condition is True.
func (r *drillRunner) readyAgents(ctx context.Context) ([]string, error) {
	var nodes struct {
		Items []drillNode `json:"items"`
	}
	if err := r.via[0].call(ctx, 5*time.Second, http.MethodGet, "/api/v1/nodes", nil, &nodes); err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	var out []string
	for _, n := range nodes.Items {
		if n.ready() == "True" {
			out = append(out, n.Metadata.Name)
		}
	}
	return out, nil
}

type drillNode struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Status struct {
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
	} `json:"status"`
}

func (n *drillNode) ready() string {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status
		}
	}
	return "Unknown"
}

// drillPod is the part of a Pod the drill reads.
type drillPod struct {
	Metadata struct {
		Name              string  `json:"name"`
		DeletionTimestamp *string `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Reason string `json:"reason"`
		} `json:"conditions"`
	} `json:"status"`
}

func (p *drillPod) condition(t string) (string, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status, true
		}
	}
	return "", false
}

// ensureCanary creates the canary Deployment if it is missing and waits (up to a minute)
// for its replicas to be ready.
func (r *drillRunner) ensureCanary(ctx context.Context) error {
	r.rep.Canary.Enabled, r.rep.Canary.Replicas = true, canaryReplicas
	m := r.via[0]
	path := "/apis/apps/v1/namespaces/" + drillNamespace + "/deployments"
	err := m.call(ctx, 5*time.Second, http.MethodGet, path+"/"+canaryName, nil, nil)
	if drillCode(err) == http.StatusNotFound {
		r.say("creating the canary Deployment %s/%s (%d replicas of %s)", drillNamespace, canaryName, canaryReplicas, testimage.BusyboxRef)
		labels := map[string]any{"app": canaryName}
		dep := map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": canaryName, "namespace": drillNamespace, "labels": labels},
			"spec": map[string]any{
				"replicas": canaryReplicas,
				"selector": map[string]any{"matchLabels": labels},
				"template": map[string]any{
					"metadata": map[string]any{"labels": labels},
					"spec": map[string]any{
						"terminationGracePeriodSeconds": 1,
						"containers": []any{map[string]any{"name": "canary", "image": testimage.BusyboxRef,
							"command": []string{"sh", "-c", "while true; do sleep 3600; done"}}},
					},
				},
			},
		}
		err = m.call(ctx, 5*time.Second, http.MethodPost, path, dep, nil)
		if drillCode(err) == http.StatusConflict {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("canary Deployment: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	last := -1
	for {
		n := r.canaryReady(ctx)
		if n >= canaryReplicas {
			r.say("canary %s/%s: %d/%d ready", drillNamespace, canaryName, n, canaryReplicas)
			return nil
		}
		if n != last {
			r.say("waiting for the canary: %d/%d ready", max(n, 0), canaryReplicas)
			last = n
		}
		if time.Now().After(deadline) {
			r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("the canary had only %d of %d replicas ready when the drill started", max(n, 0), canaryReplicas))
			return nil
		}
		if err := drillSleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// canaryReady counts the canary's ready pods from a master's own state (no leader
// needed), or -1 when no master answers.
func (r *drillRunner) canaryReady(ctx context.Context) int {
	var pods struct {
		Items []drillPod `json:"items"`
	}
	m := r.nextVia()
	q := "?resourceVersion=0&labelSelector=" + url.QueryEscape("app="+canaryName)
	if err := m.call(ctx, pollTimeout, http.MethodGet, "/api/v1/namespaces/"+drillNamespace+"/pods"+q, nil, &pods); err != nil {
		return -1
	}
	n := 0
	for _, p := range pods.Items {
		if s, _ := p.condition("Ready"); s == "True" && p.Metadata.DeletionTimestamp == nil {
			n++
		}
	}
	return n
}

func drillConfigMaps() string { return "/api/v1/namespaces/" + drillNamespace + "/configmaps" }

// writer creates ConfigMaps drill-<id>-<n> one after another through the masters in turn,
// each acknowledged one followed by a linearizable read through the next master. Several
// writers run at once, so that one stuck on a dead path does not hide that writes work
// again through another.
func (r *drillRunner) writer(ctx context.Context) {
	for ctx.Err() == nil {
		n := r.seq.Add(1) - 1
		name := fmt.Sprintf("drill-%s-%d", r.rep.ID, n)
		value := fmt.Sprintf("%s/%d/%d", r.rep.ID, n, time.Now().UnixNano())
		cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": name, "namespace": drillNamespace, "labels": map[string]string{drillLabel: r.rep.ID}},
			"data":     map[string]string{"value": value}}
		w := drillRawWrite{name: name, start: time.Now()}
		var out struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		err := r.nextVia().call(context.WithoutCancel(ctx), writeTimeout, http.MethodPost, drillConfigMaps(), cm, &out)
		w.end = time.Now()
		code := drillCode(err)
		switch {
		case err == nil:
			w.outcome = writeAcked
			w.rv, _ = strconv.ParseUint(out.Metadata.ResourceVersion, 10, 64)
		case code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests || (code == 0 && drillNotSent(err)):
			w.outcome = writeFailed
		default:
			w.outcome = writeUnknown
		}
		switch {
		case err == nil:
		case code != 0:
			w.reason = fmt.Sprintf("%d %s", code, http.StatusText(code))
		case errors.Is(err, context.DeadlineExceeded):
			w.reason = fmt.Sprintf("no answer within %s", writeTimeout)
		case drillNotSent(err):
			w.reason = "connection refused"
		default:
			w.reason = "connection error"
		}
		if w.outcome == writeAcked {
			w.read = r.readBack(ctx, name, value)
		}
		r.mu.Lock()
		r.writes = append(r.writes, w)
		r.mu.Unlock()
		if w.outcome == writeAcked {
			_ = drillSleep(ctx, writePause)
		} else {
			_ = drillSleep(ctx, 10*time.Millisecond) // a failed write is retried soon, not in a tight loop
		}
	}
}

// readBack reads an acknowledged write through the next master: it must be there.
func (r *drillRunner) readBack(ctx context.Context, name, value string) drillReadOutcome {
	var cm struct {
		Data map[string]string `json:"data"`
	}
	err := r.nextVia().call(context.WithoutCancel(ctx), writeTimeout, http.MethodGet, drillConfigMaps()+"/"+name, nil, &cm)
	switch {
	case err == nil && cm.Data["value"] == value:
		return readFound
	case err == nil || drillCode(err) == http.StatusNotFound:
		return readStale
	}
	return readError
}

func (r *drillRunner) acked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, w := range r.writes {
		if w.outcome == writeAcked {
			n++
		}
	}
	return n
}

// watcher watches the drill's ConfigMaps from before the first write, resuming after
// breaks from the last revision it saw, through the masters in turn, as informers do.
func (r *drillRunner) watcher(ctx context.Context) {
	rv, _ := strconv.ParseUint(r.rv0, 10, 64)
	first := true
	for ctx.Err() == nil {
		if !first {
			r.mu.Lock()
			r.resumed++
			r.mu.Unlock()
			_ = drillSleep(ctx, 100*time.Millisecond)
		}
		first = false
		path := drillConfigMaps() + "?watch=true&allowWatchBookmarks=true&resourceVersion=" + strconv.FormatUint(rv, 10) +
			"&labelSelector=" + url.QueryEscape(drillLabel+"="+r.rep.ID)
		m := r.nextVia()
		err := m.watchLines(ctx, path, func(line []byte) error {
			var ev struct {
				Type   string `json:"type"`
				Object struct {
					Code     int `json:"code"`
					Metadata struct {
						Name            string `json:"name"`
						ResourceVersion string `json:"resourceVersion"`
					} `json:"metadata"`
				} `json:"object"`
			}
			if err := json.Unmarshal(line, &ev); err != nil {
				return fmt.Errorf("watch event: %w", err)
			}
			if ev.Type == "ERROR" {
				if ev.Object.Code == http.StatusGone {
					r.mu.Lock()
					r.expired++
					r.mu.Unlock()
					return errWatchExpired
				}
				return fmt.Errorf("watch error %d", ev.Object.Code)
			}
			erv, _ := strconv.ParseUint(ev.Object.Metadata.ResourceVersion, 10, 64)
			if erv > rv {
				rv = erv
			}
			r.mu.Lock()
			r.watchRV = rv
			if ev.Type != "BOOKMARK" {
				r.events = append(r.events, drillRawEvent{typ: ev.Type, name: ev.Object.Metadata.Name, rv: erv, at: time.Now()})
			}
			r.mu.Unlock()
			return nil
		})
		if errors.Is(err, errWatchExpired) {
			// Nothing can be proven about the gap; carry on from now.
			var list struct {
				Metadata struct {
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
			}
			if r.nextVia().call(ctx, writeTimeout, http.MethodGet, drillConfigMaps()+"?labelSelector="+url.QueryEscape(drillLabel+"="+r.rep.ID), nil, &list) == nil {
				rv, _ = strconv.ParseUint(list.Metadata.ResourceVersion, 10, 64)
			}
		}
	}
}

var errWatchExpired = errors.New("watch expired")

// waitWatchCatchUp waits until the watch has seen the last acknowledged write.
func (r *drillRunner) waitWatchCatchUp(ctx context.Context, limit time.Duration) {
	r.mu.Lock()
	var want uint64
	for _, w := range r.writes {
		if w.outcome == writeAcked && w.rv > want {
			want = w.rv
		}
	}
	r.mu.Unlock()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		r.mu.Lock()
		seen := r.watchRV
		r.mu.Unlock()
		if seen >= want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// raftStatuses asks every master for its Raft status at once.
func (r *drillRunner) raftStatuses(ctx context.Context, timeout time.Duration) map[string]drillRaftStatus {
	var mu sync.Mutex
	out := map[string]drillRaftStatus{}
	var wg sync.WaitGroup
	for _, m := range r.masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st drillRaftStatus
			if m.call(ctx, timeout, http.MethodGet, "/skiff/v1/raft", nil, &st) == nil {
				mu.Lock()
				out[m.name] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// pollLeaders watches for the first leader of a later term, and the latest leader. Each
// master is polled on its own, so one that hangs (paused) delays nobody else's answer.
func (r *drillRunner) pollLeaders(ctx context.Context) {
	var wg sync.WaitGroup
	for _, m := range r.masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var st drillRaftStatus
				if m.call(ctx, pollTimeout, http.MethodGet, "/skiff/v1/raft", nil, &st) == nil && st.State == "Leader" {
					r.mu.Lock()
					if st.Term >= r.lastTerm {
						r.lastLeader, r.lastTerm = st.ID, st.Term
					}
					if !r.t0.IsZero() && r.leaderAt.IsZero() && st.Term > r.rep.TermBefore {
						r.leaderAt, r.leaderID = time.Now(), st.ID
					}
					r.mu.Unlock()
				}
				_ = drillSleep(ctx, leaderPollGap)
			}
		}()
	}
	wg.Wait()
}

// sampleCanary counts the canary's ready pods four times a second.
func (r *drillRunner) sampleCanary(ctx context.Context) {
	for ctx.Err() == nil {
		n := r.canaryReady(ctx)
		r.mu.Lock()
		r.canary = append(r.canary, drillRawSample{at: time.Now(), ready: n})
		r.mu.Unlock()
		_ = drillSleep(ctx, canaryPollGap)
	}
}

// pollNode follows the target agent's Node: when it stops being Ready and when it is Ready
// again.
func (r *drillRunner) pollNode(ctx context.Context) {
	for ctx.Err() == nil {
		var n drillNode
		if r.nextVia().call(ctx, pollTimeout, http.MethodGet, "/api/v1/nodes/"+url.PathEscape(r.agent)+"?resourceVersion=0", nil, &n) == nil && !r.faultTime().IsZero() {
			ready := n.ready() == "True"
			r.mu.Lock()
			if !ready && r.nodeDownAt.IsZero() {
				r.nodeDownAt = time.Now()
			}
			if ready && !r.nodeDownAt.IsZero() && r.nodeReadyAt.IsZero() {
				r.nodeReadyAt = time.Now()
			}
			r.mu.Unlock()
		}
		_ = drillSleep(ctx, 100*time.Millisecond)
	}
}

// inject makes the fault and sets r.t0 to the moment it is in effect: when the target
// answered that it partitioned or paused itself, when the kernel stopped it (SIGSTOP), when
// its port stopped accepting connections (crash), or when the leadership transfer was asked
// for (the transfer itself is part of what is measured). Writes issued from then on cannot
// reach the target as it was.
func (r *drillRunner) inject(ctx context.Context) error {
	d := r.opts.duration
	dq := "?duration=" + url.QueryEscape(d.String())
	switch r.name {
	case "leader-transfer":
		r.rep.Method = "leadership transfer through /skiff/v1/raft/transfer-leadership"
		r.markT0()
		r.say("asking %s to hand leadership over", r.target.name)
		if err := r.target.call(ctx, 15*time.Second, http.MethodPost, "/skiff/v1/raft/transfer-leadership", nil, nil); err != nil {
			return fmt.Errorf("transferring leadership: %w", err)
		}
	case "leader-crash":
		r.rep.Method = "SIGKILL of the leader process (its drill endpoint kills itself right after answering); times count from when its port stopped accepting connections"
		r.say("crashing %s (kill -9)", r.target.name)
		if err := r.target.call(ctx, 5*time.Second, http.MethodPost, "/skiff/v1/drill/crash", nil, nil); err != nil {
			if code := drillCode(err); code != 0 {
				return fmt.Errorf("crashing %s: %w", r.target.name, err)
			}
		}
		if err := r.waitDead(ctx); err != nil {
			return err
		}
		r.markT0()
	case "leader-partition":
		r.rep.Method = "the leader cuts itself off Raft, gossip and its API clients (raft and gossip fault injection), healing after the duration"
		r.rep.FaultMs = *drillMillis(d)
		r.say("partitioning %s for %s", r.target.name, d)
		if err := r.target.call(ctx, 5*time.Second, http.MethodPost, "/skiff/v1/drill/partition"+dq, nil, nil); err != nil {
			return fmt.Errorf("partitioning %s: %w", r.target.name, err)
		}
		r.markT0()
	case "master-pause":
		r.rep.FaultMs = *drillMillis(d)
		if pid := r.localProcess(); pid > 0 {
			r.rep.Method = fmt.Sprintf("SIGSTOP of process %d from the drill client (same machine), SIGCONT after the duration", pid)
			if err := r.startSafetyNet(pid, d); err != nil {
				return err
			}
			r.say("pausing %s (SIGSTOP to pid %d) for %s", r.target.name, pid, d)
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				return fmt.Errorf("SIGSTOP %d: %w", pid, err)
			}
			r.localPID = pid
			r.markT0()
		} else {
			r.rep.Method = "emulated pause (the master is on another machine): Raft and gossip cut, new API requests held until the pause ends"
			r.say("pausing %s (emulated) for %s", r.target.name, d)
			if err := r.target.call(ctx, 5*time.Second, http.MethodPost, "/skiff/v1/drill/pause"+dq, nil, nil); err != nil {
				return fmt.Errorf("pausing %s: %w", r.target.name, err)
			}
			r.markT0()
		}
	case "agent-partition":
		r.rep.Method = "the agent cuts itself off gossip and the masters (containers keep running), healing after the duration"
		r.rep.FaultMs = *drillMillis(d)
		r.say("partitioning agent %s for %s", r.agent, d)
		if err := r.via[0].call(ctx, 10*time.Second, http.MethodPost, "/skiff/v1/drill/agents/"+url.PathEscape(r.agent)+"/partition"+dq, nil, nil); err != nil {
			return fmt.Errorf("partitioning agent %s: %w", r.agent, err)
		}
		r.markT0()
	}
	r.faultOn = true
	return nil
}

// markT0 records the moment of the fault. The workload's goroutines read it through
// faultTime; the drill's own goroutine, its only writer, reads r.t0 directly.
// waitDead waits until the crashed target's API port refuses connections.
func (r *drillRunner) waitDead(ctx context.Context) error {
	u, err := url.Parse(r.target.base)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", u.Host, 100*time.Millisecond)
		if err != nil {
			return nil
		}
		c.Close()
		if err := drillSleep(ctx, time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s still accepts connections 10s after the crash request", r.target.name)
}

func (r *drillRunner) markT0() {
	r.mu.Lock()
	r.t0 = time.Now()
	r.mu.Unlock()
}

func (r *drillRunner) faultTime() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.t0
}

// localProcess returns the target master's PID when it runs on this machine (same boot ID,
// and the PID is a skiff master of that name), else 0.
func (r *drillRunner) localProcess() int {
	pid := r.targetDrill.PID
	if pid <= 0 || r.targetDrill.BootID == "" || r.targetDrill.BootID != master.BootID() {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	isMaster, named := false, false
	for i, a := range args {
		if a == "master" {
			isMaster = true
		}
		if (a == "--name" || a == "-name") && i+1 < len(args) && args[i+1] == r.target.name {
			named = true
		}
		if a == "--name="+r.target.name || a == "-name="+r.target.name {
			named = true
		}
	}
	if isMaster && named {
		return pid
	}
	return 0
}

// startSafetyNet starts a detached shell that sends SIGCONT shortly after the pause should
// end, so a drill client that dies mid-pause does not leave the master stopped.
func (r *drillRunner) startSafetyNet(pid int, d time.Duration) error {
	secs := int(d.Seconds()) + 3
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("sleep %d; kill -CONT %d", secs, pid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the SIGCONT safety net: %w", err)
	}
	r.safetyNet = cmd
	go func() { _ = cmd.Wait() }()
	return nil
}

// healAll undoes the fault if it may still be on: after Ctrl-C, a time-out, or at the end
// as a precaution. Faults with a duration also heal themselves.
func (r *drillRunner) healAll() {
	if r.localPID > 0 {
		_ = syscall.Kill(r.localPID, syscall.SIGCONT)
		r.localPID = 0
	}
	if r.safetyNet != nil && r.safetyNet.Process != nil {
		// The shell leads its own process group (Setsid): end it and its sleep.
		_ = syscall.Kill(-r.safetyNet.Process.Pid, syscall.SIGKILL)
		r.safetyNet = nil
	}
	if !r.faultOn {
		return
	}
	r.faultOn = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch r.name {
	case "leader-partition", "master-pause":
		_ = r.target.call(ctx, 5*time.Second, http.MethodPost, "/skiff/v1/drill/heal", nil, nil)
	case "agent-partition":
		for _, m := range r.via {
			if m.call(ctx, 5*time.Second, http.MethodPost, "/skiff/v1/drill/agents/"+url.PathEscape(r.agent)+"/heal", nil, nil) == nil {
				return
			}
		}
	}
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

// drillProbes is the scheduler and controller probes: a pod the scheduler must place (or
// mark unschedulable when there are no nodes), and a ReplicaSet whose pod the ReplicaSet
// controller must create (its pods select no node, so nothing runs).
type drillProbes struct {
	r      *drillRunner
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	schedAt    time.Time
	ctrlAt     time.Time
	schedDone  bool
	ctrlDone   bool
	schedWhat  string
	createdPod bool
	createdRS  bool
}

func (r *drillRunner) probeName() string { return "drill-" + r.rep.ID + "-probe" }

// startProbes creates the probes (retrying until the cluster takes writes) and follows
// them in the background.
func (r *drillRunner) startProbes(ctx context.Context) *drillProbes {
	pctx, cancel := context.WithCancel(ctx)
	p := &drillProbes{r: r, cancel: cancel}
	name := r.probeName()
	container := []any{map[string]any{"name": "probe", "image": testimage.BusyboxRef, "command": []string{"sleep", "300"}}}
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": drillNamespace, "labels": map[string]string{drillLabel: r.rep.ID}},
		"spec":     map[string]any{"terminationGracePeriodSeconds": 0, "restartPolicy": "Never", "containers": container}}
	rs := map[string]any{"apiVersion": "apps/v1", "kind": "ReplicaSet",
		"metadata": map[string]any{"name": name, "namespace": drillNamespace, "labels": map[string]string{drillLabel: r.rep.ID}},
		"spec": map[string]any{"replicas": 1,
			"selector": map[string]any{"matchLabels": map[string]string{drillProbeLabel: r.rep.ID}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]string{drillProbeLabel: r.rep.ID}},
				"spec": map[string]any{"terminationGracePeriodSeconds": 0, "nodeSelector": map[string]string{drillProbeLabel: "never"}, "containers": container}}}}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		if !r.createRetrying(pctx, "/api/v1/namespaces/"+drillNamespace+"/pods", pod) {
			return
		}
		p.mu.Lock()
		p.createdPod = true
		p.mu.Unlock()
		for pctx.Err() == nil {
			var po drillPod
			if r.nextVia().call(pctx, pollTimeout, http.MethodGet, "/api/v1/namespaces/"+drillNamespace+"/pods/"+name+"?resourceVersion=0", nil, &po) == nil {
				what := ""
				if po.Spec.NodeName != "" {
					what = "bound the probe pod to " + po.Spec.NodeName
				} else if s, ok := po.condition("PodScheduled"); ok && s == "False" {
					what = "marked the probe pod unschedulable (no node fits)"
				}
				if what != "" {
					p.mu.Lock()
					p.schedAt, p.schedDone, p.schedWhat = time.Now(), true, what
					p.mu.Unlock()
					r.say("the scheduler %s", what)
					return
				}
			}
			_ = drillSleep(pctx, 20*time.Millisecond)
		}
	}()
	go func() {
		defer p.wg.Done()
		if !r.createRetrying(pctx, "/apis/apps/v1/namespaces/"+drillNamespace+"/replicasets", rs) {
			return
		}
		p.mu.Lock()
		p.createdRS = true
		p.mu.Unlock()
		q := "?resourceVersion=0&labelSelector=" + url.QueryEscape(drillProbeLabel+"="+r.rep.ID)
		for pctx.Err() == nil {
			var pods struct {
				Items []drillPod `json:"items"`
			}
			if r.nextVia().call(pctx, pollTimeout, http.MethodGet, "/api/v1/namespaces/"+drillNamespace+"/pods"+q, nil, &pods) == nil && len(pods.Items) > 0 {
				p.mu.Lock()
				p.ctrlAt, p.ctrlDone = time.Now(), true
				p.mu.Unlock()
				r.say("the ReplicaSet controller created the probe ReplicaSet's pod")
				return
			}
			_ = drillSleep(pctx, 20*time.Millisecond)
		}
	}()
	return p
}

// createRetrying POSTs obj until it is created (or found already created by an earlier
// attempt whose answer was lost); false when ctx ends first.
func (r *drillRunner) createRetrying(ctx context.Context, path string, obj any) bool {
	for ctx.Err() == nil {
		err := r.nextVia().call(ctx, writeTimeout, http.MethodPost, path, obj, nil)
		if err == nil || drillCode(err) == http.StatusConflict {
			return true
		}
		_ = drillSleep(ctx, 20*time.Millisecond)
	}
	return false
}

func (p *drillProbes) done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.schedDone && p.ctrlDone
}

func (p *drillProbes) stop() {
	p.cancel()
	p.wg.Wait()
}

func (p *drillProbes) results() (sched, ctrl time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.schedAt, p.ctrlAt
}

// finalList lists the drill's ConfigMaps with a linearizable read through any master.
func (r *drillRunner) finalList(ctx context.Context) (map[string]bool, error) {
	var err error
	for attempt := 0; attempt < 20 && ctx.Err() == nil; attempt++ {
		var list struct {
			Items []struct {
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			} `json:"items"`
		}
		m := r.masters[attempt%len(r.masters)]
		err = m.call(ctx, 10*time.Second, http.MethodGet, drillConfigMaps()+"?labelSelector="+url.QueryEscape(drillLabel+"="+r.rep.ID), nil, &list)
		if err == nil {
			found := map[string]bool{}
			for _, it := range list.Items {
				found[it.Metadata.Name] = true
			}
			return found, nil
		}
		_ = drillSleep(ctx, 500*time.Millisecond)
	}
	return nil, err
}

// converge waits (up to limit) until every master reports the same revision and state
// hash, and checks that no two masters claim the same term.
func (r *drillRunner) converge(ctx context.Context, limit time.Duration) Convergence {
	deadline := time.Now().Add(limit)
	var c Convergence
	for {
		c = Convergence{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		c.Masters = make([]MasterHash, len(r.masters))
		for i, m := range r.masters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var sh master.StateHash
				mh := MasterHash{Name: m.name}
				if err := m.call(ctx, 2*time.Second, http.MethodGet, "/skiff/v1/raft/state-hash", nil, &sh); err != nil {
					mh.Error = err.Error()
				} else {
					mh.Revision, mh.Hash = sh.Revision, sh.Hash
				}
				mu.Lock()
				c.Masters[i] = mh
				mu.Unlock()
			}()
		}
		wg.Wait()
		c.Converged = true
		for _, mh := range c.Masters {
			if mh.Error != "" || mh.Revision != c.Masters[0].Revision || mh.Hash != c.Masters[0].Hash {
				c.Converged = false
			}
		}
		if c.Converged {
			c.Revision = c.Masters[0].Revision
		}
		if c.Converged || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	claims := map[string][]drillTermClaim{}
	for _, m := range r.masters {
		var h []drillTermClaim
		if m.call(ctx, 2*time.Second, http.MethodGet, "/skiff/v1/raft/leadership-history", nil, &h) == nil {
			claims[m.name] = h
		}
	}
	c.TermConflicts = drillTermConflicts(claims)
	c.OneLeaderPerTerm = len(c.TermConflicts) == 0
	if c.Converged {
		r.say("converged: %d masters at revision %d, state hash %s", len(c.Masters), c.Revision, drillShortHash(c.Masters[0].Hash))
	} else {
		r.say("the masters did not converge within %s", limit)
	}
	return c
}

// cleanup deletes the probe writes and the probes (best effort; the report says nothing
// about it).
func (r *drillRunner) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	zero := map[string]any{"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
	background := map[string]any{"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
	reqs := []struct {
		path string
		body any
	}{
		{drillConfigMaps() + "?labelSelector=" + url.QueryEscape(drillLabel+"="+r.rep.ID), nil},
		{"/api/v1/namespaces/" + drillNamespace + "/pods/" + r.probeName(), zero},
		{"/apis/apps/v1/namespaces/" + drillNamespace + "/replicasets/" + r.probeName(), background},
	}
	for _, q := range reqs {
		for attempt := 0; attempt < 5; attempt++ {
			err := r.masters[attempt%len(r.masters)].call(ctx, 10*time.Second, http.MethodDelete, q.path, q.body, nil)
			if err == nil || drillCode(err) == http.StatusNotFound {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// summarize turns what the workload recorded into the report's figures.
func (r *drillRunner) summarize(found map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rel := func(t time.Time) time.Duration { return t.Sub(r.t0) }
	writes := make([]drillWrite, len(r.writes))
	for i, w := range r.writes {
		writes[i] = drillWrite{Name: w.name, Start: rel(w.start), End: rel(w.end), Outcome: w.outcome, RV: w.rv, Read: w.read, Reason: w.reason}
	}
	events := make([]drillEvent, len(r.events))
	for i, e := range r.events {
		events[i] = drillEvent{Type: e.typ, Name: e.name, RV: e.rv, At: rel(e.at)}
	}
	if found == nil {
		found = map[string]bool{}
		r.rep.Notes = append(r.rep.Notes, "lost writes could not be counted (the final list failed); every acknowledged write is reported lost")
	}
	r.rep.Writes, r.rep.Reads, r.rep.WritesBackMs = summarizeWrites(writes, found)
	r.rep.Watch = summarizeWatch(writes, events, r.resumed, r.expired)
	if !r.leaderAt.IsZero() {
		r.rep.NewLeaderMs = drillMillis(r.leaderAt.Sub(r.t0))
	}
	r.rep.LeaderAfter, r.rep.TermAfter = r.lastLeader, r.lastTerm
	if r.rep.Canary.Enabled {
		samples := make([]drillSample, len(r.canary))
		for i, s := range r.canary {
			samples[i] = drillSample{At: rel(s.at), Ready: s.ready}
		}
		r.rep.Canary = summarizeCanary(samples, canaryReplicas)
		if r.rep.Canary.MinReady >= 0 && r.rep.Canary.MinReady < canaryReplicas {
			r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("the canary dropped to %d of %d ready replicas", r.rep.Canary.MinReady, canaryReplicas))
		}
	}
}

// store keeps the report in the cluster as a ConfigMap, for `skiff drill list`.
func (r *drillRunner) store(ctx context.Context) {
	b, err := json.Marshal(r.rep)
	if err != nil {
		return
	}
	result := "passed"
	if !r.rep.Passed {
		result = "failed"
	}
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "drill-report-" + r.rep.ID, "namespace": drillNamespace,
			"labels": map[string]string{reportLabel: "true", drillLabel + "-name": r.name, drillLabel + "-result": result}},
		"data": map[string]string{"report.json": string(b)}}
	for attempt := 0; attempt < 10; attempt++ {
		err = r.masters[attempt%len(r.masters)].call(ctx, 5*time.Second, http.MethodPost, drillConfigMaps(), cm, nil)
		if err == nil || drillCode(err) == http.StatusConflict {
			r.say("report stored as ConfigMap %s/drill-report-%s (skiff drill list)", drillNamespace, r.rep.ID)
			return
		}
		_ = drillSleep(ctx, 300*time.Millisecond)
	}
	r.say("could not store the report in the cluster: %v", err)
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

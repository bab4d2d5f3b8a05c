package master

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/gossip"
	"skiff/master/api"
	"skiff/raft"
)

// Fault drills.
//
// `skiff drill` measures how the cluster rides out a failure by asking one master (or,
// through a master, one agent) to fail on purpose while it drives a probe workload through
// the others. The faults are carried out by the targeted process itself, so a drill needs
// no root, no iptables and no access to the machine: only the admin token and a cluster
// whose processes run with --allow-drills. Without that flag every drill endpoint answers
// 403 and nothing else is installed.
//
// Every fault with a duration heals itself when the duration ends, on a timer inside the
// process, so a drill client that dies mid-way leaves nothing broken for long.
//
//   - crash: the master answers, then sends itself SIGKILL: no deferred cleanup, no
//     graceful gossip leave, exactly `kill -9`. A supervisor (skiff dev, systemd) restarts it.
//   - partition: the master stops talking to its Raft peers (every Raft and RPC connection
//     in and out is refused through raft.Faults), drops all gossip (gossip.Faults), and
//     answers every API request with 503 (cutting the ones in flight, so agents and watches
//     move to another master). Only the drill endpoints still answer, to report and heal.
//   - pause: what a stopped process (SIGSTOP) looks like from outside, emulated: Raft and
//     gossip are cut as in a partition and new API requests hang until the pause ends
//     (requests already in flight carry on, which a real SIGSTOP would freeze too).
//     `skiff drill master-pause` sends a real SIGSTOP/SIGCONT instead when it runs on the
//     master's machine (it compares boot IDs and the process's command line), and uses this
//     endpoint only otherwise.

// maxDrillFault bounds how long one fault may last.
const maxDrillFault = 10 * time.Minute

// Drill fault kinds.
const (
	faultPartition = "partition"
	faultPause     = "pause"
)

// DrillStatus is what GET /skiff/v1/drill reports about a master.
type DrillStatus struct {
	Master string `json:"master"`
	// PID and BootID let a drill client on the same machine stop the process for real.
	PID    int    `json:"pid"`
	BootID string `json:"bootID"`
	// Fault is the fault in effect ("partition", "pause" or empty) and Until when it heals.
	Fault string     `json:"fault,omitempty"`
	Until *time.Time `json:"until,omitempty"`
}

// drills carries out the fault drills of one master. Its methods are safe for concurrent
// use; mu guards every field below it.
type drills struct {
	m       *Master
	enabled bool

	mu    sync.Mutex
	fault string
	until time.Time
	gen   uint64 // bumped by every start and end, so a stale heal timer does nothing
	timer *time.Timer
	// resume is closed when a pause ends; requests that arrived during it wait on it.
	resume chan struct{}
	// inflight cancels the API requests being served, so a partition cuts them.
	inflight map[uint64]context.CancelFunc
	nextReq  uint64
}

// armDrills gives the Raft node and the gossip pool fault injectors when drills are allowed.
func (c *Config) armDrills() {
	if !c.AllowDrills {
		return
	}
	if c.Raft.Faults == nil {
		c.Raft.Faults = raft.NewFaults()
	}
	if c.Gossip.Faults == nil {
		c.Gossip.Faults = gossip.NewFaults()
	}
}

// drillRoutes adds the drill endpoints under the authenticated ops group g and, when drills
// are allowed, the gate through which partitions and pauses reach the rest of the API.
func (m *Master) drillRoutes(e *echo.Echo, g *echo.Group) {
	d := &drills{m: m, enabled: m.cfg.AllowDrills, inflight: map[uint64]context.CancelFunc{}}
	m.drills = d
	g.GET("/drill", d.guard(d.status))
	g.POST("/drill/crash", d.guard(d.crash))
	g.POST("/drill/partition", d.guard(d.startFault(faultPartition)))
	g.POST("/drill/pause", d.guard(d.startFault(faultPause)))
	g.POST("/drill/heal", d.guard(d.heal))
	g.GET("/drill/agents/:node", d.guard(d.agentProxy))
	g.POST("/drill/agents/:node/:action", d.guard(d.agentProxy))
	if d.enabled {
		e.Pre(d.gate)
	}
}

// guard refuses every drill request unless the master runs with --allow-drills.
func (d *drills) guard(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !d.enabled {
			return drillError(c, http.StatusForbidden, metav1.StatusReasonForbidden,
				fmt.Sprintf("drills are disabled on master %s: start it with --allow-drills to allow fault drills", d.m.cfg.Raft.ID))
		}
		return h(c)
	}
}

func drillError(c echo.Context, code int, reason metav1.StatusReason, msg string) error {
	return c.JSON(code, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg})
}

func (d *drills) status(c echo.Context) error {
	return c.JSON(http.StatusOK, d.snapshot())
}

func (d *drills) snapshot() DrillStatus {
	st := DrillStatus{Master: d.m.cfg.Raft.ID, PID: os.Getpid(), BootID: BootID()}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fault != "" {
		until := d.until
		st.Fault, st.Until = d.fault, &until
	}
	return st
}

// BootID identifies the running kernel, so a drill client can tell whether it runs on the
// same machine as a master.
func BootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// crash answers, then kills the process with SIGKILL a moment later (once the answer is
// on its way). The drill client times the crash from when the port stops accepting.
func (d *drills) crash(c echo.Context) error {
	d.m.log.Warn("drill: crashing on request (SIGKILL to self)")
	err := c.JSON(http.StatusAccepted, map[string]string{"master": d.m.cfg.Raft.ID, "fault": "crash"})
	c.Response().Flush()
	go func() {
		// Long enough for the flushed answer to leave; the kernel delivers what is in the
		// socket buffer even after the process is gone.
		time.Sleep(10 * time.Millisecond)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}()
	return err
}

// startFault begins a partition or a pause for ?duration= (a Go duration, 10s by default).
// A second request replaces the first fault and its timer.
func (d *drills) startFault(kind string) echo.HandlerFunc {
	return func(c echo.Context) error {
		dur := 10 * time.Second
		if s := c.QueryParam("duration"); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil || v < 100*time.Millisecond || v > maxDrillFault {
				return drillError(c, http.StatusBadRequest, metav1.StatusReasonBadRequest,
					fmt.Sprintf("duration %q: want a Go duration between 100ms and %s", s, maxDrillFault))
			}
			dur = v
		}
		d.start(kind, dur)
		return c.JSON(http.StatusOK, d.snapshot())
	}
}

func (d *drills) start(kind string, dur time.Duration) {
	d.mu.Lock()
	d.gen++
	gen := d.gen
	d.fault, d.until = kind, time.Now().Add(dur)
	if d.timer != nil {
		d.timer.Stop()
	}
	d.timer = time.AfterFunc(dur, func() { d.end(gen) })
	if kind == faultPause && d.resume == nil {
		d.resume = make(chan struct{})
	}
	var cut []context.CancelFunc
	if kind == faultPartition {
		for _, cancel := range d.inflight {
			cut = append(cut, cancel)
		}
	}
	d.mu.Unlock()

	d.m.log.Warn("drill: fault starts", "fault", kind, "duration", dur)
	if f := d.m.node.Faults(); f != nil {
		peers, err := d.m.node.Peers()
		if err != nil {
			d.m.log.Error("drill: reading the Raft configuration", "error", err)
		}
		for _, p := range peers {
			if p.ID != d.m.cfg.Raft.ID {
				f.Block(p.Address)
			}
		}
	}
	if d.m.pool != nil {
		if err := d.m.pool.Isolate(); err != nil {
			d.m.log.Error("drill: isolating gossip", "error", err)
		}
	}
	for _, cancel := range cut {
		cancel()
	}
}

// heal ends the current fault now.
func (d *drills) heal(c echo.Context) error {
	d.mu.Lock()
	gen := d.gen
	d.mu.Unlock()
	d.end(gen)
	return c.JSON(http.StatusOK, d.snapshot())
}

// end heals the fault started as generation gen, unless another has replaced it since.
func (d *drills) end(gen uint64) {
	d.mu.Lock()
	if gen != d.gen || d.fault == "" {
		d.mu.Unlock()
		return
	}
	kind := d.fault
	d.gen++
	d.fault, d.until = "", time.Time{}
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	resume := d.resume
	d.resume = nil
	d.mu.Unlock()

	if f := d.m.node.Faults(); f != nil {
		f.Heal()
	}
	if resume != nil {
		close(resume)
	}
	d.m.log.Warn("drill: fault healed", "fault", kind)
	if d.m.pool != nil {
		go d.reconnectGossip()
	}
}

// reconnectGossip rejoins the members known before the isolation, retrying for a while:
// the others may be busy refuting their own suspicion of this master.
func (d *drills) reconnectGossip() {
	for i := 0; i < 30; i++ {
		n, err := d.m.pool.Reconnect()
		if err == nil {
			d.m.log.Info("drill: gossip reconnected", "answered", n)
			return
		}
		if errors.Is(err, gossip.ErrShutdown) {
			return
		}
		d.m.log.Warn("drill: gossip reconnect failed; retrying", "error", err)
		time.Sleep(time.Second)
	}
}

// gate stands between clients and the API while a fault is on: during a partition it
// refuses every request but the drill endpoints; during a pause it holds them until the
// pause ends. Outside faults it only records each request so a partition can cut it.
func (d *drills) gate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if strings.HasPrefix(c.Request().URL.Path, "/skiff/v1/drill") {
			return next(c)
		}
		d.mu.Lock()
		fault, resume := d.fault, d.resume
		switch fault {
		case "":
			ctx, cancel := context.WithCancel(c.Request().Context())
			id := d.nextReq
			d.nextReq++
			d.inflight[id] = cancel
			d.mu.Unlock()
			defer func() {
				d.mu.Lock()
				delete(d.inflight, id)
				d.mu.Unlock()
				cancel()
			}()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		case faultPause:
			d.mu.Unlock()
			select {
			case <-resume:
			case <-c.Request().Context().Done():
				return nil
			}
			return next(c)
		default:
			d.mu.Unlock()
			c.Response().Header().Set("Retry-After", "1")
			c.Response().Header().Set("Connection", "close")
			return drillError(c, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable,
				fmt.Sprintf("master %s is cut off from the cluster by a drill (%s); use another master", d.m.cfg.Raft.ID, fault))
		}
	}
}

// agentProxy forwards a drill request to an agent's own drill endpoint (GET /drill, POST
// /drill/partition?duration=…, POST /drill/heal), found through gossip, with the cluster
// token masters present to agents. Agents that gossip reports dead are still tried at their
// last address: that is how a partitioned agent is healed early.
func (d *drills) agentProxy(c echo.Context) error {
	node := c.Param("node")
	if d.m.pool == nil {
		return drillError(c, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "this master runs without gossip, so it knows no agents")
	}
	addr := ""
	for _, mb := range d.m.pool.Members() {
		if mb.Meta.Role == gossip.RoleAgent && mb.Meta.Name == node && mb.Meta.API != "" {
			addr = mb.Meta.API
		}
	}
	if addr == "" {
		return drillError(c, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("no agent named %q in gossip", node))
	}
	st := d.m.node.FSM().State()
	ca, err := api.ClusterCA(st)
	if err != nil || ca == nil {
		return drillError(c, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "the cluster CA is not ready")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()
	path := "/drill"
	if action := c.Param("action"); action != "" {
		path += "/" + url.PathEscape(action)
	}
	u := "https://" + addr + path
	if q := c.Request().URL.RawQuery; q != "" {
		u += "?" + q
	}
	req, err := http.NewRequestWithContext(c.Request().Context(), c.Request().Method, u, nil)
	if err != nil {
		return drillError(c, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+api.AdminToken(st))
	resp, err := client.Do(req)
	if err != nil {
		return drillError(c, http.StatusBadGateway, metav1.StatusReasonServiceUnavailable, fmt.Sprintf("reaching agent %s at %s: %v", node, addr, err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	ct := resp.Header.Get("Content-Type")
	if ct == "" || !json.Valid(body) {
		return drillError(c, resp.StatusCode, metav1.StatusReasonUnknown, strings.TrimSpace(string(body)))
	}
	return c.Blob(resp.StatusCode, ct, body)
}

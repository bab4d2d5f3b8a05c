package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"skiff/gossip"
)

// Fault drills on an agent.
//
// With --allow-drills an agent carries out the one fault `skiff drill agent-partition`
// asks for, through a master that proxies the request with the cluster token: it stops
// gossiping (gossip.Pool.Isolate) and stops talking to the masters (every API request
// fails, the ones in flight, such as the pod watch, are cut) for the requested duration,
// then heals itself on a timer even if nobody asks. Containers keep running throughout;
// only what the masters see changes, which is what the drill measures. Without the flag
// the endpoints answer 403.

// ErrPartitioned is returned by API requests the agent makes while a drill cuts it off.
var ErrPartitioned = errors.New("the agent is cut off from the masters by a drill")

// maxAgentFault bounds one partition.
const maxAgentFault = 10 * time.Minute

// AgentDrillStatus is what GET /drill answers.
type AgentDrillStatus struct {
	Node  string     `json:"node"`
	Fault string     `json:"fault,omitempty"`
	Until *time.Time `json:"until,omitempty"`
}

// drills is an agent's fault state. mu guards every field below it.
type drills struct {
	a *Agent

	mu       sync.Mutex
	until    time.Time // zero when not partitioned
	gen      uint64
	timer    *time.Timer
	inflight map[uint64]context.CancelFunc
	nextReq  uint64
}

// armDrills puts the agent's API client behind the drill's switch, when drills are allowed.
func (a *Agent) armDrills() {
	if !a.cfg.AllowDrills || a.cfg.Client == nil {
		return
	}
	d := &drills{a: a, inflight: map[uint64]context.CancelFunc{}}
	a.drills = d
	c := a.cfg.Client
	c.http.Transport = &drillTransport{next: transportOf(c.http), d: d}
	c.watchHTTP.Transport = &drillTransport{next: transportOf(c.watchHTTP), d: d}
}

func transportOf(c *http.Client) http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	return http.DefaultTransport
}

func (d *drills) partitioned() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.until.IsZero()
}

// track gives a request a context the drill can cancel; it fails while partitioned.
func (d *drills) track(ctx context.Context) (context.Context, context.CancelFunc, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.until.IsZero() {
		return nil, nil, ErrPartitioned
	}
	ctx, cancel := context.WithCancel(ctx)
	id := d.nextReq
	d.nextReq++
	d.inflight[id] = cancel
	return ctx, func() {
		d.mu.Lock()
		delete(d.inflight, id)
		d.mu.Unlock()
		cancel()
	}, nil
}

// partition cuts the agent off for dur; a second call replaces the first.
func (d *drills) partition(dur time.Duration) {
	d.mu.Lock()
	d.gen++
	gen := d.gen
	d.until = time.Now().Add(dur)
	if d.timer != nil {
		d.timer.Stop()
	}
	d.timer = time.AfterFunc(dur, func() { d.heal(gen) })
	cut := make([]context.CancelFunc, 0, len(d.inflight))
	for _, cancel := range d.inflight {
		cut = append(cut, cancel)
	}
	d.mu.Unlock()
	d.a.log.Warn("drill: partitioned from the masters and gossip", "duration", dur)
	if g := d.a.cfg.Gossip; g != nil {
		if err := g.Isolate(); err != nil {
			d.a.log.Error("drill: isolating gossip", "error", err)
		}
	}
	for _, cancel := range cut {
		cancel()
	}
}

// heal ends the partition of generation gen, unless another replaced it.
func (d *drills) heal(gen uint64) {
	d.mu.Lock()
	if gen != d.gen || d.until.IsZero() {
		d.mu.Unlock()
		return
	}
	d.gen++
	d.until = time.Time{}
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.mu.Unlock()
	d.a.log.Warn("drill: partition healed")
	if g := d.a.cfg.Gossip; g != nil {
		go func() {
			for i := 0; i < 30; i++ {
				if _, err := g.Reconnect(); err == nil || errors.Is(err, gossip.ErrShutdown) {
					return
				}
				time.Sleep(time.Second)
			}
		}()
	}
	d.a.nudge()
}

func (d *drills) status() AgentDrillStatus {
	st := AgentDrillStatus{Node: d.a.cfg.Name}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.until.IsZero() {
		until := d.until
		st.Fault, st.Until = "partition", &until
	}
	return st
}

// drillTransport fails the agent's API requests while it is partitioned and lets a
// partition cancel the ones in flight (a response body keeps its request tracked until it
// is closed, so long watches are cut too).
type drillTransport struct {
	next http.RoundTripper
	d    *drills
}

func (t *drillTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, done, err := t.d.track(req.Context())
	if err != nil {
		return nil, err
	}
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		done()
		return nil, err
	}
	resp.Body = &doneOnClose{ReadCloser: resp.Body, done: done}
	return resp, nil
}

type doneOnClose struct {
	io.ReadCloser
	done func()
	once sync.Once
}

func (b *doneOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// drillRoutes serves GET /drill, POST /drill/partition?duration=… and POST /drill/heal
// behind auth (the cluster token check the log server uses).
func (a *Agent) drillRoutes(mux *http.ServeMux, auth func(http.HandlerFunc) http.HandlerFunc) {
	guard := func(h func(d *drills, w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
		return auth(func(w http.ResponseWriter, r *http.Request) {
			if a.drills == nil {
				writeJSON(w, http.StatusForbidden, map[string]string{"message": fmt.Sprintf(
					"drills are disabled on agent %s: start it with --allow-drills to allow fault drills", a.cfg.Name)})
				return
			}
			h(a.drills, w, r)
		})
	}
	mux.HandleFunc("GET /drill", guard(func(d *drills, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, d.status())
	}))
	mux.HandleFunc("POST /drill/partition", guard(func(d *drills, w http.ResponseWriter, r *http.Request) {
		dur := 10 * time.Second
		if s := r.URL.Query().Get("duration"); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil || v < 100*time.Millisecond || v > maxAgentFault {
				writeJSON(w, http.StatusBadRequest, map[string]string{"message": fmt.Sprintf(
					"duration %q: want a Go duration between 100ms and %s", s, maxAgentFault)})
				return
			}
			dur = v
		}
		d.partition(dur)
		writeJSON(w, http.StatusOK, d.status())
	}))
	mux.HandleFunc("POST /drill/heal", guard(func(d *drills, w http.ResponseWriter, _ *http.Request) {
		d.mu.Lock()
		gen := d.gen
		d.mu.Unlock()
		d.heal(gen)
		writeJSON(w, http.StatusOK, d.status())
	}))
}

// drillGate makes the agent's own server (logs, exec) unreachable during a partition,
// except for the drill endpoints that report and heal it.
func (a *Agent) drillGate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.drills != nil && a.drills.partitioned() && !strings.HasPrefix(r.URL.Path, "/drill") {
			http.Error(w, fmt.Sprintf("agent %s is cut off by a drill (partition)", a.cfg.Name), http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

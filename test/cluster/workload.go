package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"skiff/test/verify"
)

// KVWorkload drives create, compare-and-set and linearizable get on the debug keys of
// /skiff/v1/kv through the masters' API from several concurrent clients, and records every
// operation (call and return times, the master that served it, its outcome) so the test
// can check the history for linearizability and durability once its faults are done.
//
// Outcomes are recorded as a careful client would know them: 204 is an acknowledged write,
// 409/404 a write that did not take effect; a request that never left (dial failed) is
// left out; anything else (timeout, 5xx, a broken connection) is an unknown outcome,
// pending forever, which porcupine lets take effect at any point after its call or never.
// Reads that fail tell nothing and are left out.
type KVWorkload struct {
	c      *Cluster
	opts   WorkloadOptions
	client *http.Client
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	ops []KVOp
}

// WorkloadOptions shape a KVWorkload.
type WorkloadOptions struct {
	// Clients is how many clients run concurrently (default 4); Keys how many keys they
	// share (default 16), Prefix their names' prefix (default "w").
	Clients int
	Keys    int
	Prefix  string
	// Target picks the master a client's next operation goes to; the default is a random
	// running master. Return -1 to wait a moment and ask again.
	Target func(client int, rng *rand.Rand) int
	// Op picks a client's next operation: verify.KVGet, KVCreate or KVCAS (a read, then
	// an update of the version read). The default mixes 30% reads, 20% creates, 50% CAS.
	Op func(client int, rng *rand.Rand) string
	// Timeout bounds one request (default 2 s): its outcome is unknown after that.
	Timeout time.Duration
	// Pace is how long a client waits between its operations (default 5 ms), so a
	// minute-long run stays small enough for porcupine.
	Pace time.Duration
}

// KVOp is one recorded operation.
type KVOp struct {
	Client       int
	Master       int // index of the master that served it
	Input        verify.KVInput
	Output       verify.KVOutput
	Call, Return time.Time
	Status       int    // HTTP status; 0 when no response came
	Err          string // the error or the response body of a failure
	// Omit marks an operation that is not part of the history: a read that failed, or a
	// write that never reached a master. It is kept for what its error says.
	Omit bool
}

// Write reports whether the operation is a write.
func (o KVOp) Write() bool { return o.Input.Op != verify.KVGet }

// Acked reports whether the operation is a write that took effect, as acknowledged.
func (o KVOp) Acked() bool { return o.Write() && !o.Output.Unknown && o.Output.OK }

// StartWorkload starts the clients; Stop ends them.
func (c *Cluster) StartWorkload(opts WorkloadOptions) *KVWorkload {
	if opts.Clients == 0 {
		opts.Clients = 4
	}
	if opts.Keys == 0 {
		opts.Keys = 16
	}
	if opts.Prefix == "" {
		opts.Prefix = "w"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Pace == 0 {
		opts.Pace = 5 * time.Millisecond
	}
	if opts.Op == nil {
		opts.Op = func(_ int, rng *rand.Rand) string {
			switch r := rng.Intn(10); {
			case r < 3:
				return verify.KVGet
			case r < 5:
				return verify.KVCreate
			}
			return verify.KVCAS
		}
	}
	if opts.Target == nil {
		opts.Target = func(_ int, rng *rand.Rand) int { return c.randomRunning(rng) }
	}
	w := &KVWorkload{c: c, opts: opts, start: time.Now()}
	w.client = &http.Client{Timeout: opts.Timeout, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: c.caPool},
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: opts.Clients,
	}}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	for id := 0; id < opts.Clients; id++ {
		w.wg.Add(1)
		go w.run(ctx, id)
	}
	return w
}

// randomRunning returns a random running master, -1 if none runs.
func (c *Cluster) randomRunning(rng *rand.Rand) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var up []int
	for i, p := range c.procs {
		if p != nil {
			up = append(up, i)
		}
	}
	if len(up) == 0 {
		return -1
	}
	return up[rng.Intn(len(up))]
}

// Stop ends the clients and waits for their requests in flight.
func (w *KVWorkload) Stop() {
	w.cancel()
	w.wg.Wait()
	w.client.CloseIdleConnections()
}

// Ops returns the operations recorded so far.
func (w *KVWorkload) Ops() []KVOp {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]KVOp(nil), w.ops...)
}

// Acked counts acknowledged writes served by master i (any master: -1) whose call came
// after from and whose return came before to (zero times: unbounded).
func (w *KVWorkload) Acked(i int, from, to time.Time) int {
	n := 0
	for _, o := range w.Ops() {
		if o.Acked() && (i < 0 || o.Master == i) && (from.IsZero() || o.Call.After(from)) && (to.IsZero() || o.Return.Before(to)) {
			n++
		}
	}
	return n
}

// WaitAcked waits up to timeout until n more writes are acknowledged than when it was
// called, and reports whether they were.
func (w *KVWorkload) WaitAcked(n int, timeout time.Duration) bool {
	from := time.Now()
	deadline := from.Add(timeout)
	for time.Now().Before(deadline) {
		if w.Acked(-1, from, time.Time{}) >= n {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func (w *KVWorkload) record(op KVOp) {
	w.mu.Lock()
	w.ops = append(w.ops, op)
	w.mu.Unlock()
}

func (w *KVWorkload) key(rng *rand.Rand) string {
	return fmt.Sprintf("%s%d", w.opts.Prefix, rng.Intn(w.opts.Keys))
}

// run is one client: a loop of random operations until ctx ends.
func (w *KVWorkload) run(ctx context.Context, id int) {
	defer w.wg.Done()
	rng := rand.New(rand.NewSource(time.Now().UnixNano() + int64(id)))
	for seq := 0; ctx.Err() == nil; seq++ {
		i := w.opts.Target(id, rng)
		if i < 0 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		key := w.key(rng)
		value := fmt.Sprintf("c%d-%d", id, seq)
		switch w.opts.Op(id, rng) {
		case verify.KVGet:
			w.get(ctx, id, i, key)
		case verify.KVCreate:
			w.put(ctx, id, i, verify.KVInput{Op: verify.KVCreate, Key: key, Value: value}, 0)
		default:
			// Compare-and-set: a linearizable read (itself recorded), then an update of
			// exactly the version read. Values are unique, so this is a CAS on the value.
			got, ok := w.get(ctx, id, i, key)
			if ok && got.Output.OK && got.modRev > 0 {
				w.put(ctx, id, i, verify.KVInput{Op: verify.KVCAS, Key: key, Value: value, Prev: got.Output.Value}, got.modRev)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(w.opts.Pace):
		}
	}
}

// getResult is a recorded read and the version it saw.
type getResult struct {
	KVOp
	modRev uint64
}

// get reads key linearizably through master i, records the read if it answered, and
// returns it.
func (w *KVWorkload) get(ctx context.Context, client, i int, key string) (getResult, bool) {
	op := KVOp{Client: client, Master: i, Input: verify.KVInput{Op: verify.KVGet, Key: key}, Call: time.Now()}
	resp, body, err := w.do(ctx, i, http.MethodGet, "/skiff/v1/kv/"+key, nil)
	op.Return = time.Now()
	if err != nil {
		op.Omit, op.Err = true, err.Error()
		w.record(op)
		return getResult{}, false
	}
	op.Status = resp.StatusCode
	var res getResult
	switch resp.StatusCode {
	case http.StatusOK:
		op.Output = verify.KVOutput{OK: true, Value: string(body)}
		res.modRev, _ = strconv.ParseUint(resp.Header.Get("X-Skiff-Mod-Revision"), 10, 64)
	case http.StatusNotFound:
	default:
		op.Omit, op.Err = true, strings.TrimSpace(string(body))
		w.record(op)
		return getResult{}, false
	}
	w.record(op)
	res.KVOp = op
	return res, true
}

// put writes in through master i, at revision rev (0: only if absent), and records it.
func (w *KVWorkload) put(ctx context.Context, client, i int, in verify.KVInput, rev uint64) {
	op := KVOp{Client: client, Master: i, Input: in, Call: time.Now()}
	resp, body, err := w.do(ctx, i, http.MethodPut, "/skiff/v1/kv/"+in.Key+"?revision="+strconv.FormatUint(rev, 10), []byte(in.Value))
	op.Return = time.Now()
	switch {
	case err != nil && notSent(err):
		op.Omit, op.Err = true, err.Error() // it never reached a master
	case err != nil:
		op.Output.Unknown, op.Err = true, err.Error()
	default:
		op.Status = resp.StatusCode
		switch resp.StatusCode {
		case http.StatusNoContent, http.StatusOK:
			op.Output.OK = true
		case http.StatusConflict, http.StatusNotFound:
		default:
			op.Output.Unknown, op.Err = true, strings.TrimSpace(string(body))
		}
	}
	w.record(op)
}

// notSent reports whether a request failed before it was sent (so it had no effect).
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// do sends one authenticated request to master i and reads the whole response.
func (w *KVWorkload) do(ctx context.Context, i int, method, path string, body []byte) (*http.Response, []byte, error) {
	w.c.mu.Lock()
	api := w.c.APIs[i]
	w.c.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+api+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+w.c.token)
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, b, nil
}

// Check stops the workload if it still runs, reads every key once more through the
// cluster (linearizably, after every other operation), and runs the shared verifiers on
// the history: porcupine's linearizability check, and every acknowledged write present in
// the final state unless a later or concurrent write may have replaced it. On failure the
// history is kept as history.json (and porcupine's history.html) in the artifacts dir.
func (w *KVWorkload) Check() {
	t := w.c.t
	t.Helper()
	w.Stop()
	final := map[string]string{}
	present := map[string]bool{}
	deadline := time.Now().Add(time.Minute)
	rng := rand.New(rand.NewSource(1))
	for k := 0; k < w.opts.Keys; k++ {
		key := fmt.Sprintf("%s%d", w.opts.Prefix, k)
		for {
			i := w.c.randomRunning(rng)
			if i >= 0 {
				if got, ok := w.get(context.Background(), -1, i, key); ok {
					final[key], present[key] = got.Output.Value, got.Output.OK
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("verify: no master answered a read of %s within a minute", key)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ops := w.Ops()
	t.Cleanup(func() {
		if t.Failed() {
			w.save(filepath.Join(verify.ArtifactsDir(t), "history.json"), ops)
		}
	})
	known := 0
	for _, o := range ops {
		if !o.Output.Unknown && !o.Omit {
			known++
		}
	}
	t.Logf("workload: %d operations (%d with known outcomes, %d writes acknowledged, %d left out of the history)",
		len(ops), known, w.Acked(-1, time.Time{}, time.Time{}), len(ops)-len(w.History()))
	verify.Linearizable(t, verify.KVModel, w.History(), 2*time.Minute)
	acked, maybe := ackedAndMaybe(ops)
	verify.AckedWritesPresent(t, acked, maybe, func(key string) (string, bool) { return final[key], present[key] })
}

// History is the recorded operations as porcupine sees them: times in nanoseconds since
// the workload started, unknown outcomes pending until after everything else.
func (w *KVWorkload) History() []porcupine.Operation {
	var out []porcupine.Operation
	for _, o := range w.Ops() {
		if o.Omit {
			continue
		}
		client := o.Client
		if client < 0 {
			client = w.opts.Clients // the final reads
		}
		op := porcupine.Operation{ClientId: client, Input: o.Input, Output: o.Output,
			Call: int64(o.Call.Sub(w.start)), Return: int64(o.Return.Sub(w.start))}
		if o.Output.Unknown {
			op.Return = math.MaxInt64
		}
		out = append(out, op)
	}
	return out
}

// ackedAndMaybe returns, per key, the value of the acknowledged write that returned last,
// and every value another write (acknowledged or unknown) that may be ordered after it
// could have left instead: those that did not return before it was called.
func ackedAndMaybe(ops []KVOp) (map[string]string, map[string][]string) {
	last := map[string]KVOp{}
	for _, o := range ops {
		if o.Acked() {
			if l, ok := last[o.Input.Key]; !ok || o.Return.After(l.Return) {
				last[o.Input.Key] = o
			}
		}
	}
	acked := map[string]string{}
	maybe := map[string][]string{}
	for k, l := range last {
		acked[k] = l.Input.Value
	}
	for _, o := range ops {
		l, ok := last[o.Input.Key]
		if !ok || !o.Write() || (!o.Acked() && !o.Output.Unknown) || o.Input.Value == l.Input.Value {
			continue
		}
		if o.Output.Unknown || !o.Return.Before(l.Call) {
			maybe[o.Input.Key] = append(maybe[o.Input.Key], o.Input.Value)
		}
	}
	return acked, maybe
}

// save writes ops as JSON, sorted by call time.
func (w *KVWorkload) save(path string, ops []KVOp) {
	sort.Slice(ops, func(a, b int) bool { return ops[a].Call.Before(ops[b].Call) })
	b, err := json.MarshalIndent(ops, "", " ")
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		w.c.t.Logf("saving the history: %v", err)
	}
}

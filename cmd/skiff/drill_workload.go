package main

// The probe workload: writes, linearizable reads, a watch, and the pollers that follow the
// leader, the canary and the target agent's Node while a drill runs. Each records into the
// runner's fields under r.mu.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

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

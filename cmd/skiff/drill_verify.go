package main

// What happens after the fault: the final list of the probe writes, the convergence
// check, cleanup, the report's figures and its storage in the cluster.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"skiff/master"
	"sync"
	"time"
)

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

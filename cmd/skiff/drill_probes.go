package main

// The scheduler and controller probes, created once the cluster has a (new) leader.

import (
	"context"
	"net/http"
	"net/url"
	"skiff/agent/testimage"
	"sync"
	"time"
)

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

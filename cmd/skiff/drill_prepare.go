package main

// Before the fault: the masters, the leader and the target, the namespace, the canary.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"skiff/agent/testimage"
	"strings"
	"sync"
	"time"
)

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

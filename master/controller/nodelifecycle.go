package controller

import (
	"context"
	"fmt"
	"k8s.io/klog/v2"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/gossip"
	"skiff/master/objects"
	"skiff/master/registry"
)

// Membership is the gossip view the node lifecycle reads: who is alive, who died or left.
type Membership interface {
	Members() []gossip.Member
	Changes() <-chan struct{}
}

// Taints the node lifecycle puts on a node whose agent gossip declares gone.
var unreachableTaints = []corev1.Taint{
	{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute},
}

// NodeLifecycle turns gossip's liveness facts into Node conditions and evicts pods from
// nodes that stay unreachable. It writes only on transitions, so writes per second stay
// flat however many nodes there are (Kubernetes writes a Lease per node every 10 s).
//
// Policy: a node whose agent gossip reports dead or left becomes Ready=Unknown with the
// node.kubernetes.io/unreachable taints; when the agent is alive again it becomes Ready=True
// without them. A node gossip has never heard of is left alone: a new leader starts from
// the view it has and does not mark healthy nodes down. Pods on a node unreachable for
// longer than EvictionTimeout are deleted so their controllers replace them, except while
// every agent is unreachable at once (that is the masters' partition, not the agents').
type NodeLifecycle struct {
	Store           Store
	Members         Membership
	EvictionTimeout time.Duration // default 5 min, as Kubernetes
	Resync          time.Duration // how often to re-check without a gossip change; default 1 s
	Now             func() time.Time
	Logger          *slog.Logger
}

var nodes = registry.Lookup("", "v1", "nodes")
var pods = registry.Lookup("", "v1", "pods")

// Run reconciles until ctx ends. It is meant to run as a leader routine.
func (c *NodeLifecycle) Run(ctx context.Context) {
	c.setDefaults()
	t := time.NewTicker(c.Resync)
	defer t.Stop()
	for {
		if err := c.Reconcile(ctx); err != nil && ctx.Err() == nil {
			c.Logger.Warn("node lifecycle", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-c.Members.Changes():
		case <-t.C:
		}
	}
}

func (c *NodeLifecycle) setDefaults() {
	if c.EvictionTimeout == 0 {
		c.EvictionTimeout = 5 * time.Minute
	}
	if c.Resync == 0 {
		c.Resync = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Reconcile makes one pass over every Node. It is safe to call repeatedly, but not
// concurrently with itself.
func (c *NodeLifecycle) Reconcile(ctx context.Context) error {
	c.setDefaults()
	members := map[string]gossip.Member{}
	agentsAlive := 0
	for _, m := range c.Members.Members() {
		if m.Meta.Role != gossip.RoleAgent {
			continue
		}
		members[m.Meta.Name] = m
		if m.State == gossip.StateAlive || m.State == gossip.StateSuspect {
			agentsAlive++
		}
	}
	st := c.Store.FSM().State()
	recs, _ := st.List(fsm.ListOptions{Resource: objects.StoreResource(nodes)})
	now := c.Now()
	for _, rec := range recs {
		obj, err := objects.Decode(nodes, rec)
		if err != nil {
			return err
		}
		node := obj.(*corev1.Node)
		m, known := members[node.Name]
		if !known {
			continue
		}
		reachable := m.State == gossip.StateAlive || m.State == gossip.StateSuspect
		ready := readyCondition(node)
		switch {
		case !reachable && (ready == nil || ready.Status != corev1.ConditionUnknown):
			c.Logger.Info("node unreachable", "node", node.Name, "gossip", m.State.String())
			markUnreachable(node, now, m.State)
			if err := c.update(ctx, rec, node); err != nil {
				return err
			}
		case reachable && ready != nil && ready.Status == corev1.ConditionUnknown:
			c.Logger.Info("node reachable again", "node", node.Name)
			markReachable(node, now)
			if err := c.update(ctx, rec, node); err != nil {
				return err
			}
		case !reachable:
			if err := c.markPodsNotReady(ctx, st, node.Name, now); err != nil {
				return err
			}
			if ready == nil || agentsAlive == 0 {
				continue // every agent at once: the masters are cut off, not the agents
			}
			if err := c.evict(ctx, st, node.Name, now.Sub(ready.LastTransitionTime.Time)); err != nil {
				return err
			}
		}
	}
	return nil
}

func readyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func setReady(n *corev1.Node, status corev1.ConditionStatus, reason, msg string, now time.Time) {
	t := metav1.NewTime(now.Truncate(time.Second))
	c := readyCondition(n)
	if c == nil {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeReady})
		c = &n.Status.Conditions[len(n.Status.Conditions)-1]
	}
	if c.Status != status {
		c.LastTransitionTime = t
	}
	c.Status, c.Reason, c.Message, c.LastHeartbeatTime = status, reason, msg, t
}

func markUnreachable(n *corev1.Node, now time.Time, state gossip.State) {
	setReady(n, corev1.ConditionUnknown, "NodeStatusUnknown", fmt.Sprintf("Agent stopped gossiping (%s).", state), now)
	t := metav1.NewTime(now.Truncate(time.Second))
	for _, want := range unreachableTaints {
		found := false
		for _, have := range n.Spec.Taints {
			found = found || have.Key == want.Key && have.Effect == want.Effect
		}
		if !found {
			taint := want
			if taint.Effect == corev1.TaintEffectNoExecute {
				taint.TimeAdded = &t
			}
			n.Spec.Taints = append(n.Spec.Taints, taint)
		}
	}
}

func markReachable(n *corev1.Node, now time.Time) {
	setReady(n, corev1.ConditionTrue, "AgentReady", "Agent is gossiping again.", now)
	kept := n.Spec.Taints[:0]
	for _, t := range n.Spec.Taints {
		if t.Key != corev1.TaintNodeUnreachable {
			kept = append(kept, t)
		}
	}
	n.Spec.Taints = kept
}

// update writes node over rec, conditional on rec's revision: a newer write (the agent's
// own status, another leader) wins and the next pass looks again.
func (c *NodeLifecycle) update(ctx context.Context, rec *fsm.Record, node *corev1.Node) error {
	value, meta, err := objects.Encode(nodes, node)
	if err != nil {
		return err
	}
	res, err := c.Store.Propose(ctx, &fsm.Txn{Ops: []fsm.Op{fsm.Update(rec.Key, rec.ModRevision, value, meta)}})
	if err != nil {
		return err
	}
	if res.Err != nil && res.Err != fsm.ErrConflict && res.Err != fsm.ErrNotFound {
		return res.Err
	}
	return nil
}

// markPodsNotReady sets Ready=False on the pods of an unreachable node, as Kubernetes'
// node lifecycle controller does: nobody can vouch for them, so Services, disruption
// budgets and rollouts must stop counting them. The agent reports their real readiness
// once it is back. Conflicts (a newer write) are left to the next pass.
func (c *NodeLifecycle) markPodsNotReady(ctx context.Context, st *fsm.State, node string, now time.Time) error {
	bound, err := ListField[*corev1.Pod](st, pods, "spec.nodeName", node)
	if err != nil {
		return err
	}
	client := &Client{Store: c.Store, Now: c.Now}
	var ops []fsm.Op
	for _, pod := range bound {
		if !markNotReady(pod, now) {
			continue
		}
		op, err := client.UpdateOp(pods, pod, false)
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	for _, op := range ops {
		// One transaction each: a pod its agent just rewrote must not hold back the rest.
		if _, err := c.Store.Propose(ctx, &fsm.Txn{Ops: []fsm.Op{op}}); err != nil {
			return err
		}
	}
	return nil
}

// markNotReady sets pod's Ready condition to False; false if it already was not Ready.
func markNotReady(pod *corev1.Pod, now time.Time) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	t := metav1.NewTime(now.Truncate(time.Second))
	for i := range pod.Status.Conditions {
		cond := &pod.Status.Conditions[i]
		if cond.Type != corev1.PodReady {
			continue
		}
		if cond.Status == corev1.ConditionFalse {
			return false
		}
		cond.Status, cond.Reason, cond.Message, cond.LastTransitionTime = corev1.ConditionFalse, "NodeUnreachable", "The node's agent stopped gossiping.", t
		return true
	}
	return false // never Ready: nothing to take back
}

// evict deletes the pods bound to node, unreachable for that long, whose time is up, each
// conditional on the revision it was read at. As Kubernetes' taint-based eviction, a pod's
// toleration of node.kubernetes.io/unreachable:NoExecute decides: none, and it goes after
// EvictionTimeout (what kube's default tolerationSeconds gives every pod); with
// tolerationSeconds, after that; without, never (DaemonSet pods). The node's agent is gone,
// so nobody would finish a graceful deletion: pods go at once (Client.ForceDeleteOps; a pod
// with finalizers, such as a Job's tracking finalizer, is marked with no grace so its owner
// accounts for it first) — except a StatefulSet's, which is only marked: its replacement
// carries the same identity, and the node may be partitioned rather than dead, so it waits
// for the node or an operator, as in Kubernetes.
func (c *NodeLifecycle) evict(ctx context.Context, st *fsm.State, node string, unreachableFor time.Duration) error {
	client := &Client{Store: c.Store, Now: c.Now}
	bound, err := ListField[*corev1.Pod](st, pods, "spec.nodeName", node)
	if err != nil {
		return err
	}
	var ops []fsm.Op
	for _, pod := range bound {
		if after, ok := c.evictAfter(pod); !ok || unreachableFor < after {
			continue
		}
		var podOps []fsm.Op
		if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == "StatefulSet" {
			podOps, err = client.DeleteOps(pods, pod, metav1.DeletePropagationBackground)
		} else {
			podOps, err = client.ForceDeleteOps(pods, pod)
		}
		if err != nil {
			return err
		}
		ops = append(ops, podOps...)
	}
	if len(ops) == 0 {
		return nil
	}
	c.Logger.Info("evicting pods from unreachable node", "node", node, "pods", len(ops))
	res, err := c.Store.Propose(ctx, &fsm.Txn{Ops: ops})
	if err != nil {
		return err
	}
	if res.Err != nil && res.Err != fsm.ErrConflict && res.Err != fsm.ErrNotFound {
		return res.Err
	}
	return nil
}

// evictAfter is how long pod may stay on an unreachable node, and false if forever.
func (c *NodeLifecycle) evictAfter(pod *corev1.Pod) (time.Duration, bool) {
	taint := &corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	for i := range pod.Spec.Tolerations {
		t := &pod.Spec.Tolerations[i]
		if !t.ToleratesTaint(klog.Logger{}, taint, false) {
			continue
		}
		if t.TolerationSeconds == nil {
			return 0, false
		}
		return time.Duration(max(*t.TolerationSeconds, 0)) * time.Second, true
	}
	return c.EvictionTimeout, true
}

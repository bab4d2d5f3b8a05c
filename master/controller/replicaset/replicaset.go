// Package replicaset keeps every apps/v1 ReplicaSet at spec.replicas pods, as Kubernetes'
// ReplicaSet controller does: it adopts orphan pods its selector matches and releases the
// pods it controls that stopped matching, creates missing pods from the template in
// slow-start batches, deletes surplus pods in the order that costs least (unscheduled,
// pending, not ready, then the most recently ready), and reports replicas,
// fullyLabeledReplicas, readyReplicas, availableReplicas (ready for minReadySeconds),
// terminatingReplicas and a ReplicaFailure condition in its status.
package replicaset

import (
	"context"
	"encoding/json"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/registry"
)

var (
	replicaSets = registry.Lookup("apps", "v1", "replicasets")
	pods        = registry.Lookup("", "v1", "pods")
)

// Controller is the ReplicaSet controller; it implements controller.Reconciler.
type Controller struct {
	client *controller.Client
	rec    *controller.Recorder
}

// New returns the ReplicaSet controller writing through client and recording events with
// rec (which may be nil).
func New(client *controller.Client, rec *controller.Recorder) *Controller {
	return &Controller{client: client, rec: rec}
}

// Watches implements controller.Reconciler.
func (c *Controller) Watches() []string {
	return []string{objects.StoreResource(replicaSets), objects.StoreResource(pods)}
}

// Primary implements controller.Reconciler: every ReplicaSet.
func (c *Controller) Primary(st *fsm.State) []fsm.Key { return controller.AllKeys(st, replicaSets) }

// Keys implements controller.Reconciler. A ReplicaSet concerns itself; a pod concerns the
// ReplicaSet controlling it before and after the change, and an orphan pod that appeared,
// was released or was relabelled concerns every ReplicaSet that could adopt it.
func (c *Controller) Keys(st *fsm.State, ev fsm.Event) []fsm.Key {
	if ev.Record.Key.Resource == objects.StoreResource(replicaSets) {
		return controller.SelfKey(ev)
	}
	keys := controller.ControllerKeys(ev, replicaSets)
	if ev.Type == fsm.Deleted || hasController(ev.Record) {
		return keys
	}
	if ev.Prev != nil && !hasController(ev.Prev) && labels.Equals(ev.Prev.Meta.Labels, ev.Record.Meta.Labels) {
		return keys
	}
	return append(keys, adopters(st, ev.Record)...)
}

// hasController reports whether a stored object names a controlling owner; only the
// metadata is decoded, since this runs for every pod change.
func hasController(rec *fsm.Record) bool {
	if len(rec.Meta.Owners) == 0 {
		return false
	}
	var obj struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if json.Unmarshal(rec.Value, &obj) != nil {
		return false
	}
	return metav1.GetControllerOfNoCopy(&obj.Metadata) != nil
}

// adopters lists the ReplicaSets of pod's namespace whose selector matches its labels.
func adopters(st *fsm.State, pod *fsm.Record) []fsm.Key {
	recs, _ := st.List(fsm.ListOptions{Resource: objects.StoreResource(replicaSets), Namespace: pod.Key.Namespace})
	var keys []fsm.Key
	for _, rec := range recs {
		var rs struct {
			Spec struct {
				Selector *metav1.LabelSelector `json:"selector"`
			} `json:"spec"`
		}
		if json.Unmarshal(rec.Value, &rs) != nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(pod.Meta.Labels)) {
			keys = append(keys, rec.Key)
		}
	}
	return keys
}

// Reconcile implements controller.Reconciler: claim, create or delete, then report.
func (c *Controller) Reconcile(ctx context.Context, key fsm.Key) error {
	st := c.client.State()
	rs, err := controller.Get[*appsv1.ReplicaSet](st, replicaSets, key.Namespace, key.Name)
	if err != nil || rs == nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || sel.Empty() {
		// Validation rejects such selectors; a ReplicaSet with one manages nothing.
		return nil
	}
	active, err := c.claimPods(ctx, st, rs, sel)
	if err != nil {
		return err
	}
	var manageErr error
	if rs.DeletionTimestamp == nil {
		manageErr = c.manageReplicas(ctx, st, rs, active)
		if manageErr != nil && (controller.IsStale(manageErr) || ctx.Err() != nil) {
			return manageErr
		}
	}
	// The leader's state already holds what manageReplicas wrote: report that, not what
	// was there before, so one pass leaves a status that needs no second write.
	active, terminating, err := controlledPods(c.client.State(), rs, sel)
	if err != nil {
		return err
	}
	status, wait := calculateStatus(rs, active, terminating, manageErr, c.now())
	if err := c.writeStatus(ctx, rs, status); err != nil {
		return err
	}
	if manageErr != nil {
		return manageErr
	}
	if wait > 0 {
		return controller.RequeueAfter(wait)
	}
	return nil
}

func (c *Controller) now() time.Time {
	if c.client.Now == nil {
		return time.Now()
	}
	return c.client.Now()
}

// desiredReplicas reads spec.replicas, which defaulting sets (to 1 when omitted).
func desiredReplicas(rs *appsv1.ReplicaSet) int {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return int(*rs.Spec.Replicas)
}

// isActive reports whether a pod counts towards its ReplicaSet: not finished and not
// being deleted.
func isActive(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && !isTerminal(p)
}

func isTerminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

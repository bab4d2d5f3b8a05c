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

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	return controller.OwnerKeys(st, ev, replicaSets)
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
	active, err := c.claimPods(ctx, rs, sel)
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
	status, wait := calculateStatus(rs, active, terminating, manageErr, c.client.Time())
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

// desiredReplicas reads spec.replicas, which defaulting sets (to 1 when omitted).
func desiredReplicas(rs *appsv1.ReplicaSet) int {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return int(*rs.Spec.Replicas)
}

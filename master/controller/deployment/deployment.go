// Package deployment rolls apps/v1 Deployments out through ReplicaSets with Kubernetes'
// semantics, so that `kubectl rollout status|history|undo|restart|pause|resume` work
// unchanged: one ReplicaSet per pod template, named "<deployment>-<pod-template-hash>",
// numbered by the deployment.kubernetes.io/revision annotation; RollingUpdate bounded by
// maxSurge and maxUnavailable, or Recreate; proportional scaling mid-rollout; pause;
// revision history pruning; and the Progressing and Available conditions with Kubernetes'
// reasons, including ProgressDeadlineExceeded. It only ever writes Deployments and
// ReplicaSets; the ReplicaSet controller makes the pods.
package deployment

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/registry"
)

var (
	deployments = registry.Lookup("apps", "v1", "deployments")
	replicaSets = registry.Lookup("apps", "v1", "replicasets")
	pods        = registry.Lookup("", "v1", "pods")
)

// ErrUnknownStrategy is returned when a Deployment's strategy type is neither
// RollingUpdate nor Recreate (validation normally prevents it).
var ErrUnknownStrategy = errors.New("unexpected deployment strategy type")

// Controller is the Deployment controller; it implements controller.Reconciler.
type Controller struct {
	client *controller.Client
	rec    *controller.Recorder
}

// New returns the Deployment controller writing through client and recording events with
// rec (which may be nil).
func New(client *controller.Client, rec *controller.Recorder) *Controller {
	return &Controller{client: client, rec: rec}
}

// Watches implements controller.Reconciler. Pods are watched only for their deletions,
// which a Recreate rollout waits for.
func (c *Controller) Watches() []string {
	return []string{objects.StoreResource(deployments), objects.StoreResource(replicaSets), objects.StoreResource(pods)}
}

// Primary implements controller.Reconciler: every Deployment.
func (c *Controller) Primary(st *fsm.State) []fsm.Key { return controller.AllKeys(st, deployments) }

// Keys implements controller.Reconciler. A Deployment concerns itself. A ReplicaSet
// concerns the Deployment controlling it before and after the change, or, as an orphan,
// every Deployment whose selector matches it. A deleted pod concerns the Deployment of
// its ReplicaSet.
func (c *Controller) Keys(st *fsm.State, ev fsm.Event) []fsm.Key {
	switch ev.Record.Key.Resource {
	case objects.StoreResource(deployments):
		return controller.SelfKey(ev)
	case objects.StoreResource(replicaSets):
		return controller.OwnerKeys(st, ev, deployments)
	}
	if ev.Type != fsm.Deleted {
		return nil
	}
	var keys []fsm.Key
	for _, k := range controller.ControllerKeys(ev, replicaSets) {
		if rec := st.Get(k); rec != nil {
			keys = append(keys, controller.ControllerKeys(fsm.Event{Type: fsm.Modified, Record: rec}, deployments)...)
		}
	}
	return keys
}

// rollout is one pass over one Deployment. d is changed in memory as the pass goes
// (revision annotation, conditions, status) and written back once at the end; ReplicaSet
// writes happen as they are decided, as in Kubernetes.
type rollout struct {
	c      *Controller
	d      *appsv1.Deployment
	rsList []*appsv1.ReplicaSet
	sel    labels.Selector
	now    time.Time
	// checkProgress is set when the pass judged progress, and so may need to look again
	// when the deadline passes.
	checkProgress bool
}

// Reconcile implements controller.Reconciler.
func (c *Controller) Reconcile(ctx context.Context, key fsm.Key) error {
	st := c.client.State()
	d, err := controller.Get[*appsv1.Deployment](st, deployments, key.Namespace, key.Name)
	if err != nil || d == nil {
		return err
	}
	orig := d.DeepCopy()
	if d.Spec.Replicas == nil {
		d.Spec.Replicas = new(int32)
		*d.Spec.Replicas = 1
	}
	if d.Spec.Selector == nil || reflect.DeepEqual(d.Spec.Selector, &metav1.LabelSelector{}) {
		c.rec.Eventf(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			return c.client.Update(ctx, deployments, d, false)
		}
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil // validation rejects such selectors
	}
	r := &rollout{c: c, d: d, sel: sel, now: c.client.Time()}
	if r.rsList, err = r.claimReplicaSets(ctx, sel); err != nil {
		return err
	}
	syncErr := r.sync(ctx)
	if err := c.writeBack(ctx, orig, d); err != nil && syncErr == nil {
		return err
	}
	if syncErr != nil {
		return syncErr
	}
	if wait := r.requeueAfter(); wait > 0 {
		return controller.RequeueAfter(wait)
	}
	return nil
}

// sync decides what this pass does, in Kubernetes' order of precedence: a Deployment
// being deleted only gets its status; a paused one or one whose size changed is scaled
// without rollout progress; otherwise the strategy rolls it out.
func (r *rollout) sync(ctx context.Context) error {
	if r.d.DeletionTimestamp != nil {
		return r.syncStatusOnly(ctx)
	}
	r.checkPausedConditions()
	if r.d.Spec.Paused {
		return r.syncScaling(ctx)
	}
	scaling, err := r.isScalingEvent(ctx)
	if err != nil {
		return err
	}
	if scaling {
		return r.syncScaling(ctx)
	}
	switch r.d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		return r.rolloutRecreate(ctx)
	case appsv1.RollingUpdateDeploymentStrategyType:
		return r.rolloutRolling(ctx)
	}
	return fmt.Errorf("%w: %s", ErrUnknownStrategy, r.d.Spec.Strategy.Type)
}

// writeBack stores what the pass changed in the Deployment (its revision annotation and
// its status), conditional on the revision it was read at, so a concurrent spec change
// makes the pass run again instead of being overwritten.
func (c *Controller) writeBack(ctx context.Context, orig, d *appsv1.Deployment) error {
	if apiequality.Semantic.DeepEqual(orig.Status, d.Status) && maps.Equal(orig.Annotations, d.Annotations) {
		return nil
	}
	out := orig.DeepCopy()
	out.Annotations, out.Status = d.Annotations, d.Status
	return c.client.Update(ctx, deployments, out, false)
}

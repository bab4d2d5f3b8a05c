// Package daemonset is the DaemonSet controller: it runs one pod of each DaemonSet on every
// node the pod template fits (node selector, required node affinity, taints), follows
// nodes coming, going and changing, replaces failed pods with a back-off, rolls template
// changes out within maxUnavailable and maxSurge, and keeps the status `kubectl rollout
// status daemonset` reads.
//
// As in Kubernetes, pods are created without a node and pinned to theirs by a required
// node affinity on metadata.name, so the scheduler binds them and accounts for their
// resources. Kubernetes records each template revision as a ControllerRevision; skiff has
// no such resource, so a revision is only a hash of the template, carried by the pods'
// controller-revision-hash label, and `kubectl rollout history daemonset` lists nothing.
package daemonset

import (
	"context"
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
	daemonSets = registry.Lookup("apps", "v1", "daemonsets")
	pods       = registry.Lookup("", "v1", "pods")
	nodes      = registry.Lookup("", "v1", "nodes")
)

// reconciler is the DaemonSet controller's state: only the failed-pod back-off, because
// everything else is read afresh from the store on every pass.
type reconciler struct {
	client  *controller.Client
	rec     *controller.Recorder
	backoff *backoff
}

// New returns the DaemonSet controller, to be driven by a controller.Runner.
func New(client *controller.Client, rec *controller.Recorder) controller.Reconciler {
	return &reconciler{client: client, rec: rec, backoff: newBackoff(time.Second, 15*time.Minute)}
}

// Watches names DaemonSets, their pods, and nodes, whose labels and taints decide where
// daemon pods belong.
func (r *reconciler) Watches() []string {
	return []string{objects.StoreResource(daemonSets), objects.StoreResource(pods), objects.StoreResource(nodes)}
}

// Keys maps a DaemonSet change to itself, a pod change to its controlling DaemonSet (or, for
// an orphan, every DaemonSet that could adopt it), and a node change that matters for
// placement to every DaemonSet.
func (r *reconciler) Keys(st *fsm.State, ev fsm.Event) []fsm.Key {
	switch ev.Record.Key.Resource {
	case objects.StoreResource(daemonSets):
		return controller.SelfKey(ev)
	case objects.StoreResource(nodes):
		if placementChanged(ev) {
			return controller.AllKeys(st, daemonSets)
		}
		return nil
	default:
		return controller.OwnerKeys(st, ev, daemonSets)
	}
}

// Primary lists every DaemonSet.
func (r *reconciler) Primary(st *fsm.State) []fsm.Key { return controller.AllKeys(st, daemonSets) }

// placementChanged reports whether a node change can change which DaemonSets belong on it:
// a node added or removed, or its labels or taints changed. Status-only writes (conditions,
// addresses) are ignored, as Kubernetes' shouldIgnoreNodeUpdate does.
func placementChanged(ev fsm.Event) bool {
	if ev.Type != fsm.Modified || ev.Prev == nil {
		return true
	}
	cur, err1 := objects.Decode(nodes, ev.Record)
	prev, err2 := objects.Decode(nodes, ev.Prev)
	if err1 != nil || err2 != nil {
		return true
	}
	a, b := cur.(*corev1.Node), prev.(*corev1.Node)
	return !labels.Equals(a.Labels, b.Labels) || !taintsEqual(a.Spec.Taints, b.Spec.Taints)
}

func taintsEqual(a, b []corev1.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Value != b[i].Value || a[i].Effect != b[i].Effect {
			return false
		}
	}
	return true
}

// Reconcile brings one DaemonSet's pods in line with its nodes and template: first the
// per-node invariant (one healthy pod on each eligible node, none elsewhere), then the
// rolling update, then the status. Each step reads the store afresh, since the leader's
// state already includes the previous step's writes.
func (r *reconciler) Reconcile(ctx context.Context, key fsm.Key) error {
	ds, err := controller.Get[*appsv1.DaemonSet](r.client.State(), daemonSets, key.Namespace, key.Name)
	if err != nil || ds == nil {
		return err
	}
	if ds.DeletionTimestamp != nil {
		return nil // the garbage collector removes the pods
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil // validation forbids both; nothing sensible to manage
	}
	hash := controller.TemplateHash(&ds.Spec.Template, ds.Status.CollisionCount)
	fits := newEligibility(ds)

	w, err := r.load(ctx, ds, sel)
	if err != nil {
		return err
	}
	retry, err := r.manage(ctx, ds, w, fits, hash)
	if err != nil {
		return err
	}
	if ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if w, err = r.load(ctx, ds, sel); err != nil {
			return err
		}
		if err := r.rollingUpdate(ctx, ds, w, fits, hash); err != nil {
			return err
		}
	}
	if w, err = r.load(ctx, ds, sel); err != nil {
		return err
	}
	if later, err := r.updateStatus(ctx, ds, w, fits, hash); err != nil {
		return err
	} else if later > 0 && (retry == 0 || later < retry) {
		retry = later
	}
	if retry > 0 {
		return controller.RequeueAfter(retry)
	}
	return nil
}

// world is what one step of a pass sees: the nodes, and the DaemonSet's pods grouped by the
// node each is meant for.
type world struct {
	nodes  []*corev1.Node
	byNode map[string][]*corev1.Pod
}

// load reads the nodes and claims the DaemonSet's pods from the current state: pods it
// controls that its selector matches, and orphans the selector matches, which it adopts
// (pods whose labels stopped matching are released).
func (r *reconciler) load(ctx context.Context, ds *appsv1.DaemonSet, sel labels.Selector) (*world, error) {
	ps, err := controller.Claim(ctx, r.client, controller.ClaimSpec[*corev1.Pod]{
		Owner: ds, OwnerResource: daemonSets, Resource: pods, Selector: sel,
	})
	if err != nil {
		return nil, err
	}
	ns, err := controller.List[*corev1.Node](r.client.State(), nodes, "", nil)
	if err != nil {
		return nil, err
	}
	return &world{nodes: ns, byNode: podsByNode(ps)}, nil
}

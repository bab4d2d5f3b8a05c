// Package statefulset is the StatefulSet controller: it gives each replica a stable identity
// (pod "<set>-<ordinal>", hostname and subdomain for the governing Service, the pod-name and
// pod-index labels), creates and removes replicas in ordinal order (OrderedReady) or all at
// once (Parallel), recreates failed ones, rolls template changes out from the highest
// ordinal down to the partition, and keeps the status `kubectl rollout status statefulset`
// reads.
//
// Two things differ from Kubernetes, for lack of the resources:
//   - Kubernetes records each template revision as a ControllerRevision named
//     "<set>-<hash>". skiff has none: a revision is that name computed from the template,
//     carried by the pods' controller-revision-hash label and status.currentRevision and
//     updateRevision, and `kubectl rollout history/undo statefulset` see no history. A pod
//     below the partition that must be recreated at the current (older) revision takes its
//     template from a surviving pod of that revision.
//   - skiff has no persistent volumes, so volumeClaimTemplates create no claims: each
//     claim template becomes an emptyDir volume of the same name, so pods that mount it
//     start, but their data does not outlive the pod.
package statefulset

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
	statefulSets = registry.Lookup("apps", "v1", "statefulsets")
	pods         = registry.Lookup("", "v1", "pods")
)

// reconciler holds no state of its own: every pass reads the store afresh.
type reconciler struct {
	client *controller.Client
	rec    *controller.Recorder
}

// New returns the StatefulSet controller, to be driven by a controller.Runner.
func New(client *controller.Client, rec *controller.Recorder) controller.Reconciler {
	return &reconciler{client: client, rec: rec}
}

// Watches names StatefulSets and pods.
func (r *reconciler) Watches() []string {
	return []string{objects.StoreResource(statefulSets), objects.StoreResource(pods)}
}

// Keys maps a StatefulSet change to itself and a pod change to its controlling StatefulSet
// or, for an orphan, every StatefulSet that could adopt it.
func (r *reconciler) Keys(st *fsm.State, ev fsm.Event) []fsm.Key {
	if ev.Record.Key.Resource == objects.StoreResource(statefulSets) {
		return controller.SelfKey(ev)
	}
	return controller.OwnerKeys(st, ev, statefulSets)
}

// Primary lists every StatefulSet.
func (r *reconciler) Primary(st *fsm.State) []fsm.Key { return controller.AllKeys(st, statefulSets) }

// Reconcile makes one step towards the StatefulSet's spec (in OrderedReady, one pod
// created, deleted or replaced per pass, the next pass coming with that pod's next change)
// and then records the status as the store now is.
func (r *reconciler) Reconcile(ctx context.Context, key fsm.Key) error {
	set, err := controller.Get[*appsv1.StatefulSet](r.client.State(), statefulSets, key.Namespace, key.Name)
	if err != nil || set == nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil // validation forbids both; nothing sensible to manage
	}
	ps, err := r.claimPods(ctx, set, sel)
	if err != nil {
		return err
	}
	revs := newRevisions(set, ps)
	var retry time.Duration
	if set.DeletionTimestamp == nil { // the garbage collector removes the pods
		if retry, err = r.sync(ctx, set, revs, ps); err != nil {
			return err
		}
		if ps, err = r.claimPods(ctx, set, sel); err != nil {
			return err
		}
	}
	later, err := r.updateStatus(ctx, set, revs, ps)
	if err != nil {
		return err
	}
	if later > 0 && (retry == 0 || later < retry) {
		retry = later
	}
	if retry > 0 {
		return controller.RequeueAfter(retry)
	}
	return nil
}

// claimPods returns the pods set controls, as Kubernetes' ClaimPods decides them with the
// StatefulSet's membership filter: pods it controls that its selector matches and whose
// name makes them its members, plus orphans that match likewise, which it adopts (a set
// deleted with --cascade=orphan and created again takes its replicas back). Pods it
// controls that no longer match are released.
func (r *reconciler) claimPods(ctx context.Context, set *appsv1.StatefulSet, sel labels.Selector) ([]*corev1.Pod, error) {
	return controller.Claim(ctx, r.client, controller.ClaimSpec[*corev1.Pod]{
		Owner: set, OwnerResource: statefulSets, Resource: pods, Selector: sel,
		Member: func(p *corev1.Pod) bool { return ordinalOf(set, p) >= 0 },
	})
}

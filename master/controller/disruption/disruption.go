// Package disruption keeps the status of PodDisruptionBudgets current: how many selected
// pods are healthy, how many must stay healthy, and so how many disruptions (evictions) are
// allowed now. The eviction API spends from disruptionsAllowed and records the pod in
// status.disruptedPods in the same transaction as the deletion; this controller forgets
// those records once the pod is gone or after two minutes, as Kubernetes does.
package disruption

import (
	"context"
	"math"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/podstatus"
	"skiff/master/registry"
)

var (
	pdbs         = registry.Lookup("policy", "v1", "poddisruptionbudgets")
	pods         = registry.Lookup("", "v1", "pods")
	replicasets  = registry.Lookup("apps", "v1", "replicasets")
	deployments  = registry.Lookup("apps", "v1", "deployments")
	statefulsets = registry.Lookup("apps", "v1", "statefulsets")
)

// disruptedPodTimeout is how long an eviction's record keeps a pod out of the healthy count
// while its deletion has not shown up yet.
const disruptedPodTimeout = 2 * time.Minute

// Controller is the disruption controller; it implements controller.Reconciler.
type Controller struct {
	client *controller.Client
	rec    *controller.Recorder
}

// New returns the disruption controller writing through client.
func New(client *controller.Client, rec *controller.Recorder) *Controller {
	return &Controller{client: client, rec: rec}
}

// Watches implements controller.Reconciler.
func (c *Controller) Watches() []string {
	return []string{objects.StoreResource(pdbs), objects.StoreResource(pods)}
}

// Primary implements controller.Reconciler.
func (c *Controller) Primary(st *fsm.State) []fsm.Key { return controller.AllKeys(st, pdbs) }

// Keys implements controller.Reconciler: a pod concerns the budgets of its namespace whose
// selector matches it before or after the change.
func (c *Controller) Keys(st *fsm.State, ev fsm.Event) []fsm.Key {
	if ev.Record.Key.Resource == objects.StoreResource(pdbs) {
		return controller.SelfKey(ev)
	}
	budgets, err := controller.List[*policyv1.PodDisruptionBudget](st, pdbs, ev.Record.Key.Namespace, nil)
	if err != nil {
		return nil
	}
	var keys []fsm.Key
	for _, pdb := range budgets {
		sel := selector(pdb)
		if sel.Matches(labels.Set(ev.Record.Meta.Labels)) || ev.Prev != nil && sel.Matches(labels.Set(ev.Prev.Meta.Labels)) {
			keys = append(keys, objects.Key(pdbs, pdb.Namespace, pdb.Name))
		}
	}
	return keys
}

// selector is the budget's pod selector; in policy/v1 a missing one selects nothing.
func selector(pdb *policyv1.PodDisruptionBudget) labels.Selector {
	if pdb.Spec.Selector == nil {
		return labels.Nothing()
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return labels.Nothing()
	}
	return sel
}

// Reconcile implements controller.Reconciler.
func (c *Controller) Reconcile(ctx context.Context, key fsm.Key) error {
	st := c.client.State()
	pdb, err := controller.Get[*policyv1.PodDisruptionBudget](st, pdbs, key.Namespace, key.Name)
	if err != nil || pdb == nil {
		return err
	}
	var selected []*corev1.Pod
	if pdb.Spec.Selector != nil {
		if selected, err = controller.List[*corev1.Pod](st, pods, pdb.Namespace, selector(pdb)); err != nil {
			return err
		}
	}
	now := c.client.Time()
	status := c.compute(st, pdb, selected, now)
	var requeue time.Duration
	for _, t := range status.DisruptedPods {
		if left := t.Add(disruptedPodTimeout).Sub(now); requeue == 0 || left < requeue {
			requeue = left + time.Second
		}
	}
	if !reflect.DeepEqual(statusWithoutTimes(pdb.Status), statusWithoutTimes(status)) {
		pdb.Status = status
		if err := c.client.Update(ctx, pdbs, pdb, false); err != nil {
			return err
		}
	}
	if requeue > 0 {
		return controller.RequeueAfter(requeue)
	}
	return nil
}

// statusWithoutTimes drops condition transition times so an unchanged status compares
// equal whatever the clock says.
func statusWithoutTimes(s policyv1.PodDisruptionBudgetStatus) policyv1.PodDisruptionBudgetStatus {
	s.Conditions = append([]metav1.Condition(nil), s.Conditions...)
	for i := range s.Conditions {
		s.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	return s
}

// compute derives the budget's status from the pods it selects.
func (c *Controller) compute(st *fsm.State, pdb *policyv1.PodDisruptionBudget, selected []*corev1.Pod, now time.Time) policyv1.PodDisruptionBudgetStatus {
	byName := map[string]*corev1.Pod{}
	for _, p := range selected {
		byName[p.Name] = p
	}
	disrupted := map[string]metav1.Time{}
	for name, t := range pdb.Status.DisruptedPods {
		p := byName[name]
		if p == nil || p.DeletionTimestamp != nil || now.Sub(t.Time) >= disruptedPodTimeout {
			continue // the eviction went through, or never did and the record expired
		}
		disrupted[name] = t
	}
	healthy := int32(0)
	for _, p := range selected {
		if p.DeletionTimestamp == nil && podstatus.Ready(p) && !isDisrupted(disrupted, p.Name) {
			healthy++
		}
	}
	expected, desired := c.expectations(st, pdb, selected)
	allowed := max(0, healthy-desired)
	status := policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation,
		DisruptedPods:      disrupted,
		DisruptionsAllowed: allowed,
		CurrentHealthy:     healthy,
		DesiredHealthy:     desired,
		ExpectedPods:       expected,
	}
	if len(status.DisruptedPods) == 0 {
		status.DisruptedPods = nil
	}
	cond := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionTrue, Reason: policyv1.SufficientPodsReason, ObservedGeneration: pdb.Generation}
	if allowed == 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, policyv1.InsufficientPodsReason
	}
	cond.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
	for _, old := range pdb.Status.Conditions {
		if old.Type == cond.Type && old.Status == cond.Status {
			cond.LastTransitionTime = old.LastTransitionTime
		}
	}
	status.Conditions = []metav1.Condition{cond}
	return status
}

// expectations returns how many pods the budget expects and how many must be healthy. An
// absolute minAvailable needs no scale; percentages and maxUnavailable are taken of the
// replicas the pods' controllers want (a Deployment through its ReplicaSet, a StatefulSet),
// falling back to the number of selected pods for pods without such a controller.
func (c *Controller) expectations(st *fsm.State, pdb *policyv1.PodDisruptionBudget, selected []*corev1.Pod) (expected, desired int32) {
	if m := pdb.Spec.MinAvailable; m != nil && m.Type == intstr.Int {
		return int32(len(selected)), m.IntVal
	}
	expected = c.scale(st, selected)
	switch {
	case pdb.Spec.MinAvailable != nil:
		v, _ := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(expected), true)
		desired = int32(v)
	case pdb.Spec.MaxUnavailable != nil:
		v, _ := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true)
		desired = max(0, expected-int32(v))
	}
	return expected, desired
}

// scale sums the desired replicas of the distinct controllers of the selected pods.
func (c *Controller) scale(st *fsm.State, selected []*corev1.Pod) int32 {
	seen := map[string]bool{}
	var total int64
	for _, p := range selected {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil {
			total++
			continue
		}
		id := ref.Kind + "/" + ref.Name
		if seen[id] {
			continue
		}
		seen[id] = true
		total += int64(c.controllerScale(st, p.Namespace, ref))
	}
	return int32(min(total, math.MaxInt32))
}

func (c *Controller) controllerScale(st *fsm.State, ns string, ref *metav1.OwnerReference) int32 {
	replicas := func(r *int32) int32 {
		if r == nil {
			return 1
		}
		return *r
	}
	switch ref.Kind {
	case "ReplicaSet":
		rs, _ := controller.Get[*appsv1.ReplicaSet](st, replicasets, ns, ref.Name)
		if rs == nil {
			return 0
		}
		if owner := metav1.GetControllerOfNoCopy(rs); owner != nil && owner.Kind == "Deployment" {
			if d, _ := controller.Get[*appsv1.Deployment](st, deployments, ns, owner.Name); d != nil {
				return replicas(d.Spec.Replicas)
			}
		}
		return replicas(rs.Spec.Replicas)
	case "StatefulSet":
		if s, _ := controller.Get[*appsv1.StatefulSet](st, statefulsets, ns, ref.Name); s != nil {
			return replicas(s.Spec.Replicas)
		}
		return 0
	}
	return 1
}

func isDisrupted(disrupted map[string]metav1.Time, name string) bool {
	_, ok := disrupted[name]
	return ok
}

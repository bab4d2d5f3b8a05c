package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/podstatus"
	"skiff/master/registry"
)

var pdbs = registry.Lookup("policy", "v1", "poddisruptionbudgets")

// maxDisruptedPods bounds a budget's status.disruptedPods, as Kubernetes does, so a budget
// whose controller stopped pruning it cannot grow without limit.
const maxDisruptedPods = 2000

// evict serves POST pods/<name>/eviction (policy/v1 or v1beta1 Eviction), which `kubectl
// drain` uses. A pod covered by a PodDisruptionBudget is deleted only if the budget allows
// one more disruption; the budget's decrement and the pod's deletion are one transaction,
// so two concurrent evictions can never both spend the last allowed disruption.
func (s *Server) evict(c echo.Context, info requestInfo) error {
	if c.Request().Method != http.MethodPost {
		return writeStatus(c, apierrors.NewMethodNotSupported(grOf(info.Resource), c.Request().Method))
	}
	body, err := readBody(c)
	if err != nil {
		return writeStatus(c, err)
	}
	j, err := toJSON(c, body)
	if err != nil {
		return writeStatus(c, err)
	}
	var ev policyv1.Eviction
	if err := json.Unmarshal(j, &ev); err != nil {
		return writeStatus(c, apierrors.NewBadRequest("decoding Eviction: "+err.Error()))
	}
	if ev.Name != "" && ev.Name != info.Name {
		return writeStatus(c, apierrors.NewBadRequest(fmt.Sprintf("name in URL does not match name in Eviction object: %s vs %s", info.Name, ev.Name)))
	}
	opts := ev.DeleteOptions
	if opts == nil {
		opts = &metav1.DeleteOptions{}
	}
	for attempt := 0; ; attempt++ {
		err := s.evictOnce(c, info, opts)
		if apierrors.IsConflict(err) && attempt < maxPatchRetries {
			continue // the budget moved under us: look again
		}
		if err != nil {
			return writeStatus(c, err)
		}
		return writeObject(c, http.StatusCreated, &metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess})
	}
}

func (s *Server) evictOnce(c echo.Context, info requestInfo, opts *metav1.DeleteOptions) error {
	st, err := s.readState(c)
	if err != nil {
		return err
	}
	rec := st.Get(objects.Key(info.Resource, info.Namespace, info.Name))
	if rec == nil {
		return apierrors.NewNotFound(grOf(info.Resource), info.Name)
	}
	obj, err := objects.Decode(info.Resource, rec)
	if err != nil {
		return err
	}
	pod := obj.(*corev1.Pod)
	if !podstatus.Active(pod) || pod.Status.Phase == corev1.PodPending {
		// Nothing a budget protects: a pod already going, finished, or not yet running.
		_, _, err := s.deleteRecord(c, st, info.Resource, rec, opts)
		return err
	}
	budgets, err := matchingBudgets(st, pod)
	if err != nil {
		return err
	}
	switch len(budgets) {
	case 0:
		_, _, err := s.deleteRecord(c, st, info.Resource, rec, opts)
		return err
	case 1:
	default:
		return apierrors.NewInternalError(errors.New("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."))
	}
	pdb := budgets[0]
	if !podstatus.Ready(pod) && unhealthyMayGo(pdb) {
		_, _, err := s.deleteRecord(c, st, info.Resource, rec, opts)
		return err
	}
	if err := checkBudget(pdb); err != nil {
		return err
	}
	pdb.Status.DisruptionsAllowed--
	if pdb.Status.DisruptedPods == nil {
		pdb.Status.DisruptedPods = map[string]metav1.Time{}
	}
	pdb.Status.DisruptedPods[pod.Name] = metav1.NewTime(s.now().Truncate(time.Second))
	budgetOp, err := budgetUpdateOp(pdb)
	if err != nil {
		return err
	}
	_, _, err = s.deleteRecord(c, st, info.Resource, rec, opts, budgetOp)
	return err
}

// matchingBudgets returns the PodDisruptionBudgets of pod's namespace whose selector
// matches it (in policy/v1 an empty selector matches every pod, a missing one none).
func matchingBudgets(st *fsm.State, pod *corev1.Pod) ([]*policyv1.PodDisruptionBudget, error) {
	recs, _ := st.List(fsm.ListOptions{Resource: objects.StoreResource(pdbs), Namespace: pod.Namespace})
	var out []*policyv1.PodDisruptionBudget
	for _, rec := range recs {
		obj, err := objects.Decode(pdbs, rec)
		if err != nil {
			return nil, err
		}
		pdb := obj.(*policyv1.PodDisruptionBudget)
		if pdb.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, pdb)
	}
	return out, nil
}

// unhealthyMayGo reports whether a budget lets an unready pod go without spending a
// disruption: always under AlwaysAllow; under the default IfHealthyBudget only while the
// application is healthy enough anyway.
func unhealthyMayGo(pdb *policyv1.PodDisruptionBudget) bool {
	if p := pdb.Spec.UnhealthyPodEvictionPolicy; p != nil && *p == policyv1.AlwaysAllow {
		return true
	}
	return pdb.Status.ObservedGeneration >= pdb.Generation && pdb.Status.CurrentHealthy >= pdb.Status.DesiredHealthy && pdb.Status.DesiredHealthy > 0
}

// checkBudget returns the error Kubernetes gives when pdb cannot spend a disruption: 429
// with a DisruptionBudget cause, which `kubectl drain` reports and retries.
func checkBudget(pdb *policyv1.PodDisruptionBudget) error {
	tooMany := func(msg, cause string) error {
		err := apierrors.NewTooManyRequests(msg, 0)
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Type: policyv1.DisruptionBudgetCause, Message: cause})
		return err
	}
	switch {
	case pdb.Status.ObservedGeneration < pdb.Generation:
		return tooMany("Cannot evict pod as it would violate the pod's disruption budget.",
			fmt.Sprintf("The disruption budget %s is still being processed by the server.", pdb.Name))
	case pdb.Status.DisruptionsAllowed < 0:
		return apierrors.NewForbidden(grOf(pdbs), pdb.Name, errors.New("pdb disruptions allowed is negative"))
	case len(pdb.Status.DisruptedPods) > maxDisruptedPods:
		return apierrors.NewForbidden(grOf(pdbs), pdb.Name, errors.New("DisruptedPods map too big - too many evictions not confirmed by PDB controller"))
	case pdb.Status.DisruptionsAllowed == 0:
		return tooMany("Cannot evict pod as it would violate the pod's disruption budget.",
			fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", pdb.Name, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy))
	}
	return nil
}

// budgetUpdateOp is an update of pdb conditional on the revision it was read at.
func budgetUpdateOp(pdb *policyv1.PodDisruptionBudget) (fsm.Op, error) {
	rev, err := objects.ParseRV(pdb.ResourceVersion)
	if err != nil {
		return fsm.Op{}, err
	}
	value, m, err := objects.Encode(pdbs, pdb)
	if err != nil {
		return fsm.Op{}, err
	}
	return fsm.Update(objects.Key(pdbs, pdb.Namespace, pdb.Name), rev, value, m), nil
}

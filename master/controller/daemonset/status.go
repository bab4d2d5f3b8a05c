package daemonset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"skiff/master/podstatus"
)

// updateStatus writes the counts `kubectl get ds` and `kubectl rollout status` read, if they
// changed, conditional on the DaemonSet as this pass read it (a newer spec makes the write
// stale, and the next pass counts against it). Each eligible node is judged by its oldest
// pod, as Kubernetes does. It returns how soon a ready pod becomes available, when
// minReadySeconds makes the counts change with time alone.
func (r *reconciler) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, w *world, fits *eligibility, hash string) (time.Duration, error) {
	now := r.client.Time()
	var s appsv1.DaemonSetStatus
	var retry time.Duration
	for _, node := range w.nodes {
		run, _ := fits.check(node)
		onNode := w.byNode[node.Name]
		if !run {
			if len(onNode) > 0 {
				s.NumberMisscheduled++
			}
			continue
		}
		s.DesiredNumberScheduled++
		if len(onNode) == 0 {
			continue
		}
		s.CurrentNumberScheduled++
		sortOldestFirst(onNode)
		p := onNode[0]
		if podstatus.Ready(p) {
			s.NumberReady++
			if ok, wait := podstatus.Available(p, ds.Spec.MinReadySeconds, now); ok {
				s.NumberAvailable++
			} else {
				retry = sooner(retry, wait)
			}
		}
		if isUpdated(p, hash) {
			s.UpdatedNumberScheduled++
		}
	}
	s.NumberUnavailable = s.DesiredNumberScheduled - s.NumberAvailable
	s.ObservedGeneration = ds.Generation
	s.CollisionCount = ds.Status.CollisionCount
	s.Conditions = ds.Status.Conditions
	if equality.Semantic.DeepEqual(s, ds.Status) {
		return retry, nil
	}
	ds.Status = s
	return retry, r.client.Update(ctx, daemonSets, ds, false)
}

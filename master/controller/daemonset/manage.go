package daemonset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"skiff/master/podstatus"
)

// manage keeps the per-node invariant: a pod on every node that should run one, none on
// nodes that may not keep one, at most one per node (two while surging), failed and
// finished pods replaced. Pods meant for nodes that no longer exist are removed outright:
// no agent is left to confirm their termination. It returns how soon the DaemonSet needs
// another look when a failed pod's replacement is held back.
func (r *reconciler) manage(ctx context.Context, ds *appsv1.DaemonSet, w *world, fits *eligibility, hash string) (time.Duration, error) {
	now := r.client.Time()
	surge := allowsSurge(ds)
	var create []string
	var del, force []*corev1.Pod
	var retry time.Duration
	known := make(map[string]bool, len(w.nodes))
	for _, node := range w.nodes {
		known[node.Name] = true
		run, keep := fits.check(node)
		onNode, exists := w.byNode[node.Name]
		switch {
		case run && !exists:
			create = append(create, node.Name)
		case keep:
			var live []*corev1.Pod
			for _, p := range onNode {
				if p.DeletionTimestamp != nil {
					continue
				}
				switch p.Status.Phase {
				case corev1.PodFailed:
					key := ds.Namespace + "/" + ds.Name + "/" + string(ds.UID) + "/" + node.Name
					if d := r.backoff.wait(key, now); d > 0 {
						retry = sooner(retry, d)
						continue
					}
					r.backoff.next(key, now)
					r.rec.Eventf(ds, corev1.EventTypeWarning, "FailedDaemonPod",
						"Found failed daemon pod %s/%s on node %s, will try to kill it", p.Namespace, p.Name, node.Name)
					del = append(del, p)
				case corev1.PodSucceeded:
					del = append(del, p)
				default:
					live = append(live, p)
				}
			}
			del = append(del, excess(ds, live, hash, surge, now)...)
		case exists:
			for _, p := range onNode {
				if p.DeletionTimestamp == nil {
					del = append(del, p)
				}
			}
		}
	}
	for name, onNode := range w.byNode {
		if !known[name] {
			force = append(force, onNode...)
		}
	}
	return retry, r.syncNodes(ctx, ds, del, force, create, hash)
}

// excess picks the pods of one node to delete among its live ones: all but the oldest; or,
// while surging, all but the oldest of each revision, and the old one too once the new one
// is available or the old one is no longer ready.
func excess(ds *appsv1.DaemonSet, live []*corev1.Pod, hash string, surge bool, now time.Time) []*corev1.Pod {
	if len(live) <= 1 {
		return nil
	}
	sortOldestFirst(live)
	if !surge {
		return live[1:]
	}
	var extra []*corev1.Pod
	var oldestNew, oldestOld *corev1.Pod
	for _, p := range live {
		switch {
		case isUpdated(p, hash) && oldestNew == nil:
			oldestNew = p
		case !isUpdated(p, hash) && oldestOld == nil:
			oldestOld = p
		default:
			extra = append(extra, p)
		}
	}
	if oldestNew == nil || oldestOld == nil {
		return extra
	}
	if newAvailable, _ := podstatus.Available(oldestNew, ds.Spec.MinReadySeconds, now); newAvailable || !podstatus.Ready(oldestOld) {
		extra = append(extra, oldestOld)
	}
	return extra
}

// rollingLimits returns how many pods a rolling update may make unavailable and how many
// it may surge, out of desired, rounding percentages up. A configuration allowing neither
// (only possible through a stale object) falls back to one unavailable, as Kubernetes does.
func rollingLimits(ds *appsv1.DaemonSet, desired int) (maxUnavailable, maxSurge int) {
	unavailable, surge := intstr.FromInt32(1), intstr.FromInt32(0)
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		if ru.MaxUnavailable != nil {
			unavailable = *ru.MaxUnavailable
		}
		if ru.MaxSurge != nil {
			surge = *ru.MaxSurge
		}
	}
	maxUnavailable, _ = intstr.GetScaledValueFromIntOrPercent(&unavailable, desired, true)
	maxSurge, _ = intstr.GetScaledValueFromIntOrPercent(&surge, desired, true)
	if desired > 0 && maxUnavailable == 0 && maxSurge == 0 {
		maxUnavailable = 1
	}
	return maxUnavailable, maxSurge
}

// allowsSurge reports whether the rolling update starts new pods beside the old ones.
func allowsSurge(ds *appsv1.DaemonSet) bool {
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		return false
	}
	_, surge := rollingLimits(ds, 1)
	return surge > 0
}

// sooner returns the earlier of two delays, zero meaning none (a pod that no wait makes
// available asks for no requeue).
func sooner(cur, d time.Duration) time.Duration {
	if d > 0 && (cur == 0 || d < cur) {
		return d
	}
	return cur
}

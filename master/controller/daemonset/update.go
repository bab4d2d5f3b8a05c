package daemonset

import (
	"context"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"skiff/master/podstatus"
)

// rollingUpdate replaces pods of an old revision, as Kubernetes' rollingUpdate does. Without
// surge it deletes old pods, at most maxUnavailable nodes being without an available pod at
// any time (an old pod that is unavailable anyway may always go), and leaves manage to start
// the new ones. With surge it starts new pods beside old available ones, at most maxSurge
// at a time, and deletes each old pod once its replacement is available.
func (r *reconciler) rollingUpdate(ctx context.Context, ds *appsv1.DaemonSet, w *world, fits *eligibility, hash string) error {
	now := r.client.Time()
	desired := 0
	eligible := map[string]bool{}
	for _, node := range w.nodes {
		if run, _ := fits.check(node); run {
			desired++
			eligible[node.Name] = true
			if _, ok := w.byNode[node.Name]; !ok {
				w.byNode[node.Name] = nil // a node still to get its pod counts as unavailable
			}
		}
	}
	maxUnavailable, maxSurge := rollingLimits(ds, desired)
	names := slices.Sorted(maps.Keys(w.byNode)) // a stable order picks the same candidates each pass
	available := func(p *corev1.Pod) bool {
		ok, _ := podstatus.Available(p, ds.Spec.MinReadySeconds, now)
		return ok
	}

	if maxSurge == 0 {
		unavailable := 0
		var replace, candidates []*corev1.Pod
		for _, node := range names {
			newPod, oldPod, ok := splitByRevision(w.byNode[node], hash)
			switch {
			case !ok, oldPod == nil && newPod == nil, oldPod != nil && newPod != nil:
				unavailable++ // manage still has work here
			case newPod != nil:
				if !available(newPod) {
					unavailable++
				}
			case !available(oldPod):
				replace = append(replace, oldPod)
				unavailable++
			case unavailable < maxUnavailable:
				candidates = append(candidates, oldPod)
			}
		}
		n := min(max(maxUnavailable-unavailable, 0), len(candidates))
		return r.syncNodes(ctx, ds, append(replace, candidates[:n]...), nil, nil, hash)
	}

	var del, sunset []*corev1.Pod
	var replaceOn, candidateOn []string
	surged, numAvailable := 0, 0
	for _, node := range names {
		newPod, oldPod, ok := splitByRevision(w.byNode[node], hash)
		if !ok {
			surged++ // manage still has work here
			continue
		}
		if oldPod != nil && available(oldPod) || oldPod == nil && newPod != nil && available(newPod) {
			numAvailable++
		}
		switch {
		case oldPod == nil:
			// manage starts the pod here
		case newPod == nil && !available(oldPod):
			if !eligible[node] {
				del = append(del, oldPod)
				continue
			}
			replaceOn = append(replaceOn, node)
		case newPod == nil:
			if !eligible[node] {
				sunset = append(sunset, oldPod)
				continue
			}
			if surged < maxSurge {
				candidateOn = append(candidateOn, node)
			}
		case !available(newPod):
			surged++
		default:
			del = append(del, oldPod)
		}
	}
	// Pods on nodes the DaemonSet no longer fits go only while that leaves as many available
	// pods as desired: with surge, the owner expects no loss of availability.
	if extra := min(numAvailable-desired, len(sunset)); extra > 0 {
		del = append(del, sunset[:extra]...)
	}
	n := min(max(maxSurge-surged, 0), len(candidateOn))
	return r.syncNodes(ctx, ds, del, nil, append(replaceOn, candidateOn[:n]...), hash)
}

// splitByRevision finds the one pod of the current revision and the one of an older
// revision on a node, ignoring pods being deleted; ok is false when there are more than
// one of either, which manage resolves first.
func splitByRevision(onNode []*corev1.Pod, hash string) (newPod, oldPod *corev1.Pod, ok bool) {
	for _, p := range onNode {
		if p.DeletionTimestamp != nil {
			continue
		}
		if isUpdated(p, hash) {
			if newPod != nil {
				return nil, nil, false
			}
			newPod = p
		} else {
			if oldPod != nil {
				return nil, nil, false
			}
			oldPod = p
		}
	}
	return newPod, oldPod, true
}

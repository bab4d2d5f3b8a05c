package deployment

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/controller"
)

// allReplicaSets splits the Deployment's ReplicaSets into the new one (whose template is
// the Deployment's; created if asked and missing) and the old ones, bringing the
// revision annotations of the new one and of the Deployment up to date.
func (r *rollout) allReplicaSets(ctx context.Context, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	old := findOldReplicaSets(r.rsList, findNewReplicaSet(r.d, r.rsList))
	newRS, err := r.newReplicaSet(ctx, old, create)
	if err != nil {
		return nil, nil, err
	}
	return newRS, old, nil
}

// newReplicaSet returns the ReplicaSet running the Deployment's template. An existing one
// gets revision max(old)+1 if it had less (an undo brought it back), the Deployment's
// annotations and minReadySeconds. A missing one is created when create is set, named
// "<deployment>-<pod-template-hash>", sized as the strategy allows. A name taken by a
// ReplicaSet with another template is a hash collision: status.collisionCount goes up and
// the next pass tries another name.
func (r *rollout) newReplicaSet(ctx context.Context, oldRSs []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, error) {
	d := r.d
	newRevision := strconv.FormatInt(maxRevision(oldRSs)+1, 10)
	if rs := findNewReplicaSet(d, r.rsList); rs != nil {
		annotated := setNewReplicaSetAnnotations(d, rs, newRevision, true)
		minReady := rs.Spec.MinReadySeconds != d.Spec.MinReadySeconds
		if annotated || minReady {
			rs.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			if err := r.c.client.Update(ctx, replicaSets, rs, minReady); err != nil {
				return nil, err
			}
		}
		setDeploymentRevision(d, rs.Annotations[revisionAnnotation])
		if hasProgressDeadline(d) && condition(d.Status, appsv1.DeploymentProgressing) == nil {
			r.setCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, foundNewRSReason, fmt.Sprintf("Found new replica set %q", rs.Name))
		}
		return rs, nil
	}
	if !create {
		return nil, nil
	}

	hash := controller.TemplateHash(&d.Spec.Template, d.Status.CollisionCount)
	template := *d.Spec.Template.DeepCopy()
	template.Labels = withLabel(d.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{controller.OwnerReference(d, deployments)},
			Labels:          withLabel(template.Labels, appsv1.DefaultDeploymentUniqueLabelKey, hash),
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        new(int32),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        selectorWithLabel(d.Spec.Selector, appsv1.DefaultDeploymentUniqueLabelKey, hash),
			Template:        template,
		},
	}
	n, err := newRSNewReplicas(d, append(append([]*appsv1.ReplicaSet(nil), oldRSs...), rs), rs)
	if err != nil {
		return nil, err
	}
	*rs.Spec.Replicas = n
	setNewReplicaSetAnnotations(d, rs, newRevision, false)
	err = r.c.client.Create(ctx, replicaSets, rs)
	existed := false
	switch {
	case errors.Is(err, fsm.ErrAlreadyExists):
		taken, getErr := controller.Get[*appsv1.ReplicaSet](r.c.client.State(), replicaSets, rs.Namespace, rs.Name)
		if getErr != nil || taken == nil {
			return nil, err
		}
		if ref := metav1.GetControllerOfNoCopy(taken); ref != nil && ref.UID == d.UID && equalIgnoreHash(&d.Spec.Template, &taken.Spec.Template) {
			rs, existed = taken, true
			break
		}
		count := int32(1)
		if d.Status.CollisionCount != nil {
			count = *d.Status.CollisionCount + 1
		}
		d.Status.CollisionCount = &count
		return nil, err
	case err != nil:
		if controller.IsStale(err) || ctx.Err() != nil {
			return nil, err
		}
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		if hasProgressDeadline(d) {
			r.setCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, failedRSCreateReason, msg)
		}
		r.c.rec.Eventf(d, corev1.EventTypeWarning, failedRSCreateReason, "%s", msg)
		return nil, err
	}
	if !existed && n > 0 {
		r.c.rec.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d", rs.Name, n)
	}
	r.rsList = append(r.rsList, rs)
	setDeploymentRevision(d, newRevision)
	if !existed && hasProgressDeadline(d) {
		r.setCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, newReplicaSetReason, fmt.Sprintf("Created new replica set %q", rs.Name))
	}
	return rs, nil
}

// scaleReplicaSetAndRecordEvent resizes rs to n (see scaleReplicaSet); it reports whether
// the size changed.
func (r *rollout) scaleReplicaSetAndRecordEvent(ctx context.Context, rs *appsv1.ReplicaSet, n int32) (bool, error) {
	if *rs.Spec.Replicas == n {
		return false, nil
	}
	direction := "down"
	if *rs.Spec.Replicas < n {
		direction = "up"
	}
	return r.scaleReplicaSet(ctx, rs, n, direction)
}

// scaleReplicaSet sets rs's spec.replicas to n and its desired/max replica annotations to
// the Deployment's, in one write; a size change bumps rs's generation, so its
// observedGeneration shows when the ReplicaSet controller has acted on it.
func (r *rollout) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, n int32, direction string) (bool, error) {
	d := r.d
	resize := *rs.Spec.Replicas != n
	desired, maxReplicas := *d.Spec.Replicas, *d.Spec.Replicas+maxSurge(d)
	if !resize && !replicasAnnotationsNeedUpdate(rs, desired, maxReplicas) {
		return false, nil
	}
	from := *rs.Spec.Replicas
	rs.Spec.Replicas = &n
	setReplicasAnnotations(rs, desired, maxReplicas)
	if err := r.c.client.Update(ctx, replicaSets, rs, resize); err != nil {
		return false, err
	}
	if resize {
		r.c.rec.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", direction, rs.Name, from, n)
	}
	return resize, nil
}

// scale handles a change of spec.replicas outside a rollout step. With one active
// ReplicaSet (or none) it takes the whole size. If the new ReplicaSet is saturated the old
// ones go to zero. Otherwise, for RollingUpdate, the difference between
// spec.replicas+maxSurge and what the active ReplicaSets hold is spread over them in
// proportion to their size, so that a scaling mid-rollout neither hastens nor reverses the
// rollout; the rounding leftover goes to the largest.
func (r *rollout) scale(ctx context.Context, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) error {
	d := r.d
	if rs := findActiveOrLatest(newRS, oldRSs); rs != nil {
		if *rs.Spec.Replicas == *d.Spec.Replicas {
			_, err := r.scaleReplicaSet(ctx, rs, *d.Spec.Replicas, "")
			return err
		}
		_, err := r.scaleReplicaSetAndRecordEvent(ctx, rs, *d.Spec.Replicas)
		return err
	}
	if isSaturated(d, newRS) {
		for _, old := range filterActive(oldRSs) {
			if _, err := r.scaleReplicaSetAndRecordEvent(ctx, old, 0); err != nil {
				return err
			}
		}
		return nil
	}
	if !isRollingUpdate(d) {
		return nil
	}
	all := filterActive(append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS))
	var allowed int32
	if *d.Spec.Replicas > 0 {
		allowed = *d.Spec.Replicas + maxSurge(d)
	}
	toAdd := allowed - specReplicas(all)
	direction := ""
	switch {
	case toAdd > 0:
		sort.Sort(bySizeNewer(all))
		direction = "up"
	case toAdd < 0:
		sort.Sort(bySizeOlder(all))
		direction = "down"
	}
	sizes := make([]int32, len(all))
	var added int32
	for i, rs := range all {
		sizes[i] = *rs.Spec.Replicas
		if toAdd != 0 {
			p := proportion(rs, d, toAdd, added)
			sizes[i] += p
			added += p
		}
	}
	for i, rs := range all {
		if i == 0 && toAdd != 0 {
			sizes[0] = max(0, sizes[0]+toAdd-added)
		}
		if _, err := r.scaleReplicaSet(ctx, rs, sizes[i], direction); err != nil {
			return err
		}
	}
	return nil
}

// findActiveOrLatest returns the only active ReplicaSet, or the newest one if none is
// active; nil when several are active (and scaling must be proportional).
func findActiveOrLatest(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(oldRSs) == 0 {
		return nil
	}
	sort.Sort(sort.Reverse(byCreation(oldRSs)))
	active := filterActive(append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS))
	switch len(active) {
	case 0:
		if newRS != nil {
			return newRS
		}
		return oldRSs[0]
	case 1:
		return active[0]
	}
	return nil
}

// isSaturated reports whether the new ReplicaSet is sized for, was sized by and has
// available the Deployment's whole spec.replicas.
func isSaturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	desired, ok := intAnnotation(rs, desiredReplicasAnnotation)
	return ok && *rs.Spec.Replicas == *d.Spec.Replicas && desired == *d.Spec.Replicas && rs.Status.AvailableReplicas == *d.Spec.Replicas
}

// isScalingEvent reports whether spec.replicas changed since an active ReplicaSet was last
// sized (its desired-replicas annotation differs).
func (r *rollout) isScalingEvent(ctx context.Context) (bool, error) {
	newRS, oldRSs, err := r.allReplicaSets(ctx, false)
	if err != nil {
		return false, err
	}
	for _, rs := range filterActive(append(oldRSs, newRS)) {
		if desired, ok := intAnnotation(rs, desiredReplicasAnnotation); ok && desired != *r.d.Spec.Replicas {
			return true, nil
		}
	}
	return false, nil
}

// syncScaling scales a paused Deployment or one whose size changed, without rollout
// progress; a paused one also prunes its history.
func (r *rollout) syncScaling(ctx context.Context) error {
	newRS, oldRSs, err := r.allReplicaSets(ctx, false)
	if err != nil {
		return err
	}
	if err := r.scale(ctx, newRS, oldRSs); err != nil {
		return err
	}
	if r.d.Spec.Paused {
		if err := r.cleanup(ctx, oldRSs); err != nil {
			return err
		}
	}
	r.d.Status = calculateStatus(append(oldRSs, newRS), newRS, r.d, r.now)
	return nil
}

// syncStatusOnly only reports: the Deployment is being deleted.
func (r *rollout) syncStatusOnly(ctx context.Context) error {
	newRS, oldRSs, err := r.allReplicaSets(ctx, false)
	if err != nil {
		return err
	}
	r.d.Status = calculateStatus(append(oldRSs, newRS), newRS, r.d, r.now)
	return nil
}

// cleanup deletes the oldest old ReplicaSets beyond spec.revisionHistoryLimit, skipping
// any that still has pods, has not yet observed its latest size, or is being deleted.
func (r *rollout) cleanup(ctx context.Context, oldRSs []*appsv1.ReplicaSet) error {
	d := r.d
	if d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	var alive []*appsv1.ReplicaSet
	for _, rs := range oldRSs {
		if rs != nil && rs.DeletionTimestamp == nil {
			alive = append(alive, rs)
		}
	}
	excess := len(alive) - int(*d.Spec.RevisionHistoryLimit)
	if excess <= 0 {
		return nil
	}
	sort.Sort(byRevision(alive))
	for _, rs := range alive[:excess] {
		if rs.Status.Replicas != 0 || *rs.Spec.Replicas != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		if err := r.c.client.Delete(ctx, replicaSets, rs, metav1.DeletePropagationBackground); err != nil && !errors.Is(err, fsm.ErrNotFound) {
			return err
		}
	}
	return nil
}

// filterActive keeps the ReplicaSets that want pods.
func filterActive(rsList []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range rsList {
		if rs != nil && *rs.Spec.Replicas > 0 {
			out = append(out, rs)
		}
	}
	return out
}

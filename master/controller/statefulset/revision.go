package statefulset

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"skiff/master/controller"
)

// revisions are the two template revisions a rolling update moves between: the one
// replicas below the partition stay at (current) and the one the spec asks for (update).
// Kubernetes names them after ControllerRevisions; skiff computes the same kind of name,
// "<set>-<hash of the template>", without storing the revisions.
type revisions struct {
	current, update string
	// currentTemplate is the current revision's template: the spec's when it is the update
	// revision, else recovered from a pod at that revision; nil when no such pod is left.
	currentTemplate *corev1.PodTemplateSpec
}

func newRevisions(set *appsv1.StatefulSet, ps []*corev1.Pod) *revisions {
	count := collisionCount(set)
	r := &revisions{update: set.Name + "-" + controller.TemplateHash(&set.Spec.Template, &count)}
	r.current = set.Status.CurrentRevision
	if r.current == "" {
		r.current = r.update
	}
	if r.current == r.update {
		r.currentTemplate = &set.Spec.Template
		return r
	}
	for _, p := range ps {
		if p.DeletionTimestamp == nil && revisionOf(p) == r.current && ordinalOf(set, p) >= 0 {
			r.currentTemplate = templateFromPod(p)
			break
		}
	}
	return r
}

func revisionOf(p *corev1.Pod) string { return p.Labels[appsv1.StatefulSetRevisionLabel] }

// templateFromPod recovers the template a replica was made from by undoing what newPod
// adds to it (identity, revision label, node binding).
func templateFromPod(p *corev1.Pod) *corev1.PodTemplateSpec {
	t := &corev1.PodTemplateSpec{Spec: *p.Spec.DeepCopy()}
	t.Labels = map[string]string{}
	for k, v := range p.Labels {
		switch k {
		case appsv1.StatefulSetPodNameLabel, appsv1.PodIndexLabel, appsv1.StatefulSetRevisionLabel:
		default:
			t.Labels[k] = v
		}
	}
	if len(p.Annotations) > 0 {
		t.Annotations = make(map[string]string, len(p.Annotations))
		for k, v := range p.Annotations {
			t.Annotations[k] = v
		}
	}
	t.Finalizers = p.Finalizers
	t.Spec.NodeName, t.Spec.Hostname, t.Spec.Subdomain = "", "", ""
	return t
}

// newVersionedPod builds the replica with ordinal ord at the revision it belongs to, as
// Kubernetes' newVersionedStatefulSetPod decides: below the partition (or, without a
// rollingUpdate block, below status.currentReplicas) the current revision, else the update
// revision. When the current template cannot be recovered the update revision is used.
func newVersionedPod(set *appsv1.StatefulSet, revs *revisions, ord int) *corev1.Pod {
	us := set.Spec.UpdateStrategy
	current := us.Type == appsv1.RollingUpdateStatefulSetStrategyType && us.RollingUpdate == nil && ord < startOrdinal(set)+int(set.Status.CurrentReplicas) ||
		us.RollingUpdate != nil && us.RollingUpdate.Partition != nil && ord < startOrdinal(set)+int(*us.RollingUpdate.Partition)
	if current && revs.currentTemplate != nil {
		return newPod(set, revs.currentTemplate, revs.current, ord)
	}
	return newPod(set, &set.Spec.Template, revs.update, ord)
}

// collisionCount is status.collisionCount, 0 when unset. It is always hashed into the
// revision name, an unset one as 0, because the status this controller writes always sets
// it: the name must not change with the first status write. Without stored revisions no
// name ever collides, so it only changes if a user sets it.
func collisionCount(set *appsv1.StatefulSet) int32 {
	if set.Status.CollisionCount == nil {
		return 0
	}
	return *set.Status.CollisionCount
}

package deployment

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition reasons, as Kubernetes words them; kubectl rollout status reads them.
const (
	replicaSetUpdatedReason    = "ReplicaSetUpdated"
	failedRSCreateReason       = "ReplicaSetCreateError"
	newReplicaSetReason        = "NewReplicaSetCreated"
	foundNewRSReason           = "FoundNewReplicaSet"
	newRSAvailableReason       = "NewReplicaSetAvailable"
	timedOutReason             = "ProgressDeadlineExceeded"
	pausedDeployReason         = "DeploymentPaused"
	resumedDeployReason        = "DeploymentResumed"
	minimumReplicasAvailable   = "MinimumReplicasAvailable"
	minimumReplicasUnavailable = "MinimumReplicasUnavailable"
)

// calculateStatus sums the ReplicaSets' status into the Deployment's and sets the
// Available condition: true while at least spec.replicas - maxUnavailable pods are
// available.
func calculateStatus(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment, now time.Time) appsv1.DeploymentStatus {
	available := availableReplicas(all)
	status := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            statusReplicas(all),
		UpdatedReplicas:     statusReplicas([]*appsv1.ReplicaSet{newRS}),
		ReadyReplicas:       readyReplicas(all),
		AvailableReplicas:   available,
		UnavailableReplicas: max(0, specReplicas(all)-available),
		TerminatingReplicas: terminatingReplicas(all),
		CollisionCount:      d.Status.CollisionCount,
		Conditions:          append([]appsv1.DeploymentCondition(nil), d.Status.Conditions...),
	}
	at := conditionTime(now)
	if available >= *d.Spec.Replicas-maxUnavailable(d) {
		setCondition(&status, appsv1.DeploymentAvailable, corev1.ConditionTrue, minimumReplicasAvailable, "Deployment has minimum availability.", at)
	} else {
		setCondition(&status, appsv1.DeploymentAvailable, corev1.ConditionFalse, minimumReplicasUnavailable, "Deployment does not have minimum availability.", at)
	}
	return status
}

// conditionTime is the time conditions written in this pass carry. Conditions are stored
// with second precision, so a finer time would make every pass look like a change.
func conditionTime(now time.Time) metav1.Time {
	return metav1.NewTime(now.Truncate(time.Second))
}

func specReplicas(rsList []*appsv1.ReplicaSet) int32 {
	return sumReplicas(rsList, func(rs *appsv1.ReplicaSet) int32 { return *rs.Spec.Replicas })
}

func statusReplicas(rsList []*appsv1.ReplicaSet) int32 {
	return sumReplicas(rsList, func(rs *appsv1.ReplicaSet) int32 { return rs.Status.Replicas })
}

func readyReplicas(rsList []*appsv1.ReplicaSet) int32 {
	return sumReplicas(rsList, func(rs *appsv1.ReplicaSet) int32 { return rs.Status.ReadyReplicas })
}

func availableReplicas(rsList []*appsv1.ReplicaSet) int32 {
	return sumReplicas(rsList, func(rs *appsv1.ReplicaSet) int32 { return rs.Status.AvailableReplicas })
}

// sumReplicas adds up count over the ReplicaSets in rsList, skipping nil entries.
func sumReplicas(rsList []*appsv1.ReplicaSet, count func(*appsv1.ReplicaSet) int32) int32 {
	var n int32
	for _, rs := range rsList {
		if rs != nil {
			n += count(rs)
		}
	}
	return n
}

// terminatingReplicas sums what the ReplicaSets report; nil when none reports it.
func terminatingReplicas(rsList []*appsv1.ReplicaSet) *int32 {
	var total *int32
	for _, rs := range rsList {
		if rs == nil || rs.Status.TerminatingReplicas == nil {
			continue
		}
		if total == nil {
			total = new(int32)
		}
		*total += *rs.Status.TerminatingReplicas
	}
	return total
}

func condition(status appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range status.Conditions {
		if status.Conditions[i].Type == t {
			return &status.Conditions[i]
		}
	}
	return nil
}

// setCondition sets a condition as Kubernetes' SetDeploymentCondition does: nothing
// changes if status and reason are the same; the transition time is kept if only the
// reason changes.
func setCondition(status *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string, now metav1.Time) {
	c := appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: msg, LastUpdateTime: now, LastTransitionTime: now}
	cur := condition(*status, t)
	if cur != nil && cur.Status == s && cur.Reason == reason {
		return
	}
	if cur != nil && cur.Status == s {
		c.LastTransitionTime = cur.LastTransitionTime
	}
	status.Conditions = append(withoutCondition(status.Conditions, t), c)
}

func withoutCondition(conds []appsv1.DeploymentCondition, t appsv1.DeploymentConditionType) []appsv1.DeploymentCondition {
	var out []appsv1.DeploymentCondition
	for _, c := range conds {
		if c.Type != t {
			out = append(out, c)
		}
	}
	return out
}

// setCondition sets a condition on the Deployment this pass works on.
func (r *rollout) setCondition(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string) {
	setCondition(&r.d.Status, t, s, reason, msg, conditionTime(r.now))
}

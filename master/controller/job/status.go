package job

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reasons and messages of the conditions the controller sets, as Kubernetes words them
// (kubectl describe and dashboards show them verbatim).
const (
	msgBackoffLimit = "Job has reached the specified backoff limit"
	msgDeadline     = "Job was active longer than specified deadline"
	msgCompletions  = "Reached expected number of succeeded pods"
	// reasonUnsupportedMode is skiff's own: Indexed completion is not implemented, and
	// failing such a Job says so where running it as NonIndexed would mislead.
	reasonUnsupportedMode = "UnsupportedCompletionMode"
	msgUnsupportedMode    = "skiff runs only NonIndexed Jobs; completionMode Indexed is not supported"
)

func findCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if job.Status.Conditions[i].Type == t {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

func conditionTrue(job *batchv1.Job, t batchv1.JobConditionType) bool {
	c := findCondition(job, t)
	return c != nil && c.Status == corev1.ConditionTrue
}

// finished reports whether the Job reached a terminal condition.
func finished(job *batchv1.Job) bool {
	return conditionTrue(job, batchv1.JobComplete) || conditionTrue(job, batchv1.JobFailed)
}

// finishTime is when the Job's terminal condition was set; zero if it has none.
func finishTime(job *batchv1.Job) time.Time {
	for _, t := range []batchv1.JobConditionType{batchv1.JobComplete, batchv1.JobFailed} {
		if c := findCondition(job, t); c != nil && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// setCondition brings a condition to status with reason and message, as Kubernetes'
// ensureJobConditionStatus does: a condition already at the wanted truth is left alone, and
// an absent condition is only added when true. It reports whether anything changed.
func setCondition(job *batchv1.Job, t batchv1.JobConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) bool {
	if conditionTrue(job, t) == (status == corev1.ConditionTrue) {
		return false
	}
	ts := metav1.NewTime(now)
	if c := findCondition(job, t); c != nil {
		c.Status, c.Reason, c.Message, c.LastProbeTime, c.LastTransitionTime = status, reason, message, ts, ts
		return true
	}
	if status == corev1.ConditionFalse {
		return false
	}
	job.Status.Conditions = append(job.Status.Conditions, batchv1.JobCondition{
		Type: t, Status: status, Reason: reason, Message: message, LastProbeTime: ts, LastTransitionTime: ts,
	})
	return true
}

// target is where a Job is heading once its remaining pods are gone: the interim condition
// (FailureTarget or SuccessCriteriaMet) and the terminal one that follows it.
type target struct {
	interim, terminal batchv1.JobConditionType
	reason, message   string
}

func (t *target) failing() bool { return t.terminal == batchv1.JobFailed }

func failure(reason, message string) *target {
	return &target{interim: batchv1.JobFailureTarget, terminal: batchv1.JobFailed, reason: reason, message: message}
}

// pendingTarget returns the target a previous pass decided on, so a Job that started to
// fail or succeed keeps going that way.
func pendingTarget(job *batchv1.Job) *target {
	if c := findCondition(job, batchv1.JobFailureTarget); c != nil && c.Status == corev1.ConditionTrue {
		return failure(c.Reason, c.Message)
	}
	if c := findCondition(job, batchv1.JobSuccessCriteriaMet); c != nil && c.Status == corev1.ConditionTrue {
		return &target{interim: batchv1.JobSuccessCriteriaMet, terminal: batchv1.JobComplete, reason: c.Reason, message: c.Message}
	}
	return nil
}

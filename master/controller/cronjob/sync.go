package cronjob

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
)

// event is an Event to record once the pass's transaction has committed.
type event struct{ kind, reason, message string }

// pass is one sync of one CronJob: the Job it found due, the deletions it decided, the
// events they deserve. The status is changed in place on cj.
type pass struct {
	r   *reconciler
	st  *fsm.State
	cj  *batchv1.CronJob
	now time.Time
	// due is the Job to create for scheduled, if one is due.
	due       *batchv1.Job
	scheduled time.Time
	ops       []fsm.Op
	deleted   map[string]bool
	events    []event
}

func (p *pass) eventf(kind, reason, format string, args ...any) {
	p.events = append(p.events, event{kind, reason, fmt.Sprintf(format, args...)})
}

// sync follows Kubernetes' syncCronJob: it brings status.active and lastSuccessfulTime in
// line with the Jobs, then, unless the CronJob is being deleted, suspended or unparseable,
// finds the most recent unmet schedule time and decides whether a Job is due for it. It
// returns how long to wait before the next look (zero: no time-driven look needed).
func (p *pass) sync(children []*batchv1.Job) (time.Duration, error) {
	cj := p.cj
	present := map[types.UID]bool{}
	for _, j := range children {
		present[j.UID] = true
		done, cond := finishedCondition(j)
		switch found := inActive(cj, j.UID); {
		case !found && !done:
			p.eventf(corev1.EventTypeWarning, "UnexpectedJob", "Saw a job that the controller did not create or forgot: %s", j.Name)
		case found && done:
			removeActive(cj, j.UID)
			p.eventf(corev1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, condition: %v", j.Name, cond)
		}
		if cond == batchv1.JobComplete && j.Status.CompletionTime != nil &&
			(cj.Status.LastSuccessfulTime == nil || j.Status.CompletionTime.After(cj.Status.LastSuccessfulTime.Time)) {
			cj.Status.LastSuccessfulTime = j.Status.CompletionTime.DeepCopy()
		}
	}
	for _, ref := range slices.Clone(cj.Status.Active) {
		if present[ref.UID] || p.exists(ref) {
			continue
		}
		p.eventf(corev1.EventTypeNormal, "MissingJob", "Active job went missing: %v", ref.Name)
		removeActive(cj, ref.UID)
	}
	if cj.DeletionTimestamp != nil || (cj.Spec.Suspend != nil && *cj.Spec.Suspend) {
		return 0, nil
	}
	if tz := cj.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil {
			p.eventf(corev1.EventTypeWarning, "UnknownTimeZone", "invalid timeZone: %q: %s", *tz, err)
			return 0, nil
		}
	}
	sched, unsupported, err := parseSchedule(cj)
	if unsupported {
		p.eventf(corev1.EventTypeWarning, "UnsupportedSchedule", "CRON_TZ or TZ used in schedule %q is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details", cj.Spec.Schedule)
	}
	if err != nil {
		p.eventf(corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return 0, nil
	}
	m, err := mostRecent(cj, sched, p.now, true)
	if err != nil {
		p.eventf(corev1.EventTypeWarning, "InvalidSchedule", "invalid schedule: %s : %s", cj.Spec.Schedule, err)
		return 0, nil
	}
	next := untilNext(cj, sched, p.now)
	if m.latest == nil {
		// A time missed by more than startingDeadlineSeconds is skipped, with a warning.
		if late, err := mostRecent(cj, sched, p.now, false); err == nil && late.latest != nil {
			p.eventf(corev1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s", late.latest.UTC().Format(time.RFC1123Z))
		}
		return next, nil
	}
	if m.many {
		p.eventf(corev1.EventTypeWarning, "TooManyMissedTimes", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew")
	}
	scheduled := *m.latest
	name := jobName(cj, scheduled)
	if slices.ContainsFunc(cj.Status.Active, func(ref corev1.ObjectReference) bool { return ref.Name == name }) ||
		(cj.Status.LastScheduleTime != nil && cj.Status.LastScheduleTime.Time.Equal(scheduled)) {
		return next, nil // this time has fired already
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(cj.Status.Active) > 0 {
			p.eventf(corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
			return next, nil
		}
	case batchv1.ReplaceConcurrent:
		for _, ref := range slices.Clone(cj.Status.Active) {
			j, err := controller.Get[*batchv1.Job](p.st, jobs, ref.Namespace, ref.Name)
			if err != nil {
				return 0, err
			}
			if j != nil && j.UID == ref.UID {
				if err := p.deleteJob(j); err != nil {
					return 0, err
				}
			}
			removeActive(cj, ref.UID)
		}
	}
	job, err := jobFromTemplate(cj, scheduled)
	if err != nil {
		return 0, err
	}
	p.due, p.scheduled = job, scheduled
	return next, nil
}

// exists reports whether the Job an active reference names is in the store, controlled by
// this CronJob or not (a Job kept by someone else is theirs to finish).
func (p *pass) exists(ref corev1.ObjectReference) bool {
	rec := p.st.Get(objects.Key(jobs, ref.Namespace, ref.Name))
	if rec == nil {
		return false
	}
	j, err := objects.Decode(jobs, rec)
	return err == nil && objects.Accessor(j).GetUID() == ref.UID
}

// jobFromTemplate builds the Job for one schedule time, as Kubernetes' getJobFromTemplate2:
// the template's labels and annotations, the scheduled-timestamp annotation (RFC 3339, in
// the CronJob's time zone), the deterministic name and the controller reference.
func jobFromTemplate(cj *batchv1.CronJob, scheduled time.Time) (*batchv1.Job, error) {
	tz := ""
	if cj.Spec.TimeZone != nil {
		tz = *cj.Spec.TimeZone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, err
	}
	labels := maps.Clone(cj.Spec.JobTemplate.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	annotations := maps.Clone(cj.Spec.JobTemplate.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[batchv1.CronJobScheduledTimestampAnnotation] = scheduled.In(loc).Format(time.RFC3339)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: jobName(cj, scheduled), Namespace: cj.Namespace, Labels: labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{controller.OwnerReference(cj, cronjobs)},
		},
		Spec: *cj.Spec.JobTemplate.Spec.DeepCopy(),
	}
	return job, nil
}

// cleanup deletes the oldest finished Jobs beyond successfulJobsHistoryLimit and
// failedJobsHistoryLimit, oldest start first, as Kubernetes does.
func (p *pass) cleanup(children []*batchv1.Job) error {
	var succeeded, failed []*batchv1.Job
	for _, j := range children {
		switch _, cond := finishedCondition(j); cond {
		case batchv1.JobComplete:
			succeeded = append(succeeded, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	for _, h := range []struct {
		jobs  []*batchv1.Job
		limit *int32
	}{{succeeded, p.cj.Spec.SuccessfulJobsHistoryLimit}, {failed, p.cj.Spec.FailedJobsHistoryLimit}} {
		if h.limit == nil || len(h.jobs) <= int(*h.limit) {
			continue
		}
		slices.SortStableFunc(h.jobs, byStartTime)
		for _, j := range h.jobs[:len(h.jobs)-int(*h.limit)] {
			if err := p.deleteJob(j); err != nil {
				return err
			}
			removeActive(p.cj, j.UID)
		}
	}
	return nil
}

// byStartTime orders Jobs by status.startTime (unstarted last), then by name.
func byStartTime(a, b *batchv1.Job) int {
	switch sa, sb := a.Status.StartTime, b.Status.StartTime; {
	case sa == nil && sb != nil:
		return 1
	case sa != nil && sb == nil:
		return -1
	case sa != nil && !sa.Equal(sb):
		return sa.Time.Compare(sb.Time)
	}
	return strings.Compare(a.Name, b.Name)
}

// deleteJob deletes a Job with background propagation (the garbage collector removes its
// pods), once per pass.
func (p *pass) deleteJob(j *batchv1.Job) error {
	if p.deleted[j.Name] {
		return nil
	}
	ops, err := p.r.client.DeleteOps(jobs, j, metav1.DeletePropagationBackground)
	if err != nil {
		return err
	}
	p.deleted[j.Name] = true
	p.ops = append(p.ops, ops...)
	p.eventf(corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", j.Name)
	return nil
}

// finishedCondition reports whether a Job finished and with which condition.
func finishedCondition(j *batchv1.Job) (bool, batchv1.JobConditionType) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true, c.Type
		}
	}
	return false, ""
}

func inActive(cj *batchv1.CronJob, uid types.UID) bool {
	return slices.ContainsFunc(cj.Status.Active, func(ref corev1.ObjectReference) bool { return ref.UID == uid })
}

func removeActive(cj *batchv1.CronJob, uid types.UID) {
	cj.Status.Active = slices.DeleteFunc(cj.Status.Active, func(ref corev1.ObjectReference) bool { return ref.UID == uid })
}

package cronjob

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
)

// nextScheduleDelta is added to the wait for the next schedule time, so the look then
// happens just after it, never just before (as Kubernetes does).
const nextScheduleDelta = 100 * time.Millisecond

// manyMissed is how many missed schedule times Kubernetes tolerates before it warns that
// the clock or startingDeadlineSeconds is probably wrong.
const manyMissed = 100

// ErrScheduleTooFrequent is returned when two consecutive schedule times are less than a
// second apart, which only a schedule that never fires (like "59 23 31 2 *") produces.
var ErrScheduleTooFrequent = errors.New("time difference between two schedules is less than 1 second")

// parseSchedule parses the CronJob's schedule in its time zone. Without spec.timeZone the
// schedule is read in UTC, not in each master's local zone: leadership moves between
// masters, and the schedule must not move with it. A schedule carrying its own TZ= or
// CRON_TZ= prefix (only possible for objects validated before that was forbidden) is used
// as it is; unsupported reports it so the caller can warn as Kubernetes does.
func parseSchedule(cj *batchv1.CronJob) (sched cron.Schedule, unsupported bool, err error) {
	spec := cj.Spec.Schedule
	switch {
	case strings.Contains(spec, "TZ"):
		unsupported = true
	case cj.Spec.TimeZone != nil:
		spec = "TZ=" + *cj.Spec.TimeZone + " " + spec
	default:
		spec = "TZ=UTC " + spec
	}
	sched, err = cron.ParseStandard(spec)
	return sched, unsupported, err
}

// jobName is the name of the Job for one scheduled time: "<cronjob>-<minutes since the
// epoch>", exactly as Kubernetes names it. Being deterministic, it makes the creation a
// lock: a second attempt for the same time (a retry, a new leader) finds it already there.
func jobName(cj *batchv1.CronJob, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60)
}

// missed is the result of looking for schedule times that passed without a Job.
type missed struct {
	// latest is the most recent unmet schedule time not after now; nil if none.
	latest *time.Time
	// many reports more than manyMissed missed times (only the latest counts).
	many bool
}

// mostRecent finds the most recent schedule time in (earliest, now], where earliest is the
// last schedule time or the CronJob's creation, and, when withDeadline, no earlier than
// startingDeadlineSeconds before now. It counts the missed times arithmetically, as
// Kubernetes does, instead of iterating over possibly decades of them.
func mostRecent(cj *batchv1.CronJob, sched cron.Schedule, now time.Time, withDeadline bool) (missed, error) {
	earliest := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		earliest = cj.Status.LastScheduleTime.Time
	}
	if sds := cj.Spec.StartingDeadlineSeconds; withDeadline && sds != nil {
		if deadline := now.Add(-time.Duration(*sds) * time.Second); deadline.After(earliest) {
			earliest = deadline
		}
	}
	t1 := sched.Next(earliest)
	t2 := sched.Next(t1)
	switch {
	case now.Before(t1):
		return missed{}, nil
	case now.Before(t2):
		return missed{latest: &t1}, nil
	}
	between := int64(t2.Sub(t1).Round(time.Second).Seconds())
	if between < 1 {
		return missed{}, ErrScheduleTooFrequent
	}
	n := int64(now.Sub(t1).Seconds())/between + 1
	// Start one interval before the estimate and let the schedule find the exact times:
	// schedules such as "30 6-16/4 * * 1-5" are not evenly spaced.
	var latest time.Time
	for t := sched.Next(t1.Add(time.Duration((n-2)*between) * time.Second)); !t.After(now); t = sched.Next(t) {
		latest = t
	}
	m := missed{many: n > manyMissed}
	if !latest.IsZero() {
		m.latest = &latest
	}
	return m, nil
}

// untilNext is how long to wait before the next schedule time after the most recent one
// (ignoring the starting deadline), plus nextScheduleDelta.
func untilNext(cj *batchv1.CronJob, sched cron.Schedule, now time.Time) time.Duration {
	from := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		from = cj.Status.LastScheduleTime.Time
	}
	if m, err := mostRecent(cj, sched, now, false); err == nil && m.latest != nil {
		from = *m.latest
	}
	return sched.Next(from).Add(nextScheduleDelta).Sub(now)
}

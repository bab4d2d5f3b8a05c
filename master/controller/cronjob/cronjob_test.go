package cronjob

import (
	"context"
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/objects"
)

// t0 is a minute boundary: the time an every-minute schedule fires.
var t0 = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// fixture is a controllertest world; each test makes its own controller instances, as
// leaders come and go.
type fixture struct {
	*controllertest.Env
}

func newFixture(t *testing.T, now time.Time) *fixture {
	f := &fixture{Env: controllertest.NewEnv(t)}
	f.SetNow(now)
	return f
}

func newCronJob(name, schedule string, mutate func(*batchv1.CronJob)) *batchv1.CronJob {
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: batchv1.CronJobSpec{Schedule: schedule, JobTemplate: batchv1.JobTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}, Annotations: map[string]string{"note": "x"}},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
			}}},
		}},
	}
	if mutate != nil {
		mutate(cj)
	}
	return cj
}

func (f *fixture) create(cj *batchv1.CronJob) {
	f.Create(cronjobs, cj)
}

func (f *fixture) cronJob(name string) *batchv1.CronJob {
	f.T.Helper()
	cj, err := controller.Get[*batchv1.CronJob](f.Client.State(), cronjobs, "default", name)
	if err != nil {
		f.T.Fatal(err)
	}
	return cj
}

func (f *fixture) jobs() []*batchv1.Job {
	f.T.Helper()
	js, err := controller.List[*batchv1.Job](f.Client.State(), jobs, "default", nil)
	if err != nil {
		f.T.Fatal(err)
	}
	return js
}

// sync reconciles with r (a controller instance, as one leader runs it) at now.
func (f *fixture) sync(r controller.Reconciler, name string, now time.Time) time.Duration {
	f.T.Helper()
	f.SetNow(now)
	return f.Reconcile(r, objects.Key(cronjobs, "default", name))
}

// finishJob marks a Job finished with condition c at time at.
func (f *fixture) finishJob(name string, c batchv1.JobConditionType, started, at time.Time) {
	f.T.Helper()
	j, _ := controller.Get[*batchv1.Job](f.Client.State(), jobs, "default", name)
	j.Status.StartTime = &metav1.Time{Time: started}
	j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)})
	if c == batchv1.JobComplete {
		j.Status.CompletionTime = &metav1.Time{Time: at}
	}
	f.Update(jobs, j, false)
}

func name(cj string, at time.Time) string { return fmt.Sprintf("%s-%d", cj, at.Unix()/60) }

func TestCreatesTheJobForTheScheduleTime(t *testing.T) {
	f := newFixture(t, t0.Add(-30*time.Second))
	f.create(newCronJob("tick", "* * * * *", nil))
	r := New(f.Client, nil)
	if wait := f.sync(r, "tick", t0.Add(-29*time.Second)); wait != 29*time.Second+nextScheduleDelta {
		t.Fatalf("requeue %v before the first time", wait)
	}
	if len(f.jobs()) != 0 {
		t.Fatal("fired early")
	}
	wait := f.sync(r, "tick", t0.Add(time.Second))
	if wait != 59*time.Second+nextScheduleDelta {
		t.Fatalf("requeue %v, want until the next minute", wait)
	}
	js := f.jobs()
	if len(js) != 1 {
		t.Fatalf("%d jobs", len(js))
	}
	j, cj := js[0], f.cronJob("tick")
	if j.Name != name("tick", t0) || j.Name != fmt.Sprintf("tick-%d", 29540880) {
		t.Fatalf("job name %q", j.Name)
	}
	if j.Annotations[batchv1.CronJobScheduledTimestampAnnotation] != "2026-03-02T12:00:00Z" || j.Annotations["note"] != "x" || j.Labels["app"] != "tick" {
		t.Fatalf("job metadata: %v %v", j.Labels, j.Annotations)
	}
	if !metav1.IsControlledBy(j, cj) || j.Spec.Selector == nil || j.Spec.Template.Labels[batchv1.JobNameLabel] != j.Name {
		t.Fatalf("job not owned or not defaulted: %+v", j.ObjectMeta)
	}
	if len(cj.Status.Active) != 1 || cj.Status.Active[0].UID != j.UID || cj.Status.Active[0].Kind != "Job" || !cj.Status.LastScheduleTime.Time.Equal(t0) {
		t.Fatalf("status %+v", cj.Status)
	}
}

func TestFailoverFiresEachScheduleTimeOnce(t *testing.T) {
	t.Run("new leader after the status write", func(t *testing.T) {
		f := newFixture(t, t0.Add(-30*time.Second))
		f.create(newCronJob("tick", "* * * * *", nil))
		f.sync(New(f.Client, nil), "tick", t0.Add(time.Second))   // leader A
		f.sync(New(f.Client, nil), "tick", t0.Add(2*time.Second)) // leader B, no memory of A
		if js := f.jobs(); len(js) != 1 || js[0].Name != name("tick", t0) {
			t.Fatalf("jobs %v, want exactly one for %v", js, t0)
		}
	})
	t.Run("new leader finds the job but not the status", func(t *testing.T) {
		f := newFixture(t, t0.Add(-30*time.Second))
		f.create(newCronJob("tick", "* * * * *", nil))
		// Leader A's Job is there, its status write is not (as if written by a version that
		// wrote them apart).
		cj := f.cronJob("tick")
		j, err := jobFromTemplate(cj, t0)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Client.Create(context.Background(), jobs, j); err != nil {
			t.Fatal(err)
		}
		f.sync(New(f.Client, nil), "tick", t0.Add(2*time.Second))
		js := f.jobs()
		if len(js) != 1 {
			t.Fatalf("%d jobs, want exactly one", len(js))
		}
		cj = f.cronJob("tick")
		if len(cj.Status.Active) != 1 || cj.Status.Active[0].UID != js[0].UID || !cj.Status.LastScheduleTime.Time.Equal(t0) {
			t.Fatalf("the existing job must be adopted into the status: %+v", cj.Status)
		}
	})
}

func TestMissedSchedules(t *testing.T) {
	tests := []struct {
		name     string
		deadline *int64
		last     time.Time // lastScheduleTime
		now      time.Time
		want     []time.Time // scheduled times of the jobs created
	}{
		{"one missed run fires late", nil, t0.Add(-time.Minute), t0.Add(10 * time.Second), []time.Time{t0}},
		{"several missed runs fire once, for the latest", nil, t0.Add(-time.Minute), t0.Add(70 * time.Second), []time.Time{t0.Add(time.Minute)}},
		{"more than a hundred missed runs still fire once", nil, t0.Add(-200 * time.Minute), t0.Add(5 * time.Second), []time.Time{t0}},
		{"within the starting deadline", new(int64(30)), t0.Add(-time.Minute), t0.Add(20 * time.Second), []time.Time{t0}},
		{"past the starting deadline", new(int64(30)), t0.Add(-time.Minute), t0.Add(40 * time.Second), nil},
		{"nothing due", nil, t0, t0.Add(30 * time.Second), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.last.Add(-10*time.Second))
			f.create(newCronJob("m", "* * * * *", func(cj *batchv1.CronJob) { cj.Spec.StartingDeadlineSeconds = tc.deadline }))
			cj := f.cronJob("m")
			cj.Status.LastScheduleTime = &metav1.Time{Time: tc.last}
			if err := f.Client.Update(context.Background(), cronjobs, cj, false); err != nil {
				t.Fatal(err)
			}
			wait := f.sync(New(f.Client, nil), "m", tc.now)
			if next := tc.now.Truncate(time.Minute).Add(time.Minute).Add(nextScheduleDelta).Sub(tc.now); wait != next {
				t.Errorf("requeue %v, want %v", wait, next)
			}
			js := f.jobs()
			if len(js) != len(tc.want) {
				t.Fatalf("%d jobs, want %d", len(js), len(tc.want))
			}
			for i, at := range tc.want {
				if js[i].Name != name("m", at) {
					t.Errorf("job %s, want %s", js[i].Name, name("m", at))
				}
			}
		})
	}
}

func TestConcurrencyPolicy(t *testing.T) {
	tests := []struct {
		policy batchv1.ConcurrencyPolicy
		want   []time.Time // the jobs left after the second schedule time
	}{
		{batchv1.AllowConcurrent, []time.Time{t0, t0.Add(time.Minute)}},
		{batchv1.ForbidConcurrent, []time.Time{t0}},
		{batchv1.ReplaceConcurrent, []time.Time{t0.Add(time.Minute)}},
	}
	for _, tc := range tests {
		t.Run(string(tc.policy), func(t *testing.T) {
			f := newFixture(t, t0.Add(-time.Second))
			f.create(newCronJob("c", "* * * * *", func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = tc.policy }))
			r := New(f.Client, nil)
			f.sync(r, "c", t0.Add(time.Second))
			f.sync(r, "c", t0.Add(61*time.Second)) // the first job still runs
			js := f.jobs()
			if len(js) != len(tc.want) {
				t.Fatalf("%d jobs, want %d", len(js), len(tc.want))
			}
			for i, at := range tc.want {
				if js[i].Name != name("c", at) {
					t.Errorf("job %s, want %s", js[i].Name, name("c", at))
				}
			}
			if cj := f.cronJob("c"); len(cj.Status.Active) != len(tc.want) {
				t.Errorf("active %v", cj.Status.Active)
			}
		})
	}
}

func TestSuspendedCronJobDoesNotFire(t *testing.T) {
	f := newFixture(t, t0.Add(-time.Second))
	f.create(newCronJob("s", "* * * * *", func(cj *batchv1.CronJob) { cj.Spec.Suspend = new(true) }))
	if wait := f.sync(New(f.Client, nil), "s", t0.Add(time.Second)); wait != 0 || len(f.jobs()) != 0 {
		t.Fatalf("suspended CronJob fired or asked for a requeue (%v)", wait)
	}
}

func TestTimeZone(t *testing.T) {
	f := newFixture(t, time.Date(2026, 1, 5, 13, 0, 0, 0, time.UTC))
	f.create(newCronJob("tz", "0 9 * * *", func(cj *batchv1.CronJob) { cj.Spec.TimeZone = new("America/New_York") }))
	at := time.Date(2026, 1, 5, 14, 0, 0, 0, time.UTC) // 09:00 EST
	f.sync(New(f.Client, nil), "tz", at.Add(-time.Second))
	if len(f.jobs()) != 0 {
		t.Fatal("fired before 09:00 New York time")
	}
	f.sync(New(f.Client, nil), "tz", at.Add(time.Second))
	js := f.jobs()
	if len(js) != 1 || js[0].Name != name("tz", at) || js[0].Annotations[batchv1.CronJobScheduledTimestampAnnotation] != "2026-01-05T09:00:00-05:00" {
		t.Fatalf("jobs %+v", js)
	}
}

func TestCompletedJobsLeaveActiveAndOldOnesArePruned(t *testing.T) {
	f := newFixture(t, t0.Add(-time.Second))
	f.create(newCronJob("h", "* * * * *", func(cj *batchv1.CronJob) {
		cj.Spec.SuccessfulJobsHistoryLimit = new(int32(2))
		cj.Spec.FailedJobsHistoryLimit = new(int32(1))
	}))
	r := New(f.Client, nil)
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Minute)
		f.sync(r, "h", at.Add(time.Second))
		c := batchv1.JobComplete
		if i%2 == 1 {
			c = batchv1.JobFailed
		}
		f.finishJob(name("h", at), c, at, at.Add(30*time.Second))
	}
	f.sync(r, "h", t0.Add(4*time.Minute+40*time.Second))
	var got []string
	for _, j := range f.jobs() {
		got = append(got, j.Name)
	}
	want := []string{name("h", t0.Add(2*time.Minute)), name("h", t0.Add(3*time.Minute)), name("h", t0.Add(4*time.Minute))}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("jobs kept %v, want %v (2 newest successes, newest failure)", got, want)
	}
	cj := f.cronJob("h")
	if len(cj.Status.Active) != 0 || !cj.Status.LastSuccessfulTime.Time.Equal(t0.Add(4*time.Minute+30*time.Second)) {
		t.Fatalf("status %+v", cj.Status)
	}
}

func TestMostRecentAndNext(t *testing.T) {
	base := newCronJob("x", "", nil)
	base.CreationTimestamp = metav1.NewTime(t0.Add(-time.Hour))
	tests := []struct {
		schedule string
		last     time.Time
		now      time.Time
		want     time.Time // zero: none
		wantNext time.Duration
	}{
		{"@hourly", t0.Add(-time.Hour), t0.Add(time.Minute), t0, 59*time.Minute + nextScheduleDelta},
		{"@hourly", t0, t0.Add(time.Minute), time.Time{}, 59*time.Minute + nextScheduleDelta},
		{"*/15 * * * *", t0, t0.Add(50 * time.Minute), t0.Add(45 * time.Minute), 10*time.Minute + nextScheduleDelta},
		{"30 6-16/4 * * 1-5", t0.Add(-24 * time.Hour), t0, t0.Add(-90 * time.Minute), 150*time.Minute + nextScheduleDelta},
		{"@every 90s", t0, t0.Add(200 * time.Second), t0.Add(180 * time.Second), 70*time.Second + nextScheduleDelta},
	}
	for _, tc := range tests {
		t.Run(tc.schedule, func(t *testing.T) {
			cj := base.DeepCopy()
			cj.Spec.Schedule = tc.schedule
			cj.Status.LastScheduleTime = &metav1.Time{Time: tc.last}
			sched, _, err := parseSchedule(cj)
			if err != nil {
				t.Fatal(err)
			}
			m, err := mostRecent(cj, sched, tc.now, true)
			if err != nil {
				t.Fatal(err)
			}
			if (m.latest == nil) != tc.want.IsZero() || (m.latest != nil && !m.latest.Equal(tc.want)) {
				t.Fatalf("most recent %v, want %v", m.latest, tc.want)
			}
			if next := untilNext(cj, sched, tc.now); next != tc.wantNext {
				t.Fatalf("next in %v, want %v", next, tc.wantNext)
			}
		})
	}
}

func TestScheduleThatNeverFiresIsInvalid(t *testing.T) {
	cj := newCronJob("x", "59 23 31 2 *", nil)
	cj.CreationTimestamp = metav1.NewTime(t0)
	sched, _, err := parseSchedule(cj)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := mostRecent(cj, sched, t0.Add(time.Hour), true); err == nil && m.latest != nil {
		t.Fatalf("a schedule that never fires fired at %v", m.latest)
	}
}

func TestRunnerFiresOnSchedule(t *testing.T) {
	f := newFixture(t, t0.Add(-30*time.Second))
	f.create(newCronJob("run", "* * * * *", nil))
	f.SetNow(t0.Add(time.Second))
	controllertest.Go(t, (&controller.Runner{Name: "cronjob", Reconciler: New(f.Client, nil), Store: f.Store, Resync: time.Hour}).Run)
	controllertest.WaitFor(t, "the Job", func() bool { return len(f.jobs()) == 1 && len(f.cronJob("run").Status.Active) == 1 })
	// The Job completes: the CronJob sees it and records the success.
	f.finishJob(name("run", t0), batchv1.JobComplete, t0, t0.Add(20*time.Second))
	controllertest.WaitFor(t, "the completion", func() bool {
		cj := f.cronJob("run")
		return len(cj.Status.Active) == 0 && cj.Status.LastSuccessfulTime != nil
	})
	if n := len(f.jobs()); n != 1 {
		t.Fatalf("%d jobs", n)
	}
}

package job

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/controller/gc"
	"skiff/master/objects"
	"skiff/master/podstatus"
	"skiff/master/registry"
)

var start = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// fixture is the Job controller in a controllertest world whose clock starts at start.
type fixture struct {
	*controllertest.Env
	r controller.Reconciler
}

func newFixture(t *testing.T) *fixture {
	env := controllertest.NewEnv(t)
	env.SetNow(start)
	return &fixture{Env: env, r: New(env.Client, nil)}
}

func i32(v int32) *int32 { return &v }
func i64(v int64) *int64 { return &v }

func newJob(name string, mutate func(*batchv1.Job)) *batchv1.Job {
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
		}}},
	}
	if mutate != nil {
		mutate(j)
	}
	return j
}

func (f *fixture) create(j *batchv1.Job) *batchv1.Job {
	f.Create(jobs, j)
	return j
}

func (f *fixture) job(name string) *batchv1.Job {
	f.T.Helper()
	j, err := controller.Get[*batchv1.Job](f.Client.State(), jobs, "default", name)
	if err != nil {
		f.T.Fatal(err)
	}
	return j
}

// pods lists the Job's pods (by the job-name label), oldest name first.
func (f *fixture) pods(job string) []*corev1.Pod {
	f.T.Helper()
	var out []*corev1.Pod
	for _, p := range f.Pods("default") {
		if p.Labels[batchv1.JobNameLabel] == job {
			out = append(out, p)
		}
	}
	return out
}

// sync reconciles the Job and returns the requeue asked for (zero if none).
func (f *fixture) sync(name string) time.Duration {
	f.T.Helper()
	return f.Reconcile(f.r, objects.Key(jobs, "default", name))
}

// setPod changes a pod as its agent or a user would.
func (f *fixture) setPod(p *corev1.Pod, mutate func(*corev1.Pod)) {
	f.T.Helper()
	cur, _ := controller.Get[*corev1.Pod](f.Client.State(), pods, p.Namespace, p.Name)
	mutate(cur)
	f.Update(pods, cur, false)
}

func (f *fixture) finish(p *corev1.Pod, phase corev1.PodPhase) {
	f.T.Helper()
	f.setPod(p, func(p *corev1.Pod) {
		p.Spec.NodeName = "n1"
		p.Status.Phase = phase
		code := int32(0)
		if phase == corev1.PodFailed {
			code = 1
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, FinishedAt: metav1.NewTime(f.Now())}}}}
	})
}

func (f *fixture) run(p *corev1.Pod, ready bool) {
	f.T.Helper()
	f.setPod(p, func(p *corev1.Pod) {
		p.Spec.NodeName = "n1"
		p.Status.Phase = corev1.PodRunning
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	})
}

func (f *fixture) removePod(p *corev1.Pod) {
	f.T.Helper()
	f.RemovePod(f.Pod(p.Namespace, p.Name))
}

func wantStatus(t *testing.T, j *batchv1.Job, active, succeeded, failed int32) {
	t.Helper()
	if j.Status.Active != active || j.Status.Succeeded != succeeded || j.Status.Failed != failed {
		t.Fatalf("active/succeeded/failed = %d/%d/%d, want %d/%d/%d", j.Status.Active, j.Status.Succeeded, j.Status.Failed, active, succeeded, failed)
	}
}

func TestCreatesPodsFromTheTemplate(t *testing.T) {
	f := newFixture(t)
	j := f.create(newJob("pi", func(j *batchv1.Job) { j.Spec.Parallelism = i32(3); j.Spec.Completions = i32(5) }))
	f.sync("pi")
	ps := f.pods("pi")
	if len(ps) != 3 {
		t.Fatalf("%d pods, want parallelism 3", len(ps))
	}
	for _, p := range ps {
		if !strings.HasPrefix(p.Name, "pi-") || len(p.Name) != len("pi-")+5 {
			t.Errorf("pod name %q, want pi-<5 random>", p.Name)
		}
		for k, v := range map[string]string{batchv1.JobNameLabel: "pi", "job-name": "pi", batchv1.ControllerUidLabel: string(j.UID), "controller-uid": string(j.UID)} {
			if p.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, p.Labels[k], v)
			}
		}
		if !metav1.IsControlledBy(p, j) || !tracked(p) || p.Spec.NodeName != "" {
			t.Errorf("pod %s: owner %v, finalizers %v, node %q", p.Name, p.OwnerReferences, p.Finalizers, p.Spec.NodeName)
		}
	}
	got := f.job("pi")
	wantStatus(t, got, 3, 0, 0)
	if got.Status.StartTime == nil || !got.Status.StartTime.Time.Equal(start) || *got.Status.Ready != 0 {
		t.Fatalf("startTime %v ready %v", got.Status.StartTime, got.Status.Ready)
	}
	// A second pass with nothing new writes nothing.
	before := f.Store.Entries()
	f.sync("pi")
	if f.Store.Entries() != before {
		t.Fatal("an idle pass wrote")
	}
}

func TestCompletions(t *testing.T) {
	tests := []struct {
		name                     string
		completions, parallelism *int32
	}{
		{"fixed completions", i32(3), i32(2)},
		{"work queue", nil, i32(2)},
		{"single pod", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.create(newJob("j", func(j *batchv1.Job) { j.Spec.Completions, j.Spec.Parallelism = tc.completions, tc.parallelism }))
			want := int32(1)
			if tc.completions != nil {
				want = *tc.completions
			}
			for round := 0; ; round++ {
				if round > 10 {
					t.Fatal("never completed")
				}
				f.sync("j")
				j := f.job("j")
				if conditionTrue(j, batchv1.JobComplete) {
					if !conditionTrue(j, batchv1.JobSuccessCriteriaMet) || j.Status.CompletionTime == nil || j.Status.Active != 0 {
						t.Fatalf("completed without SuccessCriteriaMet or completionTime: %+v", j.Status)
					}
					if tc.completions != nil && j.Status.Succeeded != want {
						t.Fatalf("succeeded = %d, want %d", j.Status.Succeeded, want)
					}
					if c := findCondition(j, batchv1.JobComplete); c.Reason != batchv1.JobReasonCompletionsReached {
						t.Fatalf("reason %q", c.Reason)
					}
					break
				}
				// Every running pod succeeds.
				for _, p := range f.pods("j") {
					if !podstatus.Terminal(p) {
						f.finish(p, corev1.PodSucceeded)
					}
				}
			}
			for _, p := range f.pods("j") {
				if tracked(p) {
					t.Errorf("pod %s still tracked after completion", p.Name)
				}
			}
		})
	}
}

func TestWorkQueueWaitsForRunningPodsAfterASuccess(t *testing.T) {
	f := newFixture(t)
	f.create(newJob("q", func(j *batchv1.Job) { j.Spec.Completions = nil; j.Spec.Parallelism = i32(2) }))
	f.sync("q")
	ps := f.pods("q")
	f.finish(ps[0], corev1.PodSucceeded)
	f.run(ps[1], true)
	f.sync("q")
	j := f.job("q")
	wantStatus(t, j, 1, 1, 0)
	if len(f.pods("q")) != 2 || conditionTrue(j, batchv1.JobComplete) {
		t.Fatal("after a success a work queue starts no pod and waits for the running one")
	}
	if *j.Status.Ready != 1 {
		t.Fatalf("ready = %d", *j.Status.Ready)
	}
	f.finish(ps[1], corev1.PodSucceeded)
	f.sync("q")
	if j := f.job("q"); !conditionTrue(j, batchv1.JobComplete) {
		t.Fatalf("not complete: %+v", j.Status)
	}
}

func TestFinishedPodsAreCountedOnce(t *testing.T) {
	f := newFixture(t)
	f.create(newJob("once", func(j *batchv1.Job) { j.Spec.Completions = i32(2); j.Spec.Parallelism = i32(1) }))
	f.sync("once")
	p := f.pods("once")[0]
	f.finish(p, corev1.PodSucceeded)
	f.sync("once")
	f.sync("once")
	wantStatus(t, f.job("once"), 1, 1, 0)
	// The finished pod disappears (a user, the garbage collector): still counted once.
	f.removePod(p)
	f.sync("once")
	wantStatus(t, f.job("once"), 1, 1, 0)
}

func TestDeletedRunningPodCountsAsFailedAndIsReplaced(t *testing.T) {
	f := newFixture(t)
	f.create(newJob("d", nil))
	f.sync("d")
	p := f.pods("d")[0]
	f.run(p, true)
	cur, _ := controller.Get[*corev1.Pod](f.Client.State(), pods, "default", p.Name)
	if err := f.Client.Delete(context.Background(), pods, cur, metav1.DeletePropagationBackground); err != nil {
		t.Fatal(err)
	}
	f.sync("d")
	j := f.job("d")
	wantStatus(t, j, 1, 0, 1)
	if *j.Status.Terminating != 1 {
		t.Fatalf("terminating = %v", *j.Status.Terminating)
	}
	old, _ := controller.Get[*corev1.Pod](f.Client.State(), pods, "default", p.Name)
	if old == nil || tracked(old) {
		t.Fatal("the terminating pod must stay (its agent finishes it) without the finalizer")
	}
	f.sync("d")
	wantStatus(t, f.job("d"), 1, 0, 1)
}

func TestBackoffLimit(t *testing.T) {
	f := newFixture(t)
	f.create(newJob("b", func(j *batchv1.Job) { j.Spec.BackoffLimit = i32(1) }))
	f.sync("b")
	f.finish(f.pods("b")[0], corev1.PodFailed)
	if wait := f.sync("b"); wait != backoffBase {
		t.Fatalf("replacement waits %v, want %v", wait, backoffBase)
	}
	if n := len(f.pods("b")); n != 1 {
		t.Fatalf("%d pods during the back-off, want the failed one only", n)
	}
	wantStatus(t, f.job("b"), 0, 0, 1)
	f.Advance(backoffBase)
	f.sync("b")
	ps := f.pods("b")
	if len(ps) != 2 {
		t.Fatalf("%d pods after the back-off", len(ps))
	}
	for _, p := range ps {
		if !podstatus.Terminal(p) {
			f.finish(p, corev1.PodFailed)
		}
	}
	f.sync("b")
	j := f.job("b")
	wantStatus(t, j, 0, 0, 2)
	for _, ct := range []batchv1.JobConditionType{batchv1.JobFailureTarget, batchv1.JobFailed} {
		if c := findCondition(j, ct); c == nil || c.Status != corev1.ConditionTrue || c.Reason != batchv1.JobReasonBackoffLimitExceeded || c.Message != msgBackoffLimit {
			t.Fatalf("%s = %+v", ct, c)
		}
	}
}

func TestRestartsCountTowardTheBackoffLimitWithOnFailure(t *testing.T) {
	f := newFixture(t)
	f.create(newJob("r", func(j *batchv1.Job) {
		j.Spec.BackoffLimit = i32(2)
		j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	}))
	f.sync("r")
	p := f.pods("r")[0]
	f.setPod(p, func(p *corev1.Pod) {
		p.Spec.NodeName = "n1"
		p.Status.Phase = corev1.PodRunning
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", RestartCount: 2}}
	})
	f.sync("r")
	j := f.job("r")
	if !conditionTrue(j, batchv1.JobFailureTarget) || conditionTrue(j, batchv1.JobFailed) {
		t.Fatalf("want FailureTarget while the pod terminates: %+v", j.Status.Conditions)
	}
	wantStatus(t, j, 0, 0, 1)
	// Its agent stops and removes the pod: the Job is Failed.
	f.removePod(p)
	f.sync("r")
	if j := f.job("r"); !conditionTrue(j, batchv1.JobFailed) || *j.Status.Terminating != 0 {
		t.Fatalf("want Failed: %+v", j.Status)
	}
}

func TestActiveDeadline(t *testing.T) {
	f := newFixture(t)
	f.create(newJob("dl", func(j *batchv1.Job) {
		j.Spec.ActiveDeadlineSeconds = i64(60)
		j.Spec.Parallelism = i32(2)
		j.Spec.Completions = i32(4)
	}))
	if wait := f.sync("dl"); wait != 60*time.Second {
		t.Fatalf("requeue %v, want the deadline", wait)
	}
	f.Advance(30 * time.Second)
	if wait := f.sync("dl"); wait != 30*time.Second {
		t.Fatalf("requeue %v, want the rest of the deadline", wait)
	}
	f.Advance(30 * time.Second)
	f.sync("dl") // unscheduled pods go at once
	j := f.job("dl")
	wantStatus(t, j, 0, 0, 2)
	if c := findCondition(j, batchv1.JobFailed); c == nil || c.Reason != batchv1.JobReasonDeadlineExceeded {
		t.Fatalf("Failed = %+v", c)
	}
	if n := len(f.pods("dl")); n != 0 {
		t.Fatalf("%d pods left", n)
	}
}

func TestSuspendAndResume(t *testing.T) {
	f := newFixture(t)
	f.create(newJob("s", func(j *batchv1.Job) { j.Spec.Suspend = new(true); j.Spec.ActiveDeadlineSeconds = i64(10) }))
	f.sync("s")
	j := f.job("s")
	if len(f.pods("s")) != 0 || j.Status.StartTime != nil {
		t.Fatal("a suspended Job starts nothing")
	}
	if c := findCondition(j, batchv1.JobSuspended); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "JobSuspended" {
		t.Fatalf("Suspended = %+v", c)
	}
	f.Advance(time.Minute) // far past the deadline: it does not run while suspended
	j.Spec.Suspend = new(false)
	if err := f.Client.Update(context.Background(), jobs, j, true); err != nil {
		t.Fatal(err)
	}
	f.sync("s")
	j = f.job("s")
	if c := findCondition(j, batchv1.JobSuspended); c.Status != corev1.ConditionFalse || c.Reason != "JobResumed" {
		t.Fatalf("Suspended = %+v", c)
	}
	if !j.Status.StartTime.Time.Equal(f.Now()) || len(f.pods("s")) != 1 || conditionTrue(j, batchv1.JobFailed) {
		t.Fatalf("resume must start the clock again and run a pod: %+v", j.Status)
	}
	// Suspending again deletes the running pod without counting it as a failure.
	f.run(f.pods("s")[0], true)
	j.Spec.Suspend = new(true)
	if err := f.Client.Update(context.Background(), jobs, j, true); err != nil {
		t.Fatal(err)
	}
	f.sync("s")
	j = f.job("s")
	wantStatus(t, j, 0, 0, 0)
	if p := f.pods("s")[0]; p.DeletionTimestamp == nil || tracked(p) {
		t.Fatalf("the pod must be terminating and released: %+v", p.ObjectMeta)
	}
}

func TestScaleDownDeletesTheLeastAdvancedPods(t *testing.T) {
	f := newFixture(t)
	j := f.create(newJob("p", func(j *batchv1.Job) { j.Spec.Parallelism = i32(3); j.Spec.Completions = nil }))
	f.sync("p")
	ps := f.pods("p")
	f.run(ps[0], true)
	f.run(ps[1], false)
	j = f.job("p")
	j.Spec.Parallelism = i32(1)
	if err := f.Client.Update(context.Background(), jobs, j, true); err != nil {
		t.Fatal(err)
	}
	f.sync("p")
	left := 0
	for _, p := range f.pods("p") {
		if p.DeletionTimestamp == nil {
			left++
			if p.Name != ps[0].Name {
				t.Fatalf("kept %s, want the ready one", p.Name)
			}
		}
	}
	if left != 1 {
		t.Fatalf("%d pods left running", left)
	}
	wantStatus(t, f.job("p"), 1, 0, 0)
}

func TestTTLAfterFinished(t *testing.T) {
	f := newFixture(t)
	f.create(newJob("ttl", func(j *batchv1.Job) { j.Spec.TTLSecondsAfterFinished = new(int32(30)) }))
	f.sync("ttl")
	f.finish(f.pods("ttl")[0], corev1.PodSucceeded)
	f.sync("ttl")
	if wait := f.sync("ttl"); wait != 30*time.Second {
		t.Fatalf("requeue %v, want the TTL", wait)
	}
	f.Advance(30 * time.Second)
	f.sync("ttl")
	if f.job("ttl") != nil {
		t.Fatal("the finished Job outlived its TTL")
	}
}

func TestIndexedJobsFailClearly(t *testing.T) {
	f := newFixture(t)
	f.create(newJob("ix", func(j *batchv1.Job) {
		j.Spec.CompletionMode = new(batchv1.IndexedCompletion)
		j.Spec.Completions = i32(2)
	}))
	f.sync("ix")
	if c := findCondition(f.job("ix"), batchv1.JobFailed); c == nil || c.Reason != reasonUnsupportedMode || len(f.pods("ix")) != 0 {
		t.Fatalf("Failed = %+v", c)
	}
}

func TestOrphanedTrackedPodIsReleased(t *testing.T) {
	f := newFixture(t)
	j := f.create(newJob("gone", nil))
	f.sync("gone")
	p := f.pods("gone")[0]
	// The Job is deleted; the garbage collector deletes the pod, which its finalizer holds.
	if err := f.Client.Delete(context.Background(), jobs, f.job(j.Name), metav1.DeletePropagationBackground); err != nil {
		t.Fatal(err)
	}
	cur, _ := controller.Get[*corev1.Pod](f.Client.State(), pods, "default", p.Name)
	if err := f.Client.Delete(context.Background(), pods, cur, metav1.DeletePropagationBackground); err != nil {
		t.Fatal(err)
	}
	rec := f.Client.State().Get(objects.Key(pods, "default", p.Name))
	keys := f.r.Keys(f.Client.State(), fsm.Event{Type: fsm.Modified, Record: rec})
	if len(keys) != 2 || keys[1] != rec.Key {
		t.Fatalf("keys = %v, want the Job's and the pod's", keys)
	}
	if primary := f.r.Primary(f.Client.State()); len(primary) != 1 || primary[0] != rec.Key {
		t.Fatalf("primary = %v, want the orphan", primary)
	}
	if err := f.r.Reconcile(context.Background(), rec.Key); err != nil {
		t.Fatal(err)
	}
	if len(f.pods("gone")) != 0 {
		t.Fatal("the unscheduled orphan should be gone once released")
	}
}

func TestDeletedJobReleasesItsPods(t *testing.T) {
	f := newFixture(t)
	f.create(newJob("fg", func(j *batchv1.Job) { j.Spec.Parallelism = i32(2); j.Spec.Completions = i32(2) }))
	f.sync("fg")
	for _, p := range f.pods("fg") {
		f.run(p, true)
	}
	if err := f.Client.Delete(context.Background(), jobs, f.job("fg"), metav1.DeletePropagationForeground); err != nil {
		t.Fatal(err)
	}
	f.sync("fg")
	for _, p := range f.pods("fg") {
		if tracked(p) || p.DeletionTimestamp != nil {
			t.Fatalf("pod %s: finalizers %v; deleting them is the garbage collector's work", p.Name, p.Finalizers)
		}
	}
	wantStatus(t, f.job("fg"), 2, 0, 0)
}

func TestRunnerRunsAJobToCompletion(t *testing.T) {
	f := newFixture(t)
	rec := controller.NewRecorder(f.Client, "job-controller", nil)
	f.r = New(f.Client, rec)
	controllertest.Go(t, rec.Run, (&controller.Runner{Name: "job", Reconciler: f.r, Store: f.Store, Resync: time.Hour}).Run)
	f.create(newJob("e2e", func(j *batchv1.Job) { j.Spec.Completions = i32(3); j.Spec.Parallelism = i32(2) }))
	controllertest.WaitFor(t, "the Job complete", func() bool {
		// Play the agent: every pod not yet finished succeeds.
		for _, p := range f.pods("e2e") {
			if !podstatus.Terminal(p) {
				p.Status.Phase = corev1.PodSucceeded
				f.WritePod(p)
			}
		}
		return conditionTrue(f.job("e2e"), batchv1.JobComplete)
	})
	wantStatus(t, f.job("e2e"), 0, 3, 0)
	controllertest.WaitFor(t, "the Completed event", func() bool { return hasEvent(f, "Completed") })
}

// A Job deleted while its pods run: the garbage collector deletes the pods, their tracking
// finalizer holds them, and the Job controller releases them as orphans, so none is left.
func TestRunnerWithCollectorLeavesNoPodOfADeletedJob(t *testing.T) {
	f := newFixture(t)
	controllertest.Go(t,
		(&controller.Runner{Name: "job", Reconciler: f.r, Store: f.Store, Resync: time.Hour}).Run,
		(&controller.Runner{Name: "gc", Reconciler: gc.New(f.Client), Store: f.Store, Resync: time.Hour}).Run)
	f.create(newJob("doomed", func(j *batchv1.Job) { j.Spec.Parallelism = i32(2); j.Spec.Completions = i32(4) }))
	controllertest.WaitFor(t, "two pods", func() bool { return len(f.pods("doomed")) == 2 })
	for {
		j := f.job("doomed")
		if err := f.Client.Delete(context.Background(), jobs, j, metav1.DeletePropagationBackground); err == nil {
			break
		} else if !controller.IsStale(err) {
			t.Fatal(err)
		}
	}
	controllertest.WaitFor(t, "no pod left", func() bool { return len(f.pods("doomed")) == 0 })
}

func hasEvent(f *fixture, reason string) bool {
	evs, _ := controller.List[*corev1.Event](f.Client.State(), registry.Lookup("", "v1", "events"), "default", nil)
	for _, e := range evs {
		if e.Reason == reason && e.InvolvedObject.Kind == "Job" {
			return true
		}
	}
	return false
}

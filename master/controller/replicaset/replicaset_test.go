package replicaset

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/objects"
	"skiff/master/podstatus"
	"skiff/master/registry"
)

var registryEvents = registry.Lookup("", "v1", "events")

// fixture is the controller under test in a controllertest world, whose scheduler and
// agents tests step by hand.
type fixture struct {
	*controllertest.Env
	c *Controller
}

func newFixture(t *testing.T) *fixture {
	env := controllertest.NewEnv(t)
	return &fixture{Env: env, c: New(env.Client, nil)}
}

func ptr[T any](v T) *T { return &v }

func template(lbls map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: lbls, Annotations: map[string]string{"note": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
}

func (f *fixture) createRS(name string, replicas int32, minReady int32) *appsv1.ReplicaSet {
	f.T.Helper()
	lbls := map[string]string{"app": name}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas, MinReadySeconds: minReady,
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: template(map[string]string{"app": name, "tier": "web"}),
		},
	}
	f.Create(replicaSets, rs)
	return rs
}

// controlledBy gives the ReplicaSet a controller (as a Deployment would be).
func (f *fixture) controlledBy(name string, uid types.UID) {
	f.T.Helper()
	rs := f.rs(name)
	rs.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "d", UID: uid, Controller: ptr(true)}}
	f.Update(replicaSets, rs, false)
}

func (f *fixture) rs(name string) *appsv1.ReplicaSet {
	return controllertest.Get[*appsv1.ReplicaSet](f.Env, replicaSets, "default", name)
}

func (f *fixture) scale(name string, n int32) {
	controllertest.Change(f.Env, replicaSets, "default", name, func(rs *appsv1.ReplicaSet) { rs.Spec.Replicas = &n })
}

// reconcile runs one pass and returns the requested requeue delay, failing on errors.
func (f *fixture) reconcile(name string) time.Duration {
	f.T.Helper()
	return f.Reconcile(f.c, objects.Key(replicaSets, "default", name))
}

func (f *fixture) pods() []*corev1.Pod { return f.Pods("default") }

func (f *fixture) activePods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range f.pods() {
		if podstatus.Active(p) {
			out = append(out, p)
		}
	}
	return out
}

func (f *fixture) createPod(p *corev1.Pod) *corev1.Pod {
	f.T.Helper()
	p.Namespace = "default"
	if len(p.Spec.Containers) == 0 {
		p.Spec.Containers = []corev1.Container{{Name: "app", Image: "nginx"}}
	}
	f.Create(pods, p)
	return p
}

// setPod simulates the scheduler and the agent: it binds the pod and sets its phase and
// readiness (ready since the fake now).
func (f *fixture) setPod(name, node string, phase corev1.PodPhase, ready bool) {
	f.T.Helper()
	p, _ := controller.Get[*corev1.Pod](f.Client.State(), pods, "default", name)
	p.Spec.NodeName = node
	p.Status.Phase = phase
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.NewTime(f.Now())}}
	f.Update(pods, p, false)
}

func owner(p *corev1.Pod) types.UID {
	if ref := metav1.GetControllerOf(p); ref != nil {
		return ref.UID
	}
	return ""
}

func TestCreatesPodsFromTemplateInSlowStartBatches(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int32
		commits  int // pod batches plus one status write
	}{
		{"one", 1, 1 + 1},
		{"three", 3, 2 + 1},
		{"ten", 10, 4 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rs := f.createRS("web", tc.replicas, 0)
			before := f.Store.Entries()
			f.reconcile("web")
			if got := f.Store.Entries() - before; got != tc.commits {
				t.Errorf("%d commits, want %d", got, tc.commits)
			}
			ps := f.pods()
			if len(ps) != int(tc.replicas) {
				t.Fatalf("%d pods, want %d", len(ps), tc.replicas)
			}
			for _, p := range ps {
				if !strings.HasPrefix(p.Name, "web-") || len(p.Name) != len("web-")+5 || p.GenerateName != "web-" {
					t.Errorf("pod name %q (generateName %q)", p.Name, p.GenerateName)
				}
				ref := metav1.GetControllerOf(p)
				if ref == nil || ref.UID != rs.UID || ref.Kind != "ReplicaSet" || ref.APIVersion != "apps/v1" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
					t.Errorf("pod owner: %+v", p.OwnerReferences)
				}
				if p.Labels["tier"] != "web" || p.Annotations["note"] != "x" || p.Spec.NodeName != "" {
					t.Errorf("pod not from the template: %+v", p.ObjectMeta)
				}
			}
			got := f.rs("web").Status
			if got.Replicas != tc.replicas || got.FullyLabeledReplicas != tc.replicas || got.ReadyReplicas != 0 || got.ObservedGeneration != 1 {
				t.Errorf("status %+v", got)
			}
			// Nothing changed: nothing written.
			before = f.Store.Entries()
			f.reconcile("web")
			if f.Store.Entries() != before {
				t.Errorf("a steady ReplicaSet wrote %d entries", f.Store.Entries()-before)
			}
		})
	}
}

func TestScaleDownPrefersPodsThatCostLeast(t *testing.T) {
	// Pods a..e are created one minute apart; each case gives them states and expects
	// which survive a scale-down to keep.
	type state struct {
		node  string
		phase corev1.PodPhase
		ready bool
		cost  string
	}
	ready := state{"n1", corev1.PodRunning, true, ""}
	for _, tc := range []struct {
		name   string
		states map[string]state
		keep   int32
		want   []string // survivors
	}{
		{"unscheduled before scheduled", map[string]state{"a": ready, "b": {"", corev1.PodPending, false, ""}, "c": ready}, 2, []string{"a", "c"}},
		{"pending before running", map[string]state{"a": {"n1", corev1.PodPending, false, ""}, "b": ready, "c": ready}, 2, []string{"b", "c"}},
		{"not ready before ready", map[string]state{"a": ready, "b": {"n1", corev1.PodRunning, false, ""}, "c": ready}, 2, []string{"a", "c"}},
		{"lower deletion cost first", map[string]state{"a": {"n1", corev1.PodRunning, true, "10"}, "b": {"n1", corev1.PodRunning, true, "5"}, "c": ready}, 1, []string{"a"}},
		{"crowded node first", map[string]state{"a": ready, "b": ready, "c": {"n2", corev1.PodRunning, true, ""}}, 2, nil},
		{"newest first", map[string]state{"a": ready, "b": ready, "c": ready}, 1, []string{"a"}},
		{"scale to zero", map[string]state{"a": ready, "b": ready}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.createRS("web", int32(len(tc.states)), 0)
			f.controlledBy("web", "deploy-uid") // siblings' placement ranks pods
			start := f.Now()
			names := map[string]string{} // letter -> pod name
			for _, letter := range []string{"a", "b", "c"} {
				s, ok := tc.states[letter]
				if !ok {
					continue
				}
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-" + letter, Labels: map[string]string{"app": "web", "tier": "web"}}}
				if s.cost != "" {
					p.Annotations = map[string]string{deletionCostAnnotation: s.cost}
				}
				f.createPod(p)
				f.Advance(30 * time.Minute)
				names[letter] = p.Name
			}
			f.reconcile("web") // adopts them
			for letter, s := range tc.states {
				// Later letters became ready more recently, in distinct powers-of-two age
				// buckets (24h, 15h, 6h before the scale-down).
				f.SetNow(start.Add(time.Duration(letter[0]-'a') * 9 * time.Hour))
				f.setPod(names[letter], s.node, s.phase, s.ready)
			}
			f.SetNow(start.Add(24 * time.Hour))
			f.scale("web", tc.keep)
			f.reconcile("web")
			var got []string
			for _, p := range f.activePods() {
				got = append(got, strings.TrimPrefix(p.Name, "web-"))
			}
			if tc.name == "crowded node first" {
				// a and b share n1: one of them goes, c stays.
				if len(got) != 2 || !contains(got, "c") {
					t.Fatalf("survivors %v, want c and one of a, b", got)
				}
			} else if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("survivors %v, want %v", got, tc.want)
			}
			if st := f.rs("web").Status; st.Replicas != tc.keep || st.TerminatingReplicas == nil {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestAdoptsOrphansAndReleasesPodsThatStopMatching(t *testing.T) {
	f := newFixture(t)
	rs := f.createRS("web", 2, 0)
	f.createPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Labels: map[string]string{"app": "web"}}})
	other := &metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "j", UID: "job-uid", Controller: ptr(true)}
	f.createPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "jobs", Labels: map[string]string{"app": "web"}, OwnerReferences: []metav1.OwnerReference{*other}}})
	f.createPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stranger", Labels: map[string]string{"app": "db"}}})
	f.reconcile("web")

	byName := map[string]*corev1.Pod{}
	for _, p := range f.pods() {
		byName[p.Name] = p
	}
	if owner(byName["orphan"]) != rs.UID {
		t.Fatalf("orphan not adopted: %+v", byName["orphan"].OwnerReferences)
	}
	if owner(byName["jobs"]) != "job-uid" || owner(byName["stranger"]) != "" {
		t.Fatal("a pod controlled by another owner or not matching was claimed")
	}
	if n := len(f.activePods()); n != 4 {
		t.Fatalf("%d pods, want the adopted orphan plus one created (4 in all)", n)
	}
	if f.rs("web").Status.Replicas != 2 {
		t.Fatalf("status replicas %d", f.rs("web").Status.Replicas)
	}

	// Relabel the orphan: released, and replaced.
	p, _ := controller.Get[*corev1.Pod](f.Client.State(), pods, "default", "orphan")
	p.Labels = map[string]string{"app": "other"}
	if err := f.Client.Update(context.Background(), pods, p, false); err != nil {
		t.Fatal(err)
	}
	// The pod change maps to the ReplicaSet that controlled it.
	keys := f.c.Keys(f.Client.State(), fsm.Event{Type: fsm.Modified, Record: f.Client.State().Get(objects.Key(pods, "default", "orphan"))})
	if len(keys) != 1 || keys[0].Name != "web" {
		t.Fatalf("keys %v", keys)
	}
	f.reconcile("web")
	q, _ := controller.Get[*corev1.Pod](f.Client.State(), pods, "default", "orphan")
	if owner(q) != "" || len(q.OwnerReferences) != 0 {
		t.Fatalf("relabelled pod not released: %+v", q.OwnerReferences)
	}
	if st := f.rs("web").Status; st.Replicas != 2 {
		t.Fatalf("status %+v after release", st)
	}
	// An orphan appearing concerns the ReplicaSets that could adopt it.
	rec := f.Client.State().Get(objects.Key(pods, "default", "stranger"))
	if keys := f.c.Keys(f.Client.State(), fsm.Event{Type: fsm.Added, Record: rec}); len(keys) != 0 {
		t.Fatalf("non-matching orphan mapped to %v", keys)
	}
	f.createPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "late", Labels: map[string]string{"app": "web"}}})
	rec = f.Client.State().Get(objects.Key(pods, "default", "late"))
	if keys := f.c.Keys(f.Client.State(), fsm.Event{Type: fsm.Added, Record: rec}); len(keys) != 1 || keys[0].Name != "web" {
		t.Fatalf("matching orphan mapped to %v", keys)
	}
}

func TestStatusCountsReadyAndAvailableAfterMinReadySeconds(t *testing.T) {
	f := newFixture(t)
	f.createRS("web", 3, 10)
	f.reconcile("web")
	ps := f.pods()
	f.setPod(ps[0].Name, "n1", corev1.PodRunning, true)
	f.setPod(ps[1].Name, "n1", corev1.PodRunning, true)
	f.setPod(ps[2].Name, "n1", corev1.PodRunning, false)
	f.Advance(4 * time.Second)
	wait := f.reconcile("web")
	if st := f.rs("web").Status; st.ReadyReplicas != 2 || st.AvailableReplicas != 0 || st.Replicas != 3 {
		t.Fatalf("status %+v", st)
	}
	if wait < 6*time.Second || wait > 7*time.Second {
		t.Fatalf("requeue after %v, want about 6s", wait)
	}
	f.Advance(wait)
	if wait := f.reconcile("web"); wait != 0 {
		t.Fatalf("requeued again after %v", wait)
	}
	if st := f.rs("web").Status; st.AvailableReplicas != 2 {
		t.Fatalf("status %+v", st)
	}
	// A pod whose labels lack a template label counts, but not as fully labeled.
	q, _ := controller.Get[*corev1.Pod](f.Client.State(), pods, "default", ps[2].Name)
	delete(q.Labels, "tier")
	if err := f.Client.Update(context.Background(), pods, q, false); err != nil {
		t.Fatal(err)
	}
	f.reconcile("web")
	if st := f.rs("web").Status; st.Replicas != 3 || st.FullyLabeledReplicas != 2 {
		t.Fatalf("status %+v", st)
	}
}

func TestFinishedAndDeletingPodsDoNotCount(t *testing.T) {
	f := newFixture(t)
	f.createRS("web", 2, 0)
	f.reconcile("web")
	ps := f.pods()
	f.setPod(ps[0].Name, "n1", corev1.PodFailed, false)
	f.setPod(ps[1].Name, "n1", corev1.PodRunning, true)
	p, _ := controller.Get[*corev1.Pod](f.Client.State(), pods, "default", ps[1].Name)
	if err := f.Client.Delete(context.Background(), pods, p, ""); err != nil {
		t.Fatal(err)
	}
	f.reconcile("web")
	if n := len(f.pods()); n != 4 {
		t.Fatalf("%d pods, want the failed and the terminating one kept plus two replacements", n)
	}
	st := f.rs("web").Status
	if st.Replicas != 2 || st.TerminatingReplicas == nil || *st.TerminatingReplicas != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestFailedCreateSetsReplicaFailureUntilItSucceeds(t *testing.T) {
	f := newFixture(t)
	f.createRS("web", 2, 0)
	broken := errors.New("disk full")
	f.Store.Fail = func(txn *fsm.Txn) error {
		if txn.Ops[0].Kind == fsm.OpCreate && txn.Ops[0].Key.Resource == "pods" {
			return broken
		}
		return nil
	}
	err := f.c.Reconcile(context.Background(), objects.Key(replicaSets, "default", "web"))
	if !errors.Is(err, broken) {
		t.Fatalf("reconcile: %v", err)
	}
	c := condition(f.rs("web").Status.Conditions, appsv1.ReplicaSetReplicaFailure)
	if c == nil || c.Reason != "FailedCreate" || c.Status != corev1.ConditionTrue || !strings.Contains(c.Message, "disk full") {
		t.Fatalf("condition %+v", c)
	}
	f.Store.Fail = nil
	f.reconcile("web")
	if c := condition(f.rs("web").Status.Conditions, appsv1.ReplicaSetReplicaFailure); c != nil {
		t.Fatalf("condition kept after success: %+v", c)
	}
}

func TestRecordsEvents(t *testing.T) {
	f := newFixture(t)
	// Event names derive from the clock, so the recorder needs a real one.
	rec := controller.NewRecorder(&controller.Client{Store: f.Store}, "replicaset-controller", nil)
	f.c = New(f.Client, rec)
	controllertest.Go(t, rec.Run)
	f.createRS("web", 2, 0)
	f.reconcile("web")
	f.scale("web", 1)
	f.reconcile("web")
	want := map[string]int{"SuccessfulCreate": 2, "SuccessfulDelete": 1}
	controllertest.WaitFor(t, fmt.Sprintf("events %v", want), func() bool {
		evs, _ := controller.List[*corev1.Event](f.Client.State(), registryEvents, "default", nil)
		got := map[string]int{}
		for _, ev := range evs {
			if ev.InvolvedObject.Kind == "ReplicaSet" && ev.InvolvedObject.Name == "web" &&
				(strings.HasPrefix(ev.Message, "Created pod: web-") || strings.HasPrefix(ev.Message, "Deleted pod: web-")) {
				got[ev.Reason] += int(ev.Count)
			}
		}
		return got["SuccessfulCreate"] == want["SuccessfulCreate"] && got["SuccessfulDelete"] == want["SuccessfulDelete"]
	})
}

// The controller driven by the Runner converges as pods come and go underneath it.
func TestRunnerConverges(t *testing.T) {
	env := controllertest.NewLiveEnv(t)
	f := &fixture{Env: env, c: New(env.Client, nil)}
	controllertest.Go(t, (&controller.Runner{Name: "replicaset", Reconciler: f.c, Store: f.Store}).Run)
	f.createRS("web", 5, 0)
	controllertest.WaitFor(t, "five replicas", func() bool { return len(f.activePods()) == 5 && f.rs("web").Status.Replicas == 5 })
	f.scale("web", 2)
	controllertest.WaitFor(t, "two replicas", func() bool { return len(f.activePods()) == 2 && f.rs("web").Status.Replicas == 2 })
}

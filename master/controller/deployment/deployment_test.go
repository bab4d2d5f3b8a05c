package deployment

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/objects"
	"skiff/master/registry"
)

func TestResolveFenceposts(t *testing.T) {
	for _, tc := range []struct {
		surge, unavailable string
		desired            int32
		wantS, wantU       int32
	}{
		{"25%", "25%", 10, 3, 2},
		{"25%", "25%", 1, 1, 0},
		{"0", "0%", 3, 0, 1},
		{"0%", "10%", 5, 0, 1},
		{"2", "1", 10, 2, 1},
		{"50%", "0", 3, 2, 0},
	} {
		s, u := intstr.Parse(tc.surge), intstr.Parse(tc.unavailable)
		gotS, gotU, err := resolveFenceposts(&s, &u, tc.desired)
		if err != nil || gotS != tc.wantS || gotU != tc.wantU {
			t.Errorf("%s/%s of %d: %d/%d (%v), want %d/%d", tc.surge, tc.unavailable, tc.desired, gotS, gotU, err, tc.wantS, tc.wantU)
		}
	}
}

func TestInitialRolloutCreatesLabelledReplicaSet(t *testing.T) {
	f := newFixture(t)
	f.create(3, nil)
	f.settle()
	d := f.deployment()
	rsList := f.replicaSets()
	if len(rsList) != 1 {
		t.Fatalf("%d replica sets", len(rsList))
	}
	rs := rsList[0]
	hash := controller.TemplateHash(&d.Spec.Template, nil)
	if rs.Name != "web-"+hash {
		t.Errorf("replica set %s, want web-%s", rs.Name, hash)
	}
	for what, m := range map[string]map[string]string{"labels": rs.Labels, "selector": rs.Spec.Selector.MatchLabels, "template": rs.Spec.Template.Labels} {
		if m[appsv1.DefaultDeploymentUniqueLabelKey] != hash || m["app"] != "web" {
			t.Errorf("%s %v lack pod-template-hash=%s", what, m, hash)
		}
	}
	if ref := rs.OwnerReferences; len(ref) != 1 || ref[0].UID != d.UID || ref[0].Kind != "Deployment" || !*ref[0].Controller {
		t.Errorf("owner %+v", ref)
	}
	wantAnn := map[string]string{revisionAnnotation: "1", desiredReplicasAnnotation: "3", maxReplicasAnnotation: "4"}
	for k, v := range wantAnn {
		if rs.Annotations[k] != v {
			t.Errorf("annotation %s=%q, want %q", k, rs.Annotations[k], v)
		}
	}
	if d.Annotations[revisionAnnotation] != "1" {
		t.Errorf("deployment revision %q", d.Annotations[revisionAnnotation])
	}
	if *rs.Spec.Replicas != 3 || len(f.pods()) != 3 {
		t.Fatalf("replicas %d, pods %d", *rs.Spec.Replicas, len(f.pods()))
	}
	for _, p := range f.pods() {
		if p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash {
			t.Errorf("pod %s labels %v", p.Name, p.Labels)
		}
	}
	c := condition(d.Status, appsv1.DeploymentProgressing)
	if c == nil || c.Status != corev1.ConditionTrue || (c.Reason != newReplicaSetReason && c.Reason != replicaSetUpdatedReason) {
		t.Fatalf("progressing %+v", c)
	}
	if a := condition(d.Status, appsv1.DeploymentAvailable); a == nil || a.Reason != minimumReplicasUnavailable {
		t.Fatalf("available %+v", a)
	}
	if f.requeue <= 0 {
		t.Error("no progress check scheduled for a rollout in progress")
	}
	f.converge(-1)
	d = f.deployment()
	s := d.Status
	if s.Replicas != 3 || s.UpdatedReplicas != 3 || s.ReadyReplicas != 3 || s.AvailableReplicas != 3 || s.UnavailableReplicas != 0 || s.ObservedGeneration != d.Generation {
		t.Fatalf("status %+v", s)
	}
	if c := condition(s, appsv1.DeploymentProgressing); c.Reason != newRSAvailableReason || c.Message != `ReplicaSet "web-`+hash+`" has successfully progressed.` {
		t.Fatalf("progressing %+v", c)
	}
	if a := condition(s, appsv1.DeploymentAvailable); a.Status != corev1.ConditionTrue || a.Reason != minimumReplicasAvailable {
		t.Fatalf("available %+v", a)
	}
	if f.requeue != 0 {
		t.Errorf("a finished rollout asked for a look in %v", f.requeue)
	}
}

// A rolling update of 10 replicas with 25% surge and unavailability never runs more than
// 13 pods nor fewer than 8 available ones, checked after every single reconcile.
func TestRollingUpdateRespectsSurgeAndUnavailability(t *testing.T) {
	for _, tc := range []struct {
		name               string
		surge, unavailable string
		maxTotal, minAvail int32
		perStep            int
	}{
		{"25% each, pods ready one by one", "25%", "25%", 13, 8, 1},
		{"25% each, pods ready in threes", "25%", "25%", 13, 8, 3},
		{"surge only", "2", "0", 12, 10, 2},
		{"unavailability only", "0", "3", 10, 7, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.create(10, rollingUpdate(tc.surge, tc.unavailable))
			f.converge(-1)
			first := f.replicaSets()[0]
			steps := 0
			var peak, trough int32 = 0, 10
			f.check = func() {
				steps++
				total, available := f.counts()
				peak, trough = max(peak, total), min(trough, available)
				if total > tc.maxTotal {
					t.Fatalf("step %d: %d pods, more than %d", steps, total, tc.maxTotal)
				}
				if available < tc.minAvail {
					t.Fatalf("step %d: %d available, fewer than %d", steps, available, tc.minAvail)
				}
			}
			f.Advance(time.Minute)
			f.update(setImage("web:2"))
			f.converge(tc.perStep)
			rsList := f.replicaSets()
			if len(rsList) != 2 || rsList[0].Name != first.Name || *rsList[0].Spec.Replicas != 0 || *rsList[1].Spec.Replicas != 10 {
				t.Fatalf("replica sets after the rollout: %v", names(rsList))
			}
			if rsList[1].Annotations[revisionAnnotation] != "2" || f.deployment().Annotations[revisionAnnotation] != "2" {
				t.Fatalf("revisions: rs %q deployment %q", rsList[1].Annotations[revisionAnnotation], f.deployment().Annotations[revisionAnnotation])
			}
			for _, p := range f.pods() {
				if p.Spec.Containers[0].Image != "web:2" {
					t.Fatalf("old pod %s left", p.Name)
				}
			}
			if steps < 10 {
				t.Fatalf("only %d reconciles: the rollout was not stepped", steps)
			}
			// The budget is used, not merely respected.
			if peak != tc.maxTotal || trough != tc.minAvail {
				t.Fatalf("peak %d pods, trough %d available; want %d and %d", peak, trough, tc.maxTotal, tc.minAvail)
			}
		})
	}
}

func names(rsList []*appsv1.ReplicaSet) []string {
	var out []string
	for _, rs := range rsList {
		out = append(out, rs.Name+"="+imageOf(rs))
	}
	return out
}

// Recreate never runs old and new pods together, terminating old ones included.
func TestRecreateWaitsForOldPodsToGo(t *testing.T) {
	f := newFixture(t)
	f.create(3, func(d *appsv1.Deployment) {
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	})
	f.converge(-1)
	f.check = func() {
		images := map[string]bool{}
		for _, p := range f.pods() {
			images[p.Spec.Containers[0].Image] = true
		}
		if images["web:1"] && images["web:2"] {
			t.Fatal("old and new pods exist together")
		}
	}
	f.update(setImage("web:2"))
	f.settle()
	if len(f.replicaSets()) != 1 {
		t.Fatal("new replica set created while old pods run")
	}
	for _, p := range f.pods() {
		if p.DeletionTimestamp == nil {
			t.Fatalf("old pod %s not being deleted", p.Name)
		}
	}
	if f.reap() != 3 {
		t.Fatal("expected 3 terminating pods")
	}
	f.converge(-1)
	rsList := f.replicaSets()
	if len(rsList) != 2 || imageOf(rsList[1]) != "web:2" || *rsList[1].Spec.Replicas != 3 || *rsList[0].Spec.Replicas != 0 {
		t.Fatalf("replica sets %v", names(rsList))
	}
}

// An undo (the old template patched back, as kubectl rollout undo does) scales the old
// ReplicaSet back up under a new revision, remembering the one it had.
func TestRollbackReusesOldReplicaSet(t *testing.T) {
	f := newFixture(t)
	f.create(4, nil)
	f.converge(-1)
	v1 := f.replicaSets()[0]
	f.Advance(time.Minute)
	f.update(setImage("web:2"))
	f.converge(2)
	// kubectl rollout undo: the old ReplicaSet's template without pod-template-hash.
	f.update(func(d *appsv1.Deployment) {
		d.Spec.Template = *v1.Spec.Template.DeepCopy()
		delete(d.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	})
	f.converge(2)
	rsList := f.replicaSets()
	if len(rsList) != 2 {
		t.Fatalf("replica sets %v", names(rsList))
	}
	back := rsList[1]
	if back.UID != v1.UID || *back.Spec.Replicas != 4 {
		t.Fatalf("rolled back to %s (%d replicas), want %s", back.Name, *back.Spec.Replicas, v1.Name)
	}
	if back.Annotations[revisionAnnotation] != "3" || back.Annotations[revisionHistoryAnnotation] != "1" {
		t.Fatalf("annotations %v", back.Annotations)
	}
	if f.deployment().Annotations[revisionAnnotation] != "3" {
		t.Fatalf("deployment revision %q", f.deployment().Annotations[revisionAnnotation])
	}
}

func TestPauseStopsRolloutButNotScaling(t *testing.T) {
	f := newFixture(t)
	f.create(3, nil)
	f.converge(-1)
	f.update(func(d *appsv1.Deployment) { d.Spec.Paused = true })
	f.settle()
	if c := condition(f.deployment().Status, appsv1.DeploymentProgressing); c.Reason != pausedDeployReason || c.Status != corev1.ConditionUnknown {
		t.Fatalf("progressing %+v", c)
	}
	f.update(setImage("web:2"))
	f.update(func(d *appsv1.Deployment) { *d.Spec.Replicas = 5 })
	f.settle()
	rsList := f.replicaSets()
	if len(rsList) != 1 || *rsList[0].Spec.Replicas != 5 {
		t.Fatalf("while paused: %v", names(rsList))
	}
	if f.requeue != 0 {
		t.Errorf("a paused deployment asked for a progress check in %v", f.requeue)
	}
	// Time paused does not count against the deadline.
	f.Advance(time.Hour)
	f.update(func(d *appsv1.Deployment) { d.Spec.Paused = false })
	f.reconcileDeployment()
	if c := condition(f.deployment().Status, appsv1.DeploymentProgressing); c.Reason == timedOutReason || c.Reason == pausedDeployReason {
		t.Fatalf("after resume: %+v", c)
	}
	f.converge(-1)
	rsList = f.replicaSets()
	if len(rsList) != 2 || imageOf(rsList[1]) != "web:2" || *rsList[1].Spec.Replicas != 5 {
		t.Fatalf("after resume: %v", names(rsList))
	}
}

func TestRevisionHistoryLimitPrunesOldestReplicaSets(t *testing.T) {
	f := newFixture(t)
	f.create(2, func(d *appsv1.Deployment) { d.Spec.RevisionHistoryLimit = ptr(int32(2)) })
	f.converge(-1)
	for _, img := range []string{"web:2", "web:3", "web:4", "web:5"} {
		f.Advance(time.Minute)
		f.update(setImage(img))
		f.converge(-1)
	}
	f.settle()
	rsList := f.replicaSets()
	var got []string
	for _, rs := range rsList {
		got = append(got, rs.Annotations[revisionAnnotation]+":"+imageOf(rs))
	}
	if strings.Join(got, ",") != "3:web:3,4:web:4,5:web:5" {
		t.Fatalf("kept %v", got)
	}
}

func TestProgressDeadlineExceeded(t *testing.T) {
	f := newFixture(t)
	f.create(2, func(d *appsv1.Deployment) { d.Spec.ProgressDeadlineSeconds = ptr(int32(60)) })
	f.settle()
	f.schedule()
	f.settle()
	if f.requeue <= 0 || f.requeue > 61*time.Second {
		t.Fatalf("progress check in %v", f.requeue)
	}
	f.Advance(30 * time.Second)
	f.settle()
	if c := condition(f.deployment().Status, appsv1.DeploymentProgressing); c.Status != corev1.ConditionTrue {
		t.Fatalf("timed out early: %+v", c)
	}
	f.Advance(31 * time.Second)
	f.settle()
	c := condition(f.deployment().Status, appsv1.DeploymentProgressing)
	if c.Status != corev1.ConditionFalse || c.Reason != timedOutReason || !strings.HasSuffix(c.Message, "has timed out progressing.") {
		t.Fatalf("progressing %+v", c)
	}
	if f.requeue != 0 {
		t.Errorf("a timed-out rollout asked for a look in %v", f.requeue)
	}
	// Progress after the deadline clears it.
	f.makeReady(-1)
	f.settle()
	if c := condition(f.deployment().Status, appsv1.DeploymentProgressing); c.Reason != newRSAvailableReason || c.Status != corev1.ConditionTrue {
		t.Fatalf("after recovery: %+v", c)
	}
}

// Scaling mid-rollout spreads the change over both ReplicaSets and stays within the surge.
func TestProportionalScalingMidRollout(t *testing.T) {
	f := newFixture(t)
	f.create(10, rollingUpdate("3", "2"))
	f.converge(-1)
	f.Advance(time.Minute)
	f.update(setImage("web:2"))
	f.settle() // new ReplicaSet at 3 (surge), old at 8
	f.schedule()
	f.update(func(d *appsv1.Deployment) { *d.Spec.Replicas = 20 })
	f.check = func() {
		var sum int32
		for _, rs := range f.replicaSets() {
			sum += *rs.Spec.Replicas
		}
		if sum > 23 {
			t.Fatalf("replica sets want %d pods, more than 20+3", sum)
		}
	}
	f.reconcileDeployment()
	rsList := f.replicaSets()
	oldN, newN := *rsList[0].Spec.Replicas, *rsList[1].Spec.Replicas
	if oldN+newN != 23 || oldN <= 8 || newN <= 3 {
		t.Fatalf("after scaling: old %d new %d", oldN, newN)
	}
	f.converge(4)
	if rsList := f.replicaSets(); *rsList[1].Spec.Replicas != 20 || *rsList[0].Spec.Replicas != 0 {
		t.Fatalf("final %v", names(rsList))
	}
}

func TestAdoptsAndReleasesReplicaSets(t *testing.T) {
	f := newFixture(t)
	f.create(1, nil)
	f.converge(-1)
	d := f.deployment()
	rs := f.replicaSets()[0]
	// Orphan it (as kubectl delete --cascade=orphan of an old owner would): adopted again.
	rs.OwnerReferences = nil
	if err := f.Client.Update(context.Background(), replicaSets, rs, false); err != nil {
		t.Fatal(err)
	}
	f.settle()
	if got := f.replicaSets(); len(got) != 1 || got[0].OwnerReferences[0].UID != d.UID {
		t.Fatalf("not adopted: %v", got[0].OwnerReferences)
	}
	// Relabel it out of the selector: released, and a new one made.
	rs = f.replicaSets()[0]
	rs.Labels = map[string]string{"app": "other"}
	if err := f.Client.Update(context.Background(), replicaSets, rs, false); err != nil {
		t.Fatal(err)
	}
	// The released ReplicaSet still holds the name the template hashes to: a collision,
	// which moves the next attempt to another name.
	err := f.dc.Reconcile(context.Background(), objects.Key(deployments, "default", "web"))
	if !controller.IsStale(err) {
		t.Fatalf("reconcile after release: %v", err)
	}
	got, _ := controller.Get[*appsv1.ReplicaSet](f.Client.State(), replicaSets, "default", rs.Name)
	if len(got.OwnerReferences) != 0 {
		t.Fatalf("not released: %+v", got.OwnerReferences)
	}
	if cc := f.deployment().Status.CollisionCount; cc == nil || *cc != 1 {
		t.Fatalf("collisionCount %v", cc)
	}
	f.converge(-1)
	d = f.deployment()
	owned := 0
	for _, rs := range f.replicaSets() {
		if len(rs.OwnerReferences) == 1 && rs.OwnerReferences[0].UID == d.UID {
			owned++
			if rs.Name != "web-"+controller.TemplateHash(&d.Spec.Template, ptr(int32(1))) {
				t.Fatalf("new replica set %s not named by the bumped collision count", rs.Name)
			}
		}
	}
	if owned != 1 {
		t.Fatalf("%d owned replica sets", owned)
	}
}

// Both controllers under controller.Runner, with the test playing scheduler and agent
// while it waits, carry a deployment through creation and an update to completion.
func TestRunnersRollOut(t *testing.T) {
	env := controllertest.NewLiveEnv(t)
	rec := controller.NewRecorder(env.Client, "deployment-controller", nil)
	f := withControllers(env, rec)
	controllertest.Go(t, rec.Run,
		(&controller.Runner{Name: "deployment", Reconciler: f.dc, Store: f.Store}).Run,
		(&controller.Runner{Name: "replicaset", Reconciler: f.rsc, Store: f.Store}).Run)
	// rolledOut plays the scheduler and the agents once, then checks the Deployment.
	rolledOut := func(done func(*appsv1.Deployment) bool) func() bool {
		return func() bool {
			f.schedule()
			f.Agent()
			return done(f.deployment())
		}
	}
	f.create(4, nil)
	controllertest.WaitFor(t, "four available replicas", rolledOut(func(d *appsv1.Deployment) bool {
		return rolloutDone(d) && d.Status.AvailableReplicas == 4
	}))
	f.update(setImage("web:2"))
	controllertest.WaitFor(t, "the update rolled out", rolledOut(func(d *appsv1.Deployment) bool {
		return rolloutDone(d) && d.Annotations[revisionAnnotation] == "2" &&
			condition(d.Status, appsv1.DeploymentProgressing).Reason == newRSAvailableReason
	}))
	controllertest.WaitFor(t, "the scaling event", func() bool {
		evs, _ := controller.List[*corev1.Event](f.Client.State(), registry.Lookup("", "v1", "events"), "default", nil)
		for _, ev := range evs {
			if ev.Reason == "ScalingReplicaSet" && strings.HasPrefix(ev.Message, "Scaled up replica set web-") && strings.HasSuffix(ev.Message, " from 0 to 4") {
				return true
			}
		}
		return false
	})
}

func TestKeysMapChangesToDeployments(t *testing.T) {
	f := newFixture(t)
	f.create(1, nil)
	f.converge(-1)
	st := f.Client.State()
	rs := f.replicaSets()[0]
	rsRec := st.Get(objects.Key(replicaSets, "default", rs.Name))
	pod := f.pods()[0]
	podRec := st.Get(objects.Key(pods, "default", pod.Name))
	want := objects.Key(deployments, "default", "web")
	for _, tc := range []struct {
		name string
		ev   fsm.Event
		want int
	}{
		{"owned replica set", fsm.Event{Type: fsm.Modified, Record: rsRec, Prev: rsRec}, 1},
		{"deleted pod of an owned replica set", fsm.Event{Type: fsm.Deleted, Record: podRec}, 1},
		{"modified pod", fsm.Event{Type: fsm.Modified, Record: podRec, Prev: podRec}, 0},
	} {
		keys := f.dc.Keys(st, tc.ev)
		if len(keys) != tc.want || (tc.want == 1 && keys[0] != want) {
			t.Errorf("%s: keys %v", tc.name, keys)
		}
	}
	// An orphan replica set concerns the deployments whose selector matches it.
	rs.OwnerReferences = nil
	if err := f.Client.Update(context.Background(), replicaSets, rs, false); err != nil {
		t.Fatal(err)
	}
	rec := f.Client.State().Get(objects.Key(replicaSets, "default", rs.Name))
	if keys := f.dc.Keys(f.Client.State(), fsm.Event{Type: fsm.Modified, Record: rec, Prev: rsRec}); len(keys) != 2 || keys[0] != want || keys[1] != want {
		t.Errorf("orphaned replica set: keys %v (want the old owner and the adopter)", keys)
	}
}

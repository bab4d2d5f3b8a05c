package controller_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/objects"
	"skiff/master/registry"
)

var (
	claimPods        = registry.Lookup("", "v1", "pods")
	claimReplicaSets = registry.Lookup("apps", "v1", "replicasets")
)

// claimFixture is a store holding one ReplicaSet "web" (selector app=web) and the pods a
// test adds beside it.
type claimFixture struct {
	*controllertest.Env
	owner *appsv1.ReplicaSet
}

func newClaimFixture(t *testing.T) *claimFixture {
	f := &claimFixture{Env: controllertest.NewEnv(t)}
	lbls := map[string]string{"app": "web"}
	f.owner = &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	f.Create(claimReplicaSets, f.owner)
	return f
}

// pod creates a pod labelled app=<app>, with owner references refs; deleting marks it
// terminating (it is bound to a node, so its deletion waits for its agent).
func (f *claimFixture) pod(name, app string, deleting bool, refs ...metav1.OwnerReference) {
	f.T.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": app}, OwnerReferences: refs},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	f.Create(claimPods, p)
	if deleting {
		if err := f.Client.Delete(context.Background(), claimPods, p, metav1.DeletePropagationBackground); err != nil {
			f.T.Fatal(err)
		}
	}
}

func (f *claimFixture) get(name string) *corev1.Pod {
	f.T.Helper()
	p := f.Pod("default", name)
	if p == nil {
		f.T.Fatalf("no pod %s", name)
	}
	return p
}

func (f *claimFixture) spec() controller.ClaimSpec[*corev1.Pod] {
	return controller.ClaimSpec[*corev1.Pod]{Owner: f.owner, OwnerResource: claimReplicaSets, Resource: claimPods, Selector: labels.SelectorFromSet(labels.Set{"app": "web"})}
}

func podNames(ps []*corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

func TestClaim(t *testing.T) {
	t.Run("keeps, adopts and releases in one transaction", func(t *testing.T) {
		f := newClaimFixture(t)
		mine := controller.OwnerReference(f.owner, claimReplicaSets)
		other := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "j", UID: "job-uid", Controller: ptrTo(true)}
		plain := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: f.owner.UID}
		f.pod("kept", "web", false, mine)
		f.pod("relabelled", "db", false, mine)
		f.pod("orphan", "web", false)
		f.pod("referenced", "web", false, plain) // names the owner, but not as its controller
		f.pod("orphan-deleting", "web", true)
		f.pod("stranger", "db", false)
		f.pod("others", "web", false, other)
		before := f.Store.Entries()
		got, err := controller.Claim(context.Background(), f.Client, f.spec())
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"kept", "orphan", "referenced"}; !slices.Equal(podNames(got), want) {
			t.Fatalf("claimed %v, want %v", podNames(got), want)
		}
		if n := f.Store.Entries() - before; n != 1 {
			t.Fatalf("%d transactions, want the adoptions and the release in one", n)
		}
		for _, p := range got {
			if cur := f.get(p.Name); cur.ResourceVersion != p.ResourceVersion {
				t.Errorf("%s returned at revision %s, stored at %s", p.Name, p.ResourceVersion, cur.ResourceVersion)
			}
		}
		for _, name := range []string{"orphan", "referenced"} {
			p := f.get(name)
			if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != f.owner.UID || len(p.OwnerReferences) != 1 {
				t.Errorf("%s not adopted with a single reference: %+v", name, p.OwnerReferences)
			}
		}
		if p := f.get("relabelled"); len(p.OwnerReferences) != 0 {
			t.Errorf("relabelled pod not released: %+v", p.OwnerReferences)
		}
		for _, name := range []string{"orphan-deleting", "stranger"} {
			if p := f.get(name); len(p.OwnerReferences) != 0 {
				t.Errorf("%s adopted: %+v", name, p.OwnerReferences)
			}
		}
		if ref := metav1.GetControllerOf(f.get("others")); ref == nil || ref.UID != "job-uid" {
			t.Errorf("another controller's pod touched: %+v", ref)
		}
		// Settled: a second claim writes nothing.
		before = f.Store.Entries()
		if _, err := controller.Claim(context.Background(), f.Client, f.spec()); err != nil || f.Store.Entries() != before {
			t.Fatalf("second claim wrote %d entries (err %v)", f.Store.Entries()-before, err)
		}
	})

	t.Run("an owner being deleted neither adopts nor releases", func(t *testing.T) {
		f := newClaimFixture(t)
		mine := controller.OwnerReference(f.owner, claimReplicaSets)
		f.pod("kept", "web", false, mine)
		f.pod("relabelled", "db", false, mine)
		f.pod("orphan", "web", false)
		ts := metav1.Now()
		f.owner.DeletionTimestamp = &ts
		before := f.Store.Entries()
		got, err := controller.Claim(context.Background(), f.Client, f.spec())
		if err != nil || !slices.Equal(podNames(got), []string{"kept"}) || f.Store.Entries() != before {
			t.Fatalf("claimed %v, %d writes, err %v; want kept alone and no write", podNames(got), f.Store.Entries()-before, err)
		}
	})

	t.Run("ignored objects are neither claimed nor released", func(t *testing.T) {
		f := newClaimFixture(t)
		mine := controller.OwnerReference(f.owner, claimReplicaSets)
		f.pod("going", "db", true, mine)
		f.pod("kept", "web", false, mine)
		spec := f.spec()
		spec.Ignore = func(p *corev1.Pod) bool { return p.DeletionTimestamp != nil }
		got, err := controller.Claim(context.Background(), f.Client, spec)
		if err != nil || !slices.Equal(podNames(got), []string{"kept"}) {
			t.Fatalf("claimed %v, err %v", podNames(got), err)
		}
		if p := f.get("going"); metav1.GetControllerOf(p) == nil {
			t.Fatalf("ignored pod released: %+v", p.OwnerReferences)
		}
	})

	t.Run("members only", func(t *testing.T) {
		f := newClaimFixture(t)
		mine := controller.OwnerReference(f.owner, claimReplicaSets)
		f.pod("web-0", "web", false, mine)
		f.pod("stray", "web", false, mine)
		f.pod("web-1", "web", false)
		f.pod("other", "web", false)
		spec := f.spec()
		spec.Member = func(p *corev1.Pod) bool { return p.Name == "web-0" || p.Name == "web-1" }
		got, err := controller.Claim(context.Background(), f.Client, spec)
		if err != nil || !slices.Equal(podNames(got), []string{"web-0", "web-1"}) {
			t.Fatalf("claimed %v, err %v", podNames(got), err)
		}
		if p := f.get("stray"); len(p.OwnerReferences) != 0 {
			t.Fatalf("non-member not released: %+v", p.OwnerReferences)
		}
		if p := f.get("other"); len(p.OwnerReferences) != 0 {
			t.Fatalf("non-member adopted: %+v", p.OwnerReferences)
		}
	})

	t.Run("an empty selector claims nothing", func(t *testing.T) {
		f := newClaimFixture(t)
		f.pod("orphan", "web", false)
		spec := f.spec()
		spec.Selector = labels.Everything()
		if _, err := controller.Claim(context.Background(), f.Client, spec); !errors.Is(err, controller.ErrEmptySelector) {
			t.Fatalf("err %v, want ErrEmptySelector", err)
		}
		if p := f.get("orphan"); len(p.OwnerReferences) != 0 {
			t.Fatalf("adopted with an empty selector: %+v", p.OwnerReferences)
		}
	})

	t.Run("a failed write aborts the claim", func(t *testing.T) {
		f := newClaimFixture(t)
		f.pod("orphan", "web", false)
		f.Store.Fail = func(*fsm.Txn) error { return fsm.ErrConflict }
		if _, err := controller.Claim(context.Background(), f.Client, f.spec()); !errors.Is(err, fsm.ErrConflict) {
			t.Fatalf("err %v, want the conflict", err)
		}
	})
}

func TestControlledAndControllerOf(t *testing.T) {
	f := newClaimFixture(t)
	mine := controller.OwnerReference(f.owner, claimReplicaSets)
	plain := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: f.owner.UID}
	f.pod("controlled", "web", false, mine)
	f.pod("referenced", "web", false, plain)
	f.pod("orphan", "web", false)
	got, err := controller.Controlled[*corev1.Pod](f.Client.State(), claimPods, f.owner)
	if err != nil || !slices.Equal(podNames(got), []string{"controlled"}) {
		t.Fatalf("controlled %v, err %v", podNames(got), err)
	}
	st := f.Client.State()
	if ref := controller.ControllerOf(st.Get(objects.Key(claimPods, "default", "controlled"))); ref == nil || ref.UID != f.owner.UID {
		t.Fatalf("controller.ControllerOf(controlled) = %+v", ref)
	}
	for _, name := range []string{"referenced", "orphan"} {
		if ref := controller.ControllerOf(st.Get(objects.Key(claimPods, "default", name))); ref != nil {
			t.Fatalf("controller.ControllerOf(%s) = %+v, want nil", name, ref)
		}
	}
	if controller.ControllerOf(nil) != nil {
		t.Fatal("controller.ControllerOf(nil) is not nil")
	}
}

func TestAdopterKeys(t *testing.T) {
	f := newClaimFixture(t)
	f.pod("orphan", "web", false)
	f.pod("stranger", "db", false)
	st := f.Client.State()
	if keys := controller.AdopterKeys(st, claimReplicaSets, st.Get(objects.Key(claimPods, "default", "orphan"))); len(keys) != 1 || keys[0].Name != "web" {
		t.Fatalf("adopters of a matching orphan: %v, want web", keys)
	}
	if keys := controller.AdopterKeys(st, claimReplicaSets, st.Get(objects.Key(claimPods, "default", "stranger"))); len(keys) != 0 {
		t.Fatalf("adopters of a pod no selector matches: %v", keys)
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestOwnerKeys(t *testing.T) {
	f := newClaimFixture(t)
	f.pod("orphan", "web", false)
	f.pod("mine", "web", false, controller.OwnerReference(f.owner, claimReplicaSets))
	st := f.Client.State()
	orphan := st.Get(objects.Key(claimPods, "default", "orphan"))
	mine := st.Get(objects.Key(claimPods, "default", "mine"))
	relabelled := *orphan
	relabelled.Meta.Labels = map[string]string{"app": "other"}
	for _, tc := range []struct {
		name string
		ev   fsm.Event
		want int
	}{
		{"an orphan appears", fsm.Event{Type: fsm.Added, Record: orphan}, 1},
		{"an orphan's status changes", fsm.Event{Type: fsm.Modified, Record: orphan, Prev: orphan}, 0},
		{"an orphan is relabelled", fsm.Event{Type: fsm.Modified, Record: orphan, Prev: &relabelled}, 1},
		{"a controlled pod changes", fsm.Event{Type: fsm.Modified, Record: mine, Prev: mine}, 1},
		{"a pod is released", fsm.Event{Type: fsm.Modified, Record: orphan, Prev: mine}, 2},
		{"an orphan is deleted", fsm.Event{Type: fsm.Deleted, Record: orphan, Prev: orphan}, 0},
	} {
		keys := controller.OwnerKeys(st, tc.ev, claimReplicaSets)
		if len(keys) != tc.want {
			t.Errorf("%s: keys %v, want %d", tc.name, keys, tc.want)
		}
		for _, k := range keys {
			if k.Name != "web" {
				t.Errorf("%s: key %v, want the ReplicaSet web", tc.name, k)
			}
		}
	}
}

package gc

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/objects"
	"skiff/master/registry"
)

var (
	configmaps = registry.Lookup("", "v1", "configmaps")
	pods       = registry.Lookup("", "v1", "pods")
	now        = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
)

// fixture is the collector in a controllertest world whose clock stands at now.
type fixture struct {
	*controllertest.Env
	gc controller.Reconciler
}

func newFixture(t *testing.T) *fixture {
	env := controllertest.NewEnv(t)
	env.SetNow(now)
	return &fixture{Env: env, gc: New(env.Client)}
}

func ref(owner metav1.Object, kind string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: kind, Name: owner.GetName(), UID: owner.GetUID()}
}

// configMap creates a ConfigMap owned by refs.
func (f *fixture) configMap(name string, refs ...metav1.OwnerReference) *corev1.ConfigMap {
	f.T.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", OwnerReferences: refs}}
	f.Create(configmaps, cm)
	return cm
}

// pod creates a pod bound to a node (so its deletion is graceful), owned by refs.
func (f *fixture) pod(name string, refs ...metav1.OwnerReference) *corev1.Pod {
	f.T.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", OwnerReferences: refs},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	f.Create(pods, p)
	return p
}

func (f *fixture) get(name string) *corev1.ConfigMap {
	cm, err := controller.Get[*corev1.ConfigMap](f.Client.State(), configmaps, "default", name)
	if err != nil {
		f.T.Fatal(err)
	}
	return cm
}

func (f *fixture) delete(name string, policy metav1.DeletionPropagation) {
	f.T.Helper()
	if err := f.Client.Delete(context.Background(), configmaps, f.get(name), policy); err != nil {
		f.T.Fatal(err)
	}
}

// settle reconciles every key the sweep finds until the store stops changing, as the
// runner's resyncs would.
func (f *fixture) settle() {
	f.T.Helper()
	for range 10 {
		before := f.Store.Entries()
		for _, k := range f.gc.Primary(f.Client.State()) {
			if err := f.gc.Reconcile(context.Background(), k); err != nil {
				f.T.Fatalf("reconcile %s: %v", k, err)
			}
		}
		if f.Store.Entries() == before {
			return
		}
	}
	f.T.Fatal("the collector did not settle")
}

func TestCollectorBackground(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fixture)
		// gone and kept name ConfigMaps after the collector settled.
		gone, kept []string
		check      func(t *testing.T, f *fixture)
	}{{
		name: "dependent of a deleted owner is deleted",
		setup: func(f *fixture) {
			o := f.configMap("owner")
			f.configMap("dep", ref(o, "ConfigMap"))
			f.delete("owner", metav1.DeletePropagationBackground)
		},
		gone: []string{"owner", "dep"},
	}, {
		name: "an owner recreated under the same name is another owner",
		setup: func(f *fixture) {
			o := f.configMap("owner")
			f.configMap("dep", ref(o, "ConfigMap"))
			f.delete("owner", metav1.DeletePropagationBackground)
			f.configMap("owner")
		},
		gone: []string{"dep"}, kept: []string{"owner"},
	}, {
		name: "a dependent with another live owner only loses the dangling reference",
		setup: func(f *fixture) {
			a, b := f.configMap("a"), f.configMap("b")
			f.configMap("dep", ref(a, "ConfigMap"), ref(b, "ConfigMap"))
			f.delete("a", metav1.DeletePropagationBackground)
		},
		gone: []string{"a"}, kept: []string{"b", "dep"},
		check: func(t *testing.T, f *fixture) {
			if refs := f.get("dep").OwnerReferences; len(refs) != 1 || refs[0].Name != "b" {
				t.Fatalf("owner references = %+v, want only b", refs)
			}
		},
	}, {
		name: "live owners keep their dependents",
		setup: func(f *fixture) {
			o := f.configMap("owner")
			f.configMap("dep", ref(o, "ConfigMap"))
		},
		kept: []string{"owner", "dep"},
	}, {
		name: "an owner of an unknown kind is never taken for gone",
		setup: func(f *fixture) {
			f.configMap("dep", metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "Widget", Name: "w", UID: "w-uid"})
		},
		kept: []string{"dep"},
	}, {
		name: "a dependent created pointing at a missing owner is collected",
		setup: func(f *fixture) {
			f.configMap("dep", metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "never", UID: "nope"})
		},
		gone: []string{"dep"},
	}, {
		name: "a bound pod is deleted gracefully",
		setup: func(f *fixture) {
			o := f.configMap("owner")
			f.pod("p", ref(o, "ConfigMap"))
			f.delete("owner", metav1.DeletePropagationBackground)
		},
		gone: []string{"owner"},
		check: func(t *testing.T, f *fixture) {
			p, _ := controller.Get[*corev1.Pod](f.Client.State(), pods, "default", "p")
			if p == nil || p.DeletionTimestamp == nil || *p.DeletionGracePeriodSeconds != 30 {
				t.Fatalf("pod should be terminating with its grace period: %+v", p)
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			f.settle()
			for _, n := range tc.gone {
				if f.get(n) != nil {
					t.Errorf("%s should be gone", n)
				}
			}
			for _, n := range tc.kept {
				if f.get(n) == nil {
					t.Errorf("%s should be kept", n)
				}
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

func TestCollectorForegroundDeletesDependentsFirst(t *testing.T) {
	f := newFixture(t)
	o := f.configMap("owner")
	mid := f.configMap("mid", ref(o, "ConfigMap"))
	f.configMap("leaf", ref(mid, "ConfigMap"))
	other := f.configMap("other")
	f.configMap("shared", ref(o, "ConfigMap"), ref(other, "ConfigMap"))
	f.delete("owner", metav1.DeletePropagationForeground)

	key := objects.Key(configmaps, "default", "owner")
	if err := f.gc.Reconcile(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	// The owner waits; its dependent with dependents of its own is deleted in the foreground
	// too; the shared dependent is released, not deleted.
	if cm := f.get("owner"); cm == nil || cm.DeletionTimestamp == nil {
		t.Fatalf("owner must wait for its dependents: %+v", cm)
	}
	if cm := f.get("mid"); cm == nil || cm.DeletionTimestamp == nil || cm.Finalizers[0] != metav1.FinalizerDeleteDependents {
		t.Fatalf("mid must be deleting in the foreground: %+v", cm)
	}
	if refs := f.get("shared").OwnerReferences; len(refs) != 1 || refs[0].Name != "other" {
		t.Fatalf("shared must keep only its live owner: %+v", refs)
	}
	f.settle()
	for _, n := range []string{"owner", "mid", "leaf"} {
		if f.get(n) != nil {
			t.Errorf("%s should be gone", n)
		}
	}
	if f.get("shared") == nil || f.get("other") == nil {
		t.Error("shared and other must stay")
	}
}

func TestCollectorForegroundWaitsForTerminatingPods(t *testing.T) {
	f := newFixture(t)
	o := f.configMap("owner")
	f.pod("p", ref(o, "ConfigMap"))
	f.delete("owner", metav1.DeletePropagationForeground)
	f.settle()
	if cm := f.get("owner"); cm == nil {
		t.Fatal("owner removed while its pod still terminates")
	}
	// The agent finishes the pod.
	p, _ := controller.Get[*corev1.Pod](f.Client.State(), pods, "default", "p")
	rev, _ := objects.ParseRV(p.ResourceVersion)
	if _, err := f.Client.Commit(context.Background(), fsm.Delete(objects.Key(pods, "default", "p"), rev)); err != nil {
		t.Fatal(err)
	}
	f.settle()
	if f.get("owner") != nil {
		t.Fatal("owner should be gone once its pod is")
	}
}

func TestCollectorOrphanReleasesDependents(t *testing.T) {
	f := newFixture(t)
	o := f.configMap("owner")
	f.configMap("dep", ref(o, "ConfigMap"))
	f.delete("owner", metav1.DeletePropagationOrphan)
	if f.get("owner").DeletionTimestamp == nil {
		t.Fatal("orphan deletion should only mark the owner")
	}
	f.settle()
	if f.get("owner") != nil {
		t.Fatal("owner should be gone")
	}
	if dep := f.get("dep"); dep == nil || len(dep.OwnerReferences) != 0 {
		t.Fatalf("dep should stay without owner references: %+v", dep)
	}
}

func TestKeysMapADeletedOwnerToItsDependents(t *testing.T) {
	f := newFixture(t)
	o := f.configMap("owner")
	f.configMap("dep", ref(o, "ConfigMap"))
	rec := f.Client.State().Get(objects.Key(configmaps, "default", "owner"))
	keys := f.gc.Keys(f.Client.State(), fsm.Event{Type: fsm.Deleted, Record: rec})
	if len(keys) != 1 || keys[0].Name != "dep" {
		t.Fatalf("keys = %v, want dep", keys)
	}
	// An update that changes nothing about owners concerns nobody.
	dep := f.Client.State().Get(objects.Key(configmaps, "default", "dep"))
	if keys := f.gc.Keys(f.Client.State(), fsm.Event{Type: fsm.Modified, Record: dep, Prev: dep}); len(keys) != 0 {
		t.Fatalf("keys = %v, want none", keys)
	}
}

func TestRunnerCollectsCascades(t *testing.T) {
	f := newFixture(t)
	controllertest.Go(t, (&controller.Runner{Name: "gc", Reconciler: f.gc, Store: f.Store, Resync: time.Hour}).Run)
	bg := f.configMap("bg")
	for _, n := range []string{"bg-1", "bg-2"} {
		f.configMap(n, ref(bg, "ConfigMap"))
	}
	fg := f.configMap("fg")
	f.configMap("fg-1", ref(fg, "ConfigMap"))
	f.delete("bg", metav1.DeletePropagationBackground)
	f.delete("fg", metav1.DeletePropagationForeground)
	controllertest.WaitFor(t, "both cascades collected", func() bool {
		for _, n := range []string{"bg", "bg-1", "bg-2", "fg", "fg-1"} {
			if f.get(n) != nil {
				return false
			}
		}
		return true
	})
}

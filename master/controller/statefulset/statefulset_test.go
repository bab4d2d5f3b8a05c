package statefulset

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"skiff/master/controller"
)

// step is one move of a scripted scenario: something the test does, then the pods expected
// after it ("~" marks a terminating pod).
type step struct {
	do   func(*fixture)
	want []string
}

func reconcile(f *fixture) { f.reconcile("web") }
func run(f *fixture)       { f.schedule(); f.Agent() }

func TestScaling(t *testing.T) {
	tests := []struct {
		name  string
		set   *appsv1.StatefulSet
		steps []step
	}{
		{
			name: "OrderedReady creates one at a time, each after the previous is ready",
			set:  statefulSet("web", 3),
			steps: []step{
				{reconcile, []string{"web-0"}},
				{reconcile, []string{"web-0"}},
				{func(f *fixture) { f.schedule() }, []string{"web-0"}},
				{reconcile, []string{"web-0"}},
				{run, []string{"web-0"}},
				{reconcile, []string{"web-0", "web-1"}},
				{reconcile, []string{"web-0", "web-1"}},
				{run, []string{"web-0", "web-1"}},
				{reconcile, []string{"web-0", "web-1", "web-2"}},
			},
		},
		{
			name: "OrderedReady scales down from the top, one at a time",
			set:  statefulSet("web", 3),
			steps: []step{
				{func(f *fixture) { f.settle("web"); f.scale("web", 1) }, []string{"web-0", "web-1", "web-2"}},
				{reconcile, []string{"web-0", "web-1", "web-2~"}},
				{reconcile, []string{"web-0", "web-1", "web-2~"}},
				{run, []string{"web-0", "web-1"}},
				{reconcile, []string{"web-0", "web-1~"}},
				{run, []string{"web-0"}},
				{reconcile, []string{"web-0"}},
			},
		},
		{
			name: "OrderedReady does not scale down past an unready replica",
			set:  statefulSet("web", 3),
			steps: []step{
				{func(f *fixture) {
					f.settle("web")
					p := f.Pod("default", "web-0")
					p.Status.Conditions[0].Status = corev1.ConditionFalse
					f.WritePod(p)
					f.scale("web", 2)
				}, []string{"web-0", "web-1", "web-2"}},
				{reconcile, []string{"web-0", "web-1", "web-2"}},
			},
		},
		{
			name: "Parallel creates and deletes all at once",
			set:  statefulSet("web", 3, func(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = appsv1.ParallelPodManagement }),
			steps: []step{
				{reconcile, []string{"web-0", "web-1", "web-2"}},
				{func(f *fixture) { f.schedule(); f.scale("web", 0) }, []string{"web-0", "web-1", "web-2"}},
				{reconcile, []string{"web-0~", "web-1~", "web-2~"}},
				{run, nil},
			},
		},
		{
			name: "start ordinal",
			set: statefulSet("web", 2, func(s *appsv1.StatefulSet) {
				s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
			}),
			steps: []step{
				{func(f *fixture) { f.settle("web") }, []string{"web-5", "web-6"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.addSet(tt.set)
			for i, s := range tt.steps {
				s.do(f)
				if got := f.podNames(); !slices.Equal(got, s.want) {
					t.Fatalf("step %d: pods %v, want %v", i, got, s.want)
				}
			}
		})
	}
}

func TestPodIdentity(t *testing.T) {
	f := newFixture(t)
	f.addSet(statefulSet("web", 2, func(s *appsv1.StatefulSet) {
		s.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "www"}}}
	}))
	f.settle("web")
	s := f.set("web")
	zero := int32(0)
	rev := "web-" + controller.TemplateHash(&s.Spec.Template, &zero)
	for i, name := range []string{"web-0", "web-1"} {
		p := f.Pod("default", name)
		if p == nil {
			t.Fatalf("no pod %s", name)
		}
		if p.Spec.Hostname != name || p.Spec.Subdomain != "svc" {
			t.Errorf("%s: hostname %q subdomain %q", name, p.Spec.Hostname, p.Spec.Subdomain)
		}
		want := map[string]string{"app": "web", "statefulset.kubernetes.io/pod-name": name,
			"apps.kubernetes.io/pod-index": string(rune('0' + i)), "controller-revision-hash": rev}
		for k, v := range want {
			if p.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", name, k, p.Labels[k], v)
			}
		}
		if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != s.UID || ref.Kind != "StatefulSet" || !*ref.BlockOwnerDeletion {
			t.Errorf("%s: controller ref %+v", name, ref)
		}
		if len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].Name != "www" || p.Spec.Volumes[0].EmptyDir == nil {
			t.Errorf("%s: volumes %+v, want an emptyDir standing in for claim www", name, p.Spec.Volumes)
		}
	}
	st := s.Status
	if st.Replicas != 2 || st.ReadyReplicas != 2 || st.AvailableReplicas != 2 || st.CurrentReplicas != 2 || st.UpdatedReplicas != 2 ||
		st.CurrentRevision != rev || st.UpdateRevision != rev || st.ObservedGeneration != 1 || st.CollisionCount == nil || *st.CollisionCount != 0 {
		t.Errorf("status %+v, want 2 of everything at revision %s", st, rev)
	}

	// A user's change to the identity labels is undone.
	p := f.Pod("default", "web-1")
	p.Labels["apps.kubernetes.io/pod-index"] = "7"
	f.WritePod(p)
	f.reconcile("web")
	if got := f.Pod("default", "web-1").Labels["apps.kubernetes.io/pod-index"]; got != "1" {
		t.Errorf("pod-index label %q after reconcile, want it restored to 1", got)
	}
}

func TestFailedPodRecreated(t *testing.T) {
	f := newFixture(t)
	f.addSet(statefulSet("web", 2))
	f.settle("web")
	old := f.Pod("default", "web-1")
	old.Status.Phase = corev1.PodFailed
	f.WritePod(old)
	f.reconcile("web")
	if p := f.Pod("default", "web-1"); p != nil {
		t.Fatalf("failed web-1 still there (phase %s)", p.Status.Phase)
	}
	f.reconcile("web")
	p := f.Pod("default", "web-1")
	if p == nil || p.UID == old.UID || p.Status.Phase != corev1.PodPending {
		t.Fatalf("web-1 not recreated: %+v", p)
	}
}

func TestAdoptsOrphan(t *testing.T) {
	f := newFixture(t)
	s := statefulSet("web", 1)
	f.addSet(s)
	orphan := newPod(f.set("web"), &s.Spec.Template, "web-old", 0)
	orphan.OwnerReferences = nil
	f.Create(pods, orphan)
	f.reconcile("web")
	p := f.Pod("default", "web-0")
	if ref := metav1.GetControllerOf(p); ref == nil || p.UID != orphan.UID {
		t.Fatalf("orphan web-0 not adopted: %+v", p.OwnerReferences)
	}
}

// TestRollingUpdate changes the template and steps controller, scheduler and agent one at a
// time, recording the order in which replicas are taken down, and checking that no more
// than one is unavailable at any time.
func TestRollingUpdate(t *testing.T) {
	tests := []struct {
		name     string
		strategy appsv1.StatefulSetUpdateStrategy
		policy   appsv1.PodManagementPolicyType
		// order lists the ordinals replaced, in order; done whether currentRevision moves
		// to the update revision at the end.
		order []string
		done  bool
	}{
		{name: "all, highest first", order: []string{"web-2", "web-1", "web-0"}, done: true,
			strategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
		{name: "partition", order: []string{"web-2", "web-1"},
			strategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr(int32(1))}}},
		{name: "partition beyond replicas", order: nil,
			strategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr(int32(3))}}},
		{name: "parallel", policy: appsv1.ParallelPodManagement, order: []string{"web-2", "web-1", "web-0"}, done: true,
			strategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
		{name: "OnDelete", order: nil,
			strategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.addSet(statefulSet("web", 3, func(s *appsv1.StatefulSet) {
				s.Spec.UpdateStrategy = tt.strategy
				if tt.policy != "" {
					s.Spec.PodManagementPolicy = tt.policy
				}
			}))
			f.settle("web")
			oldRev := f.set("web").Status.UpdateRevision
			f.changeSet("web", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "busybox:2" })

			var order []string
			check := func() {
				t.Helper()
				down := 3
				for _, p := range f.Pods("default") {
					if p.DeletionTimestamp != nil {
						if !slices.Contains(order, p.Name) {
							order = append(order, p.Name)
						}
						continue
					}
					if ok, _ := availableIn(p, 0, f.Now()); ok {
						down--
					}
				}
				if down > 1 {
					t.Fatalf("%d replicas unavailable at once: %v", down, f.podNames())
				}
			}
			for range 30 {
				before := f.Store.Entries()
				f.reconcile("web")
				check()
				f.schedule()
				f.Agent()
				check()
				if f.Store.Entries() == before {
					break
				}
			}
			if !slices.Equal(order, tt.order) {
				t.Errorf("replaced %v, want %v", order, tt.order)
			}
			s := f.set("web")
			st := s.Status
			if st.UpdatedReplicas != int32(len(tt.order)) || st.ReadyReplicas != 3 || st.ObservedGeneration != 2 {
				t.Errorf("status %+v, want %d updated and 3 ready", st, len(tt.order))
			}
			if wantCurrent := map[bool]string{true: st.UpdateRevision, false: oldRev}[tt.done]; st.CurrentRevision != wantCurrent {
				t.Errorf("currentRevision %s, want %s (update revision %s)", st.CurrentRevision, wantCurrent, st.UpdateRevision)
			}
			for _, p := range f.Pods("default") {
				updated := slices.Contains(tt.order, p.Name)
				if img := p.Spec.Containers[0].Image; updated != (img == "busybox:2") || updated != (revisionOf(p) == st.UpdateRevision) {
					t.Errorf("%s: image %s revision %s", p.Name, img, revisionOf(p))
				}
			}
		})
	}
}

// TestPartitionKeepsCurrentRevision checks that a replica below the partition that is
// deleted comes back at the current revision, not the update revision.
func TestPartitionKeepsCurrentRevision(t *testing.T) {
	f := newFixture(t)
	f.addSet(statefulSet("web", 3))
	f.settle("web")
	oldRev := f.set("web").Status.CurrentRevision
	f.changeSet("web", func(s *appsv1.StatefulSet) {
		s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr(int32(2))}
		s.Spec.Template.Spec.Containers[0].Image = "busybox:2"
	})
	f.settle("web")
	f.RemovePod(f.Pod("default", "web-0"))
	f.settle("web")
	p := f.Pod("default", "web-0")
	if revisionOf(p) != oldRev || p.Spec.Containers[0].Image != "busybox:1" || p.Spec.Hostname != "web-0" {
		t.Errorf("web-0 recreated at revision %s image %s, want %s busybox:1", revisionOf(p), p.Spec.Containers[0].Image, oldRev)
	}
	if p := f.Pod("default", "web-2"); p.Spec.Containers[0].Image != "busybox:2" {
		t.Errorf("web-2 image %s, want busybox:2", p.Spec.Containers[0].Image)
	}
}

func TestMinReadySeconds(t *testing.T) {
	f := newFixture(t)
	f.addSet(statefulSet("web", 2, func(s *appsv1.StatefulSet) { s.Spec.MinReadySeconds = 10 }))
	f.reconcile("web")
	run(f)
	// Available means ready for strictly more than minReadySeconds: the requeue lands just
	// past the boundary, where web-0 counts.
	d := f.reconcile("web")
	if d <= 10*time.Second || d > 11*time.Second {
		t.Fatalf("requeue after %v, want just over 10s until web-0 is available", d)
	}
	if got := f.podNames(); !slices.Equal(got, []string{"web-0"}) {
		t.Fatalf("pods %v before web-0 is available", got)
	}
	f.Advance(d)
	f.reconcile("web")
	if got := f.podNames(); !slices.Equal(got, []string{"web-0", "web-1"}) {
		t.Fatalf("pods %v once web-0 is available", got)
	}
	if st := f.set("web").Status; st.ReadyReplicas != 1 || st.AvailableReplicas != 1 {
		t.Errorf("status %+v", st)
	}
}

func TestMaxUnavailable(t *testing.T) {
	f := newFixture(t)
	f.addSet(statefulSet("web", 4, func(s *appsv1.StatefulSet) {
		mu := intstr.FromInt32(2)
		s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr(int32(0)), MaxUnavailable: &mu}
	}))
	f.settle("web")
	f.changeSet("web", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "busybox:2" })
	f.reconcile("web")
	if got := f.podNames(); !slices.Equal(got, []string{"web-0", "web-1", "web-2~", "web-3~"}) {
		t.Errorf("pods %v, want the two highest replaced at once", got)
	}
}

func ptr[T any](v T) *T { return &v }

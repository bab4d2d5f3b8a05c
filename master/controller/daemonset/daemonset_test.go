package daemonset

import (
	"context"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"skiff/master/controller"
	"skiff/master/podstatus"
)

func TestPlacement(t *testing.T) {
	tests := []struct {
		name   string
		nodes  []*corev1.Node
		ds     func(*appsv1.DaemonSet)
		change func(*fixture)
		want   []string
		// misscheduled is status.numberMisscheduled at the end.
		misscheduled int32
	}{
		{name: "one pod per node", nodes: []*corev1.Node{node("n1"), node("n2")}, want: []string{"n1", "n2"}},
		{name: "node added gets a pod", nodes: []*corev1.Node{node("n1")},
			change: func(f *fixture) { f.addNode(node("n2")) }, want: []string{"n1", "n2"}},
		{name: "node removed loses its pod", nodes: []*corev1.Node{node("n1"), node("n2")},
			change: func(f *fixture) { f.removeNode("n2") }, want: []string{"n1"}},
		{name: "NoExecute taint without toleration deletes the pod", nodes: []*corev1.Node{node("n1"), node("n2")},
			change: func(f *fixture) { f.changeNode("n2", taint("dedicated", corev1.TaintEffectNoExecute)) },
			want:   []string{"n1"}},
		{name: "NoSchedule taint leaves a running pod, counted misscheduled", nodes: []*corev1.Node{node("n1"), node("n2")},
			change: func(f *fixture) { f.changeNode("n2", taint("dedicated", corev1.TaintEffectNoSchedule)) },
			want:   []string{"n1", "n2"}, misscheduled: 1},
		{name: "NoSchedule taint keeps a new pod off",
			nodes: []*corev1.Node{node("n1"), node("n2", taint("dedicated", corev1.TaintEffectNoSchedule))},
			want:  []string{"n1"}},
		{name: "tolerated taint",
			nodes: []*corev1.Node{node("n1"), node("n2", taint("dedicated", corev1.TaintEffectNoExecute))},
			ds: func(ds *appsv1.DaemonSet) {
				ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
			},
			want: []string{"n1", "n2"}},
		{name: "cordoned node still gets its pod",
			nodes: []*corev1.Node{node("n1"), node("n2", func(n *corev1.Node) {
				n.Spec.Unschedulable = true
				taint(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)(n)
			})},
			want: []string{"n1", "n2"}},
		{name: "a node that is not Ready gets no new pod: the scheduler would never bind it there",
			nodes: []*corev1.Node{node("n1"), node("n2", notReady)}, want: []string{"n1"}},
		{name: "not-ready and unreachable nodes keep their pods", nodes: []*corev1.Node{node("n1"), node("n2")},
			change: func(f *fixture) {
				f.changeNode("n2", taint(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute))
				f.changeNode("n1", taint(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute))
			},
			want: []string{"n1", "n2"}},
		{name: "network-unavailable tolerated only with host network",
			nodes: []*corev1.Node{node("n1", taint(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule))},
			want:  nil},
		{name: "network-unavailable, host network",
			nodes: []*corev1.Node{node("n1", taint(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule))},
			ds:    func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.HostNetwork = true },
			want:  []string{"n1"}},
		{name: "node selector", nodes: []*corev1.Node{node("n1", label("disk", "ssd")), node("n2")},
			ds:   func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"} },
			want: []string{"n1"}},
		{name: "label removed deletes the pod", nodes: []*corev1.Node{node("n1", label("disk", "ssd")), node("n2", label("disk", "ssd"))},
			ds:     func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"} },
			change: func(f *fixture) { f.changeNode("n2", func(n *corev1.Node) { delete(n.Labels, "disk") }) },
			want:   []string{"n1"}},
		{name: "required node affinity", nodes: []*corev1.Node{node("n1", label("zone", "a")), node("n2", label("zone", "b")), node("n3")},
			ds: func(ds *appsv1.DaemonSet) {
				ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
						{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}},
						{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n3"}}}},
					}},
				}}
			},
			want: []string{"n2", "n3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for _, n := range tt.nodes {
				f.addNode(n)
			}
			var mutate []func(*appsv1.DaemonSet)
			if tt.ds != nil {
				mutate = append(mutate, tt.ds)
			}
			f.addDaemonSet(daemonSet("ds", mutate...))
			f.settle("ds")
			if tt.change != nil {
				tt.change(f)
				f.settle("ds")
			}
			if got := f.nodesWithPods(); !slices.Equal(got, tt.want) {
				t.Errorf("pods on %v, want %v", got, tt.want)
			}
			st := f.daemonSet("ds").Status
			if st.NumberMisscheduled != tt.misscheduled {
				t.Errorf("numberMisscheduled = %d, want %d", st.NumberMisscheduled, tt.misscheduled)
			}
			want := int32(len(tt.want)) - tt.misscheduled
			if st.DesiredNumberScheduled != want || st.CurrentNumberScheduled != want || st.NumberReady != want ||
				st.NumberAvailable != want || st.UpdatedNumberScheduled != want || st.NumberUnavailable != 0 || st.ObservedGeneration != 1 {
				t.Errorf("status = %+v, want %d desired, scheduled, ready, available and updated", st, want)
			}
		})
	}
}

func TestPodShape(t *testing.T) {
	f := newFixture(t)
	f.addNode(node("n1"))
	f.addDaemonSet(daemonSet("ds", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
				{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1", "n2"}}}},
			}},
		}}
	}))
	f.reconcile("ds")
	ps := f.Pods("default")
	if len(ps) != 1 {
		t.Fatalf("%d pods, want 1", len(ps))
	}
	p, ds := ps[0], f.daemonSet("ds")
	if p.Spec.NodeName != "" {
		t.Errorf("pod bound to %q by the controller; the scheduler binds", p.Spec.NodeName)
	}
	if p.GenerateName != "ds-" || len(p.Name) != len("ds-")+5 {
		t.Errorf("name %q (generateName %q), want ds-xxxxx", p.Name, p.GenerateName)
	}
	if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != ds.UID || ref.Kind != "DaemonSet" || ref.APIVersion != "apps/v1" {
		t.Errorf("controller ref %+v", ref)
	}
	if h := p.Labels["controller-revision-hash"]; h == "" || h != controller.TemplateHash(&ds.Spec.Template, nil) {
		t.Errorf("controller-revision-hash = %q", h)
	}
	terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	want := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}}
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 0 || len(terms[0].MatchFields) != 1 ||
		terms[0].MatchFields[0].Key != want.MatchFields[0].Key || !slices.Equal(terms[0].MatchFields[0].Values, []string{"n1"}) {
		t.Errorf("required node affinity terms %+v, want %+v", terms, want)
	}
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable, corev1.TaintNodeDiskPressure,
		corev1.TaintNodeMemoryPressure, corev1.TaintNodePIDPressure, corev1.TaintNodeUnschedulable} {
		if !slices.ContainsFunc(p.Spec.Tolerations, func(tol corev1.Toleration) bool {
			return tol.Key == key && tol.Operator == corev1.TolerationOpExists
		}) {
			t.Errorf("no default toleration for %s in %+v", key, p.Spec.Tolerations)
		}
	}
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("phase %q, want Pending", p.Status.Phase)
	}
}

func TestExtraPodsKeepOldest(t *testing.T) {
	f := newFixture(t)
	f.addNode(node("n1"))
	f.addDaemonSet(daemonSet("ds"))
	f.settle("ds")
	ds := f.daemonSet("ds")
	oldest := f.Pods("default")[0]
	f.Advance(time.Minute)
	for range 2 {
		extra := newPod(ds, "n1", "other")
		f.Create(pods, extra)
	}
	f.settle("ds")
	ps := f.Pods("default")
	if len(ps) != 1 || ps[0].Name != oldest.Name {
		t.Errorf("pods %v, want only the oldest %s", names(ps), oldest.Name)
	}
}

func TestAdoptsOrphan(t *testing.T) {
	f := newFixture(t)
	f.addNode(node("n1"))
	ds := daemonSet("ds")
	f.addDaemonSet(ds)
	cur := f.daemonSet("ds")
	orphan := newPod(cur, "n1", controller.TemplateHash(&cur.Spec.Template, nil))
	orphan.OwnerReferences = nil
	f.Create(pods, orphan)
	f.settle("ds")
	ps := f.Pods("default")
	if len(ps) != 1 || ps[0].Name != orphan.Name || metav1.GetControllerOf(ps[0]) == nil {
		t.Fatalf("pods %v, want the adopted orphan %s alone", names(ps), orphan.Name)
	}
}

func TestFailedPodReplacedWithBackoff(t *testing.T) {
	f := newFixture(t)
	f.addNode(node("n1"))
	f.addDaemonSet(daemonSet("ds"))
	f.settle("ds")

	fail := func() string {
		p := f.Pods("default")[0]
		p.Status.Phase = corev1.PodFailed
		f.WritePod(p)
		return p.Name
	}
	first := fail()
	if d := f.reconcile("ds"); d != 0 {
		t.Fatalf("first failure held back %v", d)
	}
	f.reconcile("ds")
	ps := f.Pods("default")
	if len(ps) != 1 || ps[0].Name == first {
		t.Fatalf("pods %v after a failure, want one replacement", names(ps))
	}
	f.schedule()
	f.Agent()

	second := fail()
	d := f.reconcile("ds")
	if d <= 0 || d > time.Second {
		t.Fatalf("second failure requeued after %v, want within the 1s back-off", d)
	}
	if ps := f.Pods("default"); len(ps) != 1 || ps[0].Name != second {
		t.Fatalf("failed pod replaced during back-off: %v", names(ps))
	}
	f.Advance(time.Second)
	f.reconcile("ds")
	f.reconcile("ds")
	if ps := f.Pods("default"); len(ps) != 1 || ps[0].Name == second {
		t.Fatalf("failed pod not replaced after back-off: %v", names(ps))
	}
}

// TestRollingUpdate steps controller, scheduler and agent one at a time after a template
// change and checks after every step that no more than maxUnavailable eligible nodes are
// without an available pod (and no more than maxSurge extra pods run), that the limit is
// actually used, and that the rollout completes.
func TestRollingUpdate(t *testing.T) {
	tests := []struct {
		name            string
		maxUnavailable  intstr.IntOrString
		maxSurge        intstr.IntOrString
		wantUnavailable int
		wantSurge       int
	}{
		{"default", intstr.FromInt32(1), intstr.FromInt32(0), 1, 0},
		{"two", intstr.FromInt32(2), intstr.FromInt32(0), 2, 0},
		{"percent rounds up", intstr.FromString("50%"), intstr.FromInt32(0), 3, 0},
		{"surge", intstr.FromInt32(0), intstr.FromInt32(1), 0, 1},
		{"surge percent", intstr.FromInt32(0), intstr.FromString("40%"), 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			const n = 5
			for i := range n {
				f.addNode(node("n" + string(rune('1'+i))))
			}
			f.addDaemonSet(daemonSet("ds", func(ds *appsv1.DaemonSet) {
				ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &tt.maxUnavailable, MaxSurge: &tt.maxSurge}
			}))
			f.settle("ds")
			f.changeDaemonSet("ds", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "busybox:2" })
			hash := controller.TemplateHash(&f.daemonSet("ds").Spec.Template, nil)

			maxUnavailable, maxSurge := 0, 0
			check := func(step string) {
				t.Helper()
				live, available := 0, map[string]bool{}
				for _, p := range f.Pods("default") {
					if p.DeletionTimestamp != nil {
						continue
					}
					live++
					if podstatus.Ready(p) {
						available[targetNode(p)] = true
					}
				}
				unavailable := n - len(available)
				maxUnavailable, maxSurge = max(maxUnavailable, unavailable), max(maxSurge, live-n)
				if unavailable > tt.wantUnavailable {
					t.Fatalf("after %s: %d nodes without an available pod, maxUnavailable %d", step, unavailable, tt.wantUnavailable)
				}
				if live-n > tt.wantSurge {
					t.Fatalf("after %s: %d pods on %d nodes, maxSurge %d", step, live, n, tt.wantSurge)
				}
			}
			done := func() bool {
				ps := f.Pods("default")
				if len(ps) != n {
					return false
				}
				for _, p := range ps {
					if !isUpdated(p, hash) || !podstatus.Ready(p) {
						return false
					}
				}
				return true
			}
			for i := 0; !done(); i++ {
				if i == 50 {
					t.Fatalf("rollout did not finish; pods %v", names(f.Pods("default")))
				}
				f.reconcile("ds")
				check("controller")
				f.schedule()
				check("scheduler")
				f.Agent()
				check("agent")
			}
			if maxUnavailable != tt.wantUnavailable || maxSurge != tt.wantSurge {
				t.Errorf("at most %d unavailable and %d surged during the rollout, want the limits %d and %d used",
					maxUnavailable, maxSurge, tt.wantUnavailable, tt.wantSurge)
			}
			f.settle("ds")
			if st := f.daemonSet("ds").Status; st.UpdatedNumberScheduled != n || st.NumberAvailable != n || st.ObservedGeneration != 2 {
				t.Errorf("status after rollout %+v", st)
			}
		})
	}
}

func TestOnDelete(t *testing.T) {
	f := newFixture(t)
	f.addNode(node("n1"))
	f.addNode(node("n2"))
	f.addDaemonSet(daemonSet("ds", func(ds *appsv1.DaemonSet) {
		ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	}))
	f.settle("ds")
	f.changeDaemonSet("ds", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "busybox:2" })
	f.settle("ds")
	hash := controller.TemplateHash(&f.daemonSet("ds").Spec.Template, nil)
	for _, p := range f.Pods("default") {
		if isUpdated(p, hash) {
			t.Fatalf("OnDelete replaced %s", p.Name)
		}
	}
	if st := f.daemonSet("ds").Status; st.UpdatedNumberScheduled != 0 || st.ObservedGeneration != 2 {
		t.Errorf("status %+v", st)
	}
	victim := f.Pods("default")[0]
	if err := f.Client.Delete(context.Background(), pods, victim, metav1.DeletePropagationBackground); err != nil {
		t.Fatal(err)
	}
	f.settle("ds")
	updated := 0
	for _, p := range f.Pods("default") {
		if isUpdated(p, hash) {
			updated++
		}
	}
	if updated != 1 {
		t.Errorf("%d pods at the new revision after deleting one, want 1", updated)
	}
}

func TestNodeKeys(t *testing.T) {
	f := newFixture(t)
	f.addDaemonSet(daemonSet("a"))
	f.addDaemonSet(daemonSet("b"))
	f.addNode(node("n1"))
	w, _ := f.Store.FSM().Watch(fsmWatchNodes(f))
	defer w.Stop()
	f.changeNode("n1", func(n *corev1.Node) {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	})
	f.changeNode("n1", label("x", "y"))
	var got []int
	for range 2 {
		ev := <-w.Events()
		got = append(got, len(f.r.Keys(f.Client.State(), ev)))
	}
	if !slices.Equal(got, []int{0, 2}) {
		t.Errorf("keys per node change %v, want a status change ignored and a label change queuing both DaemonSets", got)
	}
}

func names(ps []*corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name+"@"+targetNode(p)+"/"+string(p.Status.Phase))
	}
	return out
}

var _ controller.Reconciler = (*reconciler)(nil)

func TestMinReadySeconds(t *testing.T) {
	f := newFixture(t)
	f.addNode(node("n1"))
	f.addDaemonSet(daemonSet("ds", func(ds *appsv1.DaemonSet) { ds.Spec.MinReadySeconds = 10 }))
	f.reconcile("ds")
	f.schedule()
	f.Agent()
	// Available means ready for strictly more than minReadySeconds: the requeue lands just
	// past the boundary, where the pod counts.
	d := f.reconcile("ds")
	if d <= 10*time.Second || d > 11*time.Second {
		t.Fatalf("requeue after %v, want just over 10s until the pod is available", d)
	}
	if st := f.daemonSet("ds").Status; st.NumberReady != 1 || st.NumberAvailable != 0 || st.NumberUnavailable != 1 {
		t.Fatalf("status %+v before minReadySeconds", st)
	}
	f.Advance(d)
	if d := f.reconcile("ds"); d != 0 {
		t.Fatalf("requeue after %v once available", d)
	}
	if st := f.daemonSet("ds").Status; st.NumberAvailable != 1 || st.NumberUnavailable != 0 {
		t.Fatalf("status %+v after minReadySeconds", st)
	}
}

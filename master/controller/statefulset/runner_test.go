package statefulset

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/registry"
)

// TestRunner drives the controller through controller.Runner: an OrderedReady set comes up
// in order, rolls out a template change, and writes Kubernetes' events.
func TestRunner(t *testing.T) {
	env := controllertest.NewLiveEnv(t)
	rec := controller.NewRecorder(env.Client, "statefulset-controller", nil)
	f := withController(env, rec)
	runner := &controller.Runner{Name: "statefulset", Reconciler: f.r, Store: f.Store, Resync: 200 * time.Millisecond}
	controllertest.Go(t, rec.Run, runner.Run)

	f.addSet(statefulSet("web", 3))
	rolledOut := func(image string) func() bool {
		return func() bool {
			f.schedule()
			f.Agent()
			s := f.set("web")
			st := s.Status
			if st.ObservedGeneration != s.Generation || st.ReadyReplicas != 3 || st.UpdatedReplicas != 3 || st.CurrentRevision != st.UpdateRevision {
				return false
			}
			for _, p := range f.Pods("default") {
				if p.Spec.Containers[0].Image != image {
					return false
				}
			}
			return true
		}
	}
	controllertest.WaitFor(t, "three ready replicas", rolledOut("busybox:1"))
	f.changeSet("web", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "busybox:2" })
	controllertest.WaitFor(t, "the rollout", rolledOut("busybox:2"))

	want := []string{"create Pod web-0 in StatefulSet web successful", "create Pod web-1 in StatefulSet web successful",
		"create Pod web-2 in StatefulSet web successful", "delete Pod web-2 in StatefulSet web successful"}
	controllertest.WaitFor(t, "events", func() bool {
		evs, _ := controller.List[*corev1.Event](f.Client.State(), registry.Lookup("", "v1", "events"), "default", nil)
		var got []string
		for _, ev := range evs {
			if ev.InvolvedObject.Name == "web" && (ev.Reason == "SuccessfulCreate" || ev.Reason == "SuccessfulDelete") {
				got = append(got, ev.Message)
			}
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	})
}

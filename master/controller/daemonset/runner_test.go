package daemonset

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/registry"
)

// TestRunner drives the controller through controller.Runner: pods follow nodes as they
// come, and events are written.
func TestRunner(t *testing.T) {
	env := controllertest.NewLiveEnv(t)
	rec := controller.NewRecorder(env.Client, "daemonset-controller", nil)
	f := withController(env, rec)
	runner := &controller.Runner{Name: "daemonset", Reconciler: f.r, Store: f.Store, Resync: 200 * time.Millisecond}
	controllertest.Go(t, rec.Run, runner.Run)

	f.addNode(node("n1"))
	f.addNode(node("n2"))
	f.addDaemonSet(daemonSet("ds"))
	available := func(n int32) func() bool {
		return func() bool {
			f.schedule()
			f.Agent()
			st := f.daemonSet("ds").Status
			return st.NumberAvailable == n && st.UpdatedNumberScheduled == n && st.DesiredNumberScheduled == n
		}
	}
	controllertest.WaitFor(t, "two available pods", available(2))
	f.addNode(node("n3"))
	controllertest.WaitFor(t, "a pod on the new node", available(3))
	f.removeNode("n1")
	controllertest.WaitFor(t, "the removed node's pod gone", func() bool { return available(2)() && len(f.Pods("default")) == 2 })
	controllertest.WaitFor(t, "SuccessfulCreate events", func() bool {
		evs, _ := controller.List[*corev1.Event](f.Client.State(), registry.Lookup("", "v1", "events"), "default", nil)
		n := 0
		for _, ev := range evs {
			if ev.Reason == "SuccessfulCreate" && ev.InvolvedObject.Name == "ds" {
				n++
			}
		}
		return n == 3
	})
}

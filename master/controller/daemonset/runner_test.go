package daemonset

import (
	"context"
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
	store := controllertest.New()
	client := &controller.Client{Store: store}
	f := &fixture{t: t, store: store, client: client, now: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	rec := controller.NewRecorder(client, "daemonset-controller", nil)
	runner := &controller.Runner{Name: "daemonset", Reconciler: New(client, rec), Store: store, Resync: 200 * time.Millisecond}
	stopped := make(chan struct{}, 2)
	go func() { rec.Run(ctx); stopped <- struct{}{} }()
	go func() { runner.Run(ctx); stopped <- struct{}{} }()
	defer func() { cancel(); <-stopped; <-stopped }()

	f.addNode(node("n1"))
	f.addNode(node("n2"))
	f.addDaemonSet(daemonSet("ds"))
	available := func(n int32) func() bool {
		return func() bool {
			f.schedule()
			f.agent()
			st := f.daemonSet("ds").Status
			return st.NumberAvailable == n && st.UpdatedNumberScheduled == n && st.DesiredNumberScheduled == n
		}
	}
	waitFor(t, "two available pods", available(2))
	f.addNode(node("n3"))
	waitFor(t, "a pod on the new node", available(3))
	f.removeNode("n1")
	waitFor(t, "the removed node's pod gone", func() bool { return available(2)() && len(f.allPods()) == 2 })
	waitFor(t, "SuccessfulCreate events", func() bool {
		evs, _ := controller.List[*corev1.Event](client.State(), registry.Lookup("", "v1", "events"), "default", nil)
		n := 0
		for _, ev := range evs {
			if ev.Reason == "SuccessfulCreate" && ev.InvolvedObject.Name == "ds" {
				n++
			}
		}
		return n == 3
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package controller

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/gossip"
	"skiff/master/objects"
)

// Eviction from an unreachable node follows the pods' tolerations of
// unreachable:NoExecute, as Kubernetes' taint-based eviction: a pod tolerating it forever
// (every DaemonSet pod) stays, one tolerating it for 60 s goes after 60 s, one without goes
// after EvictionTimeout, and a StatefulSet's pod is only marked for deletion, never removed
// while its node may still run it.
func TestEvictionFollowsTolerations(t *testing.T) {
	f := newLifecycleFixture(t)
	f.addNode("n1")
	f.addNode("n2")
	add := func(name string, mutate func(*corev1.Pod)) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.PodSpec{NodeName: "n1"}}
		mutate(p)
		value, meta, err := objects.Encode(pods, p)
		if err != nil {
			t.Fatal(err)
		}
		f.create(objects.StoreResource(pods), p, value, meta, "default")
	}
	tolerate := func(seconds *int64) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}}
		}
	}
	sixty := int64(60)
	add("daemon", tolerate(nil))
	add("brief", tolerate(&sixty))
	add("plain", func(*corev1.Pod) {})
	add("web-0", func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web", UID: "sts-uid", Controller: ptrTo(true)}}
	})
	f.gm.set(map[string]gossip.State{"n1": gossip.StateDead, "n2": gossip.StateAlive})
	f.reconcile() // n1 Unknown from now

	f.now = f.now.Add(61 * time.Second)
	f.reconcile()
	if f.podExists("brief") || !f.podExists("plain") || !f.podExists("daemon") {
		t.Fatalf("after 61 s: brief %v (want gone), plain %v, daemon %v (want there)", f.podExists("brief"), f.podExists("plain"), f.podExists("daemon"))
	}

	f.now = f.now.Add(10 * time.Minute)
	f.reconcile()
	if f.podExists("plain") {
		t.Error("a pod without a toleration stayed past EvictionTimeout")
	}
	if !f.podExists("daemon") {
		t.Error("a pod tolerating unreachable:NoExecute forever was evicted")
	}
	rec := f.store.Node(0).FSM().State().Get(objects.Key(pods, "default", "web-0"))
	if rec == nil {
		t.Fatal("a StatefulSet's pod on an unreachable node was removed; it must only be marked")
	}
	obj, err := objects.Decode(pods, rec)
	if err != nil {
		t.Fatal(err)
	}
	if obj.(*corev1.Pod).DeletionTimestamp == nil {
		t.Error("a StatefulSet's pod on an unreachable node was not marked for deletion")
	}
}

func ptrTo[T any](v T) *T { return &v }

package replicaset

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A pod in another namespace whose controller reference names the UID of ReplicaSet
// default/web is not the ReplicaSet's: it is not counted, and scaling to 0 leaves it alone
// (owner references never cross namespaces).
func TestControllerRefFromAnotherNamespaceIsIgnored(t *testing.T) {
	f := newFixture(t)
	rs := f.createRS("web", 1, 0)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "intruder", Namespace: "other",
		Labels:          map[string]string{"app": "web", "tier": "web"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: rs.UID, Controller: ptr(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}
	f.Create(pods, p)
	f.reconcile("web")
	t.Logf("pods in default: %d, status.replicas=%d", len(f.Pods("default")), f.rs("web").Status.Replicas)
	if len(f.Pods("default")) != 1 {
		t.Errorf("ReplicaSet default/web made %d pods in its namespace, want 1 (it counted other/intruder)", len(f.Pods("default")))
	}
	f.scale("web", 0)
	f.reconcile("web")
	if q := f.Pod("other", "intruder"); q == nil || q.DeletionTimestamp != nil {
		t.Errorf("scaling default/web to 0 deleted other/intruder")
	}
}

package statefulset

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// With spec.ordinals.start=5 and partition=2, the partition counts replicas, not ordinals,
// as in Kubernetes: the two lowest (web-5, web-6) keep the current revision, web-7 and web-8
// are updated.
func TestPartitionCountsFromTheStartOrdinal(t *testing.T) {
	f := newFixture(t)
	f.addSet(statefulSet("web", 4, func(s *appsv1.StatefulSet) {
		s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	}))
	f.settle("web")
	t.Logf("pods: %v", f.podNames())
	f.changeSet("web", func(s *appsv1.StatefulSet) {
		s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr(int32(2))}
		s.Spec.Template.Spec.Containers[0].Image = "busybox:2"
	})
	f.settle("web")
	for _, n := range []string{"web-5", "web-6", "web-7", "web-8"} {
		t.Logf("%s image %s", n, f.Pod("default", n).Spec.Containers[0].Image)
	}
	for _, n := range []string{"web-5", "web-6"} {
		if img := f.Pod("default", n).Spec.Containers[0].Image; img != "busybox:1" {
			t.Errorf("%s updated to %s below the partition (start 5 + partition 2)", n, img)
		}
	}
	for _, n := range []string{"web-7", "web-8"} {
		if img := f.Pod("default", n).Spec.Containers[0].Image; img != "busybox:2" {
			t.Errorf("%s runs %s at or above the partition, want busybox:2", n, img)
		}
	}
}

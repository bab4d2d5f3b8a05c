package deployment

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// A rollback and a scale-down in one edit during a maxSurge=0 rollout leave the old
// ReplicaSet at spec == replicas with a stale desired-replicas annotation. Had the scaling
// pass not refreshed the annotation, every later pass would be a scaling event doing
// nothing, and a new template would never roll out (`kubectl rollout status` hanging).
func TestRolloutNotStuckByStaleDesiredReplicas(t *testing.T) {
	f := newFixture(t)
	f.create(3, rollingUpdate("0", "1"))
	f.converge(-1)
	f.update(setImage("web:2"))
	f.reconcileDeployment() // creates web:2 at 0, scales web:1 3 -> 2
	f.reconcileReplicaSets()
	f.update(func(d *appsv1.Deployment) { d.Spec.Replicas = ptr(int32(2)); setImage("web:1")(d) })
	f.settle()
	for _, rs := range f.replicaSets() {
		t.Logf("%s %s spec=%d desired=%s", rs.Name, imageOf(rs), *rs.Spec.Replicas, rs.Annotations[desiredReplicasAnnotation])
	}
	f.update(setImage("web:3"))
	for i := 0; i < 20; i++ {
		f.settle()
		f.schedule()
		f.makeReady(-1)
		f.reap()
	}
	for _, rs := range f.replicaSets() {
		t.Logf("after web:3: %s %s spec=%d desired=%s", rs.Name, imageOf(rs), *rs.Spec.Replicas, rs.Annotations[desiredReplicasAnnotation])
	}
	d := f.deployment()
	t.Logf("status updated=%d replicas=%d progressing=%+v", d.Status.UpdatedReplicas, d.Status.Replicas, condition(d.Status, appsv1.DeploymentProgressing))
	for _, p := range f.pods() {
		if p.Spec.Containers[0].Image != "web:3" {
			t.Fatalf("web:3 never rolled out: pod %s runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}
}

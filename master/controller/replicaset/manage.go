package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/controller"
)

// burstReplicas caps the pods one pass creates or deletes, as kube-controller-manager's
// ReplicaSet controller does, so one huge scale-up cannot monopolise the log.
const burstReplicas = 500

// manageReplicas creates or deletes pods so that rs has spec.replicas active ones.
func (c *Controller) manageReplicas(ctx context.Context, st *fsm.State, rs *appsv1.ReplicaSet, active []*corev1.Pod) error {
	diff := len(active) - desiredReplicas(rs)
	switch {
	case diff < 0:
		return c.createPods(ctx, rs, min(-diff, burstReplicas))
	case diff > 0:
		return c.deletePods(ctx, st, rs, active, min(diff, burstReplicas))
	}
	return nil
}

// createPods creates n pods from rs's template in slow-start batches of 1, 2, 4, ...
// pods, each batch one Raft transaction, stopping at the first failure: a template that
// cannot become a valid pod then costs one attempt rather than n.
func (c *Controller) createPods(ctx context.Context, rs *appsv1.ReplicaSet, n int) error {
	for done, batch := 0, 1; done < n; done, batch = done+batch, 2*batch {
		batch = min(batch, n-done)
		ops := make([]fsm.Op, 0, batch)
		created := make([]*corev1.Pod, 0, batch)
		for range batch {
			pod := controller.PodFromTemplate(&rs.Spec.Template, rs, replicaSets)
			op, err := c.client.CreateOp(pods, pod)
			if err != nil {
				c.rec.Eventf(rs, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
				return err
			}
			ops = append(ops, op)
			created = append(created, pod)
		}
		if _, err := c.client.Commit(ctx, ops...); err != nil {
			if !controller.IsStale(err) && ctx.Err() == nil {
				c.rec.Eventf(rs, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
			}
			return err
		}
		for _, p := range created {
			c.rec.Eventf(rs, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", p.Name)
		}
	}
	return nil
}

// deletePods deletes the n active pods whose loss costs least (see rankedPods), in one
// transaction. Pods bound to a node are only marked; their agents stop and remove them.
func (c *Controller) deletePods(ctx context.Context, st *fsm.State, rs *appsv1.ReplicaSet, active []*corev1.Pod, n int) error {
	victims := podsToDelete(active, relatedPods(st, rs), n, c.client.Time())
	var ops []fsm.Op
	for _, p := range victims {
		o, err := c.client.DeleteOps(pods, p, metav1.DeletePropagationBackground)
		if err != nil {
			return err
		}
		ops = append(ops, o...)
	}
	if _, err := c.client.Commit(ctx, ops...); err != nil {
		if !controller.IsStale(err) && ctx.Err() == nil {
			c.rec.Eventf(rs, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
		}
		return err
	}
	for _, p := range victims {
		c.rec.Eventf(rs, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
	}
	return nil
}

// relatedPods returns the pods of every ReplicaSet sharing rs's controller (the other
// revisions of its Deployment), whose placement ranks rs's pods for deletion; none when rs
// has no controller, as in Kubernetes.
func relatedPods(st *fsm.State, rs *appsv1.ReplicaSet) []*corev1.Pod {
	ref := metav1.GetControllerOfNoCopy(rs)
	if ref == nil {
		return nil
	}
	siblings, err := controller.Controlled[*appsv1.ReplicaSet](st, replicaSets, &metav1.ObjectMeta{UID: ref.UID})
	if err != nil {
		return nil
	}
	var out []*corev1.Pod
	for _, sib := range siblings {
		if controlled, err := controller.Controlled[*corev1.Pod](st, pods, sib); err == nil {
			out = append(out, controlled...)
		}
	}
	return out
}

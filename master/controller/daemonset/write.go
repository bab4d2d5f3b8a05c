package daemonset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
)

// batchSize bounds the operations of one Raft transaction, so that a DaemonSet on a
// thousand nodes does not make one huge log entry.
const batchSize = 100

// syncNodes creates a pod for each of nodes and deletes del (gracefully) and force (at once,
// their node being gone), in transactions of at most batchSize operations, recording an
// event for each pod once its transaction has committed.
func (r *reconciler) syncNodes(ctx context.Context, ds *appsv1.DaemonSet, del, force []*corev1.Pod, create []string, hash string) error {
	for len(create) > 0 {
		n := min(len(create), batchSize)
		var ops []fsm.Op
		var names []string
		for _, node := range create[:n] {
			pod := newPod(ds, node, hash)
			op, err := r.client.CreateOp(pods, pod)
			if err != nil {
				r.rec.Eventf(ds, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
				return err
			}
			ops = append(ops, op)
			names = append(names, pod.Name)
		}
		if _, err := r.client.Commit(ctx, ops...); err != nil {
			return err
		}
		for _, name := range names {
			r.rec.Eventf(ds, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", name)
		}
		create = create[n:]
	}
	type deletion struct {
		pod   *corev1.Pod
		force bool
	}
	var all []deletion
	for _, p := range del {
		all = append(all, deletion{p, false})
	}
	for _, p := range force {
		all = append(all, deletion{p, true})
	}
	for len(all) > 0 {
		n := min(len(all), batchSize)
		var ops []fsm.Op
		for _, d := range all[:n] {
			if d.force {
				rev, err := objects.ParseRV(d.pod.ResourceVersion)
				if err != nil {
					return err
				}
				ops = append(ops, fsm.Delete(objects.Key(pods, d.pod.Namespace, d.pod.Name), rev))
				continue
			}
			more, err := r.client.DeleteOps(pods, d.pod, metav1.DeletePropagationBackground)
			if err != nil {
				return err
			}
			ops = append(ops, more...)
		}
		if _, err := r.client.Commit(ctx, ops...); err != nil {
			if !controller.IsStale(err) {
				r.rec.Eventf(ds, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
			}
			return err
		}
		for _, d := range all[:n] {
			r.rec.Eventf(ds, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", d.pod.Name)
		}
		all = all[n:]
	}
	return nil
}

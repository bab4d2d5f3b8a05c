// Package job is the Job controller (batch/v1): it runs a Job's pods to completion, counts
// their successes and failures, fails the Job past its backoff limit or active deadline,
// suspends and resumes it, and deletes it once its ttlSecondsAfterFinished has passed.
//
// Pods are tracked as Kubernetes tracks them, with the batch.kubernetes.io/job-tracking
// finalizer: a pod keeps it until it has been counted, and the controller removes it in the
// same Raft transaction that adds the pod to status.succeeded or status.failed. The count
// and the release are therefore never apart, so a pod is counted exactly once even if it is
// deleted right after finishing, and status.uncountedTerminatedPods is never needed.
//
// Only the NonIndexed completion mode is implemented; an Indexed Job is marked Failed with
// a clear message instead of being run wrongly.
package job

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/registry"
)

var (
	jobs = registry.Lookup("batch", "v1", "jobs")
	pods = registry.Lookup("", "v1", "pods")
)

var trackingFinalizer = []byte(batchv1.JobTrackingFinalizer)

// reconciler is the Job controller. Its keys are Jobs, and pods that still carry the
// tracking finalizer after their Job is gone (an orphan must not stay stuck deleting).
type reconciler struct {
	client *controller.Client
	rec    *controller.Recorder
}

// New returns the Job controller, recording events through rec.
func New(client *controller.Client, rec *controller.Recorder) controller.Reconciler {
	return &reconciler{client: client, rec: rec}
}

// Watches names Jobs and pods.
func (r *reconciler) Watches() []string {
	return []string{objects.StoreResource(jobs), objects.StoreResource(pods)}
}

// Keys maps a Job's change to itself and a pod's change to its controlling Job; a tracked
// pod whose Job is gone maps to the pod itself, so its finalizer is released.
func (r *reconciler) Keys(st *fsm.State, ev fsm.Event) []fsm.Key {
	if ev.Record.Key.Resource == objects.StoreResource(jobs) {
		return controller.SelfKey(ev)
	}
	keys := controller.ControllerKeys(ev, jobs)
	if ev.Type != fsm.Deleted && bytes.Contains(ev.Record.Value, trackingFinalizer) && (len(keys) == 0 || st.Get(keys[0]) == nil) {
		keys = append(keys, ev.Record.Key)
	}
	return keys
}

// Primary lists every Job, and every tracked pod whose Job (by the controller-uid label
// the Job's defaulting puts on its pods) no longer exists with that UID.
func (r *reconciler) Primary(st *fsm.State) []fsm.Key {
	keys := controller.AllKeys(st, jobs)
	uids := map[fsm.Key]string{}
	recs, _ := st.List(fsm.ListOptions{Resource: objects.StoreResource(pods), Predicate: func(rec *fsm.Record) bool {
		return rec.Meta.Labels[batchv1.ControllerUidLabel] != "" && bytes.Contains(rec.Value, trackingFinalizer)
	}})
	for _, rec := range recs {
		k := objects.Key(jobs, rec.Key.Namespace, rec.Meta.Labels[batchv1.JobNameLabel])
		uid, seen := uids[k]
		if !seen {
			var h struct {
				Metadata struct {
					UID string `json:"uid"`
				} `json:"metadata"`
			}
			if jr := st.Get(k); jr != nil {
				_ = json.Unmarshal(jr.Value, &h)
			}
			uid, uids[k] = h.Metadata.UID, h.Metadata.UID
		}
		if uid != rec.Meta.Labels[batchv1.ControllerUidLabel] {
			keys = append(keys, rec.Key)
		}
	}
	return keys
}

// Reconcile syncs one Job (or releases one orphaned pod).
func (r *reconciler) Reconcile(ctx context.Context, key fsm.Key) error {
	if key.Resource == objects.StoreResource(pods) {
		return r.releaseOrphan(ctx, key)
	}
	st := r.client.State()
	job, err := controller.Get[*batchv1.Job](st, jobs, key.Namespace, key.Name)
	if err != nil || job == nil {
		return err
	}
	owned, err := controller.Controlled[*corev1.Pod](st, pods, job)
	if err != nil {
		return err
	}
	if job.DeletionTimestamp != nil || finished(job) {
		// Nothing is counted any more: release every pod so none stays stuck deleting.
		if err := r.release(ctx, owned); err != nil || job.DeletionTimestamp != nil {
			return err
		}
		return r.expire(ctx, job)
	}
	return r.sync(ctx, job, owned)
}

// release removes the tracking finalizer from pods, in one transaction.
func (r *reconciler) release(ctx context.Context, owned []*corev1.Pod) error {
	var ops []fsm.Op
	for _, p := range owned {
		more, err := r.client.RemoveFinalizerOps(pods, p, batchv1.JobTrackingFinalizer)
		if err != nil {
			return err
		}
		ops = append(ops, more...)
	}
	_, err := r.client.Commit(ctx, ops...)
	return err
}

// releaseOrphan removes the tracking finalizer from a pod whose controlling Job is gone
// (deleted, or replaced by another of the same name), as Kubernetes does for orphan pods.
func (r *reconciler) releaseOrphan(ctx context.Context, key fsm.Key) error {
	st := r.client.State()
	pod, err := controller.Get[*corev1.Pod](st, pods, key.Namespace, key.Name)
	if err != nil || pod == nil {
		return err
	}
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == jobs.Kind {
		job, err := controller.Get[*batchv1.Job](st, jobs, pod.Namespace, ref.Name)
		if err != nil || (job != nil && job.UID == ref.UID) {
			return err // its Job is there and counts it
		}
	}
	return r.release(ctx, []*corev1.Pod{pod})
}

// expire deletes a finished Job once its ttlSecondsAfterFinished has passed since it
// finished, with background propagation (the garbage collector removes its pods), as the
// Kubernetes TTL-after-finished controller does.
func (r *reconciler) expire(ctx context.Context, job *batchv1.Job) error {
	if job.Spec.TTLSecondsAfterFinished == nil {
		return nil
	}
	done := finishTime(job)
	if done.IsZero() {
		return nil
	}
	at := done.Add(time.Duration(*job.Spec.TTLSecondsAfterFinished) * time.Second)
	if wait := at.Sub(r.client.Time()); wait > 0 {
		return controller.RequeueAfter(wait)
	}
	return r.client.Delete(ctx, jobs, job, metav1.DeletePropagationBackground)
}

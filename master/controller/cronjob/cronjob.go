// Package cronjob is the CronJob controller (batch/v1): it creates a Job for each schedule
// time, honours the concurrency policy, suspension and the starting deadline, keeps the
// status (active Jobs, last schedule and success times) and prunes finished Jobs beyond the
// history limits.
//
// A Job's name is derived from its schedule time and created in the same Raft transaction
// that records lastScheduleTime and the active reference, so a schedule time fires exactly
// once: a new leader (with no memory of its predecessor) either sees lastScheduleTime already
// at that time, or finds the Job already there and adopts it into the status.
package cronjob

import (
	"context"
	"errors"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/registry"
)

var (
	cronjobs = registry.Lookup("batch", "v1", "cronjobs")
	jobs     = registry.Lookup("batch", "v1", "jobs")
)

// reconciler is the CronJob controller; its keys are CronJobs.
type reconciler struct {
	client *controller.Client
	rec    *controller.Recorder
}

// New returns the CronJob controller, recording events through rec.
func New(client *controller.Client, rec *controller.Recorder) controller.Reconciler {
	return &reconciler{client: client, rec: rec}
}

// Watches names CronJobs and Jobs.
func (r *reconciler) Watches() []string {
	return []string{objects.StoreResource(cronjobs), objects.StoreResource(jobs)}
}

// Keys maps a CronJob's change to itself and a Job's change to its controlling CronJob.
func (r *reconciler) Keys(_ *fsm.State, ev fsm.Event) []fsm.Key {
	if ev.Record.Key.Resource == objects.StoreResource(cronjobs) {
		return controller.SelfKey(ev)
	}
	return controller.ControllerKeys(ev, cronjobs)
}

// Primary lists every CronJob.
func (r *reconciler) Primary(st *fsm.State) []fsm.Key { return controller.AllKeys(st, cronjobs) }

// Reconcile syncs one CronJob: its status from its Jobs, the Job due now if any, the
// history limits; then it asks to look again just after the next schedule time.
func (r *reconciler) Reconcile(ctx context.Context, key fsm.Key) error {
	st := r.client.State()
	cj, err := controller.Get[*batchv1.CronJob](st, cronjobs, key.Namespace, key.Name)
	if err != nil || cj == nil {
		return err
	}
	children, err := controller.Controlled[*batchv1.Job](st, jobs, cj)
	if err != nil {
		return err
	}
	p := &pass{r: r, st: st, cj: cj, now: r.client.Time(), deleted: map[string]bool{}}
	old := cj.Status.DeepCopy()
	requeue, err := p.sync(children)
	if err != nil {
		return err
	}
	if cj.DeletionTimestamp == nil {
		if err := p.cleanup(children); err != nil {
			return err
		}
	}
	if err := p.commit(ctx, old); err != nil {
		return err
	}
	for _, e := range p.events {
		r.rec.Eventf(cj, e.kind, e.reason, "%s", e.message)
	}
	if requeue > 0 {
		return controller.RequeueAfter(requeue)
	}
	return nil
}

// commit writes the pass: the new Job (if one is due), the Jobs to delete and the status,
// all in one transaction. A Job of that name already there means that schedule time has
// fired already (a retry, another leader): if this CronJob controls it, it is adopted into
// the status instead of created, as Kubernetes does; if not, its owner keeps it and only
// the rest of the pass is written.
func (p *pass) commit(ctx context.Context, old *batchv1.CronJobStatus) error {
	if p.due == nil {
		return p.write(ctx, old, nil)
	}
	client := p.r.client
	create, err := client.CreateOp(jobs, p.due)
	if err != nil {
		p.r.rec.Eventf(p.cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return err
	}
	last := p.cj.Status.LastScheduleTime
	p.cj.Status.Active = append(p.cj.Status.Active, jobRef(p.due))
	p.cj.Status.LastScheduleTime = &metav1.Time{Time: p.scheduled}
	err = p.write(ctx, old, &create)
	if err == nil {
		p.eventf(corev1.EventTypeNormal, "SuccessfulCreate", "Created job %v", p.due.Name)
		return nil
	}
	if !errors.Is(err, fsm.ErrAlreadyExists) {
		return err
	}
	p.cj.Status.Active = p.cj.Status.Active[:len(p.cj.Status.Active)-1]
	existing, gerr := controller.Get[*batchv1.Job](client.State(), jobs, p.due.Namespace, p.due.Name)
	switch {
	case gerr != nil || existing == nil:
		return err // gone again: the next pass looks afresh
	case !metav1.IsControlledBy(existing, p.cj):
		p.cj.Status.LastScheduleTime = last
	case !inActive(p.cj, existing.UID):
		p.cj.Status.Active = append(p.cj.Status.Active, jobRef(existing))
	}
	return p.write(ctx, old, nil)
}

// write commits create (if any), the pass's deletions and the status if it changed.
func (p *pass) write(ctx context.Context, old *batchv1.CronJobStatus, create *fsm.Op) error {
	var ops []fsm.Op
	if create != nil {
		ops = append(ops, *create)
	}
	ops = append(ops, p.ops...)
	if !equality.Semantic.DeepEqual(old, &p.cj.Status) {
		op, err := p.r.client.UpdateOp(cronjobs, p.cj, false)
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	_, err := p.r.client.Commit(ctx, ops...)
	return err
}

// jobRef is the reference to a Job kept in status.active.
func jobRef(j *batchv1.Job) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: jobs.Kind, APIVersion: jobs.GroupVersion().String(), Namespace: j.Namespace, Name: j.Name, UID: j.UID}
}

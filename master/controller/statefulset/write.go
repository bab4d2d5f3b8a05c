package statefulset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
)

// batch gathers the pod writes of one step so that they commit as one transaction, and
// records each write's event only once the transaction has committed.
type batch struct {
	r      *reconciler
	set    *appsv1.StatefulSet
	ops    []fsm.Op
	events []podEvent
}

// podEvent is the event a pod write earns: Kubernetes' "<verb> Pod <pod> in StatefulSet
// <set> successful" with reason Successful<Verb>.
type podEvent struct {
	reason, verb, pod string
}

func (r *reconciler) batch(set *appsv1.StatefulSet) *batch { return &batch{r: r, set: set} }

func (b *batch) create(p *corev1.Pod) error {
	op, err := b.r.client.CreateOp(pods, p)
	if err != nil {
		b.r.rec.Eventf(b.set, corev1.EventTypeWarning, "FailedCreate",
			"create Pod %s in StatefulSet %s failed error: %v", p.Name, b.set.Name, err)
		return err
	}
	b.ops = append(b.ops, op)
	b.events = append(b.events, podEvent{"SuccessfulCreate", "create", p.Name})
	return nil
}

func (b *batch) update(p *corev1.Pod) error {
	op, err := b.r.client.UpdateOp(pods, p, false)
	if err != nil {
		return err
	}
	b.ops = append(b.ops, op)
	b.events = append(b.events, podEvent{"SuccessfulUpdate", "update", p.Name})
	return nil
}

func (b *batch) delete(p *corev1.Pod) error {
	ops, err := b.r.client.DeleteOps(pods, p, metav1.DeletePropagationBackground)
	if err != nil {
		return err
	}
	b.ops = append(b.ops, ops...)
	b.events = append(b.events, podEvent{"SuccessfulDelete", "delete", p.Name})
	return nil
}

// commit writes what was gathered (nothing is fine) and empties the batch.
func (b *batch) commit(ctx context.Context) error {
	if len(b.ops) == 0 {
		return nil
	}
	ops, evs := b.ops, b.events
	b.ops, b.events = nil, nil
	if _, err := b.r.client.Commit(ctx, ops...); err != nil {
		return err
	}
	for _, ev := range evs {
		b.r.rec.Eventf(b.set, corev1.EventTypeNormal, ev.reason, "%s Pod %s in StatefulSet %s successful", ev.verb, ev.pod, b.set.Name)
	}
	return nil
}

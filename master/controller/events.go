package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/registry"
)

var events = registry.Lookup("", "v1", "events")

// Recorder writes Kubernetes Events for what controllers do, so `kubectl describe` and
// `kubectl get events` show it. Recording never blocks a controller: events queue up and a
// single goroutine (Run) writes them; when the queue is full, events are dropped, as
// client-go's broadcaster does. A repeat of the same event on the same object within the
// term bumps the count of the event already written instead of adding one. Eventf and Run
// are safe to call concurrently; a nil *Recorder records nothing.
type Recorder struct {
	Client    *Client
	Component string // source.component, e.g. "replicaset-controller"
	Logger    *slog.Logger
	queue     chan *corev1.Event
	seq       int64 // owned by Run
}

// NewRecorder returns a recorder writing through client as component.
func NewRecorder(client *Client, component string, logger *slog.Logger) *Recorder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{Client: client, Component: component, Logger: logger, queue: make(chan *corev1.Event, 4096)}
}

// Eventf records an event about obj (which must carry its kind, as decoded objects do).
// eventType is corev1.EventTypeNormal or corev1.EventTypeWarning.
func (r *Recorder) Eventf(obj runtime.Object, eventType, reason, format string, args ...any) {
	if r == nil {
		return
	}
	acc := objects.Accessor(obj)
	gvk := obj.GetObjectKind().GroupVersionKind()
	ns := acc.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns},
		InvolvedObject: corev1.ObjectReference{
			Kind: gvk.Kind, APIVersion: gvk.GroupVersion().String(), Namespace: acc.GetNamespace(),
			Name: acc.GetName(), UID: acc.GetUID(),
		},
		Reason: reason, Message: fmt.Sprintf(format, args...), Type: eventType,
		Source: corev1.EventSource{Component: r.Component}, Count: 1,
	}
	select {
	case r.queue <- ev:
	default:
		r.Logger.Debug("event queue full; dropping event", "reason", reason, "object", acc.GetName())
	}
}

type eventIdentity struct {
	uid, reason, message string
}

// maxEventBatch bounds how many new events share one transaction.
const maxEventBatch = 256

// Run writes queued events until ctx ends. Events that queued up while the previous write
// was in flight are written together, new ones in one transaction, so a burst (thousands
// of pods scheduled) costs a few Raft entries instead of one each.
func (r *Recorder) Run(ctx context.Context) {
	written := map[eventIdentity]fsm.Key{}
	for {
		var batch []*corev1.Event
		select {
		case <-ctx.Done():
			return
		case ev := <-r.queue:
			batch = append(batch, ev)
		}
	drain:
		for len(batch) < maxEventBatch {
			select {
			case ev := <-r.queue:
				batch = append(batch, ev)
			default:
				break drain
			}
		}
		var fresh []*corev1.Event
		inBatch := map[eventIdentity]*corev1.Event{}
		for _, ev := range batch {
			id := eventIdentity{string(ev.InvolvedObject.UID), ev.Reason, ev.Message}
			if first, ok := inBatch[id]; ok {
				first.Count++
				continue
			}
			if k, ok := written[id]; ok && r.bump(ctx, k) {
				continue
			}
			inBatch[id] = ev
			fresh = append(fresh, ev)
		}
		keys, err := r.write(ctx, fresh)
		if err != nil {
			if ctx.Err() == nil {
				r.Logger.Debug("writing events", "events", len(fresh), "error", err)
			}
			continue
		}
		if len(written)+len(keys) > 10000 {
			clear(written)
		}
		for i, ev := range fresh {
			written[eventIdentity{string(ev.InvolvedObject.UID), ev.Reason, ev.Message}] = keys[i]
		}
	}
}

// write creates evs in one transaction and returns their keys.
func (r *Recorder) write(ctx context.Context, evs []*corev1.Event) ([]fsm.Key, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	now := r.Client.now()
	stamp := metav1.NewTime(now.Truncate(time.Second))
	ops := make([]fsm.Op, 0, len(evs))
	keys := make([]fsm.Key, 0, len(evs))
	for _, ev := range evs {
		// Kubernetes names events <object>.<hex nanoseconds>; the sequence number keeps two
		// events written within one clock tick (or under a test's fixed clock) apart.
		r.seq++
		ev.Name = ev.InvolvedObject.Name + "." + strconv.FormatInt(now.UnixNano()+r.seq, 16)
		ev.FirstTimestamp, ev.LastTimestamp = stamp, stamp
		op, err := r.Client.CreateOp(events, ev)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
		keys = append(keys, op.Key)
	}
	if _, err := r.Client.Commit(ctx, ops...); err != nil {
		return nil, err
	}
	return keys, nil
}

// bump counts one more occurrence of the event at k; false if it is gone.
func (r *Recorder) bump(ctx context.Context, k fsm.Key) bool {
	ev, err := Get[*corev1.Event](r.Client.State(), events, k.Namespace, k.Name)
	if err != nil || ev == nil {
		return false
	}
	ev.Count++
	ev.LastTimestamp = metav1.NewTime(r.Client.now().Truncate(time.Second))
	return r.Client.Update(ctx, events, ev, false) == nil
}

// ExpireEvents deletes events last seen more than ttl ago, once a minute until ctx ends,
// as the API server's one-hour event TTL does in Kubernetes. It is a leader routine.
func ExpireEvents(ctx context.Context, client *Client, ttl time.Duration) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			expireEvents(ctx, client, client.now().Add(-ttl))
		}
	}
}

func expireEvents(ctx context.Context, client *Client, cutoff time.Time) int {
	evs, err := List[*corev1.Event](client.State(), events, "", nil)
	if err != nil {
		return 0
	}
	var ops []fsm.Op
	n := 0
	flush := func() {
		if _, err := client.Commit(ctx, ops...); err == nil {
			n += len(ops)
		}
		ops = ops[:0]
	}
	for _, ev := range evs {
		last := ev.LastTimestamp.Time
		if last.IsZero() {
			last = ev.CreationTimestamp.Time
		}
		if last.Before(cutoff) {
			ops = append(ops, fsm.DeleteIfExists(objects.Key(events, ev.Namespace, ev.Name)))
		}
		if len(ops) == 500 {
			flush()
		}
	}
	flush()
	return n
}

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

// Run writes queued events until ctx ends.
func (r *Recorder) Run(ctx context.Context) {
	written := map[eventIdentity]fsm.Key{}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.queue:
			id := eventIdentity{string(ev.InvolvedObject.UID), ev.Reason, ev.Message}
			if k, ok := written[id]; ok && r.bump(ctx, k) {
				continue
			}
			k, err := r.write(ctx, ev)
			if err != nil {
				if ctx.Err() == nil {
					r.Logger.Debug("writing event", "reason", ev.Reason, "error", err)
				}
				continue
			}
			if len(written) > 10000 {
				clear(written)
			}
			written[id] = k
		}
	}
}

func (r *Recorder) write(ctx context.Context, ev *corev1.Event) (fsm.Key, error) {
	now := metav1.NewTime(r.Client.now().Truncate(time.Second))
	// Kubernetes names events <object>.<hex nanoseconds>; the sequence number keeps two
	// events written within one clock tick (or under a test's fixed clock) apart.
	r.seq++
	ev.Name = ev.InvolvedObject.Name + "." + strconv.FormatInt(r.Client.now().UnixNano()+r.seq, 16)
	ev.FirstTimestamp, ev.LastTimestamp = now, now
	if err := r.Client.Create(ctx, events, ev); err != nil {
		return fsm.Key{}, err
	}
	return objects.Key(events, ev.Namespace, ev.Name), nil
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

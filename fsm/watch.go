package fsm

import (
	"sync"
)

// EventType says how an object changed.
type EventType uint8

const (
	Added EventType = iota + 1
	Modified
	Deleted
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "ADDED"
	case Modified:
		return "MODIFIED"
	case Deleted:
		return "DELETED"
	}
	return "UNKNOWN"
}

// Event is one change to one object.
type Event struct {
	Type EventType
	// Record is the object after the change; for Deleted, the object as it was last stored.
	Record *Record
	// Prev is the object before the change (nil for Added). A watch with a predicate uses it
	// to turn an object leaving the selection into a Deleted event.
	Prev *Record
	// Revision is the log index of the change.
	Revision uint64
}

// WatchOptions selects the events a watch receives.
type WatchOptions struct {
	Resource string
	// Namespace limits the watch to one namespace; empty means all.
	Namespace string
	// From resumes after this revision: every matching event with a greater revision is
	// delivered, oldest first. ErrTooOld if the history no longer reaches back that far.
	From uint64
	// Predicate, when set, keeps only the records it accepts. An object that stops matching
	// is delivered as Deleted, one that starts matching as Added, as Kubernetes does. It
	// runs on the apply path and must be cheap and must not block.
	Predicate func(*Record) bool
}

func (o *WatchOptions) filter(ev Event) (Event, bool) {
	// Events up to From are already known to the client (from its list or an earlier
	// watch), whether they come from the history or are published after the watch opened.
	if ev.Revision <= o.From {
		return ev, false
	}
	if ev.Record.Key.Resource != o.Resource {
		return ev, false
	}
	if o.Namespace != "" && ev.Record.Key.Namespace != o.Namespace {
		return ev, false
	}
	if o.Predicate == nil {
		return ev, true
	}
	now := ev.Type != Deleted && o.Predicate(ev.Record)
	before := ev.Prev != nil && o.Predicate(ev.Prev)
	switch {
	case now && before:
		return ev, true
	case now:
		ev.Type = Added
		return ev, true
	case before:
		// An object that left the selection is gone as far as this watch is concerned;
		// its new state is reported as the final one.
		ev.Type = Deleted
		return ev, true
	}
	return ev, false
}

// Watch delivers the events of one subscription in revision order. Events is closed when
// the watch ends; Err then says why. Stop is safe to call from any goroutine, more than once.
type Watch struct {
	hub    *hub
	opts   WatchOptions
	events chan Event

	mu      sync.Mutex
	pending []Event
	endErr  error
	wake    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

// Events is the stream of matching events. It is closed when the watch ends.
func (w *Watch) Events() <-chan Event { return w.events }

// Err says why Events was closed: ErrTooOld after a snapshot restore, ErrSlowWatcher when the
// consumer fell behind, ErrWatchStopped after Stop. It is nil while the watch runs.
func (w *Watch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.endErr
}

// Stop ends the watch and releases its resources.
func (w *Watch) Stop() {
	w.hub.remove(w)
	w.end(ErrWatchStopped)
}

func (w *Watch) end(err error) {
	w.once.Do(func() {
		w.mu.Lock()
		w.endErr = err
		w.mu.Unlock()
		close(w.stopped)
	})
}

// push queues events for delivery. It never blocks: a watch whose queue is over limit is
// ended with ErrSlowWatcher and reports false so the hub drops it.
func (w *Watch) push(evs []Event, limit int) bool {
	w.mu.Lock()
	if len(w.pending)+len(evs) > limit {
		w.mu.Unlock()
		w.end(ErrSlowWatcher)
		return false
	}
	w.pending = append(w.pending, evs...)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// pump moves queued events to the consumer. It is the only goroutine that sends on or
// closes events.
func (w *Watch) pump() {
	defer close(w.events)
	for {
		w.mu.Lock()
		batch := w.pending
		w.pending = nil
		w.mu.Unlock()
		for _, ev := range batch {
			select {
			case w.events <- ev:
			case <-w.stopped:
				return
			}
		}
		select {
		case <-w.wake:
		case <-w.stopped:
			return
		}
	}
}

package controller

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"skiff/fsm"
)

// Reconciler is one controller's logic. The Runner calls Reconcile with the key of a
// primary object (a ReplicaSet, a Job, ...) whenever that object or something related to it
// changed, and periodically for every primary object. Reconcile reads the current state,
// compares it with what should be, and writes the difference with preconditions; it must
// tolerate the object being gone. It is called concurrently for different keys, never for
// the same key at once.
type Reconciler interface {
	// Watches lists the store resources whose changes concern this controller.
	Watches() []string
	// Keys maps a change to the primary keys it concerns; prev is nil for a creation, rec is
	// the object as last stored for a deletion.
	Keys(st *fsm.State, ev fsm.Event) []fsm.Key
	// Primary lists every primary key in st, for the periodic resync.
	Primary(st *fsm.State) []fsm.Key
	// Reconcile brings one primary object's world in line. A stale error (IsStale) or any
	// other error retries the key after a back-off; RequeueAfter asks for another look later
	// without counting as a failure.
	Reconcile(ctx context.Context, key fsm.Key) error
}

// RequeueAfter is returned by Reconcile to look at the key again after the given time
// (a deadline, a cron schedule, a back-off measured in the object's own status).
type RequeueAfter time.Duration

func (r RequeueAfter) Error() string { return "requeue after " + time.Duration(r).String() }

// Runner drives a Reconciler as a leader routine: it watches the store from the revision it
// started at, queues the keys each change concerns, and works the queue with a few workers.
// It is the only owner of its watches and workers; Run returns when all have stopped.
type Runner struct {
	Name       string
	Reconciler Reconciler
	Store      Store
	// Workers is how many keys are reconciled at once (default 2).
	Workers int
	// Resync is how often every primary key is queued regardless of changes (default 30 s):
	// a safety net for missed events and for time-driven work.
	Resync time.Duration
	Logger *slog.Logger
}

// Run reconciles until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	workers := r.Workers
	if workers <= 0 {
		workers = 2
	}
	resync := r.Resync
	if resync <= 0 {
		resync = 30 * time.Second
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("controller", r.Name)
	q := newQueue()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx, q, log)
		}()
	}
	r.feed(ctx, q, resync, log)
	q.close()
	wg.Wait()
}

// feed watches every resource the reconciler names and queues keys until ctx ends. A watch
// that ends (cut off as slow, or a snapshot restore) is reopened at the current revision
// after queuing every primary key, so nothing that happened in between is missed.
func (r *Runner) feed(ctx context.Context, q *queue, resync time.Duration, log *slog.Logger) {
	f := r.Store.FSM()
	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	for ctx.Err() == nil {
		st := f.State()
		for _, k := range r.Reconciler.Primary(st) {
			q.add(k)
		}
		merged := make(chan fsm.Event, 1024)
		wctx, cancel := context.WithCancel(ctx)
		ended := make(chan error, len(r.Reconciler.Watches()))
		for _, res := range r.Reconciler.Watches() {
			w, err := f.Watch(fsm.WatchOptions{Resource: res, From: st.Revision()})
			if err != nil {
				ended <- err
				continue
			}
			go func() {
				defer w.Stop()
				for {
					select {
					case ev, ok := <-w.Events():
						if !ok {
							ended <- w.Err()
							return
						}
						select {
						case merged <- ev:
						case <-wctx.Done():
							return
						}
					case <-wctx.Done():
						return
					}
				}
			}()
		}
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case err := <-ended:
				log.Debug("watch ended; resyncing", "error", err)
				break loop
			case <-ticker.C:
				for _, k := range r.Reconciler.Primary(f.State()) {
					q.add(k)
				}
			case ev := <-merged:
				for _, k := range r.Reconciler.Keys(f.State(), ev) {
					q.add(k)
				}
			}
		}
		cancel()
		if ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

func (r *Runner) work(ctx context.Context, q *queue, log *slog.Logger) {
	for {
		k, ok := q.get()
		if !ok {
			return
		}
		err := r.Reconciler.Reconcile(ctx, k)
		var later RequeueAfter
		switch {
		case err == nil:
			q.done(k, false)
		case errors.As(err, &later):
			q.done(k, false)
			q.addAfter(k, time.Duration(later))
		case ctx.Err() != nil:
			q.done(k, false)
		default:
			if !IsStale(err) {
				log.Warn("reconcile failed", "key", k.String(), "error", err)
			}
			q.done(k, true)
		}
	}
}

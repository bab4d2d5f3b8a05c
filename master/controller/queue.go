package controller

import (
	"sync"
	"time"

	"skiff/fsm"
)

// queue holds the keys waiting to be reconciled. A key is queued at most once however many
// events name it (level-triggered: the reconcile reads the latest state anyway), and a key
// being processed is not handed to a second worker until it is done; if it was queued
// meanwhile it is processed again. Failed keys come back after a per-key exponential
// back-off. All methods are safe for concurrent use.
type queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	order      []fsm.Key
	queued     map[fsm.Key]bool
	processing map[fsm.Key]bool
	dirty      map[fsm.Key]bool // queued again while processing
	failures   map[fsm.Key]int
	// later holds one timer per key waiting to come back (a back-off, a RequeueAfter): the
	// earliest wins, so a key asked to come back every pass does not pile up timers.
	later  map[fsm.Key]delayed
	closed bool
}

type delayed struct {
	at    time.Time
	timer *time.Timer
}

const (
	backoffBase = 20 * time.Millisecond
	backoffMax  = 10 * time.Second
)

func newQueue() *queue {
	q := &queue{queued: map[fsm.Key]bool{}, processing: map[fsm.Key]bool{}, dirty: map[fsm.Key]bool{}, failures: map[fsm.Key]int{}, later: map[fsm.Key]delayed{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add queues k unless it is already waiting.
func (q *queue) add(k fsm.Key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if q.processing[k] {
		q.dirty[k] = true
		return
	}
	if q.queued[k] {
		return
	}
	q.queued[k] = true
	q.order = append(q.order, k)
	q.cond.Signal()
}

// addAfter queues k after d, unless it is already due back sooner.
func (q *queue) addAfter(k fsm.Key, d time.Duration) {
	at := time.Now().Add(d)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if prev, ok := q.later[k]; ok {
		if !prev.at.After(at) {
			return
		}
		prev.timer.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		q.mu.Lock()
		if cur, ok := q.later[k]; ok && cur.timer == t {
			delete(q.later, k)
		}
		q.mu.Unlock()
		q.add(k)
	})
	q.later[k] = delayed{at: at, timer: t}
}

// get blocks until a key is available, and returns false once the queue is closed.
func (q *queue) get() (fsm.Key, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return fsm.Key{}, false
	}
	k := q.order[0]
	q.order[0] = fsm.Key{}
	q.order = q.order[1:]
	delete(q.queued, k)
	q.processing[k] = true
	return k, true
}

// done ends the processing of k. A failed key is queued again after its back-off; a
// successful one forgets its failures.
func (q *queue) done(k fsm.Key, failed bool) {
	q.mu.Lock()
	delete(q.processing, k)
	again := q.dirty[k]
	delete(q.dirty, k)
	var wait time.Duration
	if failed {
		n := q.failures[k]
		q.failures[k] = n + 1
		wait = min(backoffMax, backoffBase<<min(n, 20))
	} else {
		delete(q.failures, k)
	}
	q.mu.Unlock()
	switch {
	case again:
		// It changed while being processed: look at the new state now, whatever the
		// outcome of the pass that just ended (a failure keeps its count).
		q.add(k)
	case failed:
		q.addAfter(k, wait)
	}
}

// len returns how many keys wait.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// close wakes every waiting get; later adds are dropped.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	for k, d := range q.later {
		d.timer.Stop()
		delete(q.later, k)
	}
	q.mu.Unlock()
	q.cond.Broadcast()
}

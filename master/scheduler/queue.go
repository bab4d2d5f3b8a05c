package scheduler

import (
	"time"

	"skiff/fsm"
)

// queueState is where a pending pod waits.
type queueState uint8

const (
	// notQueued: being placed, or not pending.
	notQueued queueState = iota
	// active pods are placed in arrival order.
	active
	// backingOff pods failed recently and wait out their back-off before becoming active.
	backingOff
	// unschedulable pods fit nowhere; they wait for a change in the cluster (or the
	// periodic retry), then back off like the others.
	unschedulable
)

// Back-off after a failed attempt doubles from initialBackoff up to maxBackoff, as in
// kube-scheduler, so a pod that keeps failing does not spin.
const (
	initialBackoff = time.Second
	maxBackoff     = 10 * time.Second
)

// queue holds the pending pods the scheduler owns, each in one state. Active pods come
// out first in, first out. It is owned by the scheduler's loop and not safe for concurrent
// use.
type queue struct {
	pending map[fsm.Key]*PodInfo
	// fifo holds keys of active pods, oldest first from head; an entry whose pod has since
	// left the active state (or the queue) is skipped.
	fifo []fsm.Key
	head int
	// waiting counts pods in backingOff or unschedulable.
	waiting int
}

func newQueue() *queue { return &queue{pending: map[fsm.Key]*PodInfo{}} }

// get returns the pending pod at k, or nil.
func (q *queue) get(k fsm.Key) *PodInfo { return q.pending[k] }

// add queues a new pending pod, or replaces the version queued, keeping its place and
// back-off. A replaced pod that was unschedulable becomes active if requeue is set (its
// spec changed, so it might fit now).
func (q *queue) add(p *PodInfo, requeue bool) {
	old := q.pending[p.key]
	q.pending[p.key] = p
	if old == nil {
		q.activate(p)
		return
	}
	p.state, p.attempts, p.lastTry = old.state, old.attempts, old.lastTry
	if requeue && p.state == unschedulable {
		q.waiting--
		q.activate(p)
	}
}

func (q *queue) activate(p *PodInfo) {
	p.state = active
	q.fifo = append(q.fifo, p.key)
}

// remove forgets the pending pod at k.
func (q *queue) remove(k fsm.Key) {
	if p := q.pending[k]; p != nil {
		if p.state == backingOff || p.state == unschedulable {
			q.waiting--
		}
		p.state = notQueued
		delete(q.pending, k)
	}
}

// hasActive reports whether pop would return a pod.
func (q *queue) hasActive() bool {
	for q.head < len(q.fifo) {
		if p := q.pending[q.fifo[q.head]]; p != nil && p.state == active {
			return true
		}
		q.head++
	}
	q.compact()
	return false
}

// pop takes the oldest active pod out of the queue, or returns nil.
func (q *queue) pop() *PodInfo {
	if !q.hasActive() {
		return nil
	}
	p := q.pending[q.fifo[q.head]]
	q.head++
	q.compact()
	p.state = notQueued
	delete(q.pending, p.key)
	return p
}

// compact drops consumed entries once they dominate the FIFO's backing array.
func (q *queue) compact() {
	if q.head > 1024 && q.head*2 > len(q.fifo) {
		q.fifo = append(q.fifo[:0], q.fifo[q.head:]...)
		q.head = 0
	}
}

// park puts back a pod that fits nowhere (unschedulable) or whose bind failed (backingOff).
func (q *queue) park(p *PodInfo, s queueState) {
	q.pending[p.key] = p
	p.state = s
	q.waiting++
}

// backoff is how long p waits after its last attempt.
func backoff(attempts int) time.Duration {
	d := initialBackoff
	for i := 1; i < attempts && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// moveUnschedulable sends every unschedulable pod to back off, after something in the
// cluster changed that might let it fit.
func (q *queue) moveUnschedulable() {
	if q.waiting == 0 {
		return
	}
	for _, p := range q.pending {
		if p.state == unschedulable {
			p.state = backingOff
		}
	}
}

// promote makes active the pods whose back-off has passed.
func (q *queue) promote(now time.Time) {
	if q.waiting == 0 {
		return
	}
	for _, p := range q.pending {
		if p.state == backingOff && !now.Before(p.lastTry.Add(backoff(p.attempts))) {
			q.waiting--
			q.activate(p)
		}
	}
}

package raft

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// LeaderRoutine is leader-only work (scheduler, controllers). It runs until ctx ends, which
// happens when leadership is lost or the node shuts down, and must return promptly then.
type LeaderRoutine func(ctx context.Context)

// TermLeader records that a node led a term (observed after its barrier committed).
type TermLeader struct {
	Term uint64
	ID   string
}

// leadership is the single owner of leader-only work. It consumes Raft's leadership
// notifications in order; on gaining leadership it commits a barrier (so the FSM holds
// every earlier entry) and then starts the routines under one context; on losing it it
// cancels that context and waits for them. Lost-then-regained is a stop followed by a fresh
// start with a new barrier, never a continuation.
type leadership struct {
	n      *Node
	notify <-chan bool

	mu       sync.Mutex
	routines map[string]LeaderRoutine
	cancel   context.CancelFunc // non-nil while routines run
	wg       sync.WaitGroup
	history  []TermLeader

	// readyTerm is the term whose barrier has committed on this node as leader.
	readyTerm atomic.Uint64
	on        atomic.Bool

	stopCh chan struct{}
	done   chan struct{}
}

func newLeadership(n *Node, notify <-chan bool) *leadership {
	l := &leadership{n: n, notify: notify, routines: map[string]LeaderRoutine{}, stopCh: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *leadership) run() {
	defer close(l.done)
	for {
		select {
		case gained := <-l.notify:
			if gained {
				l.gain()
			} else {
				l.lose()
			}
		case <-l.stopCh:
			l.lose()
			return
		}
	}
}

func (l *leadership) gain() {
	l.lose() // a gain without an observed loss still ends the previous term's routines
	r := l.n.raft
	term := r.CurrentTerm()
	// A barrier can be refused while this node still leads the same term (a leadership
	// transfer that then times out); without a retry the node would lead without ever
	// becoming ready, so retry for as long as the term lasts.
	for {
		err := l.n.await(r.Barrier(0))
		if err == nil {
			break
		}
		l.n.cfg.Logger.Warn("leadership barrier failed", "term", term, "error", err)
		select {
		case <-l.stopCh:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if !l.n.IsLeader() || r.CurrentTerm() != term {
			return
		}
	}
	if !l.n.IsLeader() || r.CurrentTerm() != term {
		return
	}
	ctx, cancel := context.WithCancel(l.n.ctx)
	// Ready before the routines start: their first ProposeAsLeader checks it.
	l.readyTerm.Store(term)
	l.mu.Lock()
	l.cancel = cancel
	l.history = append(l.history, TermLeader{Term: term, ID: l.n.cfg.ID})
	for name, fn := range l.routines {
		l.startLocked(ctx, name, fn)
	}
	l.mu.Unlock()
	l.on.Store(true)
	l.n.cfg.Logger.Info("leader routines started", "term", term)
}

func (l *leadership) startLocked(ctx context.Context, name string, fn LeaderRoutine) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		fn(ctx)
	}()
}

func (l *leadership) lose() {
	l.readyTerm.Store(0)
	l.mu.Lock()
	cancel := l.cancel
	l.cancel = nil
	l.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	l.wg.Wait()
	l.on.Store(false)
	l.n.cfg.Logger.Info("leader routines stopped")
}

// register adds a routine; it starts now if this node currently leads.
func (l *leadership) register(name string, fn LeaderRoutine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, replaced := l.routines[name]
	l.routines[name] = fn
	if l.cancel != nil && !replaced {
		ctx, cancel := context.WithCancel(l.n.ctx)
		prev := l.cancel
		l.cancel = func() { prev(); cancel() }
		l.startLocked(ctx, name, fn)
	}
}

func (l *leadership) stop() {
	select {
	case <-l.stopCh:
	default:
		close(l.stopCh)
	}
	<-l.done
}

func (l *leadership) running() bool { return l.on.Load() }

// waitReady blocks until this node leads a term whose barrier has committed, returning
// ErrNotLeader as soon as it is not the leader.
func (l *leadership) waitReady(ctx context.Context) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		if !l.n.IsLeader() {
			return ErrNotLeader
		}
		if term := l.readyTerm.Load(); term != 0 && term == l.n.raft.CurrentTerm() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.n.ctx.Done():
			return ErrShutdown
		case <-t.C:
		}
	}
}

// OnLeader registers a leader-only routine under name (a later registration under the same
// name replaces it from the next leadership on). It runs whenever this node leads.
func (n *Node) OnLeader(name string, fn LeaderRoutine) { n.leadership.register(name, fn) }

// LeadershipHistory lists the terms this node led, in order, for the cluster verifiers.
func (n *Node) LeadershipHistory() []TermLeader {
	n.leadership.mu.Lock()
	defer n.leadership.mu.Unlock()
	return append([]TermLeader(nil), n.leadership.history...)
}

// LeaderRoutinesRunning reports whether the leader routines run on this node now.
func (n *Node) LeaderRoutinesRunning() bool { return n.leadership.running() }

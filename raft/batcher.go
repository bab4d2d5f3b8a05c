package raft

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"skiff/fsm"
)

// batcher turns concurrent proposals on the leader into few log entries. It keeps at most
// maxInFlight entries in Raft at once; proposals arriving meanwhile queue up and go out
// together as one BatchType entry, so under load one replication round and one fsync per
// replica carry many transactions, while a lone writer is never delayed (a slot is free).
//
// Transactions in one batch share the entry's index as their revision, so a batch never
// holds two transactions touching the same key: the later one waits for the next batch.
type batcher struct {
	n        *Node
	in       chan *proposal
	slots    chan struct{}
	maxBatch int
	maxBytes int
}

const (
	batchMaxInFlight = 2
	batchMaxTxns     = 256
	batchMaxBytes    = 4 << 20
)

// proposal is one encoded TxnType entry waiting for its result.
type proposal struct {
	entry []byte
	keys  []fsm.Key
	done  chan proposalResult
	// term, when set, is the only term the entry may be appended in: a leader routine's
	// decision must not reach the log in a later term of the same node, after other
	// leaders changed what it decided on.
	term uint64
	// state settles the race between a submitter giving up and the batcher taking the
	// proposal into an entry: whoever moves it out of proposalQueued first decides.
	state atomic.Int32
}

const (
	proposalQueued int32 = iota
	proposalTaken
	proposalAbandoned
)

type proposalResult struct {
	res *fsm.TxnResult
	err error
}

func newBatcher(n *Node) *batcher {
	b := &batcher{
		n:        n,
		in:       make(chan *proposal, 4096),
		slots:    make(chan struct{}, batchMaxInFlight),
		maxBatch: batchMaxTxns,
		maxBytes: batchMaxBytes,
	}
	go b.run()
	return b
}

// submit queues a txn entry and waits for its result or ctx. It is safe for concurrent use.
func (b *batcher) submit(ctx context.Context, entry []byte) (*fsm.TxnResult, error) {
	return b.submitInTerm(ctx, entry, 0)
}

// submitInTerm is submit for an entry that may only be appended in term (0: any term).
// When ctx ends before the entry reaches Raft, the proposal is dropped and ctx's error is
// returned (nothing was applied); after that, the outcome is unknown.
func (b *batcher) submitInTerm(ctx context.Context, entry []byte, term uint64) (*fsm.TxnResult, error) {
	if len(entry) == 0 || fsm.MessageType(entry[0]) != fsm.TxnType {
		return nil, fmt.Errorf("batcher: not a txn entry")
	}
	t, err := fsm.DecodeTxn(entry[1:])
	if err != nil {
		return nil, fmt.Errorf("decoding proposed txn: %w", err)
	}
	if b.n.writesPaused.Load() {
		return nil, ErrWritesPaused
	}
	p := &proposal{entry: entry, keys: t.Keys(), done: make(chan proposalResult, 1), term: term}
	select {
	case b.in <- p:
	case <-ctx.Done():
		return nil, fmt.Errorf("proposal not sent to raft: %w", ctx.Err())
	case <-b.n.ctx.Done():
		return nil, ErrShutdown
	}
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		if p.state.CompareAndSwap(proposalQueued, proposalAbandoned) {
			return nil, fmt.Errorf("proposal dropped before it reached raft: %w", ctx.Err())
		}
		return nil, fmt.Errorf("%w: %v while the entry was in flight", ErrUnknownOutcome, ctx.Err())
	case <-b.n.ctx.Done():
		return nil, fmt.Errorf("%w: node shut down while the entry was in flight", ErrUnknownOutcome)
	}
}

// holdSlots takes every in-flight slot, waiting for the entries in Raft to be applied, and
// returns the function that gives them back. While they are held no batch can pass from
// the writes-paused check to raft.Apply, since a batch takes its slot before that check.
// It fails only when ctx ends or the node shuts down, holding nothing then.
func (b *batcher) holdSlots(ctx context.Context) (release func(), err error) {
	held := 0
	release = func() {
		for ; held > 0; held-- {
			<-b.slots
		}
	}
	for held < cap(b.slots) {
		select {
		case b.slots <- struct{}{}:
			held++
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		case <-b.n.ctx.Done():
			release()
			return nil, ErrShutdown
		}
	}
	return release, nil
}

func (b *batcher) run() {
	var carry *proposal
	for {
		p := carry
		carry = nil
		if p == nil {
			select {
			case p = <-b.in:
			case <-b.n.ctx.Done():
				return
			}
		}
		// Wait for a slot first: whatever queues meanwhile joins this batch.
		select {
		case b.slots <- struct{}{}:
		case <-b.n.ctx.Done():
			p.done <- proposalResult{err: ErrShutdown}
			return
		}
		batch := []*proposal{p}
		keys := map[fsm.Key]bool{}
		for _, k := range p.keys {
			keys[k] = true
		}
		size := len(p.entry)
	drain:
		for len(batch) < b.maxBatch && size < b.maxBytes {
			select {
			case q := <-b.in:
				if overlaps(keys, q.keys) {
					carry = q
					break drain
				}
				for _, k := range q.keys {
					keys[k] = true
				}
				batch = append(batch, q)
				size += len(q.entry)
			default:
				break drain
			}
		}
		b.apply(batch)
	}
}

func overlaps(keys map[fsm.Key]bool, more []fsm.Key) bool {
	for _, k := range more {
		if keys[k] {
			return true
		}
	}
	return false
}

// apply hands one entry to Raft and, without blocking the batcher, delivers the results
// and frees the slot when it is applied.
func (b *batcher) apply(batch []*proposal) {
	cur := b.n.raft.CurrentTerm()
	paused := b.n.writesPaused.Load()
	kept := batch[:0]
	for _, p := range batch {
		if !p.state.CompareAndSwap(proposalQueued, proposalTaken) {
			continue // its submitter gave up; it never reaches the log
		}
		if p.term != 0 && p.term != cur {
			p.done <- proposalResult{err: ErrNotLeader}
			continue
		}
		if paused {
			p.done <- proposalResult{err: ErrWritesPaused}
			continue
		}
		kept = append(kept, p)
	}
	if batch = kept; len(batch) == 0 {
		<-b.slots
		return
	}
	entry := batch[0].entry
	if len(batch) > 1 {
		entries := make([][]byte, len(batch))
		for i, p := range batch {
			entries[i] = p.entry
		}
		entry = fsm.EncodeBatch(entries)
	}
	f := b.n.raft.Apply(entry, 0)
	go func() {
		defer func() { <-b.slots }()
		err := b.n.await(f)
		if errors.Is(err, ErrShutdown) {
			err = fmt.Errorf("%w: node shut down while the entry was in flight", ErrUnknownOutcome)
		}
		if err != nil {
			for _, p := range batch {
				p.done <- proposalResult{err: err}
			}
			return
		}
		switch r := f.Response().(type) {
		case *fsm.TxnResult:
			batch[0].done <- proposalResult{res: r}
		case *fsm.BatchResult:
			for i, p := range batch {
				p.done <- proposalResult{res: r.Results[i]}
			}
		default:
			for _, p := range batch {
				p.done <- proposalResult{err: fmt.Errorf("unexpected apply result %T", r)}
			}
		}
	}()
}

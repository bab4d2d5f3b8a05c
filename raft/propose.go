package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
	"skiff/fsm"
)

// Propose commits t through Raft and returns what the FSM made of it. It may be called on
// any node: a follower forwards the encoded entry to the leader and returns the leader's
// result. It blocks until the entry is applied, it is known not to have been applied
// (ErrNoLeader, ErrShutdown, ctx ended before sending), or its outcome became unknown
// (ErrUnknownOutcome). Business failures (conflict, not found) are in the result, not err.
//
// Concurrent proposals share fsyncs: the leader drains every queued entry into one log
// write (hashicorp/raft's BatchApplyCh), so many callers cost one disk flush.
func (n *Node) Propose(ctx context.Context, t *fsm.Txn) (*fsm.TxnResult, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return n.proposeEntry(ctx, fsm.EncodeTxn(t))
}

// ProposeAsLeader is Propose without forwarding: it fails with ErrNotLeader unless this
// node leads. Leader routines use it so that a decision taken by a deposed leader never
// reaches the new leader through forwarding: an entry this node appended while it led is
// either committed before the next leader's barrier (so that leader sees it) or discarded.
func (n *Node) ProposeAsLeader(ctx context.Context, t *fsm.Txn) (*fsm.TxnResult, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Only the term whose routines are running may write: a node that lost and regained
	// leadership must not let the previous term's routines (not yet stopped) act on what
	// they read before other leaders changed it.
	term := n.leadership.readyTerm.Load()
	if !n.IsLeader() || term == 0 || term != n.raft.CurrentTerm() {
		return nil, ErrNotLeader
	}
	return n.batcher.submitInTerm(ctx, fsm.EncodeTxn(t), term)
}

// proposeEntry commits an already-encoded entry from any node.
func (n *Node) proposeEntry(ctx context.Context, entry []byte) (*fsm.TxnResult, error) {
	for {
		if n.IsLeader() {
			res, err := n.batcher.submit(ctx, entry)
			if !errors.Is(err, ErrNotLeader) {
				return res, err
			}
		}
		_, addr, err := n.waitLeader(ctx)
		if err != nil {
			return nil, err
		}
		if addr == n.Addr() {
			// Raft still names us leader but we just refused; let it settle.
			if err := n.pause(ctx); err != nil {
				return nil, err
			}
			continue
		}
		reply, err := n.rpc.call(ctx, addr, rpcPropose, 0, entry)
		switch {
		case err == nil:
			return fsm.DecodeTxnResult(reply)
		case errors.Is(err, ErrNotLeader), errors.Is(err, errSendFailed):
			// Not applied: the old leader refused, or the request never left. Try again.
			if err := n.pause(ctx); err != nil {
				return nil, err
			}
		case errors.Is(err, ErrNoLeader), errors.Is(err, ErrUnknownOutcome), errors.Is(err, ErrDiskFull), errors.Is(err, ErrWritesPaused):
			return nil, err
		default:
			// The request was sent and the reply lost: the leader may have applied it.
			return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
		}
	}
}

// pause waits a little between retries, or returns why it cannot.
func (n *Node) pause(ctx context.Context) error {
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
	case <-n.ctx.Done():
		return ErrShutdown
	}
}

// await waits for a Raft future, or for the node to shut down: futures queued when Raft
// stops are never answered, so waiting on them alone could block forever.
func (n *Node) await(f hraft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return translate(err)
	case <-n.ctx.Done():
		return ErrShutdown
	}
}

// translate maps hashicorp/raft's errors onto this package's sentinels.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		// Refused before it entered the log: safe to retry.
		return ErrNotLeader
	case errors.Is(err, hraft.ErrLeadershipLost):
		return fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	case errors.Is(err, hraft.ErrRaftShutdown):
		return ErrShutdown
	}
	return err
}

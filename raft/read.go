package raft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"skiff/fsm"
)

// ReadIndex returns a revision that every write acknowledged before the call is at or
// below. On the leader that is its applied revision once its leadership is confirmed by a
// quorum; a follower asks the leader. It blocks for one heartbeat round (and a forward).
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	for {
		if n.IsLeader() {
			idx, err := n.localReadIndex(ctx)
			if !errors.Is(err, ErrNotLeader) {
				return idx, err
			}
		}
		_, addr, err := n.waitLeader(ctx)
		if err != nil {
			return 0, err
		}
		if addr == n.Addr() {
			if err := n.pause(ctx); err != nil {
				return 0, err
			}
			continue
		}
		reply, err := n.rpc.call(ctx, addr, rpcReadIndex, 0, nil)
		if err != nil {
			// Asking for a read index changes nothing, so any failure is worth another
			// try (a stale pooled connection, a leader that just stepped down) until the
			// caller's deadline or the leader wait runs out.
			if errors.Is(err, ErrNoLeader) {
				return 0, err
			}
			if perr := n.pause(ctx); perr != nil {
				return 0, fmt.Errorf("%w (last error: %v)", perr, err)
			}
			continue
		}
		idx, k := binary.Uvarint(reply)
		if k <= 0 {
			return 0, errors.New("malformed read index reply")
		}
		return idx, nil
	}
}

// localReadIndex is ReadIndex on the leader. Every write acknowledged so far was applied by
// this FSM before its acknowledgement: writes of this term by this leader, earlier terms'
// writes by the barrier that leadership waits for before declaring itself ready. Confirming
// leadership after the read starts rules out a newer leader having acknowledged anything.
func (n *Node) localReadIndex(ctx context.Context) (uint64, error) {
	if err := n.leadership.waitReady(ctx); err != nil {
		return 0, err
	}
	if err := n.await(n.raft.VerifyLeader()); err != nil {
		return 0, err
	}
	return n.fsm.Revision(), nil
}

// LinearizableRead waits until this node's FSM reflects every write acknowledged before
// the call, then returns that state. Reads from the returned state are linearizable.
func (n *Node) LinearizableRead(ctx context.Context) (*fsm.State, error) {
	idx, err := n.ReadIndex(ctx)
	if err != nil {
		return nil, err
	}
	if n.fsm.Revision() < idx {
		// A node that cannot write its log cannot catch up: say so rather than wait.
		if err := n.disk.check(); err != nil {
			return nil, err
		}
	}
	if err := n.fsm.WaitApplied(ctx, idx); err != nil {
		return nil, fmt.Errorf("read barrier: %w", err)
	}
	return n.fsm.State(), nil
}

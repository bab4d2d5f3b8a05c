package controller

import (
	"context"

	"skiff/fsm"
)

// Store is how controllers read and write cluster state: the leader's own FSM, and Raft.
// Propose must not forward to another node (raft.Node.ProposeAsLeader): a controller that
// lost leadership must fail rather than have its stale decision applied by the new leader.
// Both methods are safe to call concurrently.
type Store interface {
	FSM() *fsm.FSM
	Propose(ctx context.Context, t *fsm.Txn) (*fsm.TxnResult, error)
}

// LeaderStore adapts a Raft node to Store, proposing only while it leads.
type LeaderStore struct {
	Node interface {
		FSM() *fsm.FSM
		ProposeAsLeader(ctx context.Context, t *fsm.Txn) (*fsm.TxnResult, error)
	}
}

// FSM returns the node's state machine.
func (s LeaderStore) FSM() *fsm.FSM { return s.Node.FSM() }

// Propose commits t if this node leads; see raft.Node.ProposeAsLeader.
func (s LeaderStore) Propose(ctx context.Context, t *fsm.Txn) (*fsm.TxnResult, error) {
	return s.Node.ProposeAsLeader(ctx, t)
}

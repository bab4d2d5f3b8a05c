// Package controllertest holds the in-memory twin of the controllers' store: an FSM that
// applies proposals at once, as a single-node Raft would, without disk or network.
package controllertest

import (
	"context"
	"sync"

	hraft "github.com/hashicorp/raft"
	"skiff/fsm"
)

// Store is an in-memory controller.Store. It is safe for concurrent use; proposals are
// applied one at a time in the order they arrive.
type Store struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
	// Entries counts the proposals applied, so tests can assert how many writes a
	// controller made.
	entries int
	// Fail, when set, is consulted before each proposal; a non-nil error is returned
	// instead of applying it (a lost leadership, a full disk).
	Fail func(*fsm.Txn) error
}

// New returns an empty store.
func New() *Store {
	return &Store{f: fsm.New(fsm.Options{})}
}

// FSM returns the state machine.
func (s *Store) FSM() *fsm.FSM { return s.f }

// Propose applies t and returns its result.
func (s *Store) Propose(ctx context.Context, t *fsm.Txn) (*fsm.TxnResult, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail != nil {
		if err := s.Fail(t); err != nil {
			return nil, err
		}
	}
	s.index++
	s.entries++
	res := s.f.Apply(&hraft.Log{Index: s.index, Term: 1, Type: hraft.LogCommand, Data: fsm.EncodeTxn(t)})
	return res.(*fsm.TxnResult), nil
}

// Entries returns how many proposals were applied.
func (s *Store) Entries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries
}

package raft

import "errors"

// ErrNoLeader is returned when no leader is known within the configured wait; the caller
// may retry later (the API answers 503 with Retry-After).
var ErrNoLeader = errors.New("no raft leader")

// ErrNotLeader is returned by leader-only operations on a node that is not the leader; the
// operation was not carried out and is safe to retry elsewhere.
var ErrNotLeader = errors.New("node is not the raft leader")

// ErrUnknownOutcome is returned when a proposal was handed to Raft but its fate is unknown
// (leadership was lost or the connection to the leader broke after sending it). It may or
// may not have been applied.
var ErrUnknownOutcome = errors.New("outcome of proposal unknown")

// ErrShutdown is returned by every operation on a node that is shutting down.
var ErrShutdown = errors.New("raft node is shut down")

// ErrAddressInUse is returned when a server asks to be added at an address where another
// live server of the configuration answers: the joiner's advertised address is wrong, and
// adding it would evict a healthy voter.
var ErrAddressInUse = errors.New("raft address is in use by another live server")

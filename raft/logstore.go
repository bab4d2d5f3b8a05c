package raft

import (
	"sync/atomic"

	hraft "github.com/hashicorp/raft"
)

// countingLogStore counts batched writes to the log so benchmarks can report how many
// entries one fsync carries. Each StoreLogs call is one bbolt transaction, one fsync.
type countingLogStore struct {
	hraft.LogStore
	writes  atomic.Uint64
	entries atomic.Uint64
}

func (s *countingLogStore) StoreLog(l *hraft.Log) error {
	return s.StoreLogs([]*hraft.Log{l})
}

func (s *countingLogStore) StoreLogs(logs []*hraft.Log) error {
	s.writes.Add(1)
	s.entries.Add(uint64(len(logs)))
	return s.LogStore.StoreLogs(logs)
}

package raft

import "context"

// HoldBatcherSlots occupies every in-flight slot of n's batcher, as entries stuck in a slow
// replication round would, so proposals queue; release frees them. For tests only.
func (n *Node) HoldBatcherSlots() (release func()) {
	release, err := n.batcher.holdSlots(context.Background())
	if err != nil {
		panic(err)
	}
	return release
}

package raft

// HoldBatcherSlots occupies every in-flight slot of n's batcher, as entries stuck in a slow
// replication round would, so proposals queue; release frees them. For tests only.
func (n *Node) HoldBatcherSlots() (release func()) {
	for i := 0; i < cap(n.batcher.slots); i++ {
		n.batcher.slots <- struct{}{}
	}
	return func() {
		for i := 0; i < cap(n.batcher.slots); i++ {
			<-n.batcher.slots
		}
	}
}

package scheduler

// Sampling (placement.go) looks at a bounded number of nodes per placement; these heaps
// keep, per zone, the node the resource strategy likes best, so each placement can add it
// to its sample and no node is left much emptier (or, bin packing, fuller) than the rest
// only because samples kept missing it.

// loadHeap returns the heap of zone's nodes, creating it on first use.
func (c *Cache) loadHeap(zone string) *loadHeap {
	h := c.byLoad[zone]
	if h == nil {
		h = &loadHeap{id: len(c.loads), most: c.opts.Strategy == MostAllocated}
		c.byLoad[zone] = h
		c.loads = append(c.loads, h)
	}
	return h
}

// loadHeap is a heap of nodes by requested share of CPU and memory (scoring requests),
// least first, or most first for bin packing.
type loadHeap struct {
	// id numbers the zone, in the order zones appeared.
	id    int
	nodes []*nodeInfo
	most  bool
}

func load(n *nodeInfo) float64 {
	return fraction(n.nonZero.milliCPU, n.alloc.milliCPU) + fraction(n.nonZero.memory, n.alloc.memory)
}

func (h *loadHeap) Len() int { return len(h.nodes) }
func (h *loadHeap) Less(i, j int) bool {
	if h.most {
		return load(h.nodes[i]) > load(h.nodes[j])
	}
	return load(h.nodes[i]) < load(h.nodes[j])
}
func (h *loadHeap) Swap(i, j int) {
	h.nodes[i], h.nodes[j] = h.nodes[j], h.nodes[i]
	h.nodes[i].heapIndex, h.nodes[j].heapIndex = i, j
}
func (h *loadHeap) Push(x any) {
	n := x.(*nodeInfo)
	n.heapIndex, n.zoneID = len(h.nodes), h.id
	h.nodes = append(h.nodes, n)
}
func (h *loadHeap) Pop() any {
	n := h.nodes[len(h.nodes)-1]
	h.nodes = h.nodes[:len(h.nodes)-1]
	return n
}

// lightest is the node the strategy likes best by load alone, or nil.
func (h *loadHeap) lightest() *nodeInfo {
	if len(h.nodes) == 0 {
		return nil
	}
	return h.nodes[0]
}

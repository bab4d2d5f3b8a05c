package scheduler

import (
	"container/heap"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
	"skiff/fsm"
	"skiff/master/objects"
)

// Cache is the scheduler's view of the cluster: every node, and every pod bound or assumed
// on one, with the indexes placement needs (pods by namespace, pods by owner per node and
// zone, pods carrying inter-pod terms). It is updated incrementally, one node or pod at a
// time, and is not safe for concurrent use: the scheduler's loop owns it, and placement
// reads it between updates, when it does not change.
type Cache struct {
	opts   Options
	nodes  []*nodeInfo
	byName map[string]*nodeInfo
	pods   map[fsm.Key]*PodInfo
	// byNamespace holds the bound and assumed pods of each namespace, for inter-pod
	// affinity and topology spread, which match pods by label in chosen namespaces.
	byNamespace map[string]map[*PodInfo]struct{}
	// owners counts the pods of each controller owner per node and per zone.
	owners map[string]*ownerGroup
	// withAffinity holds the pods that carry inter-pod terms other pods must respect.
	withAffinity map[*PodInfo]struct{}
	// orphans holds pods bound to a node the cache does not know (yet), by node name.
	orphans map[string]map[*PodInfo]struct{}
	// zones counts the nodes of each zone.
	zones map[string]int
	// byLoad orders each zone's nodes by how much of them is requested (emptiest first, or
	// fullest first when bin packing), so a placement that samples nodes also sees the best
	// of each zone. loads lists the same heaps in the order zones appeared.
	byLoad map[string]*loadHeap
	loads  []*loadHeap

	// next is where the next placement starts looking, so successive placements sample
	// different nodes when only some are scored.
	next int
	rng  *rand.Rand
	// scratch space reused by every placement.
	feasible []*nodeInfo
	// onNode is zero except, during a placement, at the indexes of the nodes holding pods
	// of the pod's owner.
	onNode  []int32
	scores  []int64
	raw     []int64
	reasons map[string]int
	failed  []string
}

// ownerGroup counts one owner's pods per node and per zone.
type ownerGroup struct {
	perNode map[*nodeInfo]int32
	perZone map[string]int32
	total   int32
}

// NewCache returns an empty cache placing pods with opts.
func NewCache(opts Options) *Cache {
	opts.setDefaults()
	return &Cache{
		opts:         opts,
		byName:       map[string]*nodeInfo{},
		pods:         map[fsm.Key]*PodInfo{},
		byNamespace:  map[string]map[*PodInfo]struct{}{},
		owners:       map[string]*ownerGroup{},
		withAffinity: map[*PodInfo]struct{}{},
		orphans:      map[string]map[*PodInfo]struct{}{},
		zones:        map[string]int{},
		byLoad:       map[string]*loadHeap{},
		rng:          rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		reasons:      map[string]int{},
	}
}

// SetNode adds node or replaces what the cache knows of it, keeping its pods.
func (c *Cache) SetNode(node *corev1.Node) {
	c.setNode(newNodeInfo(node))
}

func (c *Cache) setNode(n *nodeInfo) {
	old := c.byName[n.name]
	if old == nil {
		n.index = len(c.nodes)
		c.nodes = append(c.nodes, n)
		c.byName[n.name] = n
		c.countZone(n.zone, 1)
		heap.Push(c.loadHeap(n.zone), n)
		for p := range c.orphans[n.name] {
			c.attach(p, n)
		}
		delete(c.orphans, n.name)
		return
	}
	// Keep the node's identity (pods and owner groups point at it); refresh its facts.
	zoneChanged := old.zone != n.zone
	if zoneChanged {
		c.forEachPodOn(old, func(p *PodInfo) { c.countOwner(p, -1) })
		c.countZone(old.zone, -1)
		c.countZone(n.zone, 1)
		heap.Remove(c.loadHeap(old.zone), old.heapIndex)
	}
	old.labels, old.zone, old.unschedulable, old.taints, old.alloc, old.allowedPods =
		n.labels, n.zone, n.unschedulable, n.taints, n.alloc, n.allowedPods
	if zoneChanged {
		c.forEachPodOn(old, func(p *PodInfo) { c.countOwner(p, 1) })
		heap.Push(c.loadHeap(old.zone), old)
	} else {
		heap.Fix(c.loadHeap(old.zone), old.heapIndex)
	}
}

func (c *Cache) countZone(z string, d int) {
	if z == "" {
		return
	}
	if c.zones[z] += d; c.zones[z] == 0 {
		delete(c.zones, z)
	}
}

// forEachPodOn is a scan of every pod; it serves only rare changes (a node's zone).
func (c *Cache) forEachPodOn(n *nodeInfo, fn func(*PodInfo)) {
	for _, p := range c.pods {
		if p.node == n {
			fn(p)
		}
	}
}

// RemoveNode forgets a node; its pods stay known, waiting for a node of that name.
func (c *Cache) RemoveNode(name string) {
	n := c.byName[name]
	if n == nil {
		return
	}
	var on []*PodInfo
	c.forEachPodOn(n, func(p *PodInfo) { on = append(on, p) })
	for _, p := range on {
		c.detach(p)
		c.orphan(p)
	}
	c.countZone(n.zone, -1)
	heap.Remove(c.loadHeap(n.zone), n.heapIndex)
	last := c.nodes[len(c.nodes)-1]
	c.nodes[n.index] = last
	last.index = n.index
	c.nodes = c.nodes[:len(c.nodes)-1]
	delete(c.byName, name)
	if c.next >= len(c.nodes) {
		c.next = 0
	}
}

// AddPod records a pod bound to a node (spec.nodeName set); it replaces any earlier
// version of the pod.
func (c *Cache) AddPod(pod *corev1.Pod) {
	c.add(NewPodInfo(pod), pod.Spec.NodeName)
}

// RemovePod forgets a bound or assumed pod.
func (c *Cache) RemovePod(namespace, name string) {
	if p := c.pods[objects.Key(podsResource, namespace, name)]; p != nil {
		c.remove(p)
	}
}

// Assume records p as placed on node before the store says so, so the next placements
// count it; the scheduler forgets it if the bind fails.
func (c *Cache) Assume(p *PodInfo, node string) { c.add(p, node) }

// add records p on node, replacing an earlier version of the pod.
func (c *Cache) add(p *PodInfo, node string) {
	if old := c.pods[p.key]; old != nil {
		c.remove(old)
	}
	p.nodeName, p.node = node, nil
	c.pods[p.key] = p
	ns := c.byNamespace[p.namespace]
	if ns == nil {
		ns = map[*PodInfo]struct{}{}
		c.byNamespace[p.namespace] = ns
	}
	ns[p] = struct{}{}
	if p.hasPodAffinity() {
		c.withAffinity[p] = struct{}{}
	}
	if n := c.byName[node]; n != nil {
		c.attach(p, n)
	} else {
		c.orphan(p)
	}
}

// remove forgets p (which must be the version the cache holds).
func (c *Cache) remove(p *PodInfo) {
	if c.pods[p.key] != p {
		return
	}
	delete(c.pods, p.key)
	if ns := c.byNamespace[p.namespace]; ns != nil {
		delete(ns, p)
		if len(ns) == 0 {
			delete(c.byNamespace, p.namespace)
		}
	}
	delete(c.withAffinity, p)
	if p.node != nil {
		c.detach(p)
	} else if o := c.orphans[p.nodeName]; o != nil {
		delete(o, p)
		if len(o) == 0 {
			delete(c.orphans, p.nodeName)
		}
	}
}

func (c *Cache) attach(p *PodInfo, n *nodeInfo) {
	p.node = n
	n.addPod(p)
	c.countOwner(p, 1)
	heap.Fix(c.loadHeap(n.zone), n.heapIndex)
}

func (c *Cache) detach(p *PodInfo) {
	c.countOwner(p, -1)
	n := p.node
	n.removePod(p)
	p.node = nil
	heap.Fix(c.loadHeap(n.zone), n.heapIndex)
}

func (c *Cache) orphan(p *PodInfo) {
	o := c.orphans[p.nodeName]
	if o == nil {
		o = map[*PodInfo]struct{}{}
		c.orphans[p.nodeName] = o
	}
	o[p] = struct{}{}
}

func (c *Cache) countOwner(p *PodInfo, d int32) {
	if p.owner == "" || p.node == nil {
		return
	}
	g := c.owners[p.owner]
	if g == nil {
		g = &ownerGroup{perNode: map[*nodeInfo]int32{}, perZone: map[string]int32{}}
		c.owners[p.owner] = g
	}
	g.total += d
	if g.total == 0 {
		delete(c.owners, p.owner)
		return
	}
	if v := g.perNode[p.node] + d; v == 0 {
		delete(g.perNode, p.node)
	} else {
		g.perNode[p.node] = v
	}
	if z := p.node.zone; z != "" {
		if v := g.perZone[z] + d; v == 0 {
			delete(g.perZone, z)
		} else {
			g.perZone[z] = v
		}
	}
}

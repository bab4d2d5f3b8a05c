package scheduler

import (
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"
)

// Options tune the scheduler.
type Options struct {
	// Strategy is how node resources are scored; LeastAllocated (spread) by default,
	// MostAllocated for bin packing.
	Strategy ScoringStrategy
	// PercentageOfNodesToScore bounds how many feasible nodes a placement looks for before
	// scoring them, as kube-scheduler's option of that name: zero adapts it to the cluster
	// size (50% less 1% per 125 nodes, at least 5%), and at least 100 nodes are always
	// looked for.
	PercentageOfNodesToScore int
	// MaxInFlight bounds the binds being written at once (default 256). Concurrent binds
	// share Raft entries.
	MaxInFlight int
	// RetryInterval is how often unschedulable pods are tried again without any change in
	// the cluster (default 15 s); a node or pod change retries them sooner.
	RetryInterval time.Duration
	// Seed seeds the choice among equally good nodes.
	Seed uint64
}

func (o *Options) setDefaults() {
	if o.Strategy == "" {
		o.Strategy = LeastAllocated
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = 15 * time.Second
	}
}

const (
	minFeasibleNodesToFind           = 100
	minFeasibleNodesPercentageToFind = 5
	// maxZonesConsulted bounds the zones whose least loaded node a sampled placement adds.
	maxZonesConsulted = 64
)

// numFeasibleNodesToFind is how many feasible nodes a placement looks for among all nodes
// before it stops filtering and scores them: kube-scheduler's bound, which keeps placement
// cost flat in large clusters while still comparing enough nodes to place well.
func numFeasibleNodesToFind(all, percentage int) int {
	if all < minFeasibleNodesToFind || percentage >= 100 {
		return all
	}
	if percentage <= 0 {
		percentage = max(50-all/125, minFeasibleNodesPercentageToFind)
	}
	return max(all*percentage/100, minFeasibleNodesToFind)
}

// FitError says why a pod fits on no node, in kube-scheduler's words.
type FitError struct {
	// NumAllNodes is how many nodes were considered.
	NumAllNodes int
	// Reasons counts the nodes refused for each reason.
	Reasons map[string]int
	// Err is set when the pod's own constraints could not be understood.
	Err error
}

// Error is the message of the PodScheduled condition and of the FailedScheduling event,
// e.g. "0/5 nodes are available: 2 Insufficient cpu, 3 node(s) were unschedulable."
func (e *FitError) Error() string {
	if e.NumAllNodes == 0 {
		return "no nodes available to schedule pods"
	}
	msg := fmt.Sprintf("0/%d nodes are available:", e.NumAllNodes)
	if e.Err != nil {
		return msg + " " + e.Err.Error() + "."
	}
	reasons := make([]string, 0, len(e.Reasons))
	for r, n := range e.Reasons {
		reasons = append(reasons, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(reasons)
	return msg + " " + strings.Join(reasons, ", ") + "."
}

// Place chooses a node for p among the cache's nodes, or says why none fits (a *FitError).
// It does not record the choice: Assume does.
func (c *Cache) Place(p *PodInfo) (string, error) {
	n, ferr := c.place(p)
	if ferr != nil {
		return "", ferr
	}
	return n.name, nil
}

// place filters nodes, starting where the previous placement stopped, until it has found
// as many feasible nodes as numFeasibleNodesToFind asks for or has seen every node (plus
// each zone's least loaded node), then scores those and picks the best, breaking ties at
// random. It reads the cache and changes only its own scratch space and starting point.
func (c *Cache) place(p *PodInfo) (*nodeInfo, *FitError) {
	total := len(c.nodes)
	if total == 0 {
		return nil, &FitError{}
	}
	if p.parseErr != nil {
		return nil, &FitError{NumAllNodes: total, Err: p.parseErr}
	}
	cy := c.prepare(p)
	defer c.release(cy)
	want := numFeasibleNodesToFind(total, c.opts.PercentageOfNodesToScore)
	feasible := c.feasible[:0]
	clear(c.reasons)
	start, processed := c.next, 0
	for processed < total && len(feasible) < want {
		i := start + processed
		if i >= total {
			i -= total
		}
		n := c.nodes[i]
		processed++
		if reasons := fits(cy, p, n, c.failed); len(reasons) > 0 {
			for _, r := range reasons {
				c.reasons[r]++
			}
			c.failed = reasons[:0]
			continue
		}
		feasible = append(feasible, n)
	}
	// A sample may miss the nodes the load alone favours most; look at each zone's too, so
	// sampling does not leave a few nodes emptier (or, bin packing, fuller) than the rest.
	if processed < total && len(c.loads) <= maxZonesConsulted {
		for _, h := range c.loads {
			l := h.lightest()
			if l == nil || (l.index-start+total)%total < processed {
				continue
			}
			if reasons := fits(cy, p, l, c.failed); len(reasons) == 0 {
				feasible = append(feasible, l)
			} else {
				c.failed = reasons[:0]
			}
		}
	}
	c.next = (start + processed) % total
	c.feasible = feasible
	switch len(feasible) {
	case 0:
		return nil, &FitError{NumAllNodes: total, Reasons: maps.Clone(c.reasons)}
	case 1:
		return feasible[0], nil
	}
	return c.best(cy, p, feasible), nil
}

// release restores the cache's scratch space after a placement.
func (c *Cache) release(cy *cycle) {
	if cy.owner != nil {
		for n := range cy.owner.perNode {
			c.onNode[n.index] = 0
		}
	}
}

// best sums the weighted scores of the feasible nodes and returns the highest, choosing
// uniformly among ties (reservoir sampling) so equal nodes share the load.
func (c *Cache) best(cy *cycle, p *PodInfo, nodes []*nodeInfo) *nodeInfo {
	total := grow(c.scores, len(nodes))
	raw := grow(c.raw, len(nodes))
	c.scores, c.raw = total, raw
	clear(total)
	for _, s := range scorers {
		if s.score(&c.opts, cy, p, nodes, raw) {
			for i := range total {
				total[i] += s.weight * raw[i]
			}
		}
	}
	bestIdx, ties := 0, 1
	for i := 1; i < len(nodes); i++ {
		switch {
		case total[i] > total[bestIdx]:
			bestIdx, ties = i, 1
		case total[i] == total[bestIdx]:
			ties++
			if c.rng.IntN(ties) == 0 {
				bestIdx = i
			}
		}
	}
	return nodes[bestIdx]
}

func grow(s []int64, n int) []int64 {
	if cap(s) < n {
		return make([]int64, n)
	}
	return s[:n]
}

package scheduler

import (
	"math"

	"k8s.io/apimachinery/pkg/labels"
)

// topologyPair is one topology domain: a node label and its value (a zone, a host).
type topologyPair struct{ key, value string }

// cycle is what one placement computes once about the rest of the cluster before it looks
// at nodes one by one, as kube-scheduler's PreFilter and PreScore do: pod counts per
// topology domain for the pod's spread constraints and inter-pod terms, and the pod's
// owner group. A pod without such terms costs nothing here.
type cycle struct {
	spread []spreadCounts
	// affinity counts, per domain, the pods matching all of the pod's required affinity
	// terms; antiAffinity those matching one of its required anti-affinity terms;
	// existingAnti the domains where a placed pod's required anti-affinity refuses the pod.
	affinity, antiAffinity, existingAnti map[topologyPair]int32
	// selfAffinity is whether the pod matches its own affinity terms (then the first pod of
	// a group may go where no match exists yet).
	selfAffinity bool
	// preferred is the inter-pod preference score of each domain, and preferredKeys the
	// label keys it uses.
	preferred     map[topologyPair]int64
	preferredKeys []string
	// owner is the pod's owner group, for spreading when the pod has no constraints;
	// ownerOnNode and ownerInZone count its pods by node index and zone id, and nodes and
	// zones are the number of domains it spreads over.
	owner                    *ownerGroup
	ownerOnNode, ownerInZone []int32
	nodes, zones             int
}

// spreadCounts is one spread constraint's matching pods per domain. Every domain of an
// eligible node is present, with zero if it has no matching pod, so the minimum is right.
type spreadCounts struct {
	c      *spreadConstraint
	counts map[string]int32
	min    int32
	// weight favours constraints over more domains when scoring, as kube-scheduler does.
	weight float64
}

// minimum is the least populated domain's count; zero while fewer domains exist than
// minDomains asks for.
func (s *spreadCounts) minimum() int32 {
	if int32(len(s.counts)) < s.c.minDomains {
		return 0
	}
	return s.min
}

// prepare computes the cycle for placing p.
func (c *Cache) prepare(p *PodInfo) *cycle {
	cy := &cycle{}
	if p.owner != "" && len(p.spread) == 0 {
		if g := c.owners[p.owner]; g != nil {
			cy.owner = g
			cy.nodes, cy.zones = len(c.nodes), len(c.zones)
			// Counts in slices: the scorer reads one per node, and map lookups by pointer
			// and by zone name were most of its cost.
			if len(c.onNode) < len(c.nodes) {
				c.onNode = make([]int32, len(c.nodes))
			}
			for n, v := range g.perNode {
				c.onNode[n.index] = v
			}
			cy.ownerOnNode = c.onNode
			cy.ownerInZone = make([]int32, len(c.loads))
			for z, v := range g.perZone {
				cy.ownerInZone[c.byLoad[z].id] = v
			}
		}
	}
	if len(p.spread) > 0 {
		c.countSpread(cy, p)
	}
	if len(p.affinity)+len(p.antiAffinity) > 0 {
		cy.affinity = map[topologyPair]int32{}
		cy.antiAffinity = map[topologyPair]int32{}
		cy.selfAffinity = matchesAll(p.affinity, p)
		c.eachCandidate(func(e *PodInfo) {
			if len(p.affinity) > 0 && matchesAll(p.affinity, e) {
				for i := range p.affinity {
					countPair(cy.affinity, e.node, p.affinity[i].key, 1)
				}
			}
			for i := range p.antiAffinity {
				if p.antiAffinity[i].matches(e) {
					countPair(cy.antiAffinity, e.node, p.antiAffinity[i].key, 1)
				}
			}
		}, p.affinity, p.antiAffinity)
	}
	if len(p.preferredAffinity)+len(p.preferredAntiAffinity) > 0 {
		cy.preferred = map[topologyPair]int64{}
		c.eachCandidate(func(e *PodInfo) {
			for i := range p.preferredAffinity {
				if t := &p.preferredAffinity[i]; t.matches(e) {
					scorePair(cy.preferred, e.node, t.key, t.weight)
				}
			}
			for i := range p.preferredAntiAffinity {
				if t := &p.preferredAntiAffinity[i]; t.matches(e) {
					scorePair(cy.preferred, e.node, t.key, -t.weight)
				}
			}
		}, p.preferredAffinity, p.preferredAntiAffinity)
	}
	// Placed pods' terms about this pod: their required anti-affinity refuses it, their
	// preferences (and required affinity, at weight 1) attract or repel it.
	for e := range c.withAffinity {
		if e.node == nil {
			continue
		}
		for i := range e.antiAffinity {
			if t := &e.antiAffinity[i]; t.matches(p) {
				if cy.existingAnti == nil {
					cy.existingAnti = map[topologyPair]int32{}
				}
				countPair(cy.existingAnti, e.node, t.key, 1)
			}
		}
		for _, terms := range []struct {
			list []affinityTerm
			sign int64
		}{{e.affinity, 1}, {e.preferredAffinity, 1}, {e.preferredAntiAffinity, -1}} {
			for i := range terms.list {
				if t := &terms.list[i]; t.matches(p) {
					if cy.preferred == nil {
						cy.preferred = map[topologyPair]int64{}
					}
					scorePair(cy.preferred, e.node, t.key, terms.sign*t.weight)
				}
			}
		}
	}
	if len(cy.preferred) > 0 {
		seen := map[string]bool{}
		for tp := range cy.preferred {
			if !seen[tp.key] {
				seen[tp.key] = true
				cy.preferredKeys = append(cy.preferredKeys, tp.key)
			}
		}
	}
	return cy
}

func countPair(m map[topologyPair]int32, n *nodeInfo, key string, d int32) {
	if v, ok := n.labels[key]; ok {
		m[topologyPair{key, v}] += d
	}
}

func scorePair(m map[topologyPair]int64, n *nodeInfo, key string, d int64) {
	if v, ok := n.labels[key]; ok {
		m[topologyPair{key, v}] += d
	}
}

// eachCandidate calls fn for every placed pod some term could match: those of the terms'
// namespaces, or every pod if a term spans all namespaces.
func (c *Cache) eachCandidate(fn func(*PodInfo), termLists ...[]affinityTerm) {
	namespaces := map[string]bool{}
	for _, terms := range termLists {
		for i := range terms {
			if terms[i].namespaces == nil {
				for _, e := range c.pods {
					if e.node != nil {
						fn(e)
					}
				}
				return
			}
			for ns := range terms[i].namespaces {
				namespaces[ns] = true
			}
		}
	}
	for ns := range namespaces {
		for e := range c.byNamespace[ns] {
			if e.node != nil {
				fn(e)
			}
		}
	}
}

// countSpread counts, for each of p's spread constraints, the pods of p's namespace that
// the constraint selects, per domain, over the nodes whose domains count: nodes with every
// topology key of constraints of the same kind (hard or soft), that match the pod's node
// constraints and tolerate its taints when the policies say so.
func (c *Cache) countSpread(cy *cycle, p *PodInfo) {
	cy.spread = make([]spreadCounts, len(p.spread))
	for i := range p.spread {
		cy.spread[i] = spreadCounts{c: &p.spread[i], counts: map[string]int32{}}
	}
	eligible := func(n *nodeInfo, sc *spreadConstraint) bool {
		for i := range p.spread {
			if p.spread[i].hard == sc.hard {
				if _, ok := n.labels[p.spread[i].key]; !ok {
					return false
				}
			}
		}
		if sc.honorAffinity && !matchesNodeConstraints(p, n) {
			return false
		}
		return !sc.honorTaints || untoleratedTaint(p.tolerations, n.taints) == nil
	}
	for _, n := range c.nodes {
		for i := range cy.spread {
			s := &cy.spread[i]
			if eligible(n, s.c) {
				v := n.labels[s.c.key]
				s.counts[v] += 0
			}
		}
	}
	for e := range c.byNamespace[p.namespace] {
		if e.node == nil {
			continue
		}
		set := labels.Set(e.labels)
		for i := range cy.spread {
			s := &cy.spread[i]
			if s.c.selector.Matches(set) && eligible(e.node, s.c) {
				s.counts[e.node.labels[s.c.key]]++
			}
		}
	}
	for i := range cy.spread {
		s := &cy.spread[i]
		s.min = math.MaxInt32
		for _, v := range s.counts {
			s.min = min(s.min, v)
		}
		if len(s.counts) == 0 {
			s.min = 0
		}
		s.weight = math.Log(float64(len(s.counts) + 2))
	}
}

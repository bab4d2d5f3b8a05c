package master

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"skiff/gossip"
	"skiff/raft"
)

// Autopilot: dead-server cleanup.
//
// A master lost for good (its machine is gone) stays in the Raft configuration until
// someone removes it, and until then it counts against the quorum: five masters with two
// gone tolerate no further loss, the same five with the two removed (three voters)
// tolerate one. Like Consul's autopilot (CleanupDeadServers, MinQuorum), the leader
// removes a master that gossip reports left at once, and one that gossip reports dead (or
// no longer lists at all: gossip forgets dead members after 30 s) once it has been so for
// AutopilotConfig.DeadServerCleanup. It never removes a voter when that would leave fewer
// than MinQuorum voters, nor when fewer than a quorum of the voters are alive (the change
// could not commit, and a leader that sees so few may be the one cut off), and it removes
// at most one server per pass, re-reading the configuration before the next. A removed
// master that comes back asks to be added again (raft.Node.Rejoin), so a removal is never
// a lasting loss.
//
// Health comes only from this leader's gossip pool, and the clock for "dead for how long"
// starts when this leader first sees the master unhealthy: a new leader starts counting
// afresh, which only ever delays a removal. A master's gossip member is matched by its
// Raft ID (gossip Meta.Name); every master of a cluster that runs autopilot must be in
// gossip, or it is taken for dead.

// AutopilotConfig configures dead-server cleanup.
type AutopilotConfig struct {
	// DeadServerCleanup is how long gossip must report a master dead (or not list it)
	// before the leader removes it from the Raft configuration. Zero or negative disables
	// autopilot entirely (a master that left is not removed either).
	DeadServerCleanup time.Duration
	// MinQuorum is the fewest voters autopilot leaves in the configuration; it never
	// shrinks a cluster below it. Zero means 3 (a cluster that had three masters keeps
	// three slots until an operator removes one).
	MinQuorum int
	// Interval is how often the leader re-evaluates (default 1 s). Autopilot polls rather
	// than reading the gossip pool's Changes channel, whose one consumer is node lifecycle.
	Interval time.Duration
}

func (c AutopilotConfig) withDefaults() AutopilotConfig {
	if c.MinQuorum <= 0 {
		c.MinQuorum = 3
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	return c
}

// health is a master's liveness as the leader's gossip pool reports it.
type health int

const (
	healthAlive health = iota
	healthDead         // dead in gossip, or not in gossip at all
	healthLeft         // left gossip gracefully
	// healthUnknown: not in gossip and never seen there by this leader — a master whose
	// gossip join failed, or one gossip forgot before this leader started. Never removed
	// automatically (`skiff raft remove-peer` is the operator's tool for it).
	healthUnknown
)

func (h health) String() string {
	switch h {
	case healthAlive:
		return "alive"
	case healthDead:
		return "dead"
	case healthLeft:
		return "left"
	case healthUnknown:
		return "unknown"
	}
	return fmt.Sprintf("health(%d)", int(h))
}

// serverStatus is one server of the Raft configuration as autopilot sees it.
type serverStatus struct {
	ID     string
	Voter  bool
	Health health
	// Since is when autopilot first saw the server in this Health.
	Since time.Time
	// Detail says where Health came from ("dead in gossip", "not in gossip", …).
	Detail string
}

// Decision rules, one per outcome, for logging and tests.
const (
	ruleRemove     = "remove"
	ruleWaiting    = "waiting"      // dead for less than DeadServerCleanup
	ruleMinQuorum  = "min-quorum"   // removing it would leave fewer than MinQuorum voters
	ruleNoQuorum   = "no-quorum"    // fewer than a quorum of voters alive: the removal cannot commit
	ruleOnePerPass = "one-per-pass" // another server is removed in this pass
)

// decision is what autopilot decided for one unhealthy server in one pass.
type decision struct {
	ID     string
	Rule   string
	Reason string
}

// decide is autopilot's policy, a pure function of the configuration's servers (with
// their health), the leader's ID, the time and the config. It returns one decision for
// every unhealthy server other than the leader, at most one of them ruleRemove: left
// servers first, then the longest dead, ties by ID. cfg must have its defaults applied.
func decide(self string, servers []serverStatus, now time.Time, cfg AutopilotConfig) []decision {
	voters, alive := 0, 0
	var unhealthy []serverStatus
	for _, s := range servers {
		ok := s.Health == healthAlive || s.ID == self
		if s.Voter {
			voters++
			if ok {
				alive++
			}
		}
		if !ok {
			unhealthy = append(unhealthy, s)
		}
	}
	slices.SortFunc(unhealthy, func(a, b serverStatus) int {
		if (a.Health == healthLeft) != (b.Health == healthLeft) {
			if a.Health == healthLeft {
				return -1
			}
			return 1
		}
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	quorum := voters/2 + 1
	removed := ""
	out := make([]decision, 0, len(unhealthy))
	for _, s := range unhealthy {
		d := decision{ID: s.ID}
		gone := now.Sub(s.Since).Truncate(time.Second)
		switch {
		case s.Health == healthUnknown:
			d.Rule = ruleWaiting
			d.Reason = s.Detail + "; only a master gossip has seen is removed automatically"
		case s.Health == healthDead && now.Sub(s.Since) < cfg.DeadServerCleanup:
			d.Rule = ruleWaiting
			d.Reason = fmt.Sprintf("%s for %s; removal after %s", s.Detail, gone, cfg.DeadServerCleanup)
		case removed != "":
			d.Rule = ruleOnePerPass
			d.Reason = fmt.Sprintf("%s; one removal at a time, %s goes first", s.Detail, removed)
		case !s.Voter:
			d.Rule = ruleRemove
			d.Reason = fmt.Sprintf("non-voter %s for %s", s.Detail, gone)
		case voters-1 < cfg.MinQuorum:
			d.Rule = ruleMinQuorum
			d.Reason = fmt.Sprintf("%s for %s, but removing it would leave %d voters, fewer than the minimum of %d", s.Detail, gone, voters-1, cfg.MinQuorum)
		case alive < quorum:
			d.Rule = ruleNoQuorum
			d.Reason = fmt.Sprintf("%s for %s, but only %d of %d voters are alive (a quorum is %d): the removal could not commit", s.Detail, gone, alive, voters, quorum)
		default:
			d.Rule = ruleRemove
			d.Reason = fmt.Sprintf("%s for %s; %d voters remain, %d alive", s.Detail, gone, voters-1, alive)
		}
		if d.Rule == ruleRemove {
			removed = s.ID
		}
		out = append(out, d)
	}
	return out
}

// masterHealth reports how gossip sees the master with Raft ID id: alive if any member
// record for it is alive, else left, else dead; a master gossip does not list is dead. A
// record without meta (undecodable) is matched by member name.
func masterHealth(members []gossip.Member, id string) (health, string) {
	h, detail := healthDead, detailNotInGossip
	for _, m := range members {
		named := m.Meta.Name == id || m.Meta.Name == "" && m.Name == id
		if !named || m.Meta.Role != gossip.RoleMaster && m.Meta.Role != "" {
			continue
		}
		switch m.State {
		case gossip.StateAlive, gossip.StateSuspect:
			return healthAlive, "alive in gossip"
		case gossip.StateLeft:
			h, detail = healthLeft, "left gossip"
		case gossip.StateDead:
			if h != healthLeft {
				h, detail = healthDead, "dead in gossip"
			}
		}
	}
	return h, detail
}

// autopilotMembership is what autopilot needs of the Raft node (a *raft.Node).
type autopilotMembership interface {
	ID() string
	Peers() ([]raft.Peer, error)
	RemovePeer(ctx context.Context, id string) error
}

// detailNotInGossip is masterHealth's detail for a master gossip does not list.
const detailNotInGossip = "not in gossip"

// autopilotMembers is what autopilot needs of gossip (a *gossip.Pool).
type autopilotMembers interface {
	Members() []gossip.Member
}

// autopilot is the leader routine that removes dead masters. One runs per leadership
// term; its state (when each master was first seen unhealthy, the last decision logged)
// lives only as long as that term.
type autopilot struct {
	cfg     AutopilotConfig
	node    autopilotMembership
	members autopilotMembers
	log     *slog.Logger
	now     func() time.Time

	seen     map[string]serverStatus // by ID: health and since when
	logged   map[string]string       // by ID: the rule last logged
	inGossip map[string]bool         // by ID: gossip has listed it during this term
}

func newAutopilot(cfg AutopilotConfig, node autopilotMembership, members autopilotMembers, log *slog.Logger) *autopilot {
	return &autopilot{cfg: cfg.withDefaults(), node: node, members: members, log: log, now: time.Now}
}

// Run evaluates the cluster every Interval until ctx ends (leadership lost or shutdown).
func (a *autopilot) Run(ctx context.Context) {
	a.seen, a.logged, a.inGossip = map[string]serverStatus{}, map[string]string{}, map[string]bool{}
	a.log.Info("autopilot running", "dead_server_cleanup", a.cfg.DeadServerCleanup, "min_quorum", a.cfg.MinQuorum)
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		a.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass observes every server once, decides, logs each decision that changed, and carries
// out at most one removal (waiting for it to commit).
func (a *autopilot) pass(ctx context.Context) {
	peers, err := a.node.Peers()
	if err != nil {
		a.log.Warn("autopilot: reading the raft configuration", "error", err)
		return
	}
	now, members, self := a.now(), a.members.Members(), a.node.ID()
	servers := make([]serverStatus, 0, len(peers))
	inConfig := map[string]bool{}
	for _, p := range peers {
		inConfig[p.ID] = true
		h, detail := masterHealth(members, p.ID)
		if detail != detailNotInGossip {
			a.inGossip[p.ID] = true
		} else if !a.inGossip[p.ID] {
			h, detail = healthUnknown, "never seen in this leader's gossip"
		}
		if p.ID == self {
			h, detail = healthAlive, "leader"
		}
		prev, ok := a.seen[p.ID]
		s := serverStatus{ID: p.ID, Voter: p.Voter, Health: h, Since: now, Detail: detail}
		if ok && prev.Health == h {
			s.Since = prev.Since
		}
		if ok && prev.Health != h || !ok && h != healthAlive {
			a.log.Info("autopilot: master health changed", "master", p.ID, "health", h.String(), "detail", detail)
		}
		if h == healthAlive {
			delete(a.logged, p.ID)
		}
		a.seen[p.ID] = s
		servers = append(servers, s)
	}
	for id := range a.seen {
		if !inConfig[id] {
			delete(a.seen, id)
			delete(a.logged, id)
		}
	}
	for _, d := range decide(self, servers, now, a.cfg) {
		if d.Rule != ruleRemove {
			if a.logged[d.ID] != d.Rule {
				a.logged[d.ID] = d.Rule
				level := slog.LevelInfo
				if d.Rule == ruleMinQuorum || d.Rule == ruleNoQuorum {
					level = slog.LevelWarn
				}
				a.log.Log(ctx, level, "autopilot: keeping master", "master", d.ID, "rule", d.Rule, "reason", d.Reason)
			}
			continue
		}
		a.log.Info("autopilot: removing master from the raft configuration", "master", d.ID, "reason", d.Reason)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := a.node.RemovePeer(rctx, d.ID)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("autopilot: removal failed; will retry", "master", d.ID, "error", err)
			}
			continue
		}
		a.log.Info("autopilot: removed master", "master", d.ID)
		delete(a.seen, d.ID)
		delete(a.logged, d.ID)
	}
}

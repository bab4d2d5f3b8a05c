package master

import (
	"context"
	"errors"
	"fmt"
	"time"

	"skiff/raft"
)

// rejoin runs once after a restart from existing state: it asks the leader to keep this
// master in the Raft configuration at its current Raft address, which updates the address
// if the master came back on another one and adds it back if it was removed while it was
// down (autopilot removes dead masters). It retries until it succeeds, ctx ends or the
// node shuts down; the master runs meanwhile (Raft resumes from disk without it).
func (m *Master) rejoin(ctx context.Context) {
	var through []string
	if m.cfg.Join != "" {
		through = append(through, m.cfg.Join)
	}
	if peers, err := m.node.Peers(); err == nil {
		for _, p := range peers {
			if p.ID == m.cfg.Raft.ID && p.Address != m.node.Addr() {
				m.log.Info("raft address changed since the last run; asking the leader to update it", "from", p.Address, "to", m.node.Addr())
			}
		}
	}
	if err := m.node.Rejoin(ctx, through...); err != nil {
		if ctx.Err() == nil {
			m.log.Warn("could not confirm this master's place in the raft configuration", "error", err)
		}
		return
	}
	m.log.Info("raft membership confirmed", "id", m.cfg.Raft.ID, "raft", m.node.Addr())
}

// Leave takes this master out of the cluster for good and shuts it down: it hands
// leadership over if it leads, removes itself from the Raft configuration, announces in
// gossip that it left (should the removal have failed, the leader's autopilot removes a
// left master at once), then stops as Shutdown does. It blocks until all that is done or
// ctx ends. The master's data dir is then stale; a master started from it asks to be
// added back.
func (m *Master) Leave(ctx context.Context) error {
	var errs []error
	if m.node.IsLeader() {
		if err := m.node.TransferLeadership(ctx, ""); err != nil {
			errs = append(errs, fmt.Errorf("handing over leadership: %w", err))
		}
	}
	if err := m.node.RemovePeer(ctx, m.cfg.Raft.ID); err != nil {
		errs = append(errs, fmt.Errorf("removing this master from the raft configuration: %w", err))
	} else {
		m.log.Info("left the raft configuration")
	}
	if m.pool != nil {
		if err := m.pool.Leave(2 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("leaving gossip: %w", err))
		}
	}
	errs = append(errs, m.Shutdown(ctx))
	return errors.Join(errs...)
}

// leaderlessBeforeRejoin is how long a master goes without knowing a leader before it asks
// to be kept in the configuration again.
const leaderlessBeforeRejoin = 20 * time.Second

// keepMembership asks the leader to keep this master in the Raft configuration whenever it
// has known no leader for leaderlessBeforeRejoin. A master cut off for longer than the
// autopilot's dead-server cleanup is removed, and once the partition heals nothing tells it
// so: a removed server gets no heartbeats and its pre-vote requests are refused. Asking
// again is idempotent (one RPC when nothing is wrong). It returns when ctx ends or the node
// shuts down.
func (m *Master) keepMembership(ctx context.Context) {
	const check = leaderlessBeforeRejoin / 2
	t := time.NewTicker(check)
	defer t.Stop()
	leaderless := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if id, _ := m.node.Leader(); id != "" {
			leaderless = 0
			continue
		}
		if leaderless++; leaderless < 2 {
			continue
		}
		leaderless = 0
		rctx, cancel := context.WithTimeout(ctx, check)
		err := m.node.Rejoin(rctx)
		cancel()
		switch {
		case errors.Is(err, raft.ErrShutdown):
			return
		case err == nil:
			m.log.Info("no leader known for a while; raft membership confirmed", "id", m.cfg.Raft.ID)
		}
	}
}

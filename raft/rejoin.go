package raft

import (
	"context"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
)

// Stable identity across address changes.
//
// A server's ID is its identity; its address is only where it can be reached now. A node
// restarted from its data dir on another address (a new port, a new IP after a reschedule)
// still holds its log and its place in the configuration, but the leader keeps sending to
// the old address. So on every restart the node asks the leader, through any peer it knows,
// to add it under its ID at its current address (Rejoin). The leader's handler (addVoter)
// makes that call idempotent: nothing happens when the configuration already says so; a
// known ID at a new address is re-addressed (hashicorp/raft's AddVoter for an existing
// voter only changes its address, and the leader's replication follows the new address);
// an ID missing from the configuration (removed while it was down, e.g. by autopilot) is
// added back, as Consul does for a server that returns.

// rejoinRetry is how long Rejoin waits between rounds over the addresses it knows.
const rejoinRetry = time.Second

// rejoinCallTimeout bounds one membership call to one peer during Rejoin.
const rejoinCallTimeout = 10 * time.Second

// Rejoin makes sure the leader's configuration lists this node under its ID at its current
// address. It asks the leader (directly when this node leads or knows the leader, else
// through every other server of its own configuration and the given Raft addresses, which
// forward to the leader) and retries every second, whatever the error (the call is
// idempotent), until one call succeeds, ctx ends or the node shuts down; each new kind of
// failure is logged once. Call it after Open on a node that has state; on a node whose
// address did not change it costs one RPC and writes nothing to the log. It blocks; run it
// in its own goroutine. A node cannot rejoin on its own if the cluster has no leader
// without it (a quorum of the configuration moved or is down).
func (n *Node) Rejoin(ctx context.Context, through ...string) error {
	payload := encodeStrings(n.cfg.ID, n.Addr())
	var last error
	for {
		err := n.rejoinRound(ctx, payload, through)
		if err == nil {
			return nil
		}
		if last == nil || err.Error() != last.Error() {
			n.cfg.Logger.Warn("membership: rejoin attempt failed; retrying", "id", n.cfg.ID, "address", n.Addr(), "error", err)
		}
		last = err
		t := time.NewTimer(rejoinRetry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("rejoining as %s at %s: %w (last error: %v)", n.cfg.ID, n.Addr(), ctx.Err(), last)
		case <-n.ctx.Done():
			t.Stop()
			return ErrShutdown
		}
	}
}

// rejoinRound tries the leader, then every other known server, once each. It returns nil
// on the first success, else the last error.
func (n *Node) rejoinRound(ctx context.Context, payload []byte, through []string) error {
	if n.IsLeader() {
		_, err := n.localCall(rpcAddVoter, payload)
		return err
	}
	var targets []string
	seen := map[string]bool{n.Addr(): true, "": true}
	add := func(addr string) {
		if !seen[addr] {
			seen[addr] = true
			targets = append(targets, addr)
		}
	}
	_, leaderAddr := n.Leader()
	add(leaderAddr)
	if peers, err := n.Peers(); err == nil {
		for _, p := range peers {
			if p.ID != n.cfg.ID {
				add(p.Address)
			}
		}
	}
	for _, a := range through {
		add(a)
	}
	err := fmt.Errorf("%w: no other server known to ask", ErrNoLeader)
	for _, addr := range targets {
		cctx, cancel := context.WithTimeout(ctx, rejoinCallTimeout)
		_, err = n.rpc.call(cctx, addr, rpcAddVoter, 0, payload)
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}

// addVoter carries out an add-voter call on the leader: it adds id at addr as a voter,
// re-addresses id if it is known at another address, and does nothing when the
// configuration already lists id at addr as a voter, so joins and rejoins are idempotent
// and a node that restarts on its old address writes nothing to the log. A different
// server recorded at addr is a stale entry (that server cannot be listening where this one
// now is) and is removed first, as Consul does, once the server answering at addr says it
// is id: a joiner advertising an address it does not own (a copied flag) must not evict
// the live server there. addr being this leader's own address is refused.
func (n *Node) addVoter(id, addr string) error {
	f := n.raft.GetConfiguration()
	if err := n.await(f); err != nil {
		return err
	}
	var known *hraft.Server
	for _, s := range f.Configuration().Servers {
		switch {
		case string(s.ID) == id:
			known = &s
		case string(s.Address) == addr && string(s.ID) == n.cfg.ID:
			return fmt.Errorf("server %s asked to join at %s, the leader's own address", id, addr)
		case string(s.Address) == addr:
			if err := n.confirmAt(addr, id); err != nil {
				return fmt.Errorf("server %s asked to join at %s, where %s is listed: %w", id, addr, s.ID, err)
			}
			n.cfg.Logger.Warn("membership: removing a stale server whose address another server now uses",
				"stale", s.ID, "address", addr, "new", id)
			if err := n.await(n.raft.RemoveServer(s.ID, 0, 0)); err != nil {
				return fmt.Errorf("removing stale server %s at %s: %w", s.ID, addr, err)
			}
		}
	}
	switch {
	case known == nil:
		n.cfg.Logger.Info("membership: adding voter", "id", id, "address", addr)
	case string(known.Address) == addr && known.Suffrage == hraft.Voter:
		return nil
	case string(known.Address) != addr:
		n.cfg.Logger.Info("membership: server moved; updating its address", "id", id, "from", known.Address, "to", addr)
	default:
		n.cfg.Logger.Info("membership: promoting server to voter", "id", id, "address", addr)
	}
	return n.await(n.raft.AddVoter(hraft.ServerID(id), hraft.ServerAddress(addr), 0, 0))
}

// whoAmITimeout bounds the leader's identity check of a joiner's address.
const whoAmITimeout = 5 * time.Second

// confirmAt asks the server answering at addr for its ID and returns nil only if it is id.
// It blocks for at most whoAmITimeout and is safe for concurrent use.
func (n *Node) confirmAt(addr, id string) error {
	ctx, cancel := context.WithTimeout(n.ctx, whoAmITimeout)
	defer cancel()
	// The question is idempotent, so a broken pooled connection (the dead server's) is
	// worth a second try on a fresh one.
	var reply []byte
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if reply, err = n.rpc.call(ctx, addr, rpcWhoAmI, 0, nil); err == nil || ctx.Err() != nil {
			break
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("no answer from %s to confirm the joiner's identity: %w", addr, err)
	case string(reply) != id:
		return fmt.Errorf("%w: server %s answers at %s", ErrAddressInUse, reply, addr)
	}
	return nil
}

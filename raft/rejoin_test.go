package raft_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"skiff/raft"
	"skiff/raft/rafttest"
)

// peerAddr returns the address node n's configuration holds for id ("" if none).
func peerAddr(n *raft.Node, id string) string {
	peers, err := n.Peers()
	if err != nil {
		return ""
	}
	for _, p := range peers {
		if p.ID == id {
			return p.Address
		}
	}
	return ""
}

// A follower restarted from its data dir on a new port keeps its identity: Rejoin makes
// the leader update its address in the configuration, it catches up with what it missed,
// and it counts towards the quorum again at its new address. Rejoining without a move
// changes nothing.
func TestRejoinOnNewAddress(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	li := c.WaitLeader()
	f := (li + 1) % c.Size()
	other := 3 - li - f
	id := c.Node(f).ID()
	if _, err := rafttest.Put(ctx, c.Node(li), "before", "1"); err != nil {
		t.Fatal(err)
	}

	// An unmoved node's rejoin is a no-op on the leader: no configuration entry.
	before := c.Node(li).Stats().LastIndex
	if err := c.Node(f).Rejoin(ctx); err != nil {
		t.Fatalf("rejoin without a move: %v", err)
	}
	if after := c.Node(li).Stats().LastIndex; after != before {
		t.Fatalf("rejoin without a move wrote %d log entries", after-before)
	}

	oldAddr := c.Node(f).Addr()
	c.Kill(f)
	if _, err := rafttest.Put(ctx, c.Node(li), "while-down", "1"); err != nil {
		t.Fatal(err)
	}
	newAddr := c.Move(f)
	if newAddr == oldAddr {
		t.Fatalf("moved node kept its address %s", oldAddr)
	}
	if err := c.Node(f).Rejoin(ctx); err != nil {
		t.Fatalf("rejoin after a move: %v", err)
	}
	waitFor(t, "every node's configuration to hold the new address", func() bool {
		for _, i := range c.Up() {
			if peerAddr(c.Node(i), id) != newAddr {
				return false
			}
		}
		return true
	})
	if p, _ := c.Node(li).Peers(); len(p) != 3 {
		t.Fatalf("configuration after the move has %d servers, want 3: %+v", len(p), p)
	}
	waitFor(t, "the moved node to catch up", func() bool {
		_, ok := rafttest.Get(c.Node(f).FSM().State(), "while-down")
		return ok
	})

	// With the third node down, every commit needs the moved node at its new address.
	c.Kill(other)
	if _, err := rafttest.Put(ctx, c.Node(c.WaitLeader()), "needs-moved-node", "1"); err != nil {
		t.Fatalf("write needing the moved node: %v", err)
	}
	waitFor(t, "the moved node to apply the write", func() bool {
		_, ok := rafttest.Get(c.Node(f).FSM().State(), "needs-moved-node")
		return ok
	})
	c.Restart(other)
	c.Verify()
}

// A follower removed from the configuration while it was down (as autopilot does with a
// dead server) is added back when it restarts and rejoins, and replicates again.
func TestRejoinAfterRemoval(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	li := c.WaitLeader()
	f := (li + 1) % c.Size()
	id := c.Node(f).ID()
	c.Kill(f)
	if err := c.Node(li).RemovePeer(ctx, id); err != nil {
		t.Fatalf("remove: %v", err)
	}
	waitFor(t, "2 servers after the removal", func() bool { p, _ := c.Node(c.WaitLeader()).Peers(); return len(p) == 2 })
	if _, err := rafttest.Put(ctx, c.Node(c.WaitLeader()), "while-removed", "1"); err != nil {
		t.Fatal(err)
	}
	c.Restart(f)
	if err := c.Node(f).Rejoin(ctx); err != nil {
		t.Fatalf("rejoin after removal: %v", err)
	}
	waitFor(t, "3 servers after the rejoin", func() bool {
		n := c.Node(c.WaitLeader())
		p, _ := n.Peers()
		return len(p) == 3 && peerAddr(n, id) == c.Node(f).Addr()
	})
	waitFor(t, "the returned node to catch up", func() bool {
		_, ok := rafttest.Get(c.Node(f).FSM().State(), "while-removed")
		return ok
	})
	c.Verify()
}

// A new server that advertises the address of a live voter (a copied --advertise flag) is
// refused with ErrAddressInUse, and the voter keeps its place; a new server on the address
// of a dead one replaces the stale entry.
func TestJoinAtAnotherServersAddress(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	li := c.WaitLeader()
	f := (li + 1) % c.Size()
	fid, faddr := c.Node(f).ID(), c.Node(f).Addr()

	impostor, err := raft.Open(raft.Config{ID: "n4", DataDir: filepath.Join(t.TempDir(), "n4"),
		BindAddr: "127.0.0.1:0", AdvertiseAddr: faddr})
	if err != nil {
		t.Fatal(err)
	}
	err = impostor.Join(ctx, c.Node(li).Addr())
	impostor.Shutdown()
	if !errors.Is(err, raft.ErrAddressInUse) {
		t.Fatalf("join at a live server's address: err = %v, want ErrAddressInUse", err)
	}
	if p, _ := c.Node(li).Peers(); len(p) != 3 || peerAddr(c.Node(li), fid) != faddr {
		t.Fatalf("configuration after the refused join: %+v", p)
	}
	if _, err := rafttest.Put(ctx, c.Node(li), "after-refusal", "1"); err != nil {
		t.Fatal(err)
	}

	c.Kill(f)
	var successor *raft.Node
	waitFor(t, "the dead server's port to be free", func() bool {
		successor, err = raft.Open(raft.Config{ID: "n5", DataDir: filepath.Join(t.TempDir(), "n5"), BindAddr: faddr})
		return err == nil
	})
	defer successor.Shutdown()
	if err := successor.Join(ctx, c.Node(li).Addr()); err != nil {
		t.Fatalf("join at a dead server's address: %v", err)
	}
	waitFor(t, "the stale entry to be replaced", func() bool {
		p, _ := c.Node(li).Peers()
		return len(p) == 3 && peerAddr(c.Node(li), fid) == "" && peerAddr(c.Node(li), "n5") == faddr
	})
	waitFor(t, "the successor to catch up", func() bool {
		_, ok := rafttest.Get(successor.FSM().State(), "after-refusal")
		return ok
	})
}

package master

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"skiff/gossip"
	"skiff/raft"
	"skiff/test/cluster"
)

// peerIDs lists the IDs in m's Raft configuration, sorted.
func peerIDs(m *Master) []string {
	peers, _ := m.Node().Peers()
	var ids []string
	for _, p := range peers {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return ids
}

// With real masters, gossip and Raft: a master whose gossip says it left is removed by the
// leader's autopilot at once (long before the dead-server threshold), and Master.Leave
// takes a master out of the configuration by itself.
func TestAutopilotRemovesLeftMaster(t *testing.T) {
	dir := t.TempDir()
	fast := gossip.Config{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond, GossipInterval: 50 * time.Millisecond}
	gossipAddrs := []string{cluster.FreeAddr(t), cluster.FreeAddr(t), cluster.FreeAddr(t), cluster.FreeAddr(t)}
	start := func(i, expect int, join []string) (*Master, error) {
		name := fmt.Sprintf("m%d", i+1)
		g := fast
		g.BindAddr = gossipAddrs[i]
		m, err := Start(context.Background(), Config{
			Raft:    raft.Config{ID: name, DataDir: filepath.Join(dir, name), BindAddr: "127.0.0.1:0"},
			APIAddr: "127.0.0.1:0", Gossip: g, GossipJoin: join, BootstrapExpect: expect,
			// Far longer than the test waits: only a "left" can explain a removal.
			Autopilot: AutopilotConfig{DeadServerCleanup: 10 * time.Minute, Interval: 100 * time.Millisecond},
		})
		if err != nil {
			return nil, fmt.Errorf("starting %s: %w", name, err)
		}
		t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
		return m, nil
	}
	type started struct {
		m   *Master
		err error
	}
	ch := make(chan started, 3)
	for i := 0; i < 3; i++ {
		go func() {
			var join []string
			for j := 0; j < 3; j++ {
				if j != i {
					join = append(join, gossipAddrs[j])
				}
			}
			m, err := start(i, 3, join)
			ch <- started{m, err}
		}()
	}
	var masters []*Master
	for i := 0; i < 3; i++ {
		s := <-ch
		if s.err != nil {
			t.Fatal(s.err)
		}
		masters = append(masters, s.m)
	}
	slices.SortFunc(masters, func(a, b *Master) int { return strings.Compare(a.cfg.Raft.ID, b.cfg.Raft.ID) })
	m4, err := start(3, 0, []string{gossipAddrs[0]})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "4 voters after the join", func() bool { return slices.Equal(peerIDs(masters[0]), []string{"m1", "m2", "m3", "m4"}) })

	// m4 leaves gossip without touching Raft, then stops.
	if err := m4.Gossip().Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m4.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the left master removed by autopilot", func() bool {
		return slices.Equal(peerIDs(masters[0]), []string{"m1", "m2", "m3"})
	})

	// Master.Leave removes the master itself (an operator's decision, below MinQuorum too).
	leaving := masters[2]
	if leaving.Node().IsLeader() {
		leaving = masters[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := leaving.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	var stay *Master
	for _, m := range masters {
		if m != leaving {
			stay = m
			break
		}
	}
	waitFor(t, "2 voters after Master.Leave", func() bool { return len(peerIDs(stay)) == 2 && !slices.Contains(peerIDs(stay), leaving.cfg.Raft.ID) })
}

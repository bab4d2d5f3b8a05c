package master

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/gossip"
	"skiff/master/objects"
	"skiff/master/registry"
	"skiff/raft"
	"skiff/test/cluster"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Masters found a cluster through gossip (--bootstrap-expect), a later master joins through
// any gossip member, and an agent that stops gossiping has its Node marked unreachable by
// the leader, and Ready again when it is back.
func TestGossipBootstrapJoinAndNodeLiveness(t *testing.T) {
	dir := t.TempDir()
	fast := gossip.Config{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond, GossipInterval: 50 * time.Millisecond}
	gossipAddrs := []string{cluster.FreeAddr(t), cluster.FreeAddr(t), cluster.FreeAddr(t), cluster.FreeAddr(t)}
	start := func(i int, expect int, join []string) *Master {
		name := fmt.Sprintf("m%d", i+1)
		g := fast
		g.BindAddr = gossipAddrs[i]
		m, err := Start(context.Background(), Config{
			Raft:    raft.Config{ID: name, DataDir: filepath.Join(dir, name), BindAddr: "127.0.0.1:0"},
			APIAddr: "127.0.0.1:0", Gossip: g, GossipJoin: join, BootstrapExpect: expect,
		})
		if err != nil {
			t.Fatalf("starting %s: %v", name, err)
		}
		t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
		return m
	}
	type started struct {
		m   *Master
		err error
	}
	ch := make(chan started, 3)
	for i := 0; i < 3; i++ {
		go func(i int) {
			var join []string
			for j := 0; j < 3; j++ {
				if j != i {
					join = append(join, gossipAddrs[j])
				}
			}
			defer func() {
				if r := recover(); r != nil {
					ch <- started{err: fmt.Errorf("%v", r)}
				}
			}()
			ch <- started{m: start(i, 3, join)}
		}(i)
	}
	var masters []*Master
	for i := 0; i < 3; i++ {
		s := <-ch
		if s.err != nil {
			t.Fatal(s.err)
		}
		masters = append(masters, s.m)
	}
	for _, m := range masters {
		select {
		case <-m.Ready():
		case <-time.After(30 * time.Second):
			t.Fatal("API not ready")
		}
	}
	peers := func(m *Master) int { p, _ := m.Node().Peers(); return len(p) }
	waitFor(t, "3 voters", func() bool { return peers(masters[0]) == 3 })

	// A fourth master joins through one agent-or-master gossip address.
	m4 := start(3, 0, []string{gossipAddrs[1]})
	waitFor(t, "4 voters after a gossip join", func() bool { return peers(masters[0]) == 4 && peers(m4) == 4 })

	// An agent in gossip with a registered Node.
	agent, err := gossip.Start(gossip.Config{Name: "n1", BindAddr: "127.0.0.1:0", Meta: gossip.Meta{Role: gossip.RoleAgent, Name: "n1"},
		ProbeInterval: fast.ProbeInterval, ProbeTimeout: fast.ProbeTimeout, GossipInterval: fast.GossipInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Shutdown()
	if _, err := agent.Join([]string{gossipAddrs[0]}); err != nil {
		t.Fatal(err)
	}
	nodes := registry.Lookup("", "v1", "nodes")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	value, meta, _ := objects.Encode(nodes, node)
	if _, err := m4.Node().Propose(context.Background(), &fsm.Txn{Ops: []fsm.Op{fsm.Create(objects.Key(nodes, "", "n1"), value, meta)}}); err != nil {
		t.Fatal(err)
	}
	ready := func() corev1.ConditionStatus {
		rec := masters[0].Node().FSM().State().Get(objects.Key(nodes, "", "n1"))
		if rec == nil {
			return ""
		}
		obj, _ := objects.Decode(nodes, rec)
		for _, c := range obj.(*corev1.Node).Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status
			}
		}
		return ""
	}
	time.Sleep(500 * time.Millisecond)
	if ready() != corev1.ConditionTrue {
		t.Fatalf("a healthy agent's node is %q", ready())
	}
	agent.Shutdown() // dies without leaving
	waitFor(t, "node Ready=Unknown after the agent died", func() bool { return ready() == corev1.ConditionUnknown })
	agent2, err := gossip.Start(gossip.Config{Name: "n1", BindAddr: "127.0.0.1:0", Meta: gossip.Meta{Role: gossip.RoleAgent, Name: "n1"},
		ProbeInterval: fast.ProbeInterval, ProbeTimeout: fast.ProbeTimeout, GossipInterval: fast.GossipInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer agent2.Shutdown()
	if _, err := agent2.Join([]string{gossipAddrs[2]}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node Ready=True after the agent came back", func() bool { return ready() == corev1.ConditionTrue })
}

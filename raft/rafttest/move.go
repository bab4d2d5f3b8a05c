package rafttest

import "net"

// Move restarts node i from its data dir on a new loopback port, as a server rescheduled
// onto another address would come back, and returns the new address. The node must be
// down (Kill it first). Fault rules other nodes hold for its old address do not follow it.
func (c *Cluster) Move(i int) string {
	c.t.Helper()
	if c.Node(i) != nil {
		c.t.Fatalf("Move(%d): the node is running; Kill it first", i)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c.mu.Lock()
	c.cfgs[i].BindAddr = addr
	c.mu.Unlock()
	c.Restart(i)
	return addr
}

package cluster

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// AddMaster starts one more master that joins the running cluster through the others'
// gossip addresses (no --bootstrap-expect), waits until its API answers and returns its
// index. extraArgs are appended to its command line (pass the ones given to Start).
func (c *Cluster) AddMaster(extraArgs ...string) int {
	c.t.Helper()
	i := len(c.Names)
	name := fmt.Sprintf("m%d", i+1)
	raftAddr, api, gossipAddr := c.newMasterAddrs(name)
	c.prepareDataDir(name)
	args := []string{"master", "--name", name, "--data-dir", filepath.Join(c.Dir, name),
		"--raft-addr", raftAddr, "--api-addr", api, "--gossip-addr", gossipAddr,
		"--join", strings.Join(c.Gossip, ","), "--log-level", "debug"}
	c.mu.Lock()
	c.Names = append(c.Names, name)
	c.APIs = append(c.APIs, api)
	c.Gossip = append(c.Gossip, gossipAddr)
	c.args = append(c.args, append(args, extraArgs...))
	c.logPath = append(c.logPath, filepath.Join(c.Dir, name+".log"))
	c.procs = append(c.procs, nil)
	c.mu.Unlock()
	c.Restart(i)
	c.WaitReady(i)
	return i
}

// MoveRaft restarts the (killed) master i from its data dir with a new --raft-addr, as a
// master rescheduled onto another address would come back, and returns the new address.
func (c *Cluster) MoveRaft(i int) string {
	c.t.Helper()
	if c.Running(i) {
		c.t.Fatalf("MoveRaft(%d): the master is running; Kill it first", i)
	}
	addr := FreeAddr(c.t)
	c.mu.Lock()
	if c.hosts != nil && c.hosts[i] != nil {
		// Its own namespace: any other port of its address is free.
		c.movedPort++
		addr = c.hosts[i].Addr(masterRaftPort + c.movedPort)
	}
	args := slices.Clone(c.args[i])
	for k := range args {
		if args[k] == "--raft-addr" && k+1 < len(args) {
			args[k+1] = addr
		}
	}
	c.args[i] = args
	c.mu.Unlock()
	c.Restart(i)
	return addr
}

package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"skiff/test/verify"
)

// Ports a master or agent listens on inside its own network namespace (isolated clusters);
// with the namespace to itself it needs no free-port search.
const (
	masterRaftPort   = 7400
	masterAPIPort    = 6443
	masterGossipPort = 7946
	agentGossipPort  = 7946
	agentListenPort  = 10250
)

// newMasterAddrs creates the host of a new master in an isolated cluster, and returns the
// master's Raft, API and gossip addresses (free loopback ports otherwise).
func (c *Cluster) newMasterAddrs(name string) (raftAddr, api, gossipAddr string) {
	if c.Net == nil {
		return FreeAddr(c.t), FreeAddr(c.t), FreeAddr(c.t)
	}
	h := c.Net.AddHost(name)
	c.mu.Lock()
	c.hosts = append(c.hosts, h)
	c.mu.Unlock()
	return h.Addr(masterRaftPort), h.Addr(masterAPIPort), h.Addr(masterGossipPort)
}

// prepareDataDir mounts the tmpfs data dir of master name when the cluster has one. Its
// cleanup stops the master first (masters added after Start are not yet covered by
// Start's cleanup, which runs later) and, on failure, keeps Raft's log from the data dir.
func (c *Cluster) prepareDataDir(name string) {
	if c.diskSize == "" {
		return
	}
	dir := filepath.Join(c.Dir, name)
	MountTmpfs(c.t, dir, c.diskSize)
	c.t.Cleanup(func() {
		for i, n := range c.Names {
			if n == name {
				c.Kill(i)
			}
		}
		if c.t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "raft.log")); err == nil {
				_ = os.WriteFile(filepath.Join(verify.ArtifactsDir(c.t), name+"-raft.log"), b, 0o644)
			}
		}
	})
}

// Host is master i's network namespace (nil unless the cluster is isolated).
func (c *Cluster) Host(i int) *Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hosts == nil {
		return nil
	}
	return c.hosts[i]
}

// DataDir is master i's data dir.
func (c *Cluster) DataDir(i int) string { return filepath.Join(c.Dir, c.Names[i]) }

// PID is master i's process ID (0 when it is not running).
func (c *Cluster) PID(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.procs[i] == nil {
		return 0
	}
	return c.procs[i].Process.Pid
}

// signal sends sig to master i's process.
func (c *Cluster) signal(i int, sig syscall.Signal) {
	c.t.Helper()
	pid := c.PID(i)
	if pid == 0 {
		c.t.Fatalf("master %s is not running", c.Names[i])
	}
	if err := syscall.Kill(pid, sig); err != nil {
		c.t.Fatalf("signalling master %s: %v", c.Names[i], err)
	}
}

// Pause stops master i with SIGSTOP: it keeps its sockets but answers nothing until Resume.
func (c *Cluster) Pause(i int) { c.signal(i, syscall.SIGSTOP) }

// Resume continues master i after Pause (SIGCONT).
func (c *Cluster) Resume(i int) { c.signal(i, syscall.SIGCONT) }

// requireNet fails the test unless the cluster is isolated.
func (c *Cluster) requireNet(what string) {
	c.t.Helper()
	if c.Net == nil {
		c.t.Fatalf("%s needs an isolated cluster (StartWith with Options.Isolate)", what)
	}
}

// Partition cuts master i off from every other master and agent (nftables in its
// namespace; the test process still reaches it) until Heal.
func (c *Cluster) Partition(i int) {
	c.t.Helper()
	c.requireNet("Partition")
	c.Net.Isolate(c.Host(i))
}

// Split partitions the masters into groups of indices: a master reaches only the masters
// of its own group. Masters in no group, and agents, reach everyone.
func (c *Cluster) Split(groups ...[]int) {
	c.t.Helper()
	c.requireNet("Split")
	hg := make([][]*Host, len(groups))
	for g, idx := range groups {
		for _, i := range idx {
			hg[g] = append(hg[g], c.Host(i))
		}
	}
	c.Net.Split(hg...)
}

// Heal removes every partition.
func (c *Cluster) Heal() {
	c.t.Helper()
	c.requireNet("Heal")
	c.Net.Heal()
}

// FillDisk fills master i's tmpfs data dir until writes to it fail with ENOSPC.
func (c *Cluster) FillDisk(i int) {
	c.t.Helper()
	if c.diskSize == "" {
		c.t.Fatal("FillDisk needs tmpfs data dirs (StartWith with Options.DataDirSize)")
	}
	n, err := FillDisk(c.DataDir(i))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("filled %s's data dir with %d MiB", c.Names[i], n>>20)
}

// FreeDisk frees what FillDisk took from master i's data dir.
func (c *Cluster) FreeDisk(i int) {
	c.t.Helper()
	if err := FreeDisk(c.DataDir(i)); err != nil {
		c.t.Fatal(fmt.Errorf("freeing %s's data dir: %w", c.Names[i], err))
	}
}

// LogPath is the file master i's output goes to.
func (c *Cluster) LogPath(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logPath[i]
}

// LogPath is the file the agent's output goes to.
func (a *Agent) LogPath() string { return a.logPath }

// KillAll sends SIGKILL to every running master at once and waits for all of them to die.
func (c *Cluster) KillAll() {
	var wg sync.WaitGroup
	for i := range c.Names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Kill(i)
		}()
	}
	wg.Wait()
}

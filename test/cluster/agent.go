package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"skiff/agent"
)

// Agent is one `skiff agent` process of a cluster, with its own containerd under its data
// dir (which outlives the agent process, as in production).
type Agent struct {
	c       *Cluster
	Name    string
	Dir     string
	args    []string
	cmd     *exec.Cmd
	logPath string
	// Host is the agent's network namespace in an isolated cluster (nil otherwise).
	Host *Host
}

// StartAgent runs an agent that joins the masters' gossip and preloads the busybox image;
// extra flags are appended.
func (c *Cluster) StartAgent(name string, extra ...string) *Agent {
	dir := filepath.Join(c.Dir, name)
	a := &Agent{c: c, Name: name, Dir: dir, logPath: filepath.Join(c.Dir, name+".log")}
	gossipAddr, listen := "", ""
	if c.Net != nil {
		a.Host = c.Net.AddHost(name)
		gossipAddr, listen = a.Host.Addr(agentGossipPort), a.Host.Addr(agentListenPort)
	} else {
		gossipAddr, listen = FreeAddr(c.t), FreeAddr(c.t)
	}
	a.args = []string{"agent", "--name", name, "--data-dir", dir, "--gossip-addr", gossipAddr, "--listen", listen,
		"--join", strings.Join(c.Gossip, ","), "--kubeconfig", c.KubeconfigPath(0),
		"--containerd-namespace", "skiff-" + name, "--preload-busybox", "--log-level", "debug"}
	a.args = append(a.args, extra...)
	c.logPath = append(c.logPath, a.logPath)
	a.Restart()
	c.t.Cleanup(func() {
		a.Kill()
		// Containers and the agent's containerd outlive the agent by design; a test run
		// must not leave them behind.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := agent.Teardown(ctx, filepath.Join(dir, "containerd"), "skiff-"+name); err != nil {
			c.t.Logf("tearing down agent %s: %v", name, err)
		}
	})
	return a
}

// Restart starts the agent process (again).
func (a *Agent) Restart() {
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		a.c.t.Fatal(err)
	}
	cmd := exec.Command(a.c.Bin, a.args...)
	if a.Host != nil {
		cmd = a.Host.Command(a.c.Bin, a.args...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		a.c.t.Fatal(err)
	}
	a.cmd = cmd
	go func() {
		_ = cmd.Wait()
		logf.Close()
	}()
}

// Kill sends SIGKILL to the agent process (its containers keep running).
func (a *Agent) Kill() {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	for a.cmd.Process.Signal(syscall.Signal(0)) == nil {
		time.Sleep(5 * time.Millisecond)
	}
	a.cmd = nil
}

// Containerd runs ctr against the agent's containerd and namespace.
func (a *Agent) Ctr(args ...string) (string, error) {
	full := append([]string{"--address", filepath.Join(a.Dir, "containerd", "containerd.sock"), "-n", "skiff-" + a.Name}, args...)
	out, err := exec.Command("ctr", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %v: %v: %s", args, err, out)
	}
	return string(out), nil
}

// PID is the agent process's PID (0 when it is not running).
func (a *Agent) PID() int {
	if a.cmd == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

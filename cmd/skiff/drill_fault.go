package main

// Making the fault and undoing it.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"skiff/master"
	"strings"
	"syscall"
	"time"
)

// inject makes the fault and sets r.t0 to the moment it is in effect: when the target
// answered that it partitioned or paused itself, when the kernel stopped it (SIGSTOP), when
// its port stopped accepting connections (crash), or when the leadership transfer was asked
// for (the transfer itself is part of what is measured). Writes issued from then on cannot
// reach the target as it was.
func (r *drillRunner) inject(ctx context.Context) error {
	d := r.opts.duration
	dq := "?duration=" + url.QueryEscape(d.String())
	switch r.name {
	case "leader-transfer":
		r.rep.Method = "leadership transfer through /skiff/v1/raft/transfer-leadership"
		r.markT0()
		r.say("asking %s to hand leadership over", r.target.name)
		if err := r.target.call(ctx, 15*time.Second, http.MethodPost, "/skiff/v1/raft/transfer-leadership", nil, nil); err != nil {
			return fmt.Errorf("transferring leadership: %w", err)
		}
	case "leader-crash":
		r.rep.Method = "SIGKILL of the leader process (its drill endpoint kills itself right after answering); times count from when its port stopped accepting connections"
		r.say("crashing %s (kill -9)", r.target.name)
		if err := r.target.call(ctx, 5*time.Second, http.MethodPost, "/skiff/v1/drill/crash", nil, nil); err != nil {
			if code := drillCode(err); code != 0 {
				return fmt.Errorf("crashing %s: %w", r.target.name, err)
			}
		}
		if err := r.waitDead(ctx); err != nil {
			return err
		}
		r.markT0()
	case "leader-partition":
		r.rep.Method = "the leader cuts itself off Raft, gossip and its API clients (raft and gossip fault injection), healing after the duration"
		r.rep.FaultMs = *drillMillis(d)
		r.say("partitioning %s for %s", r.target.name, d)
		if err := r.target.call(ctx, 5*time.Second, http.MethodPost, "/skiff/v1/drill/partition"+dq, nil, nil); err != nil {
			return fmt.Errorf("partitioning %s: %w", r.target.name, err)
		}
		r.markT0()
	case "master-pause":
		r.rep.FaultMs = *drillMillis(d)
		if pid := r.localProcess(); pid > 0 {
			r.rep.Method = fmt.Sprintf("SIGSTOP of process %d from the drill client (same machine), SIGCONT after the duration", pid)
			if err := r.startSafetyNet(pid, d); err != nil {
				return err
			}
			r.say("pausing %s (SIGSTOP to pid %d) for %s", r.target.name, pid, d)
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				return fmt.Errorf("SIGSTOP %d: %w", pid, err)
			}
			r.localPID = pid
			r.markT0()
		} else {
			r.rep.Method = "emulated pause (the master is on another machine): Raft and gossip cut, new API requests held until the pause ends"
			r.say("pausing %s (emulated) for %s", r.target.name, d)
			if err := r.target.call(ctx, 5*time.Second, http.MethodPost, "/skiff/v1/drill/pause"+dq, nil, nil); err != nil {
				return fmt.Errorf("pausing %s: %w", r.target.name, err)
			}
			r.markT0()
		}
	case "agent-partition":
		r.rep.Method = "the agent cuts itself off gossip and the masters (containers keep running), healing after the duration"
		r.rep.FaultMs = *drillMillis(d)
		r.say("partitioning agent %s for %s", r.agent, d)
		if err := r.via[0].call(ctx, 10*time.Second, http.MethodPost, "/skiff/v1/drill/agents/"+url.PathEscape(r.agent)+"/partition"+dq, nil, nil); err != nil {
			return fmt.Errorf("partitioning agent %s: %w", r.agent, err)
		}
		r.markT0()
	}
	r.faultOn = true
	return nil
}

// markT0 records the moment of the fault. The workload's goroutines read it through
// faultTime; the drill's own goroutine, its only writer, reads r.t0 directly.
// waitDead waits until the crashed target's API port refuses connections.
func (r *drillRunner) waitDead(ctx context.Context) error {
	u, err := url.Parse(r.target.base)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", u.Host, 100*time.Millisecond)
		if err != nil {
			return nil
		}
		c.Close()
		if err := drillSleep(ctx, time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s still accepts connections 10s after the crash request", r.target.name)
}

func (r *drillRunner) markT0() {
	r.mu.Lock()
	r.t0 = time.Now()
	r.mu.Unlock()
}

func (r *drillRunner) faultTime() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.t0
}

// localProcess returns the target master's PID when it runs on this machine (same boot ID,
// and the PID is a skiff master of that name), else 0.
func (r *drillRunner) localProcess() int {
	pid := r.targetDrill.PID
	if pid <= 0 || r.targetDrill.BootID == "" || r.targetDrill.BootID != master.BootID() {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	isMaster, named := false, false
	for i, a := range args {
		if a == "master" {
			isMaster = true
		}
		if (a == "--name" || a == "-name") && i+1 < len(args) && args[i+1] == r.target.name {
			named = true
		}
		if a == "--name="+r.target.name || a == "-name="+r.target.name {
			named = true
		}
	}
	if isMaster && named {
		return pid
	}
	return 0
}

// startSafetyNet starts a detached shell that sends SIGCONT shortly after the pause should
// end, so a drill client that dies mid-pause does not leave the master stopped.
func (r *drillRunner) startSafetyNet(pid int, d time.Duration) error {
	secs := int(d.Seconds()) + 3
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("sleep %d; kill -CONT %d", secs, pid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the SIGCONT safety net: %w", err)
	}
	r.safetyNet = cmd
	go func() { _ = cmd.Wait() }()
	return nil
}

// healAll undoes the fault if it may still be on: after Ctrl-C, a time-out, or at the end
// as a precaution. Faults with a duration also heal themselves.
func (r *drillRunner) healAll() {
	if r.localPID > 0 {
		_ = syscall.Kill(r.localPID, syscall.SIGCONT)
		r.localPID = 0
	}
	if r.safetyNet != nil && r.safetyNet.Process != nil {
		// The shell leads its own process group (Setsid): end it and its sleep.
		_ = syscall.Kill(-r.safetyNet.Process.Pid, syscall.SIGKILL)
		r.safetyNet = nil
	}
	if !r.faultOn {
		return
	}
	r.faultOn = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch r.name {
	case "leader-partition", "master-pause":
		_ = r.target.call(ctx, 5*time.Second, http.MethodPost, "/skiff/v1/drill/heal", nil, nil)
	case "agent-partition":
		for _, m := range r.via {
			if m.call(ctx, 5*time.Second, http.MethodPost, "/skiff/v1/drill/agents/"+url.PathEscape(r.agent)+"/heal", nil, nil) == nil {
				return
			}
		}
	}
}

package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// ContainerdProcess is a containerd the agent runs itself under its data dir, for machines
// where no containerd is set up. Containers run under shims, so they outlive both this
// process and the agent; an agent that restarts finds the socket answering and reuses it.
type ContainerdProcess struct {
	Socket string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartContainerd returns a containerd answering on <dir>/containerd.sock: the one already
// running there, or a new child process (binary `containerd` from PATH) logging to
// <dir>/containerd.log. It blocks until the socket answers or ctx ends.
func StartContainerd(ctx context.Context, dir string) (*ContainerdProcess, error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	p := &ContainerdProcess{Socket: filepath.Join(dir, "containerd.sock")}
	if answers(ctx, p.Socket) {
		return p, nil
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return nil, fmt.Errorf("no containerd binary (apt-get install containerd runc): %w", err)
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  disable = true
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), p.Socket)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "containerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "--config", cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Its own process group: a signal to the agent's group does not take containerd down.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting containerd: %w", err)
	}
	_ = os.WriteFile(filepath.Join(dir, "containerd.pid"), []byte(strconv.Itoa(p.cmd.Process.Pid)), 0o600)
	p.exited = make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	for !answers(ctx, p.Socket) {
		select {
		case <-ctx.Done():
			p.Stop()
			return nil, fmt.Errorf("containerd did not answer on %s: %w", p.Socket, ctx.Err())
		case <-p.exited:
			return nil, fmt.Errorf("containerd exited at start; see %s", filepath.Join(dir, "containerd.log"))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return p, nil
}

func answers(ctx context.Context, socket string) bool {
	if _, err := os.Stat(socket); err != nil {
		return false
	}
	c, err := containerd.New(socket, containerd.WithTimeout(time.Second))
	if err != nil {
		return false
	}
	defer c.Close()
	ok, err := c.IsServing(ctx)
	return err == nil && ok
}

// Stop ends a containerd this process started (containers keep running under their
// shims); it does nothing for one that was already running.
func (p *ContainerdProcess) Stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Teardown removes everything an agent left running: the containers of its containerd
// namespace (stopped with a short grace period), their pod networks (addresses, network
// namespaces, the agent's bridge; the agent's data dir is dir's parent), and the containerd
// it ran under dir (found through its pid file). `skiff dev` uses it on Ctrl-C,
// tests at their end; a production agent never calls it, because its containers must
// outlive it.
func Teardown(ctx context.Context, dir, namespace string) error {
	socket := filepath.Join(dir, "containerd.sock")
	var uids []string
	if answers(ctx, socket) {
		rt, err := NewContainerd(socket, namespace)
		if err != nil {
			return err
		}
		list, err := rt.List(ctx, nil)
		if err == nil {
			// In parallel, and without a grace period: this is a teardown, not a drain.
			sem := make(chan struct{}, 16)
			var wg sync.WaitGroup
			for _, c := range list {
				wg.Add(1)
				sem <- struct{}{}
				go func(c ContainerStatus) {
					defer func() { <-sem; wg.Done() }()
					if c.State == StateRunning {
						_ = rt.Stop(ctx, c.ID, 0)
					}
					_ = rt.Remove(ctx, c.ID)
				}(c)
				if uid := c.Labels[labelPodUID]; uid != "" {
					uids = append(uids, uid)
				}
			}
			wg.Wait()
		}
		rt.Close()
	}
	// Addresses go back before their namespaces go: CNI DEL needs the namespace.
	teardownNetwork(ctx, filepath.Dir(dir))
	if entries, err := os.ReadDir(filepath.Join(filepath.Dir(dir), "pods")); err == nil {
		for _, e := range entries {
			uids = append(uids, e.Name()) // pods that never got a container have a namespace too
		}
	}
	for _, uid := range uids {
		if _, err := os.Stat("/var/run/netns/" + netnsName(uid)); err == nil {
			_ = exec.Command("ip", "netns", "delete", netnsName(uid)).Run()
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "containerd.pid"))
	if err != nil {
		return nil // not ours to stop
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return nil
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return nil
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil || !strings.Contains(string(cmdline), filepath.Join(dir, "config.toml")) {
		return nil // the pid is no longer that containerd
	}
	_ = proc.Signal(syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if proc.Signal(syscall.Signal(0)) != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = os.Remove(filepath.Join(dir, "containerd.pid"))
	return nil
}

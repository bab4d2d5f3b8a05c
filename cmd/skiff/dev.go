package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"skiff/agent"
)

// devLayout is what `skiff dev` remembers in <data-dir>/dev.json so a restart reuses the
// same addresses: Raft peers are identified by them.
type devLayout struct {
	Masters []devMaster `json:"masters"`
}

type devMaster struct {
	Name       string `json:"name"`
	RaftAddr   string `json:"raftAddr"`
	APIAddr    string `json:"apiAddr"`
	GossipAddr string `json:"gossipAddr"`
}

func runDev(args []string) error {
	fs := flag.NewFlagSet("skiff dev", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "skiff-dev", "directory for every process's state and logs")
	masters := fs.Int("masters", 3, "number of masters (odd: 1, 3 or 5)")
	agents := fs.Int("agents", 1, "number of node agents (each runs its own containerd under the data dir; needs root)")
	allowDrills := fs.Bool("allow-drills", false, "start every master and agent with --allow-drills, so 'skiff drill' can crash, partition and pause them")
	demo := fs.Bool("demo", false, "once the cluster is up, deploy a 3-replica Deployment 'demo' and print how to watch it and drill the cluster")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff dev [flags]

Runs a local highly available cluster in the foreground: each master is a separate
process on loopback, supervised (a master that dies is restarted, with a log line saying
so). State and logs live under --data-dir; running it again resumes that cluster.
Ctrl-C stops everything.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *masters < 1 || *masters%2 == 0 {
		return fmt.Errorf("--masters must be odd (1, 3, 5…), got %d", *masters)
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	layout, err := loadOrCreateLayout(dir, *masters)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var wg sync.WaitGroup
	for _, m := range layout.Masters {
		// The masters find each other through gossip and found the cluster together once
		// all are there; each knows every other's gossip address so a restarted one finds
		// its way back.
		var others []string
		for _, o := range layout.Masters {
			if o.Name != m.Name {
				others = append(others, o.GossipAddr)
			}
		}
		args := []string{"master", "--name", m.Name, "--data-dir", filepath.Join(dir, m.Name),
			"--raft-addr", m.RaftAddr, "--api-addr", m.APIAddr, "--gossip-addr", m.GossipAddr,
			"--bootstrap-expect", strconv.Itoa(len(layout.Masters))}
		if len(others) > 0 {
			args = append(args, "--join", strings.Join(others, ","))
		}
		if *allowDrills {
			args = append(args, "--allow-drills")
		}
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			supervise(ctx, name, exe, args, filepath.Join(dir, name, "master.log"))
		}(m.Name)
	}
	if err := waitReady(ctx, dir, layout); err == nil {
		var gossipAddrs []string
		for _, m := range layout.Masters {
			gossipAddrs = append(gossipAddrs, m.GossipAddr)
		}
		for i := 1; i <= *agents; i++ {
			name := fmt.Sprintf("a%d", i)
			gossipAddr, err := agentGossipAddr(dir, name)
			if err != nil {
				return err
			}
			listen, err := freeLoopbackAddr()
			if err != nil {
				return err
			}
			args := []string{"agent", "--name", name, "--data-dir", filepath.Join(dir, name), "--gossip-addr", gossipAddr, "--listen", listen,
				"--join", strings.Join(gossipAddrs, ","), "--kubeconfig", filepath.Join(dir, "kubeconfig"),
				"--containerd-namespace", "skiff-" + name, "--preload-busybox"}
			if *allowDrills {
				args = append(args, "--allow-drills")
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				supervise(ctx, name, exe, args, filepath.Join(dir, name, "agent.log"))
			}()
		}
		printDevBanner(dir, layout, *agents)
		if *demo {
			deployDemo(ctx, dir, *agents, *allowDrills)
		}
	}
	<-ctx.Done()
	fmt.Println("skiff dev: stopping every process…")
	wg.Wait()
	for i := 1; i <= *agents; i++ {
		// Agents leave their containers running by design; a dev cluster that stops takes
		// them, and the containerd each agent ran, along.
		tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		name := fmt.Sprintf("a%d", i)
		if err := agent.Teardown(tctx, filepath.Join(dir, name, "containerd"), "skiff-"+name); err != nil {
			fmt.Fprintf(os.Stderr, "skiff dev: cleaning up %s: %v\n", name, err)
		}
		cancel()
	}
	fmt.Println("skiff dev: stopped")
	return nil
}

func loadOrCreateLayout(dir string, masters int) (*devLayout, error) {
	path := filepath.Join(dir, "dev.json")
	if b, err := os.ReadFile(path); err == nil {
		var l devLayout
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if len(l.Masters) != masters {
			return nil, fmt.Errorf("%s holds a cluster of %d masters; use another --data-dir for %d", dir, len(l.Masters), masters)
		}
		return &l, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := &devLayout{}
	for i := 1; i <= masters; i++ {
		raftAddr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		apiAddr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		gossipAddr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		l.Masters = append(l.Masters, devMaster{Name: fmt.Sprintf("m%d", i), RaftAddr: raftAddr, APIAddr: apiAddr, GossipAddr: gossipAddr})
	}
	b, _ := json.MarshalIndent(l, "", "  ")
	return l, os.WriteFile(path, b, 0o644)
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// supervise runs one child until ctx ends, restarting it whenever it exits on its own.
func supervise(ctx context.Context, name, exe string, args []string, logPath string) {
	_ = os.MkdirAll(filepath.Dir(logPath), 0o755)
	for attempt := 0; ; attempt++ {
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "skiff dev: %s: %v\n", name, err)
			return
		}
		cmd := exec.Command(exe, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "skiff dev: starting %s: %v\n", name, err)
			logf.Close()
			return
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			logf.Close()
			delay := time.Second
			if time.Since(start) > 30*time.Second {
				delay = 200 * time.Millisecond
			}
			fmt.Printf("skiff dev: %s exited (%v); restarting it in %s (log: %s)\n", name, exitText(err), delay, logPath)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			logf.Close()
			return
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// waitReady waits until one master has written its kubeconfig and answers /readyz through
// it, then copies that kubeconfig to <dir>/kubeconfig.
func waitReady(ctx context.Context, dir string, l *devLayout) error {
	for {
		for _, m := range l.Masters {
			path := filepath.Join(dir, m.Name, "kubeconfig")
			c, err := loadClient(path)
			if err != nil {
				continue
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.server+"/readyz", nil)
			resp, err := c.http.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					b, err := os.ReadFile(path)
					if err == nil {
						err = os.WriteFile(filepath.Join(dir, "kubeconfig"), b, 0o600)
					}
					return err
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// agentGossipAddr keeps an agent's gossip address across `skiff dev` runs.
func agentGossipAddr(dir, name string) (string, error) {
	path := filepath.Join(dir, name, "gossip-addr")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return addr, os.WriteFile(path, []byte(addr), 0o644)
}

func printDevBanner(dir string, l *devLayout, agents int) {
	fmt.Printf("\nskiff dev: cluster of %d masters is ready (state and logs in %s)\n", len(l.Masters), dir)
	for _, m := range l.Masters {
		fmt.Printf("  %s  api https://%s  raft %s  log %s\n", m.Name, m.APIAddr, m.RaftAddr, filepath.Join(dir, m.Name, "master.log"))
	}
	for i := 1; i <= agents; i++ {
		fmt.Printf("  a%d  agent (containerd and logs under %s)\n", i, filepath.Join(dir, fmt.Sprintf("a%d", i)))
	}
	kc := filepath.Join(dir, "kubeconfig")
	fmt.Printf(`
Use it with kubectl:
  export KUBECONFIG=%s
  kubectl get namespaces
  kubectl create configmap demo --from-literal=greeting=hello
  kubectl get configmap demo -o yaml
  kubectl get nodes
  kubectl run demo --image=skiff.local/busybox:1 --overrides='{"spec":{"nodeName":"a1"}}' -- sleep 3600
  kubectl get pod demo -o wide      # Running on a1 (no scheduler yet: pods name their node)
  skiff status --kubeconfig %s
  kill -9 <pid of the leader>   # the supervisor restarts it; the API keeps answering

Ctrl-C stops the cluster; running 'skiff dev --data-dir %s' again resumes it.
`, kc, kc, dir)
}

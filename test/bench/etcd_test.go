package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"skiff/test/cluster"
)

// etcdCluster runs Debian's etcd as three members on loopback, each its own process with
// its data dir on the same disk as skiff's. Its timing matches skiff's defaults (election
// timeout 500 ms, heartbeat 50 ms) so the comparison is of the implementations, not of
// their tuning.
type etcdCluster struct {
	tb      testing.TB
	dir     string
	names   []string
	clients []string
	peers   []string
	procs   []*exec.Cmd

	mu      sync.Mutex
	perNode map[int]*clientv3.Client
}

// cached returns a long-lived client bound to member i alone.
func (c *etcdCluster) cached(i int) *clientv3.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.perNode == nil {
		c.perNode = map[int]*clientv3.Client{}
	}
	if cli, ok := c.perNode[i]; ok {
		return cli
	}
	cli := c.client(c.clients[i])
	c.perNode[i] = cli
	return cli
}

func startEtcd(tb testing.TB, dir string) *etcdCluster {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		tb.Fatalf("etcd not installed (apt-get install etcd-server): %v", err)
	}
	_ = bin
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	c := &etcdCluster{tb: tb, dir: dir}
	var initial []string
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("e%d", i)
		c.names = append(c.names, name)
		c.clients = append(c.clients, "http://"+cluster.FreeAddr(tb))
		c.peers = append(c.peers, "http://"+cluster.FreeAddr(tb))
		initial = append(initial, name+"="+c.peers[i-1])
	}
	c.procs = make([]*exec.Cmd, 3)
	for i := range c.names {
		c.start(i, strings.Join(initial, ","))
	}
	tb.Cleanup(c.stop)
	c.waitHealthy(-1)
	return c
}

func (c *etcdCluster) start(i int, initial string) {
	args := []string{
		"--name", c.names[i], "--data-dir", filepath.Join(c.dir, c.names[i]),
		"--listen-client-urls", c.clients[i], "--advertise-client-urls", c.clients[i],
		"--listen-peer-urls", c.peers[i], "--initial-advertise-peer-urls", c.peers[i],
		"--initial-cluster-state", "new", "--initial-cluster-token", "bench",
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-outputs", filepath.Join(c.dir, c.names[i]+".log"),
	}
	if initial != "" {
		args = append(args, "--initial-cluster", initial)
	} else {
		var all []string
		for j, n := range c.names {
			all = append(all, n+"="+c.peers[j])
		}
		args = append(args, "--initial-cluster", strings.Join(all, ","))
	}
	cmd := exec.Command("etcd", args...)
	cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH="+goarch())
	if err := cmd.Start(); err != nil {
		c.tb.Fatalf("starting etcd: %v", err)
	}
	c.procs[i] = cmd
}

func (c *etcdCluster) kill(i int) {
	_ = c.procs[i].Process.Signal(syscall.SIGKILL)
	_ = c.procs[i].Wait()
	c.procs[i] = nil
}

func (c *etcdCluster) stop() {
	c.mu.Lock()
	for _, cli := range c.perNode {
		cli.Close()
	}
	c.perNode = nil
	c.mu.Unlock()
	for i, p := range c.procs {
		if p != nil {
			c.kill(i)
		}
	}
}

func (c *etcdCluster) client(endpoints ...string) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.tb.Fatal(err)
	}
	return cli
}

// leader returns the index of the member that leads, asking every member except skip.
func (c *etcdCluster) leader(skip int) int {
	for i := range c.names {
		if i == skip || c.procs[i] == nil {
			continue
		}
		cli := c.client(c.clients[i])
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		st, err := cli.Status(ctx, c.clients[i])
		cancel()
		cli.Close()
		if err != nil || st.Leader == 0 {
			continue
		}
		for j := range c.names {
			if c.procs[j] == nil || j == skip {
				continue
			}
			cj := c.client(c.clients[j])
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			sj, err := cj.Status(ctx, c.clients[j])
			cancel()
			cj.Close()
			if err == nil && sj.Header.MemberId == st.Leader {
				return j
			}
		}
	}
	return -1
}

// waitHealthy waits until a member other than skip leads and a write succeeds.
func (c *etcdCluster) waitHealthy(skip int) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c.leader(skip) >= 0 {
			cli := c.client(c.clients...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := cli.Put(ctx, "health", "ok")
			cancel()
			cli.Close()
			if err == nil {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.tb.Fatal("etcd cluster not healthy within 60s")
}

// Package cluster runs the built skiff binary as a multi-process cluster on loopback for
// end-to-end tests and benchmarks: each master a separate process with its own data dir,
// killed with SIGKILL and restarted on demand. It talks to the masters with the
// kubeconfig they write, as a user would. An isolated cluster (StartWith, Options.Isolate)
// runs every process in a network namespace of its own, so faults (faults.go: partitions,
// splits, links down, SIGSTOP, full data dirs on tmpfs) are real; KVWorkload records a
// history for the shared verifiers.
package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
	"skiff/raft"
	"skiff/test/verify"
)

// Cluster is a set of skiff master processes.
type Cluster struct {
	t       testing.TB
	Dir     string
	Bin     string
	Names   []string
	APIs    []string // host:port of each master's API
	Gossip  []string // host:port of each master's gossip
	args    [][]string
	mu      sync.Mutex
	procs   []*exec.Cmd
	exited  map[*exec.Cmd]chan struct{} // closed once the process is reaped
	token   string
	caPool  *x509.CertPool
	caPEM   []byte
	Client  *http.Client
	logPath []string
	// Net and hosts are set for an isolated cluster (Options.Isolate): hosts[i] is master
	// i's network namespace.
	Net       *Network
	hosts     []*Host
	diskSize  string
	movedPort int // MoveRaft's last port offset in an isolated cluster
}

// Options shape a cluster beyond its size.
type Options struct {
	// Masters is how many masters found the cluster.
	Masters int
	// Args are appended to every master's command line.
	Args []string
	// Isolate runs every master and agent in a network namespace of its own on a bridge
	// private to the cluster (netns.go), listening on the namespace's address, so faults
	// cut real links. It needs root, iproute2, nftables and nsenter, and fails the test
	// without them.
	Isolate bool
	// DataDirSize, when set, mounts a tmpfs of that size (mount's size= syntax: "64m") on
	// every master's data dir, so a test can fill it (FillDisk). It needs root.
	DataDirSize string
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// Binary builds bin/skiff once per test process into a temp dir and returns its path.
func Binary(t testing.TB) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "skiff-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "skiff")
		out, err := exec.Command("go", "build", "-o", builtBin, "skiff/cmd/skiff").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building skiff: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

var (
	addrMu    sync.Mutex
	handedOut = map[string]bool{}
)

// FreeAddr returns a free loopback host:port (TCP and UDP), never the same one twice in a
// test process: the kernel may hand a just-released port out again.
func FreeAddr(t testing.TB) string {
	addrMu.Lock()
	defer addrMu.Unlock()
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if handedOut[addr] {
			continue
		}
		if pc, err := net.ListenPacket("udp", addr); err == nil {
			pc.Close()
		} else {
			continue
		}
		handedOut[addr] = true
		return addr
	}
	t.Fatal("no free loopback port")
	return ""
}

// Start runs n masters founded together and waits until the API answers on all of them.
func Start(t testing.TB, n int, extraArgs ...string) *Cluster {
	return StartWith(t, Options{Masters: n, Args: extraArgs})
}

// StartWith runs the masters opts describes, founded together, and waits until the API
// answers on all of them. Everything it starts or creates is stopped and removed in
// t.Cleanup; a failed test keeps the masters' logs (see ArtifactsDir in test/verify).
func StartWith(t testing.TB, opts Options) *Cluster {
	t.Helper()
	n, extraArgs := opts.Masters, opts.Args
	if opts.Isolate || opts.DataDirSize != "" {
		RequireFaultTools(t) // before anything else, so its message is the one seen
	}
	dir := t.TempDir()
	c := &Cluster{t: t, Dir: dir, Bin: Binary(t), diskSize: opts.DataDirSize}
	if opts.Isolate {
		// Created before the masters' cleanup is registered, so removed after they stop.
		c.Net = NewNetwork(t)
	}
	var raftAddrs []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("m%d", i+1)
		c.Names = append(c.Names, name)
		raftAddr, api, gossipAddr := c.newMasterAddrs(name)
		c.prepareDataDir(name)
		raftAddrs = append(raftAddrs, raftAddr)
		c.APIs = append(c.APIs, api)
		c.Gossip = append(c.Gossip, gossipAddr)
	}
	// As `skiff dev` does: the masters find each other through gossip and found the
	// cluster once all are there.
	for i, name := range c.Names {
		args := []string{"master", "--name", name, "--data-dir", filepath.Join(dir, name),
			"--raft-addr", raftAddrs[i], "--api-addr", c.APIs[i], "--gossip-addr", c.Gossip[i],
			"--bootstrap-expect", fmt.Sprint(n), "--log-level", "debug"}
		var others []string
		for j := range c.Names {
			if j != i {
				others = append(others, c.Gossip[j])
			}
		}
		if len(others) > 0 {
			args = append(args, "--join", strings.Join(others, ","))
		}
		c.args = append(c.args, append(args, extraArgs...))
		c.logPath = append(c.logPath, filepath.Join(dir, name+".log"))
	}
	c.procs = make([]*exec.Cmd, n)
	for i := range c.Names {
		c.Restart(i)
	}
	t.Cleanup(func() {
		if t.Failed() {
			keep := filepath.Join(os.TempDir(), "skiff-artifacts", strings.ReplaceAll(t.Name(), "/", "_"))
			if a := os.Getenv("SKIFF_ARTIFACTS"); a != "" {
				keep = filepath.Join(a, strings.ReplaceAll(t.Name(), "/", "_"))
			}
			_ = os.MkdirAll(keep, 0o755)
			for _, p := range c.logPath {
				if b, err := os.ReadFile(p); err == nil {
					_ = os.WriteFile(filepath.Join(keep, filepath.Base(p)), b, 0o644)
				}
			}
			for _, name := range c.Names {
				// Raft's own log lives in the data dir, which may be a tmpfs about to go.
				if b, err := os.ReadFile(filepath.Join(dir, name, "raft.log")); err == nil {
					_ = os.WriteFile(filepath.Join(keep, name+"-raft.log"), b, 0o644)
				}
			}
			t.Logf("master logs kept in %s", keep)
		}
		c.Stop()
	})
	c.loadCredentials()
	for i := range c.Names {
		c.WaitReady(i)
	}
	return c
}

// loadCredentials waits for any master's kubeconfig and takes the CA and token from it.
func (c *Cluster) loadCredentials() {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for i := range c.Names {
			b, err := os.ReadFile(c.KubeconfigPath(i))
			if err != nil {
				continue
			}
			var kc struct {
				Clusters []struct {
					Cluster struct {
						CA string `json:"certificate-authority-data"`
					} `json:"cluster"`
				} `json:"clusters"`
				Users []struct {
					User struct {
						Token string `json:"token"`
					} `json:"user"`
				} `json:"users"`
			}
			if yaml.Unmarshal(b, &kc) != nil || len(kc.Clusters) == 0 || len(kc.Users) == 0 {
				continue
			}
			c.caPEM, _ = base64.StdEncoding.DecodeString(kc.Clusters[0].Cluster.CA)
			c.caPool = x509.NewCertPool()
			c.caPool.AppendCertsFromPEM(c.caPEM)
			c.token = kc.Users[0].User.Token
			c.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.caPool}}}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatal("no master wrote a kubeconfig within 60s")
}

// KubeconfigPath is where master i writes its kubeconfig.
func (c *Cluster) KubeconfigPath(i int) string {
	return filepath.Join(c.Dir, c.Names[i], "kubeconfig")
}

// Token is the admin bearer token.
func (c *Cluster) Token() string { return c.token }

// CAPEM is the cluster CA certificate.
func (c *Cluster) CAPEM() []byte { return c.caPEM }

// Restart starts master i (again) with its original arguments.
func (c *Cluster) Restart(i int) {
	logf, err := os.OpenFile(c.logPath[i], os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	cmd := exec.Command(c.Bin, c.args[i]...)
	if c.hosts != nil && c.hosts[i] != nil {
		cmd = c.hosts[i].Command(c.Bin, c.args[i]...)
	}
	c.mu.Unlock()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	exited := make(chan struct{})
	c.mu.Lock()
	c.procs[i] = cmd
	if c.exited == nil {
		c.exited = map[*exec.Cmd]chan struct{}{}
	}
	c.exited[cmd] = exited
	c.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
		c.mu.Lock()
		delete(c.exited, cmd)
		c.mu.Unlock()
	}()
}

// Kill sends SIGKILL to master i and waits for it to die.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	p := c.procs[i]
	c.procs[i] = nil
	exited := c.exited[p]
	c.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.Process.Signal(syscall.SIGKILL)
	if exited != nil {
		<-exited // reaped by Restart's goroutine
	}
}

// Running reports whether master i's process is up.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i] != nil
}

// Stop kills every master.
func (c *Cluster) Stop() {
	for i := range c.Names {
		c.Kill(i)
	}
}

// Do sends an authenticated request to master i's API.
func (c *Cluster) Do(ctx context.Context, i int, method, path, contentType string, body []byte) (*http.Response, error) {
	c.mu.Lock()
	api := c.APIs[i]
	c.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+api+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	return c.Client.Do(req)
}

// Stats returns master i's Raft status.
func (c *Cluster) Stats(i int) (raft.Stats, error) {
	var st raft.Stats
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, i, http.MethodGet, "/skiff/v1/raft", "", nil)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Leader returns the index of a running master that reports itself leader, skipping skip;
// -1 if none.
func (c *Cluster) Leader(skip int) int {
	for i := range c.Names {
		if i == skip || !c.Running(i) {
			continue
		}
		if st, err := c.Stats(i); err == nil && st.State == "Leader" {
			return i
		}
	}
	return -1
}

// WaitReady waits (up to 60 s) until master i answers /readyz.
func (c *Cluster) WaitReady(i int) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := c.Do(ctx, i, http.MethodGet, "/readyz", "", nil)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("master %s not ready within 60s (log: %s)", c.Names[i], c.logPath[i])
}

// WriteKubeconfig writes a kubeconfig pointing at master i and returns its path.
func (c *Cluster) WriteKubeconfig(i int) string {
	b, err := os.ReadFile(c.KubeconfigPath(i))
	if err != nil {
		c.t.Fatal(err)
	}
	p := filepath.Join(c.Dir, fmt.Sprintf("kubeconfig-%d", i))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *Cluster) getJSON(i int, path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, i, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s on master %d: %s", path, i, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Verify runs the shared verifiers over every running master: they converge on the same
// state hash at the same revision (waiting up to a minute for followers to catch up), and
// no term had two leaders among the leadership histories the masters still remember.
func (c *Cluster) Verify() {
	c.t.Helper()
	type stateHash struct {
		Revision uint64
		Hash     string
	}
	deadline := time.Now().Add(time.Minute)
	var hashes map[string]string
	for {
		hashes = map[string]string{}
		revs := map[uint64]bool{}
		for i, name := range c.Names {
			if !c.Running(i) {
				continue
			}
			var sh stateHash
			if err := c.getJSON(i, "/skiff/v1/raft/state-hash", &sh); err != nil {
				continue
			}
			hashes[name] = sh.Hash
			revs[sh.Revision] = true
		}
		if len(revs) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(hashes) == 0 {
		c.t.Fatal("verify: no master answered with its state hash")
	}
	verify.SameHash(c.t, hashes)
	var claims []verify.TermLeader
	for i := range c.Names {
		if !c.Running(i) {
			continue
		}
		var history []verify.TermLeader
		if err := c.getJSON(i, "/skiff/v1/raft/leadership-history", &history); err != nil {
			c.t.Errorf("verify: leadership history of master %d: %v", i, err)
			continue
		}
		claims = append(claims, history...)
	}
	verify.OneLeaderPerTerm(c.t, claims)
}

// WaitLeader waits up to 30 s for a running master other than skip to lead, and returns
// its index (-1 if none did).
func (c *Cluster) WaitLeader(skip int) int {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l := c.Leader(skip); l >= 0 || time.Now().After(deadline) {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
}

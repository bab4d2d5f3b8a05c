// Package master is a skiff master: the Raft node that holds the cluster state and the
// HTTPS server that serves the Kubernetes API (master/api) and skiff's operations API from
// it. The leader also runs the cluster's leader-only routines.
package master

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/labstack/echo/v4"
	"skiff/fsm"
	"skiff/gossip"
	"skiff/master/api"
	"skiff/master/controller"
	"skiff/raft"
)

// Version is the skiff version masters announce in gossip; set at build time.
var Version = "dev"

// Config configures a master.
type Config struct {
	Raft raft.Config
	// APIAddr is where the HTTPS API listens; APIAdvertise the host:port clients use (for
	// the certificate and the kubeconfig), defaulting to the listener's address.
	APIAddr, APIAdvertise string
	// ClusterName names the cluster in certificates and kubeconfigs.
	ClusterName string
	// Peers are the founding members (including this one) for a first bootstrap; empty with
	// Join set means join a running cluster; empty without Join means a single-node cluster.
	Peers []raft.Peer
	// Join is the Raft address of any running master (without gossip).
	Join string
	// Gossip, when Gossip.BindAddr is set, makes this master a gossip member that
	// announces its API and Raft addresses; GossipJoin lists members (masters or agents)
	// to join through. A master without state that joins gossip finds the masters there
	// and asks their leader to add it.
	Gossip     gossip.Config
	GossipJoin []string
	// BootstrapExpect, with gossip and without Peers, founds the cluster once this many
	// masters (this one included) are alive in gossip.
	BootstrapExpect int
	// EvictionTimeout is how long pods stay on a node gossip reports gone before they are
	// deleted so their controllers replace them (default 5 min).
	EvictionTimeout time.Duration
	// Autopilot removes masters gossip reports dead or left from the Raft configuration
	// (autopilot.go); it needs gossip and is off while DeadServerCleanup is zero.
	Autopilot AutopilotConfig
	Logger    *slog.Logger

	// AllowDrills turns on the fault drill endpoints (/skiff/v1/drill, see drill.go); off,
	// they answer 403 and no fault injector is installed.
	AllowDrills bool
}

// Master runs one master until Shutdown. Its methods are safe for concurrent use.
type Master struct {
	cfg   Config
	node  *raft.Node
	api   *api.Server
	http  *http.Server
	ln    net.Listener
	log   *slog.Logger
	ready chan struct{}
	stop  context.CancelFunc
	done  chan struct{}
	pool  *gossip.Pool // nil without gossip

	drills *drills // fault drills (drill.go)
}

// Start opens the Raft node, bootstraps or joins as configured, and starts the API. It
// returns once the listeners are up; the API answers once the cluster's CA exists (see
// Ready).
func Start(ctx context.Context, cfg Config) (*Master, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "skiff"
	}
	cfg.armDrills()
	if cfg.Raft.OnDiskFull == nil {
		cfg.Raft.OnDiskFull = diskFullLogger(cfg.Logger)
	}
	node, err := raft.Open(cfg.Raft)
	if err != nil {
		return nil, err
	}
	m := &Master{cfg: cfg, node: node, log: cfg.Logger, ready: make(chan struct{}), done: make(chan struct{})}
	node.OnLeader("cluster-init", func(ctx context.Context) {
		if err := api.EnsureClusterObjects(ctx, node, cfg.ClusterName); err != nil && ctx.Err() == nil {
			m.log.Error("cluster init failed", "error", err)
		}
	})
	node.OnLeader("namespace-finalizer", func(ctx context.Context) { api.NamespaceFinalizer(ctx, node) })
	registerControllers(node, m.log)
	fail := func(err error) (*Master, error) {
		if m.pool != nil {
			m.pool.Shutdown()
		}
		if m.ln != nil {
			m.ln.Close()
		}
		node.Shutdown()
		return nil, err
	}
	m.ln, err = net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fail(fmt.Errorf("listening for the API on %s: %w", cfg.APIAddr, err))
	}
	advertise := cfg.APIAdvertise
	if advertise == "" {
		advertise = m.ln.Addr().String()
	}
	if cfg.Gossip.BindAddr != "" || cfg.Gossip.Transport != nil {
		if err := m.startGossip(ctx, advertise); err != nil {
			return fail(err)
		}
		lifecycle := &controller.NodeLifecycle{Store: controller.LeaderStore{Node: node}, Members: m.pool, EvictionTimeout: cfg.EvictionTimeout, Logger: m.log.With("controller", "node-lifecycle")}
		node.OnLeader("node-lifecycle", lifecycle.Run)
		if cfg.Autopilot.DeadServerCleanup > 0 {
			node.OnLeader("autopilot", newAutopilot(cfg.Autopilot, node, m.pool, m.log.With("routine", "autopilot")).Run)
		}
	}
	if err := m.joinOrBootstrap(ctx); err != nil {
		return fail(err)
	}
	go m.keepMembership(ctx)
	m.api = api.New(node, advertise)
	if m.pool != nil {
		m.api.SetAgentLocator(func(node string) (string, bool) {
			for _, a := range m.pool.Alive(gossip.RoleAgent) {
				if a.Meta.Name == node && a.Meta.API != "" {
					return a.Meta.API, true
				}
			}
			return "", false
		})
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	m.api.Register(e)
	m.opsRoutes(e)
	m.http = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	sctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	go m.serve(sctx, advertise)
	m.log.Info("master started", "id", cfg.Raft.ID, "raft", node.Addr(), "api", "https://"+advertise)
	return m, nil
}

// startGossip joins the gossip pool, announcing this master's API and Raft addresses.
func (m *Master) startGossip(ctx context.Context, apiAdvertise string) error {
	gc := m.cfg.Gossip
	if gc.Name == "" {
		gc.Name = m.cfg.Raft.ID
	}
	gc.Meta = gossip.Meta{Role: gossip.RoleMaster, Name: m.cfg.Raft.ID, API: apiAdvertise, Raft: m.node.Addr(), Version: Version}
	if gc.Logger == nil {
		gc.Logger = m.log.With("component", "gossip")
	}
	pool, err := gossip.Start(gc)
	if err != nil {
		return fmt.Errorf("starting gossip: %w", err)
	}
	m.pool = pool
	if len(m.cfg.GossipJoin) == 0 {
		return nil
	}
	if n, err := pool.Join(m.cfg.GossipJoin); n == 0 {
		// Nobody answered yet (they may be starting too, or down): keep trying in the
		// background; Raft does not need gossip to resume from disk.
		m.log.Warn("gossip join failed; retrying in the background", "through", m.cfg.GossipJoin, "error", err)
		go m.rejoinGossip(ctx)
	}
	return nil
}

// rejoinGossip retries joining the gossip pool until another member is known.
func (m *Master) rejoinGossip(ctx context.Context) {
	for len(m.pool.Members()) < 2 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		if n, _ := m.pool.Join(m.cfg.GossipJoin); n > 0 {
			m.log.Info("joined gossip", "through", m.cfg.GossipJoin)
			return
		}
	}
}

// joinOrBootstrap makes this node part of a Raft cluster: resume from disk, found one (from
// --peers, or from the masters gossip shows once BootstrapExpect of them are there), or
// join one (through a Raft address, or through a master gossip shows).
func (m *Master) joinOrBootstrap(ctx context.Context) error {
	cfg, node := m.cfg, m.node
	hasState, err := node.HasState()
	if err != nil {
		return err
	}
	switch {
	case hasState:
		m.log.Info("restarting from existing state", "data_dir", cfg.Raft.DataDir)
		go m.rejoin(ctx)
		return nil
	case len(cfg.Peers) > 0:
		m.log.Info("bootstrapping cluster", "peers", len(cfg.Peers))
		return node.Bootstrap(cfg.Peers)
	case cfg.Join != "":
		m.log.Info("joining cluster", "through", cfg.Join)
		jctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return node.Join(jctx, cfg.Join)
	case m.pool != nil && cfg.BootstrapExpect > 0:
		return m.bootstrapFromGossip(ctx)
	case m.pool != nil && len(cfg.GossipJoin) > 0:
		return m.joinThroughGossip(ctx)
	}
	m.log.Info("bootstrapping a single-master cluster")
	return node.Bootstrap([]raft.Peer{{ID: cfg.Raft.ID, Address: node.Addr(), Voter: true}})
}

// bootstrapFromGossip waits until BootstrapExpect masters are alive in gossip, then founds
// the cluster with exactly them; every founder computes the same set. A master that finds
// a cluster already led there joins it instead.
func (m *Master) bootstrapFromGossip(ctx context.Context) error {
	want := m.cfg.BootstrapExpect
	m.log.Info("waiting for masters in gossip", "expect", want)
	for {
		masters := m.pool.Alive(gossip.RoleMaster)
		if len(masters) >= want {
			var peers []raft.Peer
			for _, mm := range masters[:want] {
				peers = append(peers, raft.Peer{ID: mm.Meta.Name, Address: mm.Meta.Raft, Voter: true})
			}
			self := false
			for _, p := range peers {
				self = self || p.ID == m.cfg.Raft.ID
			}
			if !self {
				return m.joinThroughGossip(ctx)
			}
			m.log.Info("bootstrapping cluster from gossip", "peers", len(peers))
			return m.node.Bootstrap(peers)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.pool.Changes():
		case <-time.After(time.Second):
		}
	}
}

// joinThroughGossip asks the masters gossip shows to add this one as a voter.
func (m *Master) joinThroughGossip(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, mm := range m.pool.Alive(gossip.RoleMaster) {
			if mm.Meta.Name == m.cfg.Raft.ID || mm.Meta.Raft == "" {
				continue
			}
			jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := m.node.Join(jctx, mm.Meta.Raft)
			cancel()
			if err == nil {
				m.log.Info("joined cluster", "through", mm.Meta.Name)
				return nil
			}
			m.log.Warn("join through master failed", "master", mm.Meta.Name, "error", err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("no master found through gossip accepted this one within 2 minutes")
		}
		time.Sleep(time.Second)
	}
}

// Gossip is the master's gossip pool, or nil when it runs without gossip.
func (m *Master) Gossip() *gossip.Pool { return m.pool }

// serve waits for the cluster's CA to replicate here, then serves HTTPS with a
// certificate for this master signed by it, and writes <data-dir>/kubeconfig.
func (m *Master) serve(ctx context.Context, advertise string) {
	defer close(m.done)
	var cert tls.Certificate
	for {
		st := m.node.FSM().State()
		ca, err := api.ClusterCA(st)
		token := api.AdminToken(st)
		if err == nil && ca != nil && token != "" {
			host, _, _ := net.SplitHostPort(advertise)
			hostname, _ := os.Hostname()
			cert, err = ca.ServingCert(m.cfg.Raft.ID, []string{host, "127.0.0.1", "::1", "localhost", hostname})
			if err != nil {
				m.log.Error("issuing the serving certificate", "error", err)
				return
			}
			kc := Kubeconfig(m.cfg.ClusterName, "https://"+advertise, ca.CertPEM, token)
			path := filepath.Join(m.cfg.Raft.DataDir, "kubeconfig")
			if err := os.WriteFile(path, kc, 0o600); err != nil {
				m.log.Error("writing kubeconfig", "path", path, "error", err)
			}
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	go m.recordAPIAddress(ctx, advertise)
	tlsLn := tls.NewListener(m.ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	close(m.ready)
	m.log.Info("API serving", "url", "https://"+advertise, "kubeconfig", filepath.Join(m.cfg.Raft.DataDir, "kubeconfig"))
	if err := m.http.Serve(tlsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
		m.log.Error("API server stopped", "error", err)
	}
}

// Ready is closed once the API serves.
func (m *Master) Ready() <-chan struct{} { return m.ready }

// Node is the master's Raft node.
func (m *Master) Node() *raft.Node { return m.node }

// APIAddr is the address the API listens on.
func (m *Master) APIAddr() string { return m.ln.Addr().String() }

// KubeconfigPath is where this master writes its kubeconfig once the API serves.
func (m *Master) KubeconfigPath() string { return filepath.Join(m.cfg.Raft.DataDir, "kubeconfig") }

// Shutdown stops serving and stops the Raft node; it blocks until both are down. It does
// not take the master out of the cluster: gossip reports it dead, not left, and it keeps
// its place in the Raft configuration, so a restart (or an upgrade) resumes where it was.
// Leave takes it out for good.
func (m *Master) Shutdown(ctx context.Context) error {
	m.stop()
	herr := m.http.Shutdown(ctx)
	m.ln.Close()
	<-m.done
	var gerr error
	if m.pool != nil {
		gerr = m.pool.Shutdown() // no gossip leave: stopping is not leaving (see Leave)
	}
	rerr := m.node.Shutdown()
	return errors.Join(herr, gerr, rerr)
}

// recordAPIAddress stores this master's API address in the cluster, so `skiff status` and
// agents can find every master from any one.
func (m *Master) recordAPIAddress(ctx context.Context, advertise string) {
	key := fsm.Key{Resource: api.InternalResource, Name: masterAPIKey(m.cfg.Raft.ID)}
	for ctx.Err() == nil {
		if rec := m.node.FSM().State().Get(key); rec != nil && string(rec.Value) == advertise {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := m.node.Propose(pctx, &fsm.Txn{Ops: []fsm.Op{fsm.DeleteIfExists(key), fsm.Create(key, []byte(advertise), fsm.Meta{})}})
		cancel()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

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
	"skiff/master/api"
	"skiff/raft"
)

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
	// Join is the Raft address of any running member.
	Join   string
	Logger *slog.Logger
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
	hasState, err := node.HasState()
	if err != nil {
		node.Shutdown()
		return nil, err
	}
	switch {
	case hasState:
		m.log.Info("restarting from existing state", "data_dir", cfg.Raft.DataDir)
	case cfg.Join != "":
		m.log.Info("joining cluster", "through", cfg.Join)
		jctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err = node.Join(jctx, cfg.Join)
		cancel()
	default:
		peers := cfg.Peers
		if len(peers) == 0 {
			peers = []raft.Peer{{ID: cfg.Raft.ID, Address: node.Addr(), Voter: true}}
		}
		m.log.Info("bootstrapping cluster", "peers", len(peers))
		err = node.Bootstrap(peers)
	}
	if err != nil {
		node.Shutdown()
		return nil, err
	}
	m.ln, err = net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		node.Shutdown()
		return nil, fmt.Errorf("listening for the API on %s: %w", cfg.APIAddr, err)
	}
	advertise := cfg.APIAdvertise
	if advertise == "" {
		advertise = m.ln.Addr().String()
	}
	m.api = api.New(node, advertise)
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

// Shutdown stops serving and stops the Raft node; it blocks until both are down.
func (m *Master) Shutdown(ctx context.Context) error {
	m.stop()
	herr := m.http.Shutdown(ctx)
	m.ln.Close()
	<-m.done
	rerr := m.node.Shutdown()
	return errors.Join(herr, rerr)
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

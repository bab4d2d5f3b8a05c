// Package master is a skiff master: the Raft node that holds the cluster state and the
// HTTP API served from it. Today the API is the store's operations API (health, Raft
// status and membership, a key/value debug surface used by drills and benchmarks); the
// Kubernetes API joins it on the same server.
package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"skiff/raft"
)

// Config configures a master.
type Config struct {
	Raft raft.Config
	// HTTPAddr is where the API listens.
	HTTPAddr string
	// Peers are the founding members (including this one) for a first bootstrap; empty with
	// Join set means join a running cluster; empty without Join means a single-node cluster.
	Peers []raft.Peer
	// Join is the Raft address of any running member.
	Join   string
	Logger *slog.Logger
}

// Master runs one master until Shutdown. Its methods are safe for concurrent use.
type Master struct {
	cfg  Config
	node *raft.Node
	http *http.Server
	ln   net.Listener
	log  *slog.Logger
}

// Start opens the Raft node, bootstraps or joins as configured and starts serving HTTP.
// It returns once the listeners are up; the election happens in the background.
func Start(ctx context.Context, cfg Config) (*Master, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	node, err := raft.Open(cfg.Raft)
	if err != nil {
		return nil, err
	}
	m := &Master{cfg: cfg, node: node, log: cfg.Logger}
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
	m.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		node.Shutdown()
		return nil, fmt.Errorf("listening for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	m.routes(e)
	m.http = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := m.http.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("http server stopped", "error", err)
		}
	}()
	m.log.Info("master started", "id", cfg.Raft.ID, "raft", node.Addr(), "http", m.ln.Addr().String())
	return m, nil
}

// Node is the master's Raft node.
func (m *Master) Node() *raft.Node { return m.node }

// HTTPAddr is the address the API listens on.
func (m *Master) HTTPAddr() string { return m.ln.Addr().String() }

// Shutdown stops serving and stops the Raft node; it blocks until both are down.
func (m *Master) Shutdown(ctx context.Context) error {
	herr := m.http.Shutdown(ctx)
	rerr := m.node.Shutdown()
	return errors.Join(herr, rerr)
}

package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"skiff/fsm"
	"skiff/gossip"
	"skiff/master"
	"skiff/raft"
)

func runMaster(args []string) error {
	fs := flag.NewFlagSet("skiff master", flag.ContinueOnError)
	host, _ := os.Hostname()
	name := fs.String("name", host, "this master's stable ID; keep it across restarts and address changes")
	dataDir := fs.String("data-dir", "/var/lib/skiff", "where the Raft log, snapshots and keys live")
	raftAddr := fs.String("raft-addr", "127.0.0.1:7400", "listen address for Raft and master-to-master RPC")
	raftAdvertise := fs.String("raft-advertise", "", "address other masters dial (default: --raft-addr)")
	apiAddr := fs.String("api-addr", "127.0.0.1:6443", "listen address for the HTTPS API (Kubernetes API and skiff operations)")
	apiAdvertise := fs.String("api-advertise", "", "host:port clients reach the API on (default: --api-addr); goes into the certificate and kubeconfig")
	clusterName := fs.String("cluster-name", "skiff", "the cluster's name in certificates and kubeconfigs")
	peers := fs.String("peers", "", "founding masters for the first start, as id=host:port,… (all founders pass the same list)")
	join := fs.String("join", "", "with gossip: gossip addresses (host:port,…) of any members to join through; without: the Raft address of any running master")
	gossipAddr := fs.String("gossip-addr", "", "listen address (UDP+TCP) for gossip with masters and agents; empty disables gossip")
	gossipAdvertise := fs.String("gossip-advertise", "", "gossip address others reach (default: --gossip-addr)")
	gossipKeyFile := fs.String("gossip-key-file", "", "file holding a base64 16/24/32-byte key that encrypts gossip (every member needs the same)")
	evictionTimeout := fs.Duration("eviction-timeout", 5*time.Minute, "how long pods stay on a node whose agent gossip reports gone before they are replaced")
	bootstrapExpect := fs.Int("bootstrap-expect", 0, "number of founding masters: with gossip, found the cluster once this many masters are alive there; with --peers, a check that the list has this many")
	watchHistory := fs.Int("watch-history", 10000, "how many recent changes watches can resume from before clients must relist (410 Gone)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	deadServerCleanup := fs.Duration("dead-server-cleanup", 30*time.Second, "with gossip: the leader removes a master from the Raft configuration once gossip has reported it dead this long (one that left: at once); 0 disables")
	minQuorum := fs.Int("min-quorum", 3, "the fewest voting masters dead-server cleanup leaves in the Raft configuration")
	leaveOnTerminate := fs.Bool("leave-on-terminate", false, "on SIGTERM/SIGINT leave the cluster for good (remove this master from Raft, announce it left) instead of only stopping")
	allowDrills := fs.Bool("allow-drills", false, "serve the fault drill endpoints 'skiff drill' uses (crash, partition, pause this master on request); off, they answer 403")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff master [flags]

Runs one master. The first start of a cluster passes --peers with every founding master
(each founder the same list) or nothing for a single-master cluster; later masters pass
--join with any member's Raft address. A restart with an existing --data-dir ignores both
and resumes from disk, keeping its --name as its identity: if its Raft address changed, or
the leader removed it while it was down, it asks the leader to update or re-add it.
Every flag can also come from a YAML file (--config), keyed by flag name, e.g. "name: m1" and "peers: [m1=10.0.0.1:7400, m2=10.0.0.2:7400, m3=10.0.0.3:7400]".
Once the API serves, <data-dir>/kubeconfig holds a kubeconfig for it
(cluster CA and admin token) that kubectl uses as is.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseWithConfig(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logger, err := newLogger(*logLevel, "master", *name)
	if err != nil {
		return err
	}
	founders, err := parsePeers(*peers)
	if err != nil {
		return err
	}
	if len(founders) > 0 && *join != "" {
		return errors.New("--peers and --join are exclusive: found a cluster or join one")
	}
	if *bootstrapExpect > 0 && len(founders) > 0 && *bootstrapExpect != len(founders) {
		return fmt.Errorf("--bootstrap-expect %d but --peers lists %d founding masters", *bootstrapExpect, len(founders))
	}
	if *bootstrapExpect > 0 && len(founders) == 0 && *gossipAddr == "" {
		return errors.New("--bootstrap-expect without --peers needs gossip (--gossip-addr) to find the other masters")
	}
	var gossipKey []byte
	if *gossipKeyFile != "" {
		if gossipKey, err = readGossipKey(*gossipKeyFile); err != nil {
			return err
		}
	}
	raftJoin, gossipJoin := *join, []string(nil)
	if *gossipAddr != "" && *join != "" {
		raftJoin, gossipJoin = "", strings.Split(*join, ",")
	}
	if *minQuorum < 1 {
		return fmt.Errorf("--min-quorum must be at least 1, got %d", *minQuorum)
	}
	if *watchHistory < 100 {
		return fmt.Errorf("--watch-history must be at least 100, got %d", *watchHistory)
	}
	raftLog, err := os.OpenFile(filepath.Join(mustMkdir(*dataDir), "raft.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer raftLog.Close()
	master.Version = version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := master.Start(ctx, master.Config{
		Raft: raft.Config{
			ID: *name, DataDir: *dataDir, BindAddr: *raftAddr, AdvertiseAddr: *raftAdvertise,
			LogOutput: raftLog,
			FSM:       fsm.Options{HistorySize: *watchHistory},
		},
		APIAddr:      *apiAddr,
		APIAdvertise: *apiAdvertise,
		ClusterName:  *clusterName,
		Peers:        founders,
		Join:         raftJoin,
		Gossip: gossip.Config{
			Name: *name, BindAddr: *gossipAddr, AdvertiseAddr: *gossipAdvertise, SecretKey: gossipKey,
		},
		GossipJoin:      gossipJoin,
		BootstrapExpect: *bootstrapExpect,
		EvictionTimeout: *evictionTimeout,
		Autopilot:       master.AutopilotConfig{DeadServerCleanup: *deadServerCleanup, MinQuorum: *minQuorum},
		Logger:          logger,
		AllowDrills:     *allowDrills,
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if *leaveOnTerminate {
		logger.Info("leaving the cluster and shutting down")
		return m.Leave(sctx)
	}
	logger.Info("shutting down")
	return m.Shutdown(sctx)
}

func parsePeers(s string) ([]raft.Peer, error) {
	if s == "" {
		return nil, nil
	}
	var out []raft.Peer
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--peers: %q is not id=host:port", part)
		}
		out = append(out, raft.Peer{ID: id, Address: addr, Voter: true})
	}
	return out, nil
}

func mustMkdir(dir string) string {
	_ = os.MkdirAll(dir, 0o700)
	return dir
}

func newLogger(level, role, name string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})
	return slog.New(h).With("role", role, "name", name), nil
}

// readGossipKey reads a base64 gossip encryption key from path.
func readGossipKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading --gossip-key-file: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("--gossip-key-file %s is not base64: %w", path, err)
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("--gossip-key-file %s holds a %d-byte key; use 16, 24 or 32 bytes", path, n)
	}
	return key, nil
}

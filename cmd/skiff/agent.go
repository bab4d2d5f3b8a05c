package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
	"skiff/agent"
	"skiff/agent/testimage"
	"skiff/gossip"
)

func runAgent(args []string) error {
	fs := flag.NewFlagSet("skiff agent", flag.ContinueOnError)
	host, _ := os.Hostname()
	name := fs.String("name", host, "the node's name")
	dataDir := fs.String("data-dir", "/var/lib/skiff-agent", "where logs, pod state and (by default) containerd live")
	join := fs.String("join", "", "gossip addresses (host:port,…) of any members (masters or agents) to join through (required)")
	gossipAddr := fs.String("gossip-addr", "127.0.0.1:7947", "listen address (UDP+TCP) for gossip")
	gossipAdvertise := fs.String("gossip-advertise", "", "gossip address others reach (default: --gossip-addr)")
	gossipKeyFile := fs.String("gossip-key-file", "", "file holding the base64 gossip encryption key (the masters' key)")
	address := fs.String("address", "", "the node's IP as masters and other nodes reach it (default: the gossip address's host)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig with the cluster CA and a token for the API (required)")
	containerdSock := fs.String("containerd", "", "containerd socket to use; empty runs a containerd of its own under the data dir")
	namespace := fs.String("containerd-namespace", "skiff", "containerd namespace for this agent's containers and images")
	labels := fs.String("labels", "", "node labels, as key=value,…")
	taints := fs.String("taints", "", "node taints, as key=value:Effect,…")
	insecure := fs.String("insecure-registries", "", "registry hosts (host:port,…) to pull from over plain HTTP")
	listen := fs.String("listen", "127.0.0.1:10250", "HTTPS address the masters reach for container logs (announced in gossip)")
	preload := fs.Bool("preload-busybox", false, "import the busybox test image (from Debian's busybox-static) at start")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	podCIDR := fs.String("pod-cidr", "", "IPv4 CIDR this node's pods get addresses from (written to Node.spec.podCIDR); default: kept from an earlier run of this data dir, else a free 10.88.X.0/24 with X from a hash of --name")
	cniBinDir := fs.String("cni-bin-dir", strings.Join(agent.DefaultCNIBinDirs, ":"), "where the CNI plugins (bridge, host-local, portmap) are; without them pods get no IP of their own")
	allowDrills := fs.Bool("allow-drills", false, "let 'skiff drill agent-partition' cut this agent off gossip and the masters for a while (through a master); off, it answers 403")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff agent --join ADDR --kubeconfig FILE [flags]

Runs a node agent: joins gossip, finds the masters there, registers its Node, and runs
the pods bound to it through containerd. Containers keep running if the agent stops; a
restarted agent adopts them.

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
	if *join == "" || *kubeconfig == "" {
		return errors.New("--join and --kubeconfig are required")
	}
	logger, err := newLogger(*logLevel, "agent", *name)
	if err != nil {
		return err
	}
	nodeLabels, err := parseLabels(*labels)
	if err != nil {
		return err
	}
	nodeTaints, err := parseTaints(*taints)
	if err != nil {
		return err
	}
	caPEM, token, err := kubeconfigCredentials(*kubeconfig)
	if err != nil {
		return err
	}
	if *address == "" {
		h, _, err := net.SplitHostPort(firstNonEmpty(*gossipAdvertise, *gossipAddr))
		if err != nil {
			return fmt.Errorf("--address: %w", err)
		}
		*address = h
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	socket := *containerdSock
	if socket == "" {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		proc, err := agent.StartContainerd(sctx, filepath.Join(*dataDir, "containerd"))
		cancel()
		if err != nil {
			return err
		}
		socket = proc.Socket
		// Deliberately not stopped on exit: containers and their containerd outlive the
		// agent, and a restarted agent finds it answering.
	}
	rt, err := agent.NewContainerd(socket, *namespace)
	if err != nil {
		return err
	}
	defer rt.Close()
	if exe, err := os.Executable(); err == nil {
		rt.SetLogWriter(exe)
	} else {
		logger.Warn("container logs carry no times: cannot find the skiff binary", "error", err)
	}
	if *preload {
		img, err := testimage.Busybox()
		if err != nil {
			return err
		}
		var archive bytes.Buffer
		if err := img.WriteOCIArchive(&archive); err != nil {
			return err
		}
		if _, err := rt.ImportImages(ctx, &archive); err != nil {
			return err
		}
		logger.Info("imported test image", "image", testimage.BusyboxRef)
	}

	network, err := agent.NewPodNetwork(agent.NetworkConfig{NodeName: *name, DataDir: *dataDir, PodCIDR: *podCIDR,
		BinDirs: filepath.SplitList(*cniBinDir), Logger: logger.With("component", "network")})
	switch {
	case errors.Is(err, agent.ErrNoCNIPlugins):
		logger.Warn("running pods without pod IPs (loopback only)", "error", err)
		network = nil
	case err != nil:
		return fmt.Errorf("pod network: %w", err)
	default:
		logger.Info("pod network ready", "cidr", network.CIDR.String(), "bridge", network.Bridge)
	}

	var key []byte
	if *gossipKeyFile != "" {
		if key, err = readGossipKey(*gossipKeyFile); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer ln.Close()
	apiAddr := ln.Addr().String()
	if h, p, err := net.SplitHostPort(apiAddr); err == nil && net.ParseIP(h).IsUnspecified() {
		apiAddr = net.JoinHostPort(*address, p)
	}
	var gossipFaults *gossip.Faults
	if *allowDrills {
		gossipFaults = gossip.NewFaults()
	}
	pool, err := gossip.Start(gossip.Config{Name: *name, BindAddr: *gossipAddr, AdvertiseAddr: *gossipAdvertise, SecretKey: key,
		Meta: gossip.Meta{Role: gossip.RoleAgent, Name: *name, API: apiAddr, Version: version}, Logger: logger.With("component", "gossip"),
		Faults: gossipFaults})
	if err != nil {
		return err
	}
	defer func() {
		_ = pool.Leave(2 * time.Second)
		_ = pool.Shutdown()
	}()
	for {
		if n, err := pool.Join(strings.Split(*join, ",")); n > 0 {
			break
		} else if ctx.Err() != nil {
			return ctx.Err()
		} else {
			logger.Warn("gossip join failed; retrying", "error", err)
		}
		time.Sleep(2 * time.Second)
	}
	client, err := agent.NewClient(caPEM, token, nil)
	if err != nil {
		return err
	}
	masters := func() {
		var servers []string
		for _, m := range pool.Alive(gossip.RoleMaster) {
			if m.Meta.API != "" {
				servers = append(servers, m.Meta.API)
			}
		}
		client.SetServers(servers)
	}
	masters()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-pool.Changes():
				masters()
			}
		}
	}()
	a := agent.New(agent.Config{Name: *name, DataDir: *dataDir, Address: *address, Labels: nodeLabels, Taints: nodeTaints,
		Runtime: rt, Client: client, Logger: logger, Listener: ln, Token: token, InsecureRegistries: splitList(*insecure),
		AllowDrills: *allowDrills, Gossip: pool, Network: network})
	logger.Info("agent started", "node", *name, "containerd", socket)
	return a.Run(ctx)
}

// runLogWriter is `skiff log-writer`, run by containerd's shim (and by the agent for
// containers with stdin) to write a container's output with a time on every line.
func runLogWriter(args []string) error { return agent.RunLogWriter(args) }

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels: %q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func parseTaints(s string) ([]corev1.Taint, error) {
	var out []corev1.Taint
	if s == "" {
		return nil, nil
	}
	for _, t := range strings.Split(s, ",") {
		kv, effect, ok := strings.Cut(t, ":")
		k, v, _ := strings.Cut(kv, "=")
		switch corev1.TaintEffect(effect) {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			ok = false
		}
		if !ok || k == "" {
			return nil, fmt.Errorf("--taints: %q is not key[=value]:NoSchedule|PreferNoSchedule|NoExecute", t)
		}
		out = append(out, corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)})
	}
	return out, nil
}

// kubeconfigCredentials reads the CA and token of a kubeconfig's first cluster and user.
func kubeconfigCredentials(path string) ([]byte, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading --kubeconfig: %w", err)
	}
	var kc kubeconfigFile
	if err := yaml.Unmarshal(b, &kc); err != nil || len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		return nil, "", fmt.Errorf("%s is not a kubeconfig with a cluster and a user", path)
	}
	ca, err := base64.StdEncoding.DecodeString(kc.Clusters[0].Cluster.CAData)
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig CA: %w", err)
	}
	return ca, kc.Users[0].User.Token, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

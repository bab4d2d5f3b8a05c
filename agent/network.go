package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	cnicurrent "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// ErrNoCNIPlugins is returned by NewPodNetwork when the CNI plugins the agent needs (bridge,
// host-local, portmap) are not installed; the agent then runs pods without pod IPs.
var ErrNoCNIPlugins = errors.New("CNI plugins not found")

// DefaultCNIBinDirs are where Debian's containernetworking-plugins and the upstream
// release tarballs put the plugins.
var DefaultCNIBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// cniIfName is the pod's interface, as the kubelet names it.
const cniIfName = "eth0"

// PodNetwork gives each pod's network namespace an address from the node's pod CIDR: a veth
// into a bridge of this agent's own (the CNI bridge plugin), addresses from host-local IPAM,
// masquerading for traffic leaving the CIDR, and hostPort mappings (portmap). Plugins are
// run through libcni, which keeps each attachment's result under the agent's data dir, so a
// restarted agent re-adopts a pod's address instead of adding it again. Safe for concurrent
// use: every call names one pod, and the plugins lock their own shared state (IPAM's store,
// iptables).
type PodNetwork struct {
	// CIDR is the node's pod CIDR; Bridge the Linux bridge the pods' veths join.
	CIDR   *net.IPNet
	Bridge string

	binDirs []string
	list    *libcni.NetworkConfigList
	dir     string // <data-dir>/cni
	log     *slog.Logger
}

// NetworkConfig says how an agent sets up pod networking.
type NetworkConfig struct {
	NodeName string
	DataDir  string
	// PodCIDR is the operator's choice (--pod-cidr); empty derives one (see resolvePodCIDR).
	PodCIDR string
	BinDirs []string
	Logger  *slog.Logger
}

// NewPodNetwork prepares the node's pod network: it settles the pod CIDR, writes the CNI
// network configuration under the data dir (Teardown reads it back), and brings up the
// bridge with the CIDR's gateway address, which also claims the CIDR on this host before any
// pod needs it. It returns ErrNoCNIPlugins when the plugins are missing.
func NewPodNetwork(cfg NetworkConfig) (*PodNetwork, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.BinDirs) == 0 {
		cfg.BinDirs = DefaultCNIBinDirs
	}
	for _, plugin := range []string{"bridge", "host-local", "portmap"} {
		if findPlugin(cfg.BinDirs, plugin) == "" {
			return nil, fmt.Errorf("%w: no %q in %s (apt-get install containernetworking-plugins)", ErrNoCNIPlugins, plugin, strings.Join(cfg.BinDirs, ":"))
		}
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(dataDir, "cni")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	bridge := bridgeName(cfg.NodeName, dataDir)
	cidr, err := resolvePodCIDR(dir, cfg.NodeName, cfg.PodCIDR, bridge)
	if err != nil {
		return nil, err
	}
	conf, err := networkConfList(cfg.NodeName, bridge, cidr, filepath.Join(dir, "ipam"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "net.conflist"), conf, 0o600); err != nil {
		return nil, err
	}
	list, err := libcni.ConfListFromBytes(conf)
	if err != nil {
		return nil, fmt.Errorf("CNI configuration: %w", err)
	}
	n := &PodNetwork{CIDR: cidr, Bridge: bridge, list: list, dir: dir, log: cfg.Logger, binDirs: cfg.BinDirs}
	if err := n.ensureBridge(); err != nil {
		return nil, err
	}
	return n, nil
}

func findPlugin(dirs []string, name string) string {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// bridgeName is the agent's bridge: "skf-" and a hash of the node name and data dir, so
// several agents on one host (a dev cluster, tests) never share one. At most 15 bytes, the
// kernel's limit for an interface name.
func bridgeName(node, dataDir string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(node + "\x00" + dataDir))
	return fmt.Sprintf("skf-%010x", h.Sum64()&0xffffffffff)
}

// networkConfList is the CNI network configuration of one agent.
func networkConfList(node, bridge string, cidr *net.IPNet, ipamDir string) ([]byte, error) {
	gw := gatewayIP(cidr)
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "skiff-" + strings.TrimPrefix(bridge, "skf-"),
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": cidr.String(), "gateway": gw.String()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": ipamDir,
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// gatewayIP is the CIDR's first address, the bridge's.
func gatewayIP(cidr *net.IPNet) net.IP {
	ip := make(net.IP, len(cidr.IP.To4()))
	copy(ip, cidr.IP.To4())
	ip[len(ip)-1]++
	return ip
}

// cidrLock serialises choosing a pod CIDR among the agents of one host.
const cidrLock = "/run/skiff-pod-cidr.lock"

// resolvePodCIDR settles the node's pod CIDR: the operator's --pod-cidr; else the one this
// data dir already uses (a restarted agent keeps its pods' addresses); else 10.88.X.0/24
// with X from a hash of the node name, moving on to the next X (then to 10.244.X.0/24)
// while the candidate overlaps an address or route already on this host (another agent's
// bridge, another network). The
// choice is written to <dir>/pod-cidr. Choosing happens under a host-wide file lock, and
// the caller claims the CIDR by bringing up its bridge right after.
func resolvePodCIDR(dir, node, flag, bridge string) (*net.IPNet, error) {
	path := filepath.Join(dir, podCIDRFile)
	if flag != "" {
		_, cidr, err := net.ParseCIDR(flag)
		if err != nil || cidr.IP.To4() == nil {
			return nil, fmt.Errorf("--pod-cidr %q is not an IPv4 CIDR", flag)
		}
		if ones, _ := cidr.Mask.Size(); ones > 28 {
			return nil, fmt.Errorf("--pod-cidr %q is too small (at most /28)", flag)
		}
		return cidr, os.WriteFile(path, []byte(cidr.String()+"\n"), 0o600)
	}
	if b, err := os.ReadFile(path); err == nil {
		if _, cidr, err := net.ParseCIDR(strings.TrimSpace(string(b))); err == nil {
			return cidr, nil
		}
	}
	lock, err := os.OpenFile(cidrLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		defer lock.Close()
		_ = unix.Flock(int(lock.Fd()), unix.LOCK_EX)
	}
	used := hostNetworks(bridge)
	h := fnv.New32a()
	_, _ = h.Write([]byte(node))
	start := int(h.Sum32() % 256)
	// 10.88/16 first; 10.244/16 when the host already routes all of it (podman's and
	// containerd's default CNI networks take the whole 10.88/16).
	for i := 0; i < 512; i++ {
		_, cidr, _ := net.ParseCIDR(fmt.Sprintf("10.%d.%d.0/24", []int{88, 244}[i/256], (start+i)%256))
		if overlapsAny(cidr, used) {
			continue
		}
		if err := os.WriteFile(path, []byte(cidr.String()+"\n"), 0o600); err != nil {
			return nil, err
		}
		// Claim it now, under the lock: the bridge's address is what the next agent sees.
		if err := upBridge(bridge, cidr); err != nil {
			return nil, err
		}
		return cidr, nil
	}
	return nil, errors.New("no free /24 in 10.88.0.0/16 or 10.244.0.0/16 for pods on this host; pass --pod-cidr")
}

// hostNetworks lists the IPv4 networks this host already uses: interface addresses (except
// on the agent's own bridge) and route destinations.
func hostNetworks(ownBridge string) []*net.IPNet {
	var out []*net.IPNet
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Name == ownBridge {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				out = append(out, ipn)
			}
		}
	}
	if b, err := exec.Command("ip", "-4", "route", "show", "table", "main").Output(); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] == "default" || (len(f) > 2 && f[1] == "dev" && f[2] == ownBridge) {
				continue
			}
			if _, ipn, err := net.ParseCIDR(f[0]); err == nil {
				out = append(out, ipn)
			} else if ip := net.ParseIP(f[0]); ip != nil && ip.To4() != nil {
				out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)})
			}
		}
	}
	return out
}

func overlapsAny(cidr *net.IPNet, nets []*net.IPNet) bool {
	for _, n := range nets {
		if n.Contains(cidr.IP) || cidr.Contains(n.IP) {
			return true
		}
	}
	return false
}

// ensureBridge brings up the agent's bridge with the gateway address; the bridge plugin
// finds it there. Forwarding must be on for pods to reach beyond their node's bridge.
func (n *PodNetwork) ensureBridge() error {
	if err := upBridge(n.Bridge, n.CIDR); err != nil {
		return err
	}
	if err := masquerade("-A", n.Bridge, n.CIDR.String()); err != nil {
		n.log.Warn("masquerading the pod CIDR failed; pods may not reach beyond this host", "error", err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		n.log.Warn("enabling IPv4 forwarding failed; pods may not reach other nodes", "error", err)
	}
	return nil
}

// masquerade adds (-A, once) or deletes (-D) the node's one rule that masquerades traffic
// from the pod CIDR to anywhere outside it. The bridge plugin's own ipMasq would add a chain
// and rules per pod; iptables serialises every caller on one lock, and that made starting
// 100 pods take twice as long.
func masquerade(op, bridge, cidr string) error {
	rule := []string{"-t", "nat", "POSTROUTING", "-s", cidr, "!", "-d", cidr, "-m", "comment", "--comment", "skiff " + bridge, "-j", "MASQUERADE"}
	run := func(flag string) error {
		args := append([]string{"-w", rule[0], rule[1], flag}, rule[2:]...)
		out, err := exec.Command("iptables", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if op == "-A" && run("-C") == nil {
		return nil // already there (an agent restart)
	}
	return run(op)
}

func upBridge(bridge string, cidr *net.IPNet) error {
	if _, err := net.InterfaceByName(bridge); err != nil {
		if out, err := exec.Command("ip", "link", "add", "name", bridge, "type", "bridge").CombinedOutput(); err != nil {
			return fmt.Errorf("creating bridge %s: %v: %s", bridge, err, strings.TrimSpace(string(out)))
		}
	}
	ones, _ := cidr.Mask.Size()
	addr := fmt.Sprintf("%s/%d", gatewayIP(cidr), ones)
	if out, err := exec.Command("ip", "addr", "replace", addr, "dev", bridge).CombinedOutput(); err != nil {
		return fmt.Errorf("addressing bridge %s: %v: %s", bridge, err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("ip", "link", "set", bridge, "up").CombinedOutput(); err != nil {
		return fmt.Errorf("bringing up bridge %s: %v: %s", bridge, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *PodNetwork) runtimeConf(uid, netnsPath string, pod *corev1.Pod) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: uid, NetNS: netnsPath, IfName: cniIfName}
	if pod == nil {
		return rt
	}
	var mappings []map[string]any
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			proto := strings.ToLower(string(p.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			m := map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": proto}
			if p.HostIP != "" {
				m["hostIP"] = p.HostIP
			}
			mappings = append(mappings, m)
		}
	}
	if len(mappings) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": mappings}
	}
	return rt
}

// Attach gives pod uid's network namespace its interface and returns the pod's IP. A pod
// attached before (by this agent or an earlier run of it) gets its remembered address back
// without running the plugins again, unless its namespace is fresh (the host rebooted and
// took the old one with its interface): then the stale attachment is released first.
func (n *PodNetwork) Attach(ctx context.Context, uid, netnsPath string, pod *corev1.Pod, fresh bool) (string, error) {
	rt := n.runtimeConf(uid, netnsPath, pod)
	cni := n.plugins()
	if res, err := cni.GetNetworkListCachedResult(n.list, rt); err == nil && res != nil {
		ip := resultIP(res)
		if ip != "" && !fresh {
			return ip, nil
		}
		_ = cni.DelNetworkList(ctx, n.list, rt)
	}
	res, err := cni.AddNetworkList(ctx, n.list, rt)
	if err != nil {
		// Release whatever the failed ADD got half-way to (an address, a veth).
		_ = cni.DelNetworkList(context.WithoutCancel(ctx), n.list, rt)
		return "", fmt.Errorf("setting up the pod network: %w", err)
	}
	ip := resultIP(res)
	if ip == "" {
		return "", errors.New("setting up the pod network: the CNI result has no IPv4 address")
	}
	return ip, nil
}

func resultIP(res cnitypes.Result) string {
	r, err := cnicurrent.NewResultFromResult(res)
	if err != nil {
		return ""
	}
	for _, ipc := range r.IPs {
		if ip4 := ipc.Address.IP.To4(); ip4 != nil {
			return ip4.String()
		}
	}
	return ""
}

// Detach removes pod uid's interface and releases its address (CNI DEL). It must run
// before the network namespace is deleted, or the masquerading rules stay behind. A pod
// never attached is a no-op.
func (n *PodNetwork) Detach(ctx context.Context, uid, netnsPath string) error {
	rt := n.runtimeConf(uid, netnsPath, nil)
	if _, err := os.Stat(n.cachePath(uid)); err != nil {
		return nil
	}
	if _, err := os.Stat(netnsPath); err != nil {
		rt.NetNS = "" // gone already: release the address and what lives outside it
	}
	if err := n.plugins().DelNetworkList(ctx, n.list, rt); err != nil {
		return fmt.Errorf("tearing down the pod network: %w", err)
	}
	return nil
}

// plugins returns a CNI invoker for one call. libcni's CNIConfig initialises itself lazily
// and is not safe for concurrent use, and pods are set up in parallel; a fresh one per call
// is cheap (the shared state — IPAM leases, iptables — is locked by the plugins).
func (n *PodNetwork) plugins() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(n.binDirs, filepath.Join(n.dir, "cache"), nil)
}

func (n *PodNetwork) cachePath(uid string) string {
	return filepath.Join(n.dir, "cache", "results", n.list.Name+"-"+uid+"-"+cniIfName)
}

// Attached lists the pod UIDs with an attachment remembered on disk.
func (n *PodNetwork) Attached() []string {
	return cachedAttachments(filepath.Join(n.dir, "cache", "results"), n.list.Name)
}

func cachedAttachments(dir, netName string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netName+"-")
		if !ok {
			continue
		}
		if uid, ok := strings.CutSuffix(rest, "-"+cniIfName); ok {
			out = append(out, uid)
		}
	}
	return out
}

// teardownNetwork releases every attachment an agent's data dir remembers and deletes their
// network namespaces and the agent's bridge. Teardown uses it; a data dir without a CNI
// configuration (no pod network) is a no-op.
func teardownNetwork(ctx context.Context, dataDir string) {
	dir := filepath.Join(dataDir, "cni")
	conf, err := os.ReadFile(filepath.Join(dir, "net.conflist"))
	if err != nil {
		return
	}
	list, err := libcni.ConfListFromBytes(conf)
	if err != nil {
		return
	}
	cni := libcni.NewCNIConfigWithCacheDir(DefaultCNIBinDirs, filepath.Join(dir, "cache"), nil)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, uid := range cachedAttachments(filepath.Join(dir, "cache", "results"), list.Name) {
		wg.Add(1)
		sem <- struct{}{}
		go func(uid string) {
			defer func() { <-sem; wg.Done() }()
			ns := "/var/run/netns/" + netnsName(uid)
			rt := &libcni.RuntimeConf{ContainerID: uid, NetNS: ns, IfName: cniIfName}
			if _, err := os.Stat(ns); err != nil {
				rt.NetNS = ""
			}
			_ = cni.DelNetworkList(ctx, list, rt)
			_ = exec.Command("ip", "netns", "delete", netnsName(uid)).Run()
		}(uid)
	}
	wg.Wait()
	for _, p := range list.Plugins {
		if p.Network.Type != "bridge" {
			continue
		}
		var b struct {
			Bridge string `json:"bridge"`
		}
		if json.Unmarshal(p.Bytes, &b) == nil && strings.HasPrefix(b.Bridge, "skf-") {
			if cidr, err := os.ReadFile(filepath.Join(dir, podCIDRFile)); err == nil {
				_ = masquerade("-D", b.Bridge, strings.TrimSpace(string(cidr)))
			}
			_ = exec.Command("ip", "link", "delete", b.Bridge).Run()
		}
	}
}

// podCIDRFile, under <data-dir>/cni, remembers the node's pod CIDR across restarts.
const podCIDRFile = "pod-cidr"

package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Network namespaces for fault tests.
//
// An isolated cluster puts every master and agent in a network namespace of its own,
// attached by a veth pair to a Linux bridge in the root namespace that only this cluster
// uses. The bridge carries an address, so the test process reaches every node directly
// (it is the nodes' gateway). Faults are then real: nftables rules inside one node's
// namespace drop its traffic to and from chosen peers (the bridge address is never
// dropped, so the test keeps observing a partitioned node), or the node's link goes down.
//
// Names carry a random ID, so clusters of tests in different packages running at once do
// not collide; every interface, namespace and rule is removed in t.Cleanup, failed test or
// not. A test binary that dies without cleaning up (a -timeout panic) leaves them behind:
// the next Network sweeps namespaces and bridges whose owning process is gone (see
// sweepStale).

// netRunDir records which process owns which network, for sweepStale.
const netRunDir = "/run/skiff-test-net"

// Network is one cluster's bridge and the hosts attached to it. Its methods are safe for
// concurrent use.
type Network struct {
	t      testing.TB
	ID     string // random, 6 hex digits
	Bridge string // bridge interface in the root namespace
	Subnet string // 10.a.b (a /24)
	// Gateway is the bridge's address: where the test process's traffic to the nodes
	// comes from. Partitions never drop it.
	Gateway string

	mu    sync.Mutex
	hosts []*Host
	next  int // last octet handed out
	probe *net.TCPListener
}

// Host is one network namespace on a Network, holding one master or agent.
type Host struct {
	net  *Network
	Name string // the node's name (m1, n1, …)
	NS   string // network namespace name (ip netns)
	IP   string
	veth string // root-side end of the veth pair
}

// RequireFaultTools fails t, with what is missing, unless this process can build
// networks: root, and the ip (iproute2), nft (nftables), nsenter (util-linux) and mount
// commands. CI installs them and runs as root; the fault tests never skip.
func RequireFaultTools(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, fmt.Sprintf("root (running as uid %d)", os.Geteuid()))
	}
	for _, tool := range []string{"ip", "nft", "nsenter", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" (not in PATH)")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the fault harness needs root and iproute2, nftables, util-linux (it must not be skipped in CI); missing: %s",
			strings.Join(missing, ", "))
	}
}

// run runs a command and returns its combined output as the error on failure.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// runStdin is run with stdin.
func runStdin(stdin, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s\ninput:\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)), stdin)
	}
	return nil
}

// NewNetwork creates a bridge on a free 10.x.y.0/24 subnet and removes it, and every host
// added later, in t.Cleanup.
func NewNetwork(t testing.TB) *Network {
	t.Helper()
	RequireFaultTools(t)
	sweepStale(t)
	idb := make([]byte, 3)
	_, _ = rand.Read(idb)
	n := &Network{t: t, ID: hex.EncodeToString(idb), next: 9}
	n.Bridge = "sfb" + n.ID

	// Choosing a subnet and taking it must be one step across test processes.
	unlock := lockNet(t)
	subnet, err := freeSubnet()
	if err != nil {
		unlock()
		t.Fatal(err)
	}
	n.Subnet, n.Gateway = subnet, subnet+".1"
	err = run("ip", "link", "add", n.Bridge, "type", "bridge")
	if err == nil {
		t.Cleanup(n.teardown)
		_ = os.MkdirAll(netRunDir, 0o755)
		_ = os.WriteFile(filepath.Join(netRunDir, n.ID), []byte(strconv.Itoa(os.Getpid())), 0o644)
		err = run("ip", "addr", "add", n.Gateway+"/24", "dev", n.Bridge)
	}
	unlock()
	if err == nil {
		err = run("ip", "link", "set", n.Bridge, "up")
	}
	if err != nil {
		t.Fatalf("creating the test bridge: %v", err)
	}
	return n
}

// lockNet takes an exclusive lock shared by every test process on the machine.
func lockNet(t testing.TB) func() {
	_ = os.MkdirAll(netRunDir, 0o755)
	f, err := os.OpenFile(filepath.Join(netRunDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// freeSubnet picks a random 10.a.b.0/24 that no interface of the root namespace is on.
func freeSubnet() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	b := make([]byte, 2)
	for try := 0; try < 100; try++ {
		_, _ = rand.Read(b)
		subnet := fmt.Sprintf("10.%d.%d", 200+int(b[0])%50, b[1])
		_, cidr, _ := net.ParseCIDR(subnet + ".0/24")
		used := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (cidr.Contains(ipn.IP) || ipn.Contains(cidr.IP)) {
				used = true
			}
		}
		if !used {
			return subnet, nil
		}
	}
	return "", errors.New("no free 10.x.y.0/24 subnet for the test bridge")
}

// sweepStale removes the namespaces, bridges and tmpfs mounts of networks whose owning
// test process no longer runs.
func sweepStale(t testing.TB) {
	entries, _ := os.ReadDir(netRunDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(netRunDir, e.Name()))
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid > 0 && syscall.Kill(pid, 0) == nil {
			continue
		}
		id := e.Name()
		nss, _ := os.ReadDir("/run/netns")
		for _, ns := range nss {
			if strings.HasPrefix(ns.Name(), "sf-"+id+"-") {
				killNetnsProcs(ns.Name())
				_ = run("ip", "netns", "delete", ns.Name())
			}
		}
		_ = run("ip", "link", "delete", "sfb"+id)
		_ = os.Remove(filepath.Join(netRunDir, id))
		t.Logf("swept the test network %s left by process %d", id, pid)
	}
}

// killNetnsProcs SIGKILLs every process in the named namespace (left behind by a dead
// test process).
func killNetnsProcs(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// AddHost creates a namespace for the node name, connects it to the bridge and returns it.
func (n *Network) AddHost(name string) *Host {
	n.t.Helper()
	n.mu.Lock()
	n.next++
	if n.next > 250 {
		n.mu.Unlock()
		n.t.Fatal("test network full")
	}
	idx := n.next
	h := &Host{net: n, Name: name, NS: fmt.Sprintf("sf-%s-%s", n.ID, name), IP: fmt.Sprintf("%s.%d", n.Subnet, idx),
		veth: fmt.Sprintf("sf%s%02x", n.ID, idx)}
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	steps := [][]string{
		{"netns", "add", h.NS},
		{"link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
		{"link", "set", h.veth, "master", n.Bridge, "up"},
		{"-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"-n", h.NS, "link", "set", "eth0", "up"},
		{"-n", h.NS, "link", "set", "lo", "up"},
		{"-n", h.NS, "route", "add", "default", "via", n.Gateway},
	}
	for _, s := range steps {
		if err := run("ip", s...); err != nil {
			n.t.Fatalf("adding host %s to the test network: %v", name, err)
		}
	}
	n.checkReach(h)
	return h
}

// checkReach proves that h reaches the first host across the bridge, so a test whose
// nodes cannot talk fails here with the likely cause rather than later with a cluster
// that never forms.
func (n *Network) checkReach(h *Host) {
	n.mu.Lock()
	first := n.hosts[0]
	n.mu.Unlock()
	if first == h {
		var ln net.Listener
		if err := inNetns(h.NS, func() (err error) { ln, err = net.Listen("tcp", h.IP+":1"); return err }); err != nil {
			n.t.Fatalf("listening in %s: %v", h.NS, err)
		}
		n.mu.Lock()
		n.probe = ln.(*net.TCPListener)
		n.mu.Unlock()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return
	}
	var err error
	for try := 0; try < 50; try++ { // the bridge port may take a moment to forward
		err = inNetns(h.NS, func() error {
			c, err := net.DialTimeout("tcp", first.IP+":1", time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatalf("host %s (%s) cannot reach host %s (%s) across bridge %s: %v; is bridged traffic filtered "+
		"(br_netfilter with an iptables/nftables forward policy of drop)?", h.Name, h.IP, first.Name, first.IP, n.Bridge, err)
}

// inNetns runs fn on an OS thread switched into the named network namespace. Sockets fn
// opens stay in that namespace. The thread is discarded if it cannot switch back.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: the goroutine ends locked and Go retires the thread
		errc <- err
	}()
	return <-errc
}

// teardown deletes every namespace (killing what still runs in it) and the bridge.
func (n *Network) teardown() {
	n.mu.Lock()
	hosts := slices.Clone(n.hosts)
	if n.probe != nil {
		n.probe.Close()
	}
	n.mu.Unlock()
	for _, h := range hosts {
		killNetnsProcs(h.NS)
		if err := run("ip", "netns", "delete", h.NS); err != nil {
			n.t.Logf("cleanup: %v", err)
		}
	}
	if err := run("ip", "link", "delete", n.Bridge); err != nil {
		n.t.Logf("cleanup: %v", err)
	}
	_ = os.Remove(filepath.Join(netRunDir, n.ID))
}

// Command returns a command that runs bin with args inside h's network namespace (only
// the network namespace: the file system and mounts are the host's). nsenter execs bin,
// so the process's PID is bin's and signals reach it directly.
func (h *Host) Command(bin string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + h.NS, "--", bin}, args...)...)
}

// Addr is host:port on h.
func (h *Host) Addr(port int) string { return net.JoinHostPort(h.IP, strconv.Itoa(port)) }

// Hosts returns every host on the network.
func (n *Network) Hosts() []*Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.hosts)
}

// Block makes h drop every packet to and from the given hosts (replacing what h blocked
// before); none heals it. The test process (the gateway) always gets through.
func (n *Network) Block(h *Host, peers []*Host) {
	n.t.Helper()
	var ips []string
	for _, p := range peers {
		if p != h {
			ips = append(ips, p.IP)
		}
	}
	rules := "add table inet skiff_fault\ndelete table inet skiff_fault\n"
	if len(ips) > 0 {
		set := strings.Join(ips, ", ")
		rules += fmt.Sprintf(`table inet skiff_fault {
	chain input {
		type filter hook input priority -10; policy accept;
		ip saddr { %[1]s } drop
	}
	chain output {
		type filter hook output priority -10; policy accept;
		ip daddr { %[1]s } drop
	}
}
`, set)
	}
	if err := runStdin(rules, "ip", "netns", "exec", h.NS, "nft", "-f", "-"); err != nil {
		n.t.Fatalf("blocking traffic of %s: %v", h.Name, err)
	}
}

// Split partitions the network into the given groups: a host only reaches hosts of its
// own group. Hosts in no group reach (and are reached by) everyone.
func (n *Network) Split(groups ...[]*Host) {
	n.t.Helper()
	for gi, g := range groups {
		var others []*Host
		for gj, o := range groups {
			if gj != gi {
				others = append(others, o...)
			}
		}
		for _, h := range g {
			n.Block(h, others)
		}
	}
}

// Isolate cuts h off from every other host.
func (n *Network) Isolate(h *Host) {
	n.Block(h, n.Hosts())
}

// Heal removes every block on every host.
func (n *Network) Heal() {
	n.t.Helper()
	for _, h := range n.Hosts() {
		n.Block(h, nil)
	}
}

// LinkDown takes h's interface down: h reaches nothing, and nothing (not even the test
// process) reaches h, until LinkUp.
func (h *Host) LinkDown() {
	if err := run("ip", "-n", h.NS, "link", "set", "eth0", "down"); err != nil {
		h.net.t.Fatal(err)
	}
}

// LinkUp brings h's interface back, with its address and default route.
func (h *Host) LinkUp() {
	if err := run("ip", "-n", h.NS, "link", "set", "eth0", "up"); err != nil {
		h.net.t.Fatal(err)
	}
	// Taking a link down drops its routes besides the connected one.
	_ = run("ip", "-n", h.NS, "route", "replace", "default", "via", h.net.Gateway)
}

package agent

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestBridgeNameFitsAndDiffersPerAgent(t *testing.T) {
	a, b, c := bridgeName("n1", "/var/lib/a"), bridgeName("n1", "/var/lib/b"), bridgeName("n1", "/var/lib/a")
	if len(a) > 15 || a[:4] != "skf-" || a == b || a != c {
		t.Fatalf("bridge names %q %q %q", a, b, c)
	}
}

func TestResolvePodCIDRKeepsTheOperatorsAndTheRemembered(t *testing.T) {
	dir := t.TempDir()
	cidr, err := resolvePodCIDR(dir, "n1", "10.244.7.0/24", "skf-test")
	if err != nil || cidr.String() != "10.244.7.0/24" {
		t.Fatalf("--pod-cidr: %v %v", cidr, err)
	}
	// Without the flag, the data dir's remembered CIDR wins (no bridge is touched).
	cidr, err = resolvePodCIDR(dir, "n1", "", "skf-test")
	if err != nil || cidr.String() != "10.244.7.0/24" {
		t.Fatalf("remembered: %v %v", cidr, err)
	}
	for _, bad := range []string{"10.0.0.1", "fd00::/64", "10.0.0.0/30"} {
		if _, err := resolvePodCIDR(t.TempDir(), "n1", bad, "skf-test"); err == nil {
			t.Fatalf("--pod-cidr %q accepted", bad)
		}
	}
}

func TestNetworkConfListIsValidCNI(t *testing.T) {
	_, cidr, _ := net.ParseCIDR("10.88.5.0/24")
	b, err := networkConfList("n1", "skf-0123456789", cidr, "/data/cni/ipam")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct {
			Type string `json:"type"`
			IPAM struct {
				Ranges [][]struct{ Subnet, Gateway string }
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil || len(conf.Plugins) != 2 || conf.Plugins[0].Type != "bridge" || conf.Plugins[1].Type != "portmap" {
		t.Fatalf("conflist %s: %v", b, err)
	}
	if r := conf.Plugins[0].IPAM.Ranges; len(r) != 1 || r[0][0].Subnet != "10.88.5.0/24" || r[0][0].Gateway != "10.88.5.1" {
		t.Fatalf("IPAM ranges %+v", r)
	}
}

func TestCachedAttachmentsParsesLibcniCacheNames(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"skiff-abc-uid-1-eth0", "skiff-abc-uid-2-eth0", "other-uid-3-eth0", "skiff-abc-uid-4-eth1"} {
		_ = os.WriteFile(filepath.Join(dir, f), nil, 0o600)
	}
	got := cachedAttachments(dir, "skiff-abc")
	if len(got) != 2 || got[0] != "uid-1" || got[1] != "uid-2" {
		t.Fatalf("attachments %v", got)
	}
}

func TestDesiredRoutesSkipSelfLocalAndOverlapping(t *testing.T) {
	node := func(name, cidr, ip string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: cidr}}
		if ip != "" {
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
		}
		return n
	}
	_, own, _ := net.ParseCIDR("10.88.1.0/24")
	nodes := map[string]*corev1.Node{
		"self":    node("self", "10.88.1.0/24", "192.0.2.10"),
		"remote":  node("remote", "10.88.2.0/24", "192.0.2.11"),
		"local":   node("local", "10.88.3.0/24", "192.0.2.10"), // same host
		"nocidr":  node("nocidr", "", "192.0.2.12"),
		"noaddr":  node("noaddr", "10.88.4.0/24", ""),
		"overlap": node("overlap", "10.88.0.0/16", "192.0.2.13"),
		"bad":     node("bad", "nonsense", "192.0.2.14"),
	}
	local := func(ip net.IP) bool { return ip.Equal(net.ParseIP("192.0.2.10")) }
	got := desiredRoutes("self", own, nodes, local)
	if len(got) != 1 || got["10.88.2.0/24"] != "192.0.2.11" {
		t.Fatalf("routes %v", got)
	}
}

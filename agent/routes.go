package agent

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// routeNodes keeps a route to every other node's pod CIDR through that node's address, so
// pods reach pods on other hosts: the flat network Kubernetes assumes, without an overlay.
// Nodes whose address is on this host need none (their bridges are local). It follows the
// Nodes with list and watch until ctx ends; routes it added for nodes that left are removed,
// also after a restart (they are remembered in <data-dir>/cni/routes.json).
func (a *Agent) routeNodes(ctx context.Context) {
	state := filepath.Join(a.cfg.DataDir, "cni", "routes.json")
	added := map[string]string{}
	if b, err := os.ReadFile(state); err == nil {
		_ = json.Unmarshal(b, &added)
	}
	apply := func(nodes map[string]*corev1.Node) {
		want := desiredRoutes(a.cfg.Name, a.cfg.Network.CIDR, nodes, isLocalIP)
		changed := false
		for cidr, via := range want {
			if added[cidr] == via {
				continue
			}
			if out, err := exec.Command("ip", "route", "replace", cidr, "via", via).CombinedOutput(); err != nil {
				a.log.Warn("adding a route to another node's pods failed", "cidr", cidr, "via", via, "error", err, "output", strings.TrimSpace(string(out)))
				continue
			}
			a.log.Info("route to another node's pods", "cidr", cidr, "via", via)
			added[cidr], changed = via, true
		}
		for cidr, via := range added {
			if want[cidr] == "" {
				_ = exec.Command("ip", "route", "del", cidr, "via", via).Run()
				delete(added, cidr)
				changed = true
			}
		}
		if changed {
			b, _ := json.Marshal(added)
			_ = os.WriteFile(state, b, 0o600)
		}
	}
	for ctx.Err() == nil {
		items, rv, err := a.cfg.Client.ListNodes(ctx)
		if err != nil {
			sleepCtx(ctx, 2*time.Second)
			continue
		}
		nodes := map[string]*corev1.Node{}
		for i := range items {
			nodes[items[i].Name] = &items[i]
		}
		apply(nodes)
		for ctx.Err() == nil {
			err = a.cfg.Client.WatchNodes(ctx, rv, func(typ string, n *corev1.Node) error {
				rv = n.ResourceVersion
				switch typ {
				case "BOOKMARK":
					return nil
				case "DELETED":
					delete(nodes, n.Name)
				default:
					nodes[n.Name] = n
				}
				apply(nodes)
				return nil
			})
			if IsGone(err) {
				break
			}
			sleepCtx(ctx, time.Second)
		}
	}
}

// desiredRoutes maps each other node's pod CIDR to the node's internal IP, leaving out this
// node, nodes without a CIDR or address, nodes whose address is on this host, and CIDRs
// overlapping this node's own.
func desiredRoutes(self string, own *net.IPNet, nodes map[string]*corev1.Node, local func(net.IP) bool) map[string]string {
	out := map[string]string{}
	for name, n := range nodes {
		if name == self || n.Spec.PodCIDR == "" {
			continue
		}
		_, cidr, err := net.ParseCIDR(n.Spec.PodCIDR)
		if err != nil || cidr.IP.To4() == nil || (own != nil && (own.Contains(cidr.IP) || cidr.Contains(own.IP))) {
			continue
		}
		var via net.IP
		for _, addr := range n.Status.Addresses {
			if addr.Type == corev1.NodeInternalIP {
				via = net.ParseIP(addr.Address)
				break
			}
		}
		if via == nil || via.To4() == nil || local(via) {
			continue
		}
		out[cidr.String()] = via.String()
	}
	return out
}

// isLocalIP reports whether ip is a loopback address or one of this host's.
func isLocalIP(ip net.IP) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
			return true
		}
	}
	return false
}

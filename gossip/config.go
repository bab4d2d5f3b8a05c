package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Timing defaults, tuned for masters and agents on one LAN (round trips well under 1 ms).
//
// How long memberlist takes to declare a silent member dead:
//
//  1. Someone probes it. Every member probes one peer per ProbeInterval, walking a
//     shuffled list, so across the cluster a given member is probed about once per
//     ProbeInterval (with two members: exactly every ProbeInterval).
//  2. The probe fails. A direct UDP ping waits ProbeTimeout; then IndirectChecks (3) peers
//     ping it on our behalf and a TCP ping is tried, all until the end of that
//     ProbeInterval. Then the member is suspect and a suspect message is gossiped.
//  3. The suspicion timeout runs out. Its floor is
//     SuspicionMult × ProbeInterval × max(1, log10(members)) = 3 × 500 ms = 1.5 s for fewer
//     than ten members. It starts at SuspicionMaxTimeoutMult (2) × that floor = 3 s and drops
//     to the floor as other members independently confirm the suspicion, which on a LAN
//     they do within a probe round or two. The window is what lets a live member that was
//     merely slow refute the suspicion (it gossips an alive message with a higher
//     incarnation) before anyone acts on it.
//  4. The dead message spreads: GossipInterval (100 ms) × a couple of hops.
//
// Typical total: ~0.25 + 0.5 + 1.5 + 0.2 ≈ 2.5 s; without confirmations (e.g. only two
// live members left that disagree) up to about 4 s. ProbeTimeout 200 ms is still ~1000× a
// LAN round trip, so a busy but healthy member (GC pause, loaded host) is not suspected;
// memberlist's awareness also stretches the probe interval of a member that itself
// notices it is falling behind. memberlist's DefaultLANConfig (1 s probes, SuspicionMult
// 4, max multiplier 6) takes 5-6 s and up to ~25 s, too slow for rescheduling pods.
//
// Full state push/pull every 15 s repairs whatever gossip missed.
const (
	DefaultProbeInterval  = 500 * time.Millisecond
	DefaultProbeTimeout   = 200 * time.Millisecond
	DefaultGossipInterval = 100 * time.Millisecond
	DefaultSuspicionMult  = 3

	suspicionMaxTimeoutMult = 2
	pushPullInterval        = 15 * time.Second
	tcpTimeout              = 5 * time.Second
	// deadRetention is how long dead and left members stay listed (memberlist's
	// GossipToTheDeadTime: it keeps gossiping to them, then reaps them).
	deadRetention = 30 * time.Second
	// defaultLeaveTimeout bounds Leave when it is given no timeout.
	defaultLeaveTimeout = 5 * time.Second
)

// Config configures one member. Name is required.
type Config struct {
	// Name is the member's unique name in the cluster.
	Name string
	// BindAddr is the host:port to listen on for UDP and TCP; port 0 picks a free one.
	// The host must be an IP literal; an empty host means 0.0.0.0. Ignored when Transport
	// is set.
	BindAddr string
	// AdvertiseAddr is the host:port other members reach this one on. Default: the bound
	// address, which is an error when BindAddr's IP is unspecified (0.0.0.0 or ::): say
	// which interface to advertise rather than have one guessed. Port 0 means the bound
	// port.
	AdvertiseAddr string
	// Meta is what this member announces; Meta.Name defaults to Name.
	Meta Meta
	// SecretKey, when set, is a 16, 24 or 32 byte AES key: every gossip packet and stream
	// is encrypted and authenticated with it, and members without the same key can neither
	// join nor be heard.
	SecretKey []byte

	// Timing; zero means the default (see DefaultProbeInterval and the reasoning above it).
	// ProbeTimeout must be shorter than ProbeInterval.
	ProbeInterval  time.Duration // default 500 ms
	ProbeTimeout   time.Duration // default 200 ms
	GossipInterval time.Duration // default 100 ms
	SuspicionMult  int           // default 3

	// Logger receives memberlist's log lines at matching levels; nil discards them.
	Logger *slog.Logger

	// Transport, when set, replaces the network (tests use memberlist.MockNetwork's
	// transports). BindAddr is then ignored.
	Transport memberlist.NodeAwareTransport

	// Faults, when set, lets drills cut this member off the network (Pool.Isolate) and
	// reconnect it; nil costs nothing.
	Faults *Faults
}

func (c *Config) applyDefaults() {
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.GossipInterval == 0 {
		c.GossipInterval = DefaultGossipInterval
	}
	if c.SuspicionMult == 0 {
		c.SuspicionMult = DefaultSuspicionMult
	}
	if c.Meta.Name == "" {
		c.Meta.Name = c.Name
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	if c.Name == "" {
		return errors.New("gossip: Config.Name is required")
	}
	if c.ProbeInterval < 0 || c.ProbeTimeout < 0 || c.GossipInterval < 0 || c.SuspicionMult < 0 {
		return errors.New("gossip: negative timing in Config")
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return fmt.Errorf("gossip: ProbeTimeout (%s) must be shorter than ProbeInterval (%s)",
			c.ProbeTimeout, c.ProbeInterval)
	}
	if len(c.SecretKey) > 0 {
		if err := memberlist.ValidateKey(c.SecretKey); err != nil {
			return fmt.Errorf("gossip: SecretKey: %w", err)
		}
	}
	return nil
}

// memberlistConfig translates the (defaulted, validated) Config.
func (c *Config) memberlistConfig(p *Pool) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.Name
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.GossipInterval = c.GossipInterval
	mc.SuspicionMult = c.SuspicionMult
	mc.SuspicionMaxTimeoutMult = suspicionMaxTimeoutMult
	mc.PushPullInterval = pushPullInterval
	mc.TCPTimeout = tcpTimeout
	mc.GossipToTheDeadTime = deadRetention
	// A member that died and restarts on another address may reclaim its name as soon as
	// its old record is dead (by default memberlist refuses forever). See reannouncer.
	mc.DeadNodeReclaimTime = time.Nanosecond
	if len(c.SecretKey) > 0 {
		mc.SecretKey = append([]byte(nil), c.SecretKey...)
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	mc.Delegate = (*metaDelegate)(p)
	mc.Events = (*eventDelegate)(p)
	mc.Merge = (*mergeDelegate)(p)
	mc.Conflict = (*conflictDelegate)(p)
	mc.LogOutput = nil
	mc.Logger = p.mlLogger
	return mc
}

// setupTransport fills mc's transport and addresses. It returns the network transport it
// created (nil when Config.Transport is used) so a failed Start can close it.
func (c *Config) setupTransport(mc *memberlist.Config) (*memberlist.NetTransport, error) {
	var advIP net.IP
	advPort := 0
	if c.AdvertiseAddr != "" {
		ip, port, err := splitIPPort(c.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("gossip: AdvertiseAddr: %w", err)
		}
		if ip.IsUnspecified() {
			return nil, fmt.Errorf("gossip: AdvertiseAddr %q: unspecified IP", c.AdvertiseAddr)
		}
		advIP, advPort = ip, port
	}

	if c.Transport != nil {
		mc.Transport = c.Faults.wrap(c.Transport)
		if advIP != nil {
			mc.AdvertiseAddr, mc.AdvertisePort = advIP.String(), advPort
		}
		return nil, nil
	}

	bindIP, bindPort, err := splitIPPort(c.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip: BindAddr: %w", err)
	}
	if advIP == nil && bindIP.IsUnspecified() {
		return nil, fmt.Errorf("gossip: BindAddr %q has no specific IP: set AdvertiseAddr", c.BindAddr)
	}
	ntc := &memberlist.NetTransportConfig{
		BindAddrs: []string{bindIP.String()},
		BindPort:  bindPort,
		Logger:    mc.Logger,
	}
	// With port 0 the kernel picks a TCP port that may be taken for UDP; retry a few
	// times as memberlist itself does.
	tries := 1
	if bindPort == 0 {
		tries = 10
	}
	var nt *memberlist.NetTransport
	for range tries {
		nt, err = memberlist.NewNetTransport(ntc)
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("gossip: listen on %s: %w", c.BindAddr, err)
	}
	port := nt.GetAutoBindPort()
	if advIP == nil {
		advIP = bindIP
	}
	if advPort == 0 {
		advPort = port
	}
	mc.Transport = c.Faults.wrap(nt)
	mc.BindAddr, mc.BindPort = bindIP.String(), port
	mc.AdvertiseAddr, mc.AdvertisePort = advIP.String(), advPort
	return nt, nil
}

// splitIPPort parses "ip:port" ("" or ":port" host means the unspecified IPv4 address).
func splitIPPort(s string) (net.IP, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return nil, 0, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("bad port in %q", s)
	}
	if host == "" {
		return net.IPv4zero, int(port), nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, fmt.Errorf("host in %q must be an IP address", s)
	}
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
	}
	return ip, int(port), nil
}

package gossip

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrIsolated is returned by dials of a member cut off by Faults.
var ErrIsolated = errors.New("gossip: member isolated by fault injection")

// ErrNoFaults is returned by Isolate and Reconnect on a pool started without Config.Faults.
var ErrNoFaults = errors.New("gossip: the pool was started without a fault injector (Config.Faults)")

// Faults cuts one member off the gossip network without stopping it: while isolated,
// every packet it sends or receives is dropped and every stream is refused, which is what
// a network partition looks like to memberlist (the others declare it dead, it declares
// them dead). Drills use it through Pool.Isolate and Pool.Reconnect. The zero value is not
// usable; call NewFaults. Its methods are safe for concurrent use.
type Faults struct {
	isolated atomic.Bool

	mu sync.Mutex
	// known holds the gossip addresses of the members seen at Isolate, for Reconnect.
	known []string
}

// NewFaults returns a Faults that lets everything through.
func NewFaults() *Faults { return &Faults{} }

// Isolated reports whether the member is cut off right now.
func (f *Faults) Isolated() bool { return f != nil && f.isolated.Load() }

// wrap puts inner behind the fault switch. A nil Faults returns inner unchanged, so pools
// without fault injection pay nothing.
func (f *Faults) wrap(inner memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	if f == nil {
		return inner
	}
	t := &faultTransport{
		NodeAwareTransport: inner,
		faults:             f,
		packetCh:           make(chan *memberlist.Packet),
		streamCh:           make(chan net.Conn),
		stop:               make(chan struct{}),
	}
	go t.pump()
	return t
}

// faultTransport forwards to the real transport while the member is connected and drops
// everything while it is isolated. Incoming packets and streams pass through its own
// channels so that it can drop them too.
type faultTransport struct {
	memberlist.NodeAwareTransport
	faults   *Faults
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	stop     chan struct{}
	stopOnce sync.Once
}

// pump moves incoming packets and streams from the real transport to memberlist, dropping
// them (closing streams) while isolated. It ends at Shutdown.
func (t *faultTransport) pump() {
	in, streams := t.NodeAwareTransport.PacketCh(), t.NodeAwareTransport.StreamCh()
	for {
		select {
		case p := <-in:
			if t.faults.Isolated() {
				continue
			}
			select {
			case t.packetCh <- p:
			case <-t.stop:
				return
			}
		case c := <-streams:
			if t.faults.Isolated() {
				_ = c.Close()
				continue
			}
			select {
			case t.streamCh <- c:
			case <-t.stop:
				_ = c.Close()
				return
			}
		case <-t.stop:
			return
		}
	}
}

func (t *faultTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }
func (t *faultTransport) StreamCh() <-chan net.Conn           { return t.streamCh }

// WriteTo and WriteToAddress drop the packet silently while isolated, as a lossy network
// does: memberlist sees no error, only silence.
func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.faults.Isolated() {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *faultTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	if t.faults.Isolated() {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteToAddress(b, addr)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.faults.Isolated() {
		return nil, ErrIsolated
	}
	return t.NodeAwareTransport.DialTimeout(addr, timeout)
}

func (t *faultTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.faults.Isolated() {
		return nil, ErrIsolated
	}
	return t.NodeAwareTransport.DialAddressTimeout(addr, timeout)
}

func (t *faultTransport) Shutdown() error {
	t.stopOnce.Do(func() { close(t.stop) })
	return t.NodeAwareTransport.Shutdown()
}

// Isolate cuts this member off the gossip network until Reconnect: the others will
// declare it dead after the usual probe and suspicion timeouts, and it them. It remembers
// the members it knew, so Reconnect can find them again. It fails with ErrNoFaults unless
// the pool was started with Config.Faults.
func (p *Pool) Isolate() error {
	f := p.cfg.Faults
	if f == nil {
		return ErrNoFaults
	}
	if p.shutdown.Load() {
		return ErrShutdown
	}
	f.mu.Lock()
	for _, m := range p.Members() {
		if m.Name != p.cfg.Name && m.State != StateLeft && m.Addr != "" {
			f.known = appendUnique(f.known, m.Addr)
		}
	}
	f.mu.Unlock()
	f.isolated.Store(true)
	p.log.Warn("gossip: isolated from every member by fault injection")
	return nil
}

// Reconnect ends an isolation and joins the members this one knew before it, so both
// sides refute the deaths they declared at once instead of waiting for a periodic
// push/pull. It returns how many members answered; an error says none did (the caller may
// retry, and memberlist's own gossip to recently dead members keeps trying too).
func (p *Pool) Reconnect() (int, error) {
	f := p.cfg.Faults
	if f == nil {
		return 0, ErrNoFaults
	}
	f.isolated.Store(false)
	f.mu.Lock()
	addrs := append([]string(nil), f.known...)
	f.known = nil
	f.mu.Unlock()
	for _, m := range p.Members() {
		if m.Name != p.cfg.Name && m.Addr != "" {
			addrs = appendUnique(addrs, m.Addr)
		}
	}
	p.log.Info("gossip: isolation ended; rejoining", "members", len(addrs))
	if len(addrs) == 0 {
		return 0, nil
	}
	return p.Join(addrs)
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// Isolated reports whether this member is cut off by Isolate right now.
func (p *Pool) Isolated() bool { return p.cfg.Faults.Isolated() }

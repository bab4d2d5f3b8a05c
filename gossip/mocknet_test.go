package gossip

import (
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// mockNet wires Pools together in memory over memberlist's MockNetwork, with two fixes
// the raw MockTransport needs for these tests:
//
//   - MockTransport delivers on unbuffered channels, and memberlist answers a ping from
//     its packet-reading goroutine, so two members pinging each other at the same moment
//     can block each other forever. Here each transport has a pump goroutine that always
//     takes delivery and queues (or drops, like UDP, when full) for the member.
//   - After a memberlist shuts down nobody reads its channels, so every peer sending to it
//     would block forever and never declare it dead. The pump keeps draining: packets to
//     a stopped member are dropped and streams to it are closed, which is what a dead
//     host looks like to memberlist.
//
// MockNetwork's address maps are not synchronized, so every transport is created up
// front, before any Pool starts. A member that "comes back" is a new Pool attached to the
// same transport (like a restarted process on its old port) or to a spare one (a new
// port): transports are only addresses here, their names matter only to the test.
type mockNet struct {
	net   *memberlist.MockNetwork
	slots map[string]*mockSlot
}

type mockSlot struct {
	mt  *memberlist.MockTransport
	mu  sync.Mutex
	cur *mockAttach // the running member's transport; nil when none runs
}

// mockAttach is the transport one Pool uses. Writes and dials go through the embedded
// MockTransport; reads come from the slot's pump.
type mockAttach struct {
	*memberlist.MockTransport
	slot     *mockSlot
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
}

func newMockNet(names ...string) *mockNet {
	n := &mockNet{net: &memberlist.MockNetwork{}, slots: make(map[string]*mockSlot)}
	for _, name := range names {
		s := &mockSlot{mt: n.net.NewTransport(name)}
		n.slots[name] = s
		// The pumps run for the rest of the test binary: a memberlist goroutine that is
		// still sending after its test ended must not block forever.
		go s.pump()
	}
	return n
}

// transport returns a fresh transport for the member called name, replacing any earlier
// one on that slot.
func (n *mockNet) transport(name string) memberlist.NodeAwareTransport {
	s := n.slots[name]
	if s == nil {
		panic("mockNet: no transport named " + name + " (create them all in newMockNet)")
	}
	a := &mockAttach{
		MockTransport: s.mt,
		slot:          s,
		packetCh:      make(chan *memberlist.Packet, 1024),
		streamCh:      make(chan net.Conn, 64),
	}
	s.mu.Lock()
	s.cur = a
	s.mu.Unlock()
	return a
}

func (s *mockSlot) pump() {
	for {
		select {
		case p := <-s.mt.PacketCh():
			s.mu.Lock()
			if a := s.cur; a != nil {
				select {
				case a.packetCh <- p:
				default: // full: drop, as UDP would
				}
			}
			s.mu.Unlock()
		case c := <-s.mt.StreamCh():
			s.mu.Lock()
			delivered := false
			if a := s.cur; a != nil {
				select {
				case a.streamCh <- c:
					delivered = true
				default:
				}
			}
			s.mu.Unlock()
			if !delivered {
				_ = c.Close()
			}
		}
	}
}

// WriteToAddress and DialAddressTimeout route by address only, as a real network does
// (MockTransport prefers the node name), so a member can come back under its old name
// on another transport, i.e. another address.
func (a *mockAttach) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	addr.Name = ""
	return a.MockTransport.WriteToAddress(b, addr)
}

func (a *mockAttach) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	addr.Name = ""
	return a.MockTransport.DialAddressTimeout(addr, timeout)
}

func (a *mockAttach) PacketCh() <-chan *memberlist.Packet { return a.packetCh }
func (a *mockAttach) StreamCh() <-chan net.Conn           { return a.streamCh }

// Shutdown detaches the member: from now on its slot drops packets and refuses streams.
func (a *mockAttach) Shutdown() error {
	a.slot.mu.Lock()
	if a.slot.cur == a {
		a.slot.cur = nil
	}
	a.slot.mu.Unlock()
	return nil
}

package raft

import (
	"net"
	"sync"
	"time"
)

// Faults injects network faults into one node's connections, by peer address. Tests and
// drills use it to partition a node, cut one link or slow it down without touching the
// operating system. The zero value is not usable; call NewFaults. All methods are safe for
// concurrent use.
type Faults struct {
	mu      sync.Mutex
	blocked map[string]bool
	delay   map[string]time.Duration
	conns   map[*faultConn]struct{}
}

// NewFaults returns a Faults with nothing injected.
func NewFaults() *Faults {
	return &Faults{blocked: map[string]bool{}, delay: map[string]time.Duration{}, conns: map[*faultConn]struct{}{}}
}

// Block cuts the link to peer: dials fail, accepted connections from it are refused and open
// connections with it are closed.
func (f *Faults) Block(peer string) {
	f.mu.Lock()
	f.blocked[peer] = true
	var doomed []*faultConn
	for c := range f.conns {
		if c.peer == peer {
			doomed = append(doomed, c)
		}
	}
	f.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

// Delay adds d before every write to peer; zero removes it.
func (f *Faults) Delay(peer string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d == 0 {
		delete(f.delay, peer)
		return
	}
	f.delay[peer] = d
}

// Heal removes every fault.
func (f *Faults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked = map[string]bool{}
	f.delay = map[string]time.Duration{}
}

func (f *Faults) isBlocked(peer string) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[peer]
}

func (f *Faults) delayFor(peer string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delay[peer]
}

// wrap tracks c as a connection with peer so Block can cut it. A nil Faults wraps nothing.
func (f *Faults) wrap(c net.Conn, peer string) net.Conn {
	if f == nil {
		return c
	}
	fc := &faultConn{Conn: c, peer: peer, faults: f}
	f.mu.Lock()
	f.conns[fc] = struct{}{}
	f.mu.Unlock()
	return fc
}

type faultConn struct {
	net.Conn
	peer   string
	faults *Faults
	once   sync.Once
}

func (c *faultConn) Write(b []byte) (int, error) {
	if d := c.faults.delayFor(c.peer); d > 0 {
		time.Sleep(d)
	}
	if c.faults.isBlocked(c.peer) {
		c.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Write(b)
}

func (c *faultConn) Close() error {
	c.once.Do(func() {
		c.faults.mu.Lock()
		delete(c.faults.conns, c)
		c.faults.mu.Unlock()
	})
	return c.Conn.Close()
}

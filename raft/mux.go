package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// Every connection to a node's Raft port starts with a header: one byte saying which
// protocol follows, then the dialer's advertised address (so faults and logs know the peer).
// Raft replication and skiff's own RPCs (forwarded proposals, read index, membership) share
// the port, as Consul and Nomad do, so operators open one port per master.
const (
	connRaft byte = 1
	connRPC  byte = 2
)

// errListenerClosed is returned by Accept after Close.
var errListenerClosed = errors.New("raft listener closed")

// ConnWrapper secures a connection once the header is exchanged; it is the seam where TLS
// plugs in. server is true on the accepting side. The default passes connections through.
type ConnWrapper func(c net.Conn, server bool) (net.Conn, error)

// muxLayer is the StreamLayer under the Raft transport. It accepts every connection, reads
// its header and routes it: Raft connections to Accept, RPC connections to the handler.
type muxLayer struct {
	ln        net.Listener
	advertise net.Addr
	faults    *Faults
	wrap      ConnWrapper
	rpc       func(net.Conn)

	raftConns chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	// wg tracks the accept loop and every routed connection's goroutine.
	wg sync.WaitGroup

	// accepted holds the RPC connections this layer accepted, so Close can end them: a
	// handler must not outlive its node and answer for it.
	mu       sync.Mutex
	accepted map[net.Conn]struct{}
}

func newMuxLayer(ln net.Listener, advertise net.Addr, faults *Faults, wrap ConnWrapper) *muxLayer {
	if wrap == nil {
		wrap = func(c net.Conn, _ bool) (net.Conn, error) { return c, nil }
	}
	return &muxLayer{
		ln: ln, advertise: advertise, faults: faults, wrap: wrap,
		raftConns: make(chan net.Conn, 16),
		closed:    make(chan struct{}),
		accepted:  map[net.Conn]struct{}{},
	}
}

// serve accepts connections until Close. rpc handles RPC connections; it owns the conn.
func (m *muxLayer) serve(rpc func(net.Conn)) {
	m.rpc = rpc
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			c, err := m.ln.Accept()
			if err != nil {
				select {
				case <-m.closed:
					return
				default:
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if !m.track(c) {
				c.Close()
				return
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.route(c)
			}()
		}
	}()
}

// track records an accepted connection; false once the layer is closed.
func (m *muxLayer) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.accepted == nil {
		return false
	}
	m.accepted[c] = struct{}{}
	return true
}

func (m *muxLayer) untrack(c net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.accepted, c)
}

func (m *muxLayer) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	kind, peer, err := readHeader(c)
	if err != nil || m.faults.isBlocked(peer) {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	wc, err := m.wrap(m.faults.wrap(c, peer), true)
	if err != nil {
		c.Close()
		return
	}
	switch kind {
	case connRaft:
		// Raft owns its connections from here on; hashicorp's transport closes them.
		m.untrack(c)
		select {
		case m.raftConns <- wc:
		case <-m.closed:
			wc.Close()
		}
	case connRPC:
		m.rpc(wc)
		m.untrack(c)
	default:
		wc.Close()
		m.untrack(c)
	}
}

// Accept returns the next Raft connection.
func (m *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftConns:
		return c, nil
	case <-m.closed:
		return nil, errListenerClosed
	}
}

// Close stops accepting; open connections are left to their owners.
func (m *muxLayer) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
		m.mu.Lock()
		for c := range m.accepted {
			c.Close()
		}
		m.accepted = nil
		m.mu.Unlock()
		// Raft connections accepted but never taken by the transport.
		for {
			select {
			case c := <-m.raftConns:
				c.Close()
			default:
				return
			}
		}
	})
	return err
}

func (m *muxLayer) Addr() net.Addr { return m.advertise }

// Dial opens a Raft connection to address.
func (m *muxLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return m.dial(connRaft, string(address), timeout)
}

func (m *muxLayer) dial(kind byte, address string, timeout time.Duration) (net.Conn, error) {
	if m.faults.isBlocked(address) {
		return nil, fmt.Errorf("dial %s: link blocked by fault injection", address)
	}
	c, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if err := writeHeader(c, kind, m.advertise.String()); err != nil {
		c.Close()
		return nil, err
	}
	wc, err := m.wrap(m.faults.wrap(c, address), false)
	if err != nil {
		c.Close()
		return nil, err
	}
	return wc, nil
}

func writeHeader(w io.Writer, kind byte, self string) error {
	buf := make([]byte, 0, 2+binary.MaxVarintLen16+len(self))
	buf = append(buf, kind)
	buf = binary.AppendUvarint(buf, uint64(len(self)))
	buf = append(buf, self...)
	_, err := w.Write(buf)
	return err
}

func readHeader(r io.Reader) (kind byte, peer string, err error) {
	var b [1]byte
	if _, err = io.ReadFull(r, b[:]); err != nil {
		return 0, "", err
	}
	kind = b[0]
	n, err := binary.ReadUvarint(byteReader{r})
	if err != nil {
		return 0, "", err
	}
	if n > 1024 {
		return 0, "", fmt.Errorf("peer address of %d bytes", n)
	}
	addr := make([]byte, n)
	if _, err = io.ReadFull(r, addr); err != nil {
		return 0, "", err
	}
	return kind, string(addr), nil
}

// byteReader reads one byte at a time so the header parser never reads past the header.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var buf [1]byte
	_, err := io.ReadFull(b.r, buf[:])
	return buf[0], err
}

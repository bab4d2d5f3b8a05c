package raft

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// rpcMethod names one of the node-to-node calls carried on the Raft port.
type rpcMethod byte

const (
	rpcPropose   rpcMethod = 1 // payload: encoded entry; reply: encoded TxnResult
	rpcReadIndex rpcMethod = 2 // reply: uvarint index
	rpcAddVoter  rpcMethod = 3 // payload: id, address
	rpcRemove    rpcMethod = 4 // payload: id
	rpcTransfer  rpcMethod = 5 // payload: target id (may be empty)
	rpcWhoAmI    rpcMethod = 6 // reply: the answering node's server ID
)

// rpc reply status bytes. errNotLeader and friends travel as codes so callers can tell a
// retryable refusal from an unknown outcome.
const (
	statusOK byte = iota
	statusError
	statusNotLeader
	statusNoLeader
	statusUnknownOutcome
	statusShutdown
	statusDiskFull
	statusWritesPaused
	statusAddressInUse
)

var statusErrors = map[byte]error{
	statusNotLeader:      ErrNotLeader,
	statusNoLeader:       ErrNoLeader,
	statusUnknownOutcome: ErrUnknownOutcome,
	statusShutdown:       ErrShutdown,
	statusDiskFull:       ErrDiskFull,
	statusWritesPaused:   ErrWritesPaused,
	statusAddressInUse:   ErrAddressInUse,
}

func statusOf(err error) byte {
	for code, e := range statusErrors {
		if errors.Is(err, e) {
			return code
		}
	}
	return statusError
}

// maxRPCFrame bounds one request or reply; larger frames are refused before allocation.
const maxRPCFrame = 64 << 20

// A frame is: method or status byte, then a forwarded-hops byte (requests only), then a
// uvarint length and the payload.
func writeFrame(w *bufio.Writer, head []byte, payload []byte) error {
	w.Write(head)
	var lb [binary.MaxVarintLen64]byte
	w.Write(lb[:binary.PutUvarint(lb[:], uint64(len(payload)))])
	w.Write(payload)
	return w.Flush()
}

func readFrame(r *bufio.Reader, headLen int) (head []byte, payload []byte, err error) {
	head = make([]byte, headLen)
	if _, err = io.ReadFull(r, head); err != nil {
		return nil, nil, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, nil, err
	}
	if n > maxRPCFrame {
		return nil, nil, fmt.Errorf("rpc frame of %d bytes exceeds limit", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return head, payload, err
}

// rpcHandler answers one request. hops counts how often it was already forwarded.
type rpcHandler func(ctx context.Context, m rpcMethod, hops byte, payload []byte) ([]byte, error)

// serveRPC answers requests on c one after another until the peer closes it.
// ctx ends when the node shuts down.
func serveRPC(ctx context.Context, c net.Conn, h rpcHandler) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	for {
		head, payload, err := readFrame(r, 2)
		if err != nil {
			return
		}
		reply, err := h(ctx, rpcMethod(head[0]), head[1], payload)
		if err != nil {
			code := statusOf(err)
			if werr := writeFrame(w, []byte{code}, []byte(err.Error())); werr != nil {
				return
			}
			continue
		}
		if err := writeFrame(w, []byte{statusOK}, reply); err != nil {
			return
		}
	}
}

// rpcClient keeps a small pool of idle connections per peer. A connection carries one call
// at a time; concurrent calls dial more, and at most maxIdle stay open afterwards.
type rpcClient struct {
	dial    func(addr string) (net.Conn, error)
	maxIdle int

	mu     sync.Mutex
	idle   map[string][]*rpcConn
	closed bool
}

type rpcConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func newRPCClient(dial func(string) (net.Conn, error)) *rpcClient {
	return &rpcClient{dial: dial, maxIdle: 64, idle: map[string][]*rpcConn{}}
}

func (p *rpcClient) get(addr string) (*rpcConn, error) {
	p.mu.Lock()
	for list := p.idle[addr]; len(list) > 0; list = p.idle[addr] {
		c := list[len(list)-1]
		p.idle[addr] = list[:len(list)-1]
		if idleConnAlive(c.c) {
			p.mu.Unlock()
			return c, nil
		}
		// The peer closed it while it sat idle (it restarted, or cut its connections):
		// a request written into it would look sent when it never arrived.
		c.c.Close()
	}
	p.mu.Unlock()
	c, err := p.dial(addr)
	if err != nil {
		return nil, err
	}
	return &rpcConn{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}, nil
}

func (p *rpcClient) put(addr string, c *rpcConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[addr]) >= p.maxIdle {
		c.c.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], c)
}

// closeAll drops every idle connection.
func (p *rpcClient) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, list := range p.idle {
		for _, c := range list {
			c.c.Close()
		}
	}
	p.idle = map[string][]*rpcConn{}
	p.closed = true
}

// errSendFailed wraps failures before the request was fully written: the peer cannot have
// acted on it.
var errSendFailed = errors.New("rpc request not sent")

// call sends one request to addr and waits for the reply or ctx. A failure after the
// request was sent is returned as is; the caller decides what it means for its method.
func (p *rpcClient) call(ctx context.Context, addr string, m rpcMethod, hops byte, payload []byte) ([]byte, error) {
	c, err := p.get(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSendFailed, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.c.SetDeadline(dl)
	} else {
		_ = c.c.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = c.c.SetDeadline(time.Now()) })
	if err := writeFrame(c.w, []byte{byte(m), hops}, payload); err != nil {
		stop()
		c.c.Close()
		return nil, fmt.Errorf("%w: %v", errSendFailed, err)
	}
	head, reply, err := readFrame(c.r, 1)
	// Only a connection whose deadline callback can no longer fire goes back to the pool;
	// otherwise a late callback could cut the next call on it.
	if !stop() || err != nil {
		c.c.Close()
	} else {
		p.put(addr, c)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("rpc to %s: %w", addr, err)
	}
	if head[0] == statusOK {
		return reply, nil
	}
	if e, ok := statusErrors[head[0]]; ok {
		return nil, fmt.Errorf("%w (from %s: %s)", e, addr, reply)
	}
	return nil, fmt.Errorf("rpc to %s: %s", addr, reply)
}

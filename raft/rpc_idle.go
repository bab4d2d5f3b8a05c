package raft

import (
	"net"
	"syscall"
)

// idleConnAlive reports whether an idle pooled connection is still open, by peeking at it
// without blocking: an idle connection has nothing to read, so end-of-stream or an error
// means the peer closed it. Reusing such a connection would turn "never sent" into "sent,
// outcome unknown" for the caller, since the write succeeds into the socket buffer and
// only the read fails.
func idleConnAlive(c net.Conn) bool {
	for {
		inner, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = inner.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true // cannot tell; the caller's error handling still applies
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
			// Nothing to read: open and idle, as it should be.
		case rerr != nil, n == 0:
			alive = false // reset or end of stream
		default:
			alive = false // unsolicited bytes: the stream is out of step
		}
		return true
	})
	return err == nil && alive
}

package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// The port-forward protocol (portforward.k8s.io): over one SPDY connection the client opens
// a pair of streams per forwarded connection, both with headers port and requestID, one of
// streamType "data" (the bytes) and one "error" (a message if the agent cannot connect).
// kubectl ≥ 1.31 first tunnels that SPDY connection through a WebSocket (subprotocol
// "SPDY/3.1+portforward.k8s.io", binary messages carrying the SPDY bytes), and falls back
// to plain SPDY; the master passes either through, and the agent speaks both.
const (
	portForwardProtocol   = "portforward.k8s.io"
	portForwardTunneledWS = "SPDY/3.1+" + portForwardProtocol
	pfStreamType          = "streamType"
	pfPort                = "port"
	pfRequestID           = "requestID"
	// portForwardIdle closes a port-forward connection nothing used for this long, as the
	// kubelet's streaming idle timeout does.
	portForwardIdle = 4 * time.Hour
)

var portForwardUpgrader = websocket.Upgrader{
	Subprotocols:    []string{portForwardTunneledWS},
	CheckOrigin:     func(*http.Request) bool { return true }, // callers are masters, authenticated by token
	ReadBufferSize:  32 << 10,
	WriteBufferSize: 32 << 10,
}

// podPortForward serves `kubectl port-forward` for pod namespace/pod: each forwarded
// connection is a TCP connection to localhost:port inside the pod's network namespace (so
// ports bound to the pod's loopback work, as with the kubelet).
func (a *Agent) podPortForward(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("pod")
	uid := a.podUID(ns, name)
	if uid == "" {
		http.Error(w, fmt.Sprintf("pod %s/%s is not on node %s", ns, name, a.cfg.Name), http.StatusNotFound)
		return
	}
	dial := a.podDialer(uid)
	handler := newPortForwardHandler(a, ns+"/"+name, dial)
	var conn httpstream.Connection
	switch {
	case websocket.IsWebSocketUpgrade(r):
		ws, err := portForwardUpgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade answered the client
		}
		if ws.Subprotocol() != portForwardTunneledWS {
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseProtocolError,
				"port-forward needs the "+portForwardTunneledWS+" subprotocol"), time.Now().Add(time.Second))
			ws.Close()
			return
		}
		conn, err = spdy.NewServerConnection(newWSConn(ws), handler.newStream)
		if err != nil {
			ws.Close()
			return
		}
	case httpstream.IsUpgradeRequest(r):
		if _, err := httpstream.Handshake(r, w, []string{portForwardProtocol}); err != nil {
			return // Handshake answered the client
		}
		conn = spdy.NewResponseUpgrader().UpgradeResponse(w, r, handler.newStream)
		if conn == nil {
			return
		}
	default:
		http.Error(w, "port-forward needs a WebSocket or SPDY upgrade", http.StatusBadRequest)
		return
	}
	defer conn.Close()
	a.log.Debug("port-forward session", "pod", ns+"/"+name, "websocket", websocket.IsWebSocketUpgrade(r))
	conn.SetIdleTimeout(portForwardIdle)
	handler.conn = conn
	select {
	case <-conn.CloseChan():
	case <-r.Context().Done():
	}
	handler.wait()
}

// podDialer dials a port of pod uid: on localhost inside its network namespace, or on the
// host's for a hostNetwork pod.
func (a *Agent) podDialer(uid string) func(ctx context.Context, port int) (net.Conn, error) {
	a.mu.Lock()
	p := a.pods[uid]
	hostNet := p != nil && p.Spec.HostNetwork
	a.mu.Unlock()
	return func(ctx context.Context, port int) (net.Conn, error) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if hostNet {
			return dialInNetNS(ctx, "", "tcp", addr)
		}
		return dialInNetNS(ctx, "/var/run/netns/"+netnsName(uid), "tcp", addr)
	}
}

// portForwardHandler pairs a connection's data and error streams by request ID and
// forwards each pair. Its methods run on the SPDY connection's goroutines.
type portForwardHandler struct {
	a    *Agent
	pod  string
	dial func(ctx context.Context, port int) (net.Conn, error)
	conn httpstream.Connection

	mu    sync.Mutex
	pairs map[string]*streamPair
	wg    sync.WaitGroup
}

type streamPair struct {
	data, errs httpstream.Stream
	created    time.Time
}

func newPortForwardHandler(a *Agent, pod string, dial func(context.Context, int) (net.Conn, error)) *portForwardHandler {
	return &portForwardHandler{a: a, pod: pod, dial: dial, pairs: map[string]*streamPair{}}
}

// newStream accepts a stream the client opened (an error rejects it) and starts forwarding
// once both streams of a request are there.
func (h *portForwardHandler) newStream(s httpstream.Stream, replySent <-chan struct{}) error {
	typ := s.Headers().Get(pfStreamType)
	if typ != "data" && typ != "error" {
		return fmt.Errorf("stream type %q is neither data nor error", typ)
	}
	port, err := strconv.Atoi(s.Headers().Get(pfPort))
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("invalid port %q", s.Headers().Get(pfPort))
	}
	id := s.Headers().Get(pfRequestID)
	if id == "" {
		id = strconv.Itoa(port) // clients before request IDs opened one pair per port
	}
	h.mu.Lock()
	p := h.pairs[id]
	if p == nil {
		p = &streamPair{created: time.Now()}
		h.pairs[id] = p
	}
	if typ == "data" {
		p.data = s
	} else {
		p.errs = s
	}
	complete := p.data != nil && p.errs != nil
	if complete {
		delete(h.pairs, id)
	}
	h.mu.Unlock()
	if complete {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			<-replySent
			h.forward(port, p)
		}()
	}
	return nil
}

// forward copies between the data stream and a fresh connection to the pod's port until
// both directions end; a failed dial is reported on the error stream.
func (h *portForwardHandler) forward(port int, p *streamPair) {
	defer func() {
		if h.conn != nil {
			h.conn.RemoveStreams(p.data, p.errs)
		}
	}()
	defer p.errs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	target, err := h.dial(ctx, port)
	cancel()
	if err != nil {
		msg := fmt.Sprintf("error forwarding port %d to pod %s: %v", port, h.pod, err)
		h.a.log.Debug("port-forward", "error", msg)
		_, _ = io.WriteString(p.errs, msg)
		p.data.Close()
		return
	}
	defer target.Close()
	done := make(chan struct{})
	go func() {
		// Client → pod; the client closing its side half-closes the pod connection.
		_, _ = io.Copy(target, p.data)
		if tc, ok := target.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(p.data, target) // pod → client, until the pod closes
	p.data.Close()
	select {
	case <-done:
	case <-time.After(time.Second):
		_ = p.data.Reset()
	}
}

func (h *portForwardHandler) wait() { h.wg.Wait() }

// wsConn is a net.Conn over a WebSocket's binary messages: the tunnel kubectl puts its SPDY
// connection through.
type wsConn struct {
	ws  *websocket.Conn
	r   io.Reader
	wmu sync.Mutex
}

func newWSConn(ws *websocket.Conn) *wsConn { return &wsConn{ws: ws} }

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				if websocket.IsCloseError(err, websocket.CloseNormalClosure) || strings.Contains(err.Error(), "use of closed") {
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				continue
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error {
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	return c.ws.Close()
}

func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error      { return c.ws.NetConn().SetDeadline(t) }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

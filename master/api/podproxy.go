package api

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
)

// reasonFor names the Status reason of an HTTP code an agent answered with.
func reasonFor(code int) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	case http.StatusUnauthorized:
		return metav1.StatusReasonUnauthorized
	}
	return metav1.StatusReasonInternalError
}

// podProxySubresources are served by the agent that runs the pod; the master proxies them.
var podProxySubresources = map[string]bool{"log": true, "exec": true, "attach": true, "portforward": true}

// AgentLocator finds the address of the agent running a node (from gossip).
type AgentLocator func(node string) (addr string, ok bool)

// SetAgentLocator tells the server how to reach agents, for pods/log.
func (s *Server) SetAgentLocator(l AgentLocator) { s.agents = l }

// podProxy answers pods/{log,exec,attach,portforward} by proxying them to the agent running
// the pod: logs as a plain stream, the others as upgraded connections (WebSocket or plain
// SPDY for exec and attach; WebSocket-tunneled SPDY or plain SPDY for port-forward) spliced
// end to end.
func (s *Server) podProxy(c echo.Context, info requestInfo) error {
	st, obj, err := s.current(c, info)
	if err != nil {
		return writeStatus(c, err)
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" {
		return writeStatus(c, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name)))
	}
	container := c.QueryParam("container")
	if container == "" && info.Subresource != "portforward" {
		if len(pod.Spec.Containers) != 1 {
			var names []string
			for _, ct := range pod.Spec.Containers {
				names = append(names, ct.Name)
			}
			return writeStatus(c, apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: [%s]", pod.Name, strings.Join(names, " "))))
		}
		container = pod.Spec.Containers[0].Name
	}
	var addr string
	ok := false
	if s.agents != nil {
		addr, ok = s.agents(pod.Spec.NodeName)
	}
	if !ok {
		return writeStatus(c, apierrors.NewServiceUnavailable(fmt.Sprintf("no agent for node %s is reachable", pod.Spec.NodeName)))
	}
	transport, err := s.agentTransport(st)
	if err != nil {
		return writeStatus(c, err)
	}
	// After the agent lookup: kubectl retries a failed WebSocket upgrade over SPDY and shows
	// only the second answer, so "no agent" must be what both attempts hear.
	upgrade := c.Request().Header.Get("Upgrade")
	if info.Subresource != "log" && upgrade == "" {
		return writeStatus(c, apierrors.NewBadRequest(fmt.Sprintf("%s needs a WebSocket or SPDY upgrade", info.Subresource)))
	}
	switch info.Subresource {
	case "exec":
		q := pickQuery(c, "stdin", "stdout", "stderr", "tty")
		q["command"] = c.QueryParams()["command"]
		return s.proxyUpgrade(c, pod, fmt.Sprintf("/exec/%s/%s/%s", pod.Namespace, pod.Name, container), q, addr, transport, AdminToken(st))
	case "attach":
		q := pickQuery(c, "stdin", "stdout", "stderr", "tty")
		return s.proxyUpgrade(c, pod, fmt.Sprintf("/attach/%s/%s/%s", pod.Namespace, pod.Name, container), q, addr, transport, AdminToken(st))
	case "portforward":
		q := url.Values{"ports": c.QueryParams()["ports"]}
		return s.proxyUpgrade(c, pod, fmt.Sprintf("/portForward/%s/%s", pod.Namespace, pod.Name), q, addr, transport, AdminToken(st))
	}
	q := url.Values{}
	for _, k := range []string{"follow", "previous", "tailLines", "limitBytes", "timestamps", "sinceSeconds", "sinceTime"} {
		if v := c.QueryParam(k); v != "" {
			q.Set(k, v)
		}
	}
	u := fmt.Sprintf("https://%s/containerLogs/%s/%s/%s?%s", addr, url.PathEscape(pod.Namespace), url.PathEscape(pod.Name), url.PathEscape(container), q.Encode())
	req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, u, nil)
	if err != nil {
		return writeStatus(c, err)
	}
	req.Header.Set("Authorization", "Bearer "+AdminToken(st))
	resp, err := transport.RoundTrip(req)
	if err != nil {
		return writeStatus(c, apierrors.NewServiceUnavailable(fmt.Sprintf("reaching the agent of node %s: %v", pod.Spec.NodeName, err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return writeStatus(c, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: int32(resp.StatusCode),
			Reason: reasonFor(resp.StatusCode), Message: strings.TrimSpace(string(msg))}})
	}
	out := c.Response()
	out.Header().Set("Content-Type", "text/plain")
	out.WriteHeader(http.StatusOK)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := out.Write(buf[:n]); werr != nil {
				return nil
			}
			out.Flush()
		}
		if err != nil {
			return nil
		}
	}
}

// pickQuery copies the named query parameters that are set.
func pickQuery(c echo.Context, keys ...string) url.Values {
	q := url.Values{}
	for _, k := range keys {
		if v := c.QueryParam(k); v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// proxyUpgrade hands kubectl's upgrading request (exec, attach, port-forward) to the pod's
// agent at path and splices the two upgraded connections together, whatever protocol they
// then speak (httputil.ReverseProxy does the upgrade dance for WebSocket and SPDY alike).
func (s *Server) proxyUpgrade(c echo.Context, pod *corev1.Pod, path string, q url.Values, agentAddr string, transport http.RoundTripper, token string) error {
	target := &url.URL{Scheme: "https", Host: agentAddr, Path: path, RawQuery: q.Encode()}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL = target
			r.Out.Host = agentAddr
			r.Out.Header.Set("Authorization", "Bearer "+token)
		},
		Transport: transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			_ = writeStatus(c, apierrors.NewServiceUnavailable(fmt.Sprintf("reaching the agent of node %s: %v", pod.Spec.NodeName, err)))
		},
	}
	proxy.ServeHTTP(c.Response(), c.Request())
	return nil
}

// agentTransport is the connection pool to agents, trusting the cluster CA. It is built
// once and kept, so proxied logs and execs reuse connections instead of a TLS handshake each.
func (s *Server) agentTransport(st *fsm.State) (*http.Transport, error) {
	s.transportMu.Lock()
	defer s.transportMu.Unlock()
	if s.transport != nil {
		return s.transport, nil
	}
	ca, err := ClusterCA(st)
	if err != nil || ca == nil {
		return nil, apierrors.NewServiceUnavailable("the cluster CA is not ready")
	}
	pool, err := ca.Pool()
	if err != nil {
		return nil, err
	}
	s.transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ResponseHeaderTimeout: 30 * time.Second, MaxIdleConnsPerHost: 4}
	return s.transport, nil
}

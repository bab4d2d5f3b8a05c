package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Client is the agent's connection to the masters' Kubernetes API. It knows every master
// (from gossip) and moves to another when one fails, so the agent survives a master's
// death. It writes state only through the API. Safe for concurrent use.
type Client struct {
	token string
	http  *http.Client
	// watchHTTP has no overall timeout: watches are long.
	watchHTTP *http.Client

	mu      sync.Mutex
	servers []string // host:port of each master's API
	current int
}

// StatusError is a non-2xx answer from the API.
type StatusError struct {
	Code   int
	Status metav1.Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("API answered %d %s: %s", e.Code, e.Status.Reason, e.Status.Message)
}

// IsNotFound and friends classify API errors.
func IsNotFound(err error) bool { return statusCode(err) == http.StatusNotFound }
func IsConflict(err error) bool { return statusCode(err) == http.StatusConflict }
func IsGone(err error) bool     { return statusCode(err) == http.StatusGone }

func statusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// NewClient returns a client trusting caPEM and sending token.
func NewClient(caPEM []byte, token string, servers []string) (*Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the cluster CA does not parse")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 8}
	return &Client{token: token, servers: servers,
		http:      &http.Client{Transport: tr, Timeout: 30 * time.Second},
		watchHTTP: &http.Client{Transport: tr}}, nil
}

// SetServers replaces the list of masters (from gossip).
func (c *Client) SetServers(servers []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(servers) > 0 {
		c.servers = servers
		c.current %= len(servers)
	}
}

func (c *Client) server(offset int) (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.servers) == 0 {
		return "", 0
	}
	return c.servers[(c.current+offset)%len(c.servers)], len(c.servers)
}

func (c *Client) advance(failed string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.servers) > 0 && c.servers[c.current%len(c.servers)] == failed {
		c.current = (c.current + 1) % len(c.servers)
	}
}

// do sends one request, trying each master in turn on connection errors and 503s.
func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		server, n := c.server(0)
		if n == 0 {
			return errors.New("no master known yet")
		}
		if attempt >= n*2 {
			return lastErr
		}
		req, err := http.NewRequestWithContext(ctx, method, "https://"+server+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			lastErr = err
			c.advance(server)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			se := &StatusError{Code: resp.StatusCode}
			_ = json.Unmarshal(b, &se.Status)
			if resp.StatusCode == http.StatusServiceUnavailable {
				lastErr = se
				c.advance(server)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
			return se
		}
		if out != nil {
			return json.Unmarshal(b, out)
		}
		return nil
	}
}

// GetNode, CreateNode and UpdateNodeStatus manage this agent's Node.
func (c *Client) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	var n corev1.Node
	return &n, c.do(ctx, http.MethodGet, "/api/v1/nodes/"+name, nil, &n)
}

func (c *Client) CreateNode(ctx context.Context, n *corev1.Node) (*corev1.Node, error) {
	var out corev1.Node
	return &out, c.do(ctx, http.MethodPost, "/api/v1/nodes", n, &out)
}

func (c *Client) UpdateNode(ctx context.Context, n *corev1.Node) (*corev1.Node, error) {
	var out corev1.Node
	return &out, c.do(ctx, http.MethodPut, "/api/v1/nodes/"+n.Name, n, &out)
}

func (c *Client) UpdateNodeStatus(ctx context.Context, n *corev1.Node) (*corev1.Node, error) {
	var out corev1.Node
	return &out, c.do(ctx, http.MethodPut, "/api/v1/nodes/"+n.Name+"/status", n, &out)
}

// ListPods lists the pods bound to node and the revision of the list.
func (c *Client) ListPods(ctx context.Context, node string) ([]corev1.Pod, string, error) {
	var list corev1.PodList
	err := c.do(ctx, http.MethodGet, "/api/v1/pods?fieldSelector="+url.QueryEscape("spec.nodeName="+node), nil, &list)
	return list.Items, list.ResourceVersion, err
}

// PodEvent is one change of a watched pod.
type PodEvent struct {
	Type string
	Pod  corev1.Pod
	// Status is set on ERROR events.
	Status *metav1.Status
}

// WatchPods streams changes to the pods bound to node after revision rv, until ctx ends or
// the stream breaks (the caller relists on 410 and rewatches otherwise).
func (c *Client) WatchPods(ctx context.Context, node, rv string, fn func(PodEvent) error) error {
	path := "/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion=" + url.QueryEscape(rv) +
		"&fieldSelector=" + url.QueryEscape("spec.nodeName="+node)
	return c.watch(ctx, path, "watch", func(typ string, obj json.RawMessage) error {
		ev := PodEvent{Type: typ}
		if err := json.Unmarshal(obj, &ev.Pod); err != nil {
			return fmt.Errorf("watch event: %w", err)
		}
		return fn(ev)
	})
}

// watch opens a watch on path at the current master and hands each event's type and raw
// object to fn until ctx ends, the stream breaks, the server sends an ERROR event (returned
// as a *StatusError) or fn fails. A failed connection or broken stream moves the client on to
// the next master unless ctx ended. what prefixes stream decoding errors ("watch stream").
// It blocks for the life of the stream.
func (c *Client) watch(ctx context.Context, path, what string, fn func(typ string, obj json.RawMessage) error) error {
	server, n := c.server(0)
	if n == 0 {
		return errors.New("no master known yet")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+server+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.watchHTTP.Do(req)
	if err != nil {
		c.advance(server)
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		se := &StatusError{Code: resp.StatusCode}
		_ = json.NewDecoder(resp.Body).Decode(&se.Status)
		if resp.StatusCode != http.StatusGone {
			// This master cannot serve the watch (it lost its quorum, is shutting down, …):
			// the next attempt goes to another one. 410 only means relist.
			c.advance(server)
		}
		return se
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			if ctx.Err() == nil {
				c.advance(server)
			}
			return err
		}
		var raw struct {
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := json.Unmarshal(line, &raw); err != nil {
			return fmt.Errorf("%s stream: %w", what, err)
		}
		if raw.Type == "ERROR" {
			var st metav1.Status
			_ = json.Unmarshal(raw.Object, &st)
			return &StatusError{Code: int(st.Code), Status: st}
		}
		if err := fn(raw.Type, raw.Object); err != nil {
			return err
		}
	}
}

// UpdatePodStatus writes a pod's status.
func (c *Client) UpdatePodStatus(ctx context.Context, p *corev1.Pod) (*corev1.Pod, error) {
	var out corev1.Pod
	return &out, c.do(ctx, http.MethodPut, "/api/v1/namespaces/"+p.Namespace+"/pods/"+p.Name+"/status", p, &out)
}

// FinishPodDeletion removes a pod whose containers are gone (grace 0, this pod's UID only).
func (c *Client) FinishPodDeletion(ctx context.Context, p *corev1.Pod) error {
	zero := int64(0)
	opts := metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}}
	err := c.do(ctx, http.MethodDelete, "/api/v1/namespaces/"+p.Namespace+"/pods/"+p.Name, opts, nil)
	if IsNotFound(err) {
		return nil
	}
	return err
}

// GetConfigMap and GetSecret read what pods consume as env and volumes.
func (c *Client) GetConfigMap(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	var out corev1.ConfigMap
	return &out, c.do(ctx, http.MethodGet, "/api/v1/namespaces/"+ns+"/configmaps/"+name, nil, &out)
}

func (c *Client) GetSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	var out corev1.Secret
	return &out, c.do(ctx, http.MethodGet, "/api/v1/namespaces/"+ns+"/secrets/"+name, nil, &out)
}

package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ListNodes lists every Node and the revision of the list.
func (c *Client) ListNodes(ctx context.Context) ([]corev1.Node, string, error) {
	var list corev1.NodeList
	err := c.do(ctx, http.MethodGet, "/api/v1/nodes", nil, &list)
	return list.Items, list.ResourceVersion, err
}

// WatchNodes streams Node changes after revision rv to fn (event type and object) until ctx
// ends or the stream breaks; the caller relists on 410 and rewatches otherwise.
func (c *Client) WatchNodes(ctx context.Context, rv string, fn func(typ string, n *corev1.Node) error) error {
	server, n := c.server(0)
	if n == 0 {
		return errors.New("no master known yet")
	}
	path := "/api/v1/nodes?watch=true&allowWatchBookmarks=true&resourceVersion=" + url.QueryEscape(rv)
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
			return fmt.Errorf("node watch stream: %w", err)
		}
		if raw.Type == "ERROR" {
			var st metav1.Status
			_ = json.Unmarshal(raw.Object, &st)
			return &StatusError{Code: int(st.Code), Status: st}
		}
		var node corev1.Node
		if err := json.Unmarshal(raw.Object, &node); err != nil {
			return fmt.Errorf("node watch event: %w", err)
		}
		if err := fn(raw.Type, &node); err != nil {
			return err
		}
	}
}

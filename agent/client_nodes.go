package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	corev1 "k8s.io/api/core/v1"
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
	path := "/api/v1/nodes?watch=true&allowWatchBookmarks=true&resourceVersion=" + url.QueryEscape(rv)
	return c.watch(ctx, path, "node watch", func(typ string, obj json.RawMessage) error {
		var node corev1.Node
		if err := json.Unmarshal(obj, &node); err != nil {
			return fmt.Errorf("node watch event: %w", err)
		}
		return fn(typ, &node)
	})
}

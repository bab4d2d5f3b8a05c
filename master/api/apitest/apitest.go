// Package apitest serves the Kubernetes API from an in-process Raft cluster (real bbolt,
// real TCP) for tests and benchmarks.
package apitest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"skiff/master/api"
	"skiff/raft"
	"skiff/raft/rafttest"
)

// Cluster is an API server on every node of an in-process cluster.
type Cluster struct {
	Store   *rafttest.Cluster
	Servers []*httptest.Server
	// Token is the admin bearer token.
	Token string
}

// Start runs size nodes, creates the cluster objects (CA, token, system namespaces) and
// serves the API on each node, over TLS when tls is set.
func Start(t testing.TB, size int, tls bool, mutate func(*raft.Config)) *Cluster {
	t.Helper()
	c := rafttest.New(t, rafttest.Options{Size: size, Config: mutate})
	leader := c.Node(c.WaitLeader())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := api.EnsureClusterObjects(ctx, leader, "test"); err != nil {
		t.Fatal(err)
	}
	st, err := leader.LinearizableRead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ac := &Cluster{Store: c, Token: api.AdminToken(st)}
	for i := 0; i < size; i++ {
		e := echo.New()
		api.New(c.Node(i), "127.0.0.1:6443").Register(e)
		srv := httptest.NewUnstartedServer(e)
		if tls {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		t.Cleanup(srv.Close)
		ac.Servers = append(ac.Servers, srv)
	}
	return ac
}

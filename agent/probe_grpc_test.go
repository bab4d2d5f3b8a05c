package agent

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestGRPCProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer() // "" is SERVING
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	port := ln.Addr().(*net.TCPAddr).Port

	probe := func(port int, service string) (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return grpcProbe(ctx, "", "127.0.0.1", port, service)
	}
	if ok, msg := probe(port, ""); !ok {
		t.Fatalf("the SERVING server failed its probe: %s", msg)
	}
	if ok, msg := probe(port, "down"); ok || !strings.Contains(msg, "NOT_SERVING") {
		t.Fatalf("a NOT_SERVING service: passed=%v %q", ok, msg)
	}
	if ok, msg := probe(port, "unknown"); ok || !strings.Contains(msg, "NotFound") {
		t.Fatalf("an unknown service: passed=%v %q", ok, msg)
	}
	// Nothing listens: the probe fails (by its deadline at the latest).
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if ok, _ := grpcProbe(ctx, "", "127.0.0.1", closedPort, ""); ok {
		t.Fatal("a probe to a closed port passed")
	}
}

package agent

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// grpcProbe calls grpc.health.v1.Health/Check for service (the empty name: the whole
// server) at host:port, over plaintext as the kubelet does, dialing from inside the network
// namespace at nsPath (the host's when empty). Only SERVING passes. It blocks until the
// answer or ctx's deadline (the probe's timeout).
func grpcProbe(ctx context.Context, nsPath, host string, port int, service string) (bool, string) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialInNetNS(ctx, nsPath, "tcp", addr)
		}),
		grpc.WithUserAgent("kube-probe/skiff"))
	if err != nil {
		return false, fmt.Sprintf("gRPC probe to %s: %v", addr, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		if st, ok := status.FromError(err); ok {
			return false, fmt.Sprintf("gRPC health check to %s failed: %s: %s", addr, st.Code(), st.Message())
		}
		return false, fmt.Sprintf("gRPC health check to %s failed: %v", addr, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return false, fmt.Sprintf("service %q at %s is %s, not SERVING", service, addr, resp.GetStatus())
	}
	return true, ""
}

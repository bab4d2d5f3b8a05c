// Command echo is the static Go test image: an HTTP server on :8080 that answers every
// request with a greeting, packed as an OCI image by agent/testimage.Binary. With
// ECHO_GRPC_HEALTH=<port> it also answers gRPC health checks there (see grpcHealth).
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
)

func main() {
	name, _ := os.Hostname()
	if port := os.Getenv("ECHO_GRPC_HEALTH"); port != "" {
		go serveGRPCHealth(":" + port)
	}
	fmt.Println("echo: serving on :8080")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from skiff (%s) %s\n", name, r.URL.Path)
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}

// serveGRPCHealth answers grpc.health.v1.Health/Check over unencrypted HTTP/2 without the
// gRPC library (keeping the image small): the service "" and "echo" are SERVING, any other
// NOT_SERVING, so tests can probe both outcomes.
func serveGRPCHealth(addr string) {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Addr: addr, Protocols: &protocols, Handler: http.HandlerFunc(grpcHealth)}
	fmt.Println("echo: gRPC health on", addr)
	log.Fatal(srv.ListenAndServe())
}

// grpcHealth decodes one length-prefixed HealthCheckRequest (field 1: service) and answers a
// HealthCheckResponse (field 1: status; 1 SERVING, 2 NOT_SERVING) with grpc-status 0.
func grpcHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/grpc")
	w.Header().Set("Trailer", "Grpc-Status")
	if r.URL.Path != "/grpc.health.v1.Health/Check" {
		w.Header().Set("Grpc-Status", "12") // UNIMPLEMENTED
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	service := ""
	if len(body) >= 5 {
		msg := body[5:]
		// Field 1, wire type 2 (tag 0x0a), a one-byte length: service names here are short.
		if len(msg) >= 2 && msg[0] == 0x0a && int(msg[1]) <= len(msg)-2 {
			service = string(msg[2 : 2+int(msg[1])])
		}
	}
	status := byte(2)
	if service == "" || service == "echo" {
		status = 1
	}
	resp := []byte{0, 0, 0, 0, 2, 0x08, status}
	binary.BigEndian.PutUint32(resp[1:5], 2)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
	w.Header().Set("Grpc-Status", "0")
}

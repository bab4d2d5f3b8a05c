package pki

import (
	"crypto/tls"
	"net"
	"net/http"
	"testing"
)

func TestServingCertIsTrustedThroughTheCA(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServingCert("m1", []string{"127.0.0.1", "localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })}
	go srv.Serve(ln)
	defer srv.Close()
	pool, err := ca.Pool()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, host := range []string{"127.0.0.1", "localhost"} {
		resp, err := client.Get("https://" + net.JoinHostPort(host, port))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		resp.Body.Close()
	}
	other, _ := NewCA("other")
	otherPool, _ := other.Pool()
	bad := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: otherPool}}}
	if _, err := bad.Get("https://" + ln.Addr().String()); err == nil {
		t.Fatal("a client trusting another CA accepted the certificate")
	}
	tok1, _ := NewToken()
	tok2, _ := NewToken()
	if len(tok1) != 48 || tok1 == tok2 {
		t.Fatalf("tokens %q %q", tok1, tok2)
	}
}

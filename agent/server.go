package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// serve answers the masters' proxied requests (logs, exec, attach, port-forward) over HTTPS with a
// certificate the cluster CA signed, admitting only the cluster token. It blocks until ctx
// ends.
func (a *Agent) serve(ctx context.Context, ln net.Listener, token string) error {
	cert, err := a.certificate(ctx)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	authorized := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", authorized(a.containerLogs))
	mux.HandleFunc("GET /exec/{namespace}/{pod}/{container}", authorized(a.containerExec))
	mux.HandleFunc("GET /attach/{namespace}/{pod}/{container}", authorized(a.containerAttach))
	// kubectl sends exec and attach as GET over WebSocket and as POST over SPDY.
	mux.HandleFunc("POST /exec/{namespace}/{pod}/{container}", authorized(a.containerExec))
	mux.HandleFunc("POST /attach/{namespace}/{pod}/{container}", authorized(a.containerAttach))
	mux.HandleFunc("GET /portForward/{namespace}/{pod}", authorized(a.podPortForward))
	mux.HandleFunc("POST /portForward/{namespace}/{pod}", authorized(a.podPortForward))
	a.drillRoutes(mux, authorized)
	srv := &http.Server{Handler: a.drillGate(mux), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	err = srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// certificate makes a key and has a master sign a serving certificate for it.
func (a *Agent) certificate(ctx context.Context) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	req := map[string]any{
		"name":         a.cfg.Name,
		"publicKeyPEM": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		"hosts":        []string{a.cfg.Address, a.cfg.Name, "localhost", "127.0.0.1"},
	}
	var out struct {
		CertificatePEM string `json:"certificatePEM"`
	}
	if err := a.cfg.Client.do(ctx, http.MethodPost, "/skiff/v1/agent-certificate", req, &out); err != nil {
		return tls.Certificate{}, fmt.Errorf("getting a serving certificate from the masters: %w", err)
	}
	return tls.X509KeyPair([]byte(out.CertificatePEM), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

// containerLogs streams a container's log file: the current attempt, or the previous one
// with previous=true; tailLines, sinceSeconds, sinceTime and limitBytes trim it,
// timestamps=true puts each line's time in front, and follow=true keeps streaming while the
// container runs.
func (a *Agent) containerLogs(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	uid := a.podUID(ns, name)
	if uid == "" {
		http.Error(w, fmt.Sprintf("pod %s/%s is not on node %s", ns, name, a.cfg.Name), http.StatusNotFound)
		return
	}
	ctrs, err := a.cfg.Runtime.List(r.Context(), map[string]string{labelPodUID: uid, labelContainer: container})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	cur, prev := latest(ctrs)
	c, ok := cur[container]
	if r.URL.Query().Get("previous") == "true" {
		c, ok = prev[container]
		if !ok {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", container, name), http.StatusBadRequest)
			return
		}
	}
	if !ok {
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start", container, name), http.StatusBadRequest)
		return
	}
	opts, err := parseLogOptions(r, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	path := a.LogPath(uid, container, attempt(c))
	if _, err := os.Stat(path); err != nil {
		http.Error(w, fmt.Sprintf("no log for container %q: %v", container, err), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	running := func() bool {
		st, err := a.cfg.Runtime.Status(r.Context(), c.ID)
		return err == nil && st.State == StateRunning
	}
	if c.State != StateRunning {
		opts.follow = false
	}
	if err := serveLog(r.Context(), w, flush, path, opts, running); err != nil {
		a.log.Debug("serving a log ended", "container", c.ID, "error", err)
	}
}

// tail keeps the last n lines of data.
func tail(data []byte, n int) []byte {
	if n == 0 {
		return nil
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	idx := end
	for i := 0; i < n; i++ {
		j := bytes.LastIndexByte(data[:idx], '\n')
		if j < 0 {
			return data
		}
		idx = j
	}
	return data[idx+1:]
}

// podUID is the UID of pod ns/name on this node, or "" if it is not here.
func (a *Agent) podUID(ns, name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.pods {
		if p.Namespace == ns && p.Name == name {
			return string(p.UID)
		}
	}
	return ""
}

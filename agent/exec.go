package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Kubernetes remote-command protocol over WebSocket (what kubectl ≥ 1.30 speaks first):
// every binary message starts with a channel byte. v5 adds a close signal for stdin.
const (
	chanStdin  = 0
	chanStdout = 1
	chanStderr = 2
	chanError  = 3
	chanResize = 4
	chanClose  = 255
)

var execUpgrader = websocket.Upgrader{
	Subprotocols:    []string{"v5.channel.k8s.io", "v4.channel.k8s.io"},
	CheckOrigin:     func(*http.Request) bool { return true }, // callers are masters, authenticated by token
	ReadBufferSize:  32 << 10,
	WriteBufferSize: 32 << 10,
}

// wsWriter sends what is written to it as messages on one channel; writes from the
// process's stdout and stderr copiers are serialised.
type wsWriter struct {
	mu      *sync.Mutex
	conn    *websocket.Conn
	channel byte
}

func (w wsWriter) Write(p []byte) (int, error) {
	msg := make([]byte, 1+len(p))
	msg[0] = w.channel
	copy(msg[1:], p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.conn.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

// containerExec runs a command in a running container for `kubectl exec`, streaming over a
// WebSocket that the master proxies from kubectl.
func (a *Agent) containerExec(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	cmd := q["command"]
	if len(cmd) == 0 {
		http.Error(w, "no command given", http.StatusBadRequest)
		return
	}
	conn, err := execUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the client
	}
	defer conn.Close()
	var mu sync.Mutex
	// A refusal goes on the error channel: before the upgrade kubectl would take it for
	// "no WebSocket here" and retry over SPDY, losing the reason.
	id, err := a.runningContainer(r, ns, name, container)
	if err != nil {
		wsFail(conn, &mu, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	tty := q.Get("tty") == "true" || q.Get("tty") == "1"
	var stdin io.Reader
	var stdinW *io.PipeWriter
	if q.Get("stdin") == "true" || q.Get("stdin") == "1" {
		var pr *io.PipeReader
		pr, stdinW = io.Pipe()
		stdin = pr
	}
	var stdout, stderr io.Writer
	if q.Get("stdout") == "true" || q.Get("stdout") == "1" {
		stdout = wsWriter{&mu, conn, chanStdout}
	}
	if (q.Get("stderr") == "true" || q.Get("stderr") == "1") && !tty {
		stderr = wsWriter{&mu, conn, chanStderr}
	}
	resize := make(chan TermSize, 4)
	go func() {
		defer close(resize)
		for {
			typ, msg, err := conn.ReadMessage()
			if err != nil {
				if stdinW != nil {
					stdinW.Close()
				}
				return
			}
			if typ != websocket.BinaryMessage || len(msg) == 0 {
				continue
			}
			switch msg[0] {
			case chanStdin:
				if stdinW != nil {
					_, _ = stdinW.Write(msg[1:])
				}
			case chanClose:
				if len(msg) > 1 && msg[1] == chanStdin && stdinW != nil {
					stdinW.Close()
				}
			case chanResize:
				var sz struct{ Width, Height uint16 }
				if json.Unmarshal(msg[1:], &sz) == nil {
					select {
					case resize <- TermSize{sz.Width, sz.Height}:
					default:
					}
				}
			}
		}
	}()
	code, err := a.cfg.Runtime.ExecStream(r.Context(), id, cmd, tty, stdin, stdout, stderr, resize)
	st := metav1.Status{Status: metav1.StatusSuccess}
	switch {
	case err != nil:
		st = metav1.Status{Status: metav1.StatusFailure, Message: err.Error(), Reason: metav1.StatusReasonInternalError}
	case code != 0:
		st = metav1.Status{Status: metav1.StatusFailure, Reason: "NonZeroExitCode",
			Message: fmt.Sprintf("command terminated with non-zero exit code: exit status %d", code),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: strconv.Itoa(code)}}}}
	}
	b, _ := json.Marshal(st)
	_, _ = wsWriter{&mu, conn, chanError}.Write(b)
	mu.Lock()
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	mu.Unlock()
}

// runningContainer finds the running container name of pod ns/pod.
func (a *Agent) runningContainer(r *http.Request, ns, pod, container string) (string, error) {
	uid := a.podUID(ns, pod)
	if uid == "" {
		return "", fmt.Errorf("pod %s/%s is not on node %s", ns, pod, a.cfg.Name)
	}
	ctrs, err := a.cfg.Runtime.List(r.Context(), map[string]string{labelPodUID: uid, labelContainer: container})
	if err != nil {
		return "", err
	}
	cur, _ := latest(ctrs)
	c, ok := cur[container]
	if !ok || c.State != StateRunning {
		return "", fmt.Errorf("container %q in pod %q is not running", container, pod)
	}
	return c.ID, nil
}

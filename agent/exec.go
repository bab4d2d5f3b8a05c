package agent

import (
	"fmt"
	"net/http"
	"sync"

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
// WebSocket or SPDY connection that the master proxies from kubectl.
func (a *Agent) containerExec(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	cmd := r.URL.Query()["command"]
	if len(cmd) == 0 {
		http.Error(w, "no command given", http.StatusBadRequest)
		return
	}
	o := parseRCOptions(r)
	sess, err := openRemoteCommand(w, r, o)
	if err != nil {
		a.log.Debug("exec session not opened", "pod", ns+"/"+name, "error", err)
		return
	}
	id, err := a.runningContainer(r, ns, name, container)
	if err != nil {
		sess.fail(metav1.StatusReasonBadRequest, err.Error())
		return
	}
	code, err := a.cfg.Runtime.ExecStream(r.Context(), id, cmd, o.tty, sess.stdin, sess.stdout, sess.stderr, sess.resize)
	sess.finish(execStatus(code, err))
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

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// containerAttach serves `kubectl attach` over the remote-command protocol (WebSocket or
// SPDY, as exec): the container's output from now on, read from its log (so attaching never
// takes output away from the log), and, for a container whose spec asks for stdin, input
// written to the stdin FIFO its log writer holds open. With stdinOnce the container's stdin
// closes when the first attach ends its input. The session ends when the container exits or
// the client leaves.
func (a *Agent) containerAttach(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	o := parseRCOptions(r)
	// Refusals travel on the error channel after the upgrade: an answer before it would
	// read to kubectl as "WebSocket not supported" and send it off to SPDY instead.
	sess, err := openRemoteCommand(w, r, o)
	if err != nil {
		a.log.Debug("attach session not opened", "pod", ns+"/"+name, "error", err)
		return
	}
	spec, ok := a.podContainer(ns, name, container)
	if !ok {
		sess.fail(metav1.StatusReasonNotFound, fmt.Sprintf("container %q not found in pod %s/%s on node %s", container, ns, name, a.cfg.Name))
		return
	}
	tty := o.tty && spec.TTY
	if o.stdin && !spec.Stdin {
		sess.fail(metav1.StatusReasonBadRequest, fmt.Sprintf("cannot attach to the stdin of container %q in pod %q: it was not created with stdin: true (set stdin: true in its spec, or use kubectl exec -i)",
			container, name))
		return
	}
	uid := a.podUID(ns, name)
	id, err := a.runningContainer(r, ns, name, container)
	if err != nil {
		sess.fail(metav1.StatusReasonBadRequest, err.Error())
		return
	}
	ctrs, err := a.cfg.Runtime.List(r.Context(), map[string]string{labelPodUID: uid, labelContainer: container})
	if err != nil {
		sess.fail(metav1.StatusReasonInternalError, err.Error())
		return
	}
	cur, _ := latest(ctrs)
	logPath := a.LogPath(uid, container, attempt(cur[container]))
	var stdinPipe *os.File
	if o.stdin {
		// The log writer holds the FIFO open, so this open never blocks on a reader.
		stdinPipe, err = os.OpenFile(filepath.Join(StdioDir(logPath), "stdin"), os.O_WRONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			sess.fail(metav1.StatusReasonInternalError, fmt.Sprintf("the stdin of container %q is not available: %v", container, err))
			return
		}
		defer stdinPipe.Close()
	}
	logs, err := openLogReader(logPath)
	if err != nil {
		sess.fail(metav1.StatusReasonInternalError, fmt.Sprintf("the output of container %q is not available: %v", container, err))
		return
	}
	defer logs.Close()
	if _, err := logs.f.Seek(0, io.SeekEnd); err != nil {
		sess.fail(metav1.StatusReasonInternalError, err.Error())
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	// Input to the FIFO until the client closes it or leaves (the container goes on); with
	// stdinOnce that closes the container's stdin for good.
	if stdinPipe != nil && sess.stdin != nil {
		go func() {
			_, _ = io.Copy(stdinPipe, sess.stdin)
			stdinPipe.Close()
			if spec.StdinOnce {
				_ = a.cfg.Runtime.CloseStdin(context.WithoutCancel(ctx), id)
			}
		}()
	}
	go func() {
		for sz := range sess.resize {
			if tty {
				_ = a.cfg.Runtime.ResizeTTY(ctx, id, sz)
			}
		}
	}()
	go func() {
		select {
		case <-sess.gone:
			cancel()
		case <-ctx.Done():
		}
	}()

	// Output: entries appended to the log, by stream.
	emit := func(e logEntry) error {
		out := sess.stdout
		if e.stream == "stderr" && !tty {
			out = sess.stderr
		}
		if out == nil {
			return nil
		}
		data := e.content
		if !e.partial {
			data = append(append([]byte{}, data...), '\n')
		}
		_, err := out.Write(data)
		return err
	}
	running := func() bool {
		st, err := a.cfg.Runtime.Status(ctx, id)
		return err == nil && st.State == StateRunning
	}
	err = logs.follow(ctx, emit, func() {}, running)
	st := metav1.Status{Status: metav1.StatusSuccess}
	if err != nil && !errors.Is(err, context.Canceled) {
		st = metav1.Status{Status: metav1.StatusFailure, Message: err.Error(), Reason: metav1.StatusReasonInternalError}
	}
	sess.finish(st)
}

// wsFinish sends a remote-command session's final Status on the error channel and closes
// the WebSocket.
func wsFinish(conn *websocket.Conn, mu *sync.Mutex, st metav1.Status) {
	b, _ := json.Marshal(st)
	_, _ = wsWriter{mu, conn, chanError}.Write(b)
	mu.Lock()
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	mu.Unlock()
}

// wsFail ends a remote-command session that cannot start, saying why.
func wsFail(conn *websocket.Conn, mu *sync.Mutex, reason metav1.StatusReason, msg string) {
	wsFinish(conn, mu, metav1.Status{Status: metav1.StatusFailure, Reason: reason, Message: msg})
}

// podContainer is the spec of container name in pod ns/pod, if the pod is on this node.
func (a *Agent) podContainer(ns, pod, name string) (corev1.Container, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.pods {
		if p.Namespace != ns || p.Name != pod {
			continue
		}
		for _, c := range p.Spec.Containers {
			if c.Name == name {
				return c, true
			}
		}
	}
	return corev1.Container{}, false
}

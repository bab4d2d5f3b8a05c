package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

// execRuntime is a Runtime with one running container whose "exec" echoes its command,
// copies stdin to stdout, writes to stderr, and exits with the code given as "exit N".
type execRuntime struct {
	Runtime
	sizes chan TermSize
}

func (f *execRuntime) List(ctx context.Context, labels map[string]string) ([]ContainerStatus, error) {
	return []ContainerStatus{{ID: "c1", State: StateRunning,
		Labels: map[string]string{labelPodUID: "uid1", labelContainer: "main", labelAttempt: "0"}}}, nil
}

func (f *execRuntime) ExecStream(ctx context.Context, id string, cmd []string, tty bool, stdin io.Reader, stdout, stderr io.Writer, resize <-chan TermSize) (int, error) {
	if len(cmd) == 2 && cmd[0] == "exit" {
		code := int(cmd[1][0] - '0')
		return code, nil
	}
	if tty && f.sizes != nil {
		select {
		case sz := <-resize:
			f.sizes <- sz
		case <-time.After(10 * time.Second):
			return 0, errors.New("no terminal size came")
		}
	}
	_, _ = io.WriteString(stdout, strings.Join(cmd, " ")+"\n")
	if stdin != nil {
		_, _ = io.Copy(stdout, stdin)
	}
	if stderr != nil {
		_, _ = io.WriteString(stderr, "to-stderr\n")
	}
	return 0, nil
}

// execServer serves the agent's exec and attach routes (without TLS or token) for pod
// default/p1.
func execServer(t *testing.T, rt Runtime) *httptest.Server {
	t.Helper()
	a := &Agent{cfg: Config{Name: "n1", Runtime: rt}, log: slog.Default(), pods: map[string]*corev1.Pod{
		"uid1": {ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p1", UID: types.UID("uid1")},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main"}}}},
	}}
	mux := http.NewServeMux()
	for _, m := range []string{"GET", "POST"} {
		mux.HandleFunc(m+" /exec/{namespace}/{pod}/{container}", a.containerExec)
		mux.HandleFunc(m+" /attach/{namespace}/{pod}/{container}", a.containerAttach)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// executors are the two transports kubectl uses: SPDY (kubectl < 1.30, and the fallback)
// and WebSocket.
func executors(t *testing.T, srv *httptest.Server, path string, q url.Values) map[string]remotecommand.Executor {
	t.Helper()
	u, _ := url.Parse(srv.URL + path + "?" + q.Encode())
	cfg := &rest.Config{Host: srv.URL}
	spdyEx, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	wsEx, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]remotecommand.Executor{"spdy": spdyEx, "websocket": wsEx}
}

func TestExecOverSPDYAndWebSocket(t *testing.T) {
	sizes := make(chan TermSize, 4)
	srv := execServer(t, &execRuntime{sizes: sizes})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	q := url.Values{"command": {"echo", "hi"}, "stdin": {"true"}, "stdout": {"true"}, "stderr": {"true"}}
	for name, ex := range executors(t, srv, "/exec/default/p1/main", q) {
		var out, errOut strings.Builder
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("from-stdin\n"), Stdout: &out, Stderr: &errOut})
		if err != nil || out.String() != "echo hi\nfrom-stdin\n" || errOut.String() != "to-stderr\n" {
			t.Fatalf("%s: exec: %v; stdout %q, stderr %q", name, err, out.String(), errOut.String())
		}
	}

	// A non-zero exit code reaches the client as kubectl's exit code.
	q = url.Values{"command": {"exit", "3"}, "stdout": {"true"}}
	for name, ex := range executors(t, srv, "/exec/default/p1/main", q) {
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: io.Discard})
		var ee exec.CodeExitError
		if !errors.As(err, &ee) || ee.Code != 3 {
			t.Fatalf("%s: exec exit 3 gave %v, want exit code 3", name, err)
		}
	}

	// A terminal: its size arrives on the resize stream.
	q = url.Values{"command": {"sh"}, "stdout": {"true"}, "tty": {"true"}}
	for name, ex := range executors(t, srv, "/exec/default/p1/main", q) {
		var out strings.Builder
		sq := &fixedSize{size: remotecommand.TerminalSize{Width: 81, Height: 25}}
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Tty: true, TerminalSizeQueue: sq})
		if err != nil || out.String() != "sh\n" {
			t.Fatalf("%s: exec with a tty: %v; stdout %q", name, err, out.String())
		}
		if sz := <-sizes; sz != (TermSize{81, 25}) {
			t.Fatalf("%s: terminal size %v, want 81x25", name, sz)
		}
	}

	// A refusal travels on the error stream with its reason.
	q = url.Values{"command": {"true"}, "stdout": {"true"}}
	for name, ex := range executors(t, srv, "/exec/default/nope/main", q) {
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "pod default/nope is not on node n1") {
			t.Fatalf("%s: exec in a missing pod gave %v", name, err)
		}
	}
}

func TestAttachRefusesStdinOverSPDY(t *testing.T) {
	srv := execServer(t, &execRuntime{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := url.Values{"stdin": {"true"}, "stdout": {"true"}}
	for name, ex := range executors(t, srv, "/attach/default/p1/main", q) {
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("x"), Stdout: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "not created with stdin: true") {
			t.Fatalf("%s: attach -i to a container without stdin gave %v", name, err)
		}
	}
}

// fixedSize gives one terminal size, then none.
type fixedSize struct {
	size remotecommand.TerminalSize
	sent bool
}

func (f *fixedSize) Next() *remotecommand.TerminalSize {
	if f.sent {
		return nil
	}
	f.sent = true
	return &f.size
}

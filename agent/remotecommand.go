package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// The remote-command protocol (exec and attach) comes over two transports: kubectl ≥ 1.30
// speaks WebSocket first (channel-prefixed binary messages, v5/v4), older kubectl (and
// newer ones falling back) speak SPDY/3.1, where every channel is a stream the client opens
// with a "streamType" header. Both end up as an rcSession, so exec and attach do not care.
const (
	rcStreamType   = "streamType"
	rcStreamError  = "error"
	rcStreamStdin  = "stdin"
	rcStreamStdout = "stdout"
	rcStreamStderr = "stderr"
	rcStreamResize = "resize"
	// rcProtocolV4 is the SPDY sub-protocol served: the error stream carries a JSON
	// metav1.Status (with the exit code for a failed command), as the kubelet's v4 does.
	// kubectl has offered it first since 1.4.
	rcProtocolV4 = "v4.channel.k8s.io"
	// rcStreamWait bounds how long an SPDY client may take to open the streams its query
	// asked for, as the kubelet's stream-creation timeout does.
	rcStreamWait = 30 * time.Second
	// rcIdle closes an SPDY session nothing moved on for this long.
	rcIdle = 4 * time.Hour
)

// errNoUpgrade is returned when a remote-command request asks for neither a WebSocket nor
// an SPDY upgrade; the client has been answered.
var errNoUpgrade = errors.New("exec and attach need a WebSocket or SPDY upgrade")

// rcOptions are the streams a remote-command request asks for.
type rcOptions struct {
	stdin, stdout, stderr, tty bool
}

// parseRCOptions reads stdin, stdout, stderr and tty from the query; a terminal merges
// stderr into stdout, so stderr is never asked for with tty.
func parseRCOptions(r *http.Request) rcOptions {
	q := r.URL.Query()
	flag := func(k string) bool { return q.Get(k) == "true" || q.Get(k) == "1" }
	o := rcOptions{stdin: flag("stdin"), stdout: flag("stdout"), stderr: flag("stderr"), tty: flag("tty")}
	if o.tty {
		o.stderr = false
	}
	return o
}

// rcSession is one upgraded remote-command session, whatever carries it. stdin (nil unless
// asked for) reads the client's input and ends with io.EOF when the client closes it or
// leaves; stdout and stderr are nil unless asked for, and safe to write concurrently;
// resize carries terminal sizes and is closed when the client stops sending them; gone is
// closed when the client leaves. finish sends the final Status and ends the session; it
// must be called exactly once.
type rcSession struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	resize         <-chan TermSize
	gone           <-chan struct{}
	finish         func(metav1.Status)
}

// fail ends a session that cannot do what was asked, saying why on the error channel: an
// answer before the upgrade would read to kubectl ≥ 1.30 as "WebSocket not supported" and
// send it off to SPDY, losing the reason.
func (s *rcSession) fail(reason metav1.StatusReason, msg string) {
	s.finish(metav1.Status{Status: metav1.StatusFailure, Reason: reason, Message: msg})
}

// openRemoteCommand upgrades r to a remote-command session over a WebSocket or SPDY. On
// failure the client has already been answered.
func openRemoteCommand(w http.ResponseWriter, r *http.Request, o rcOptions) (*rcSession, error) {
	switch {
	case websocket.IsWebSocketUpgrade(r):
		return openWSSession(w, r, o)
	case httpstream.IsUpgradeRequest(r):
		return openSPDYSession(w, r, o)
	}
	http.Error(w, errNoUpgrade.Error(), http.StatusBadRequest)
	return nil, errNoUpgrade
}

// openWSSession upgrades to the WebSocket protocol (v5 or v4) and demultiplexes the
// client's messages by their channel byte.
func openWSSession(w http.ResponseWriter, r *http.Request, o rcOptions) (*rcSession, error) {
	conn, err := execUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil, err // Upgrade answered the client
	}
	var mu sync.Mutex
	resize := make(chan TermSize, 4)
	gone := make(chan struct{})
	s := &rcSession{resize: resize, gone: gone}
	var stdinR *io.PipeReader
	var stdinW *io.PipeWriter
	if o.stdin {
		stdinR, stdinW = io.Pipe()
		s.stdin = stdinR
	}
	if o.stdout {
		s.stdout = wsWriter{&mu, conn, chanStdout}
	}
	if o.stderr {
		s.stderr = wsWriter{&mu, conn, chanStderr}
	}
	go func() {
		defer close(gone)
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
	s.finish = func(st metav1.Status) {
		if stdinR != nil {
			stdinR.CloseWithError(io.ErrClosedPipe) // unblocks the reader if nothing reads stdin
		}
		wsFinish(conn, &mu, st)
		conn.Close()
	}
	return s, nil
}

// rcStream is a stream the SPDY client opened, with the channel closed once the agent's
// reply to its creation is on the wire.
type rcStream struct {
	httpstream.Stream
	replySent <-chan struct{}
}

// openSPDYSession upgrades to SPDY/3.1 (protocol v4) and waits for the client to open the
// streams its query asked for: error always, stdin, stdout, stderr, and resize with a
// terminal.
func openSPDYSession(w http.ResponseWriter, r *http.Request, o rcOptions) (*rcSession, error) {
	proto, err := httpstream.Handshake(r, w, []string{rcProtocolV4})
	if err != nil {
		return nil, err // Handshake answered the client
	}
	if proto != rcProtocolV4 {
		msg := fmt.Sprintf("exec and attach over SPDY need the %s protocol", rcProtocolV4)
		http.Error(w, msg, http.StatusBadRequest)
		return nil, errors.New(msg)
	}
	streams := make(chan rcStream, 8)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(s httpstream.Stream, replySent <-chan struct{}) error {
		select {
		case streams <- rcStream{s, replySent}:
			return nil
		default:
			return errors.New("too many streams")
		}
	})
	if conn == nil {
		return nil, errors.New("the SPDY upgrade failed") // UpgradeResponse answered the client
	}
	conn.SetIdleTimeout(rcIdle)
	want := 1
	for _, b := range []bool{o.stdin, o.stdout, o.stderr, o.tty} {
		if b {
			want++
		}
	}
	var errStream, stdin, stdout, stderr, resizeStream httpstream.Stream
	expired := time.NewTimer(rcStreamWait)
	defer expired.Stop()
	for got := 0; got < want; got++ {
		select {
		case s := <-streams:
			switch s.Headers().Get(rcStreamType) {
			case rcStreamError:
				errStream = s
			case rcStreamStdin:
				stdin = s
			case rcStreamStdout:
				stdout = s
			case rcStreamStderr:
				stderr = s
			case rcStreamResize:
				resizeStream = s
			default:
				s.Reset()
				got--
				continue
			}
			select {
			case <-s.replySent:
			case <-expired.C:
				conn.Close()
				return nil, errors.New("timed out waiting for the client's streams")
			}
		case <-expired.C:
			conn.Close()
			return nil, errors.New("timed out waiting for the client's streams")
		case <-conn.CloseChan():
			return nil, errors.New("the client left before opening its streams")
		}
	}
	if errStream == nil {
		conn.Close()
		return nil, errors.New("the client opened no error stream")
	}
	resize := make(chan TermSize, 4)
	gone := make(chan struct{})
	go func() {
		<-conn.CloseChan()
		close(gone)
	}()
	s := &rcSession{resize: resize, gone: gone}
	if stdin != nil && o.stdin {
		s.stdin = stdin
	}
	var mu sync.Mutex
	if stdout != nil && o.stdout {
		s.stdout = &lockedWriter{mu: &mu, w: stdout}
	}
	if stderr != nil && o.stderr {
		s.stderr = &lockedWriter{mu: &mu, w: stderr}
	}
	if resizeStream != nil {
		go func() {
			defer close(resize)
			dec := json.NewDecoder(resizeStream)
			for {
				var sz struct{ Width, Height uint16 }
				if err := dec.Decode(&sz); err != nil {
					return
				}
				select {
				case resize <- TermSize{sz.Width, sz.Height}:
				default:
				}
			}
		}()
	} else {
		close(resize)
	}
	s.finish = func(st metav1.Status) {
		b, _ := json.Marshal(st)
		mu.Lock()
		_, _ = errStream.Write(b)
		mu.Unlock()
		for _, str := range []httpstream.Stream{errStream, stdout, stderr} {
			if str != nil {
				_ = str.Close()
			}
		}
		conn.Close()
	}
	return s, nil
}

// lockedWriter serialises writes from the stdout and stderr copiers onto SPDY streams.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// execStatus is the final Status of a command that ran: success, a non-zero exit code in
// the form kubectl turns into its own exit code, or the error that stopped it.
func execStatus(code int, err error) metav1.Status {
	switch {
	case err != nil:
		return metav1.Status{Status: metav1.StatusFailure, Message: err.Error(), Reason: metav1.StatusReasonInternalError}
	case code != 0:
		return metav1.Status{Status: metav1.StatusFailure, Reason: "NonZeroExitCode",
			Message: fmt.Sprintf("command terminated with non-zero exit code: exit status %d", code),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: fmt.Sprint(code)}}}}
	}
	return metav1.Status{Status: metav1.StatusSuccess}
}

package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// logEntry is one line of a container log file.
type logEntry struct {
	ts      time.Time // zero for a line written before logs carried times
	stream  string    // "stdout" or "stderr"
	partial bool      // continued by the next entry of the same stream
	content []byte
}

// parseLogLine reads one line (without its newline) of a log file: a CRI entry, or, from
// logs written before the agent timestamped them, a raw stdout line.
func parseLogLine(line []byte) logEntry {
	raw := logEntry{stream: "stdout", content: line}
	tsEnd := bytes.IndexByte(line, ' ')
	if tsEnd < 0 {
		return raw
	}
	ts, err := time.Parse(time.RFC3339Nano, string(line[:tsEnd]))
	if err != nil {
		return raw
	}
	rest := line[tsEnd+1:]
	streamEnd := bytes.IndexByte(rest, ' ')
	if streamEnd < 0 {
		return raw
	}
	stream := string(rest[:streamEnd])
	if stream != "stdout" && stream != "stderr" {
		return raw
	}
	rest = rest[streamEnd+1:]
	var tag []byte
	tag, rest, _ = bytes.Cut(rest, []byte{' '})
	if string(tag) != "F" && string(tag) != "P" {
		return raw
	}
	return logEntry{ts: ts, stream: stream, partial: string(tag) == "P", content: rest}
}

// logOptions are the kubelet's log query parameters.
type logOptions struct {
	tail       int       // last lines only; -1: all
	since      time.Time // entries before are left out; zero: all
	timestamps bool      // prefix each line with its time
	limit      int64     // stop after this many bytes; -1: no limit
	follow     bool
}

func parseLogOptions(r *http.Request, now time.Time) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{tail: -1, limit: -1, follow: q.Get("follow") == "true", timestamps: q.Get("timestamps") == "true"}
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return o, fmt.Errorf("tailLines %q is not a non-negative integer", v)
		}
		o.tail = n
	}
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("limitBytes %q is not a positive integer", v)
		}
		o.limit = n
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("sinceSeconds %q is not a positive integer", v)
		}
		o.since = now.Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, fmt.Errorf("sinceTime %q is not an RFC 3339 time", v)
		}
		o.since = t
	}
	return o, nil
}

// errLogLimit ends a read once limitBytes were written.
var errLogLimit = errors.New("log byte limit reached")

// logFormatter writes entries as `kubectl logs` shows them: content only, or with the
// time in front of each line.
type logFormatter struct {
	w           io.Writer
	opts        logOptions
	written     int64
	midLine     map[string]bool // stream → the last entry was partial
	skipPartial map[string]bool // stream → the line in progress was filtered out by since
}

func newLogFormatter(w io.Writer, opts logOptions) *logFormatter {
	return &logFormatter{w: w, opts: opts, midLine: map[string]bool{}, skipPartial: map[string]bool{}}
}

func (f *logFormatter) entry(e logEntry) error {
	continued := f.midLine[e.stream]
	f.midLine[e.stream] = e.partial
	if !continued {
		f.skipPartial[e.stream] = !f.opts.since.IsZero() && !e.ts.IsZero() && e.ts.Before(f.opts.since)
	}
	if f.skipPartial[e.stream] {
		return nil
	}
	var buf []byte
	if f.opts.timestamps && !continued && !e.ts.IsZero() {
		buf = append(buf, e.ts.Format(time.RFC3339Nano)...)
		buf = append(buf, ' ')
	}
	buf = append(buf, e.content...)
	if !e.partial {
		buf = append(buf, '\n')
	}
	if f.opts.limit >= 0 && f.written+int64(len(buf)) >= f.opts.limit {
		buf = buf[:f.opts.limit-f.written]
		_, _ = f.w.Write(buf)
		f.written = f.opts.limit
		return errLogLimit
	}
	n, err := f.w.Write(buf)
	f.written += int64(n)
	return err
}

// logReader reads a container's log file from an offset, entry by entry, and follows it
// across rotations (the writer renames the file to <file>.1 and starts a new one).
type logReader struct {
	path    string
	f       *os.File
	pending []byte // bytes of a line not complete yet
}

func openLogReader(path string) (*logReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &logReader{path: path, f: f}, nil
}

func (r *logReader) Close() error { return r.f.Close() }

// next reads what was appended since the last call and hands each complete line to fn.
func (r *logReader) next(fn func(logEntry) error) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.f.Read(buf)
		if n > 0 {
			r.pending = append(r.pending, buf[:n]...)
			for {
				i := bytes.IndexByte(r.pending, '\n')
				if i < 0 {
					break
				}
				line := r.pending[:i]
				r.pending = r.pending[i+1:]
				if ferr := fn(parseLogLine(line)); ferr != nil {
					return ferr
				}
			}
			continue
		}
		if err == io.EOF || err == nil {
			break
		}
		return err
	}
	// Rotated? Then the rest of the old file was just read: go on with the new one.
	cur, err1 := r.f.Stat()
	now, err2 := os.Stat(r.path)
	if err1 == nil && err2 == nil && inode(cur) != inode(now) {
		f, err := os.Open(r.path)
		if err == nil {
			r.f.Close()
			r.f, r.pending = f, nil
			return r.next(fn)
		}
	}
	return nil
}

// flushPartial hands over a last line without a newline (a container that ended
// mid-line, in a log written before lines carried times).
func (r *logReader) flushPartial(fn func(logEntry) error) error {
	if len(r.pending) == 0 {
		return nil
	}
	e := parseLogLine(r.pending)
	r.pending = nil
	if e.ts.IsZero() {
		e.partial = true // a raw log: print exactly what the container wrote
	}
	return fn(e)
}

// follow calls fn for the entries appended to the log until running reports false (then
// it reads what the writer still flushes) or ctx ends.
func (r *logReader) follow(ctx context.Context, fn func(logEntry) error, flush func(), running func() bool) error {
	for {
		if err := r.next(fn); err != nil {
			return err
		}
		flush()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if !running() {
			// The writer may still be draining the pipes of the exited container.
			time.Sleep(300 * time.Millisecond)
			if err := r.next(fn); err != nil {
				return err
			}
			err := r.flushPartial(fn)
			flush()
			return err
		}
	}
}

// serveLog writes a container's log to w as opts ask: the last tail lines, from since on,
// with or without times, at most limit bytes, then (follow) what is appended while running
// reports true.
func serveLog(ctx context.Context, w io.Writer, flush func(), path string, opts logOptions, running func() bool) error {
	r, err := openLogReader(path)
	if err != nil {
		return err
	}
	defer r.Close()
	f := newLogFormatter(w, opts)
	if opts.tail >= 0 {
		data, err := io.ReadAll(r.f)
		if err != nil {
			return err
		}
		complete := data[:bytes.LastIndexByte(data, '\n')+1]
		r.pending = append(r.pending, data[len(complete):]...)
		for _, line := range bytes.SplitAfter(tail(complete, opts.tail), []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			if err := f.entry(parseLogLine(line[:len(line)-1])); err != nil {
				return ignoreLimit(err)
			}
		}
	} else if err := r.next(f.entry); err != nil {
		return ignoreLimit(err)
	}
	if !opts.follow || !running() {
		return ignoreLimit(r.flushPartial(f.entry))
	}
	flush()
	return ignoreLimit(r.follow(ctx, f.entry, flush, running))
}

func ignoreLimit(err error) error {
	if errors.Is(err, errLogLimit) {
		return nil
	}
	return err
}

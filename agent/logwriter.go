package agent

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The log format is the CRI's, as the kubelet reads it: one entry a line,
//
//	<RFC3339Nano time> <stdout|stderr> <F|P> <content>
//
// where P marks a partial line (longer than maxLogLine, continued by the next entry) and F
// the end of one. The time lets `kubectl logs` serve --timestamps, --since and
// --since-time.
const maxLogLine = 16 << 10

// RunLogWriter is `skiff log-writer [flags] LOG`, the process that writes a container's
// output to its log file with a time on every line. It outlives the agent (containers do),
// so a restarted agent finds logs complete. Two ways to start it:
//
//   - containerd's shim runs it as the container's logging binary (binary:// log URI): the
//     container's stdout and stderr arrive as file descriptors 3 and 4, and closing 5 tells
//     the shim it is ready.
//   - the agent runs it for containers with stdin or a TTY (--stdin, --stdout, --stderr
//     name the FIFOs the shim uses): it reads the output FIFOs and holds the stdin FIFO
//     open, so the container's stdin stays open across attaches and agent restarts.
//
// It rotates LOG to LOG.1 past maxLogBytes and exits when the container's output ends.
func RunLogWriter(args []string) error {
	fs := flag.NewFlagSet("skiff log-writer", flag.ContinueOnError)
	stdin := fs.String("stdin", "", "stdin FIFO to hold open for the container (agent-started mode)")
	stdout := fs.String("stdout", "", "stdout FIFO to read (agent-started mode); empty: fds 3, 4 and 5 from containerd's shim")
	stderr := fs.String("stderr", "", "stderr FIFO to read (agent-started mode; none for a TTY)")
	pidFile := fs.String("pid-file", "", "write this process's pid here")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: skiff log-writer [flags] LOG\n\nWrites a container's output to LOG in the CRI log format (a time on every line).\nThe agent and containerd's shim run it; it is not meant to be run by hand.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("exactly one log file expected")
	}
	lw, err := openLogWriter(fs.Arg(0), maxLogBytes)
	if err != nil {
		return err
	}
	defer lw.Close()
	if *pidFile != "" {
		_ = os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600)
	}
	var streams []*os.File
	var names []string
	if *stdout == "" {
		streams = []*os.File{os.NewFile(3, "stdout"), os.NewFile(4, "stderr")}
		names = []string{"stdout", "stderr"}
		if ready := os.NewFile(5, "ready"); ready != nil {
			ready.Close()
		}
	} else {
		if *stdin != "" {
			// Read-write never blocks on a FIFO and counts as a writer, so the shim's
			// reader sees no end of input while this process lives.
			f, err := os.OpenFile(*stdin, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
		}
		for _, s := range []struct{ path, name string }{{*stdout, "stdout"}, {*stderr, "stderr"}} {
			if s.path == "" {
				continue
			}
			// Blocks until the shim opens its end; the agent starts the task meanwhile.
			f, err := os.OpenFile(s.path, os.O_RDONLY, 0)
			if err != nil {
				return err
			}
			streams, names = append(streams, f), append(names, s.name)
		}
	}
	var wg sync.WaitGroup
	for i, f := range streams {
		if f == nil {
			continue
		}
		wg.Add(1)
		go func(f *os.File, name string) {
			defer wg.Done()
			defer f.Close()
			lw.copyStream(f, name)
		}(f, names[i])
	}
	wg.Wait()
	return nil
}

// logWriter appends CRI log entries to one file, rotating it past max bytes. Safe for
// concurrent use by the stdout and stderr copiers.
type logWriter struct {
	mu   sync.Mutex
	path string
	f    *os.File
	size int64
	max  int64
	now  func() time.Time
}

func openLogWriter(path string, max int64) (*logWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &logWriter{path: path, f: f, size: fi.Size(), max: max, now: time.Now}, nil
}

// copyStream turns r's bytes into entries, a line each (P entries for lines past
// maxLogLine), until r ends; a last line without a newline ends as an F entry.
func (w *logWriter) copyStream(r io.Reader, stream string) {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			partial := false
			switch {
			case line[len(line)-1] == '\n':
				line = line[:len(line)-1]
			case errors.Is(err, bufio.ErrBufferFull):
				partial = true
			}
			if werr := w.write(stream, partial, line); werr != nil {
				// The disk is full or gone: keep draining, or the container blocks.
				_, _ = io.Copy(io.Discard, br)
				return
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (w *logWriter) write(stream string, partial bool, content []byte) error {
	tag := "F"
	if partial {
		tag = "P"
	}
	ts := w.now().UTC().Format(time.RFC3339Nano)
	buf := make([]byte, 0, len(ts)+len(stream)+len(content)+5)
	buf = append(buf, ts...)
	buf = append(buf, ' ')
	buf = append(buf, stream...)
	buf = append(buf, ' ')
	buf = append(buf, tag...)
	buf = append(buf, ' ')
	buf = append(buf, content...)
	buf = append(buf, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.size > 0 && w.size+int64(len(buf)) > w.max {
		w.rotate()
	}
	n, err := w.f.Write(buf)
	w.size += int64(n)
	return err
}

// rotate moves the log to <log>.1 (dropping the previous one) and starts a new file;
// readers following the old file notice the new one by its inode.
func (w *logWriter) rotate() {
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return
	}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return // keep writing to the renamed file rather than lose output
	}
	w.f.Close()
	w.f, w.size = f, 0
}

func (w *logWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// inode is a file's inode number, to tell a rotated log from its successor.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

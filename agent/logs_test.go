package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClock hands out times one second apart from a fixed start.
func fakeClock(start time.Time) func() time.Time {
	t := start.Add(-time.Second)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func writeLog(t *testing.T, path string, max int64, start time.Time, stdout, stderr string) {
	t.Helper()
	w, err := openLogWriter(path, max)
	if err != nil {
		t.Fatal(err)
	}
	w.now = fakeClock(start)
	if stdout != "" {
		w.copyStream(strings.NewReader(stdout), "stdout")
	}
	if stderr != "" {
		w.copyStream(strings.NewReader(stderr), "stderr")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLogWriterWritesCRIEntries(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0.log")
	start := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	long := strings.Repeat("x", maxLogLine+10)
	writeLog(t, p, maxLogBytes, start, "one\ntwo\n"+long+"\nlast-no-newline", "oops\n")
	b, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	want := []string{
		"2026-01-02T03:04:05.0000006Z stdout F one",
		"2026-01-02T03:04:06.0000006Z stdout F two",
		"2026-01-02T03:04:07.0000006Z stdout P " + long[:maxLogLine],
		"2026-01-02T03:04:08.0000006Z stdout F " + long[maxLogLine:],
		"2026-01-02T03:04:09.0000006Z stdout F last-no-newline",
		"2026-01-02T03:04:10.0000006Z stderr F oops",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d entries, want %d:\n%s", len(lines), len(want), b)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Fatalf("entry %d = %.80q, want %.80q", i, lines[i], want[i])
		}
	}
}

func TestLogWriterRotatesPastTheLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0.log")
	var in strings.Builder
	for i := 0; i < 100; i++ {
		in.WriteString("0123456789012345678901234567890123456789\n")
	}
	writeLog(t, p, 1000, time.Unix(0, 0), in.String(), "")
	cur, err1 := os.Stat(p)
	old, err2 := os.Stat(p + ".1")
	if err1 != nil || err2 != nil {
		t.Fatalf("rotation left %v, %v", err1, err2)
	}
	if cur.Size() > 1000 || old.Size() > 1000 || old.Size() < 900 {
		t.Fatalf("sizes after rotation: current %d, rotated %d (cap 1000)", cur.Size(), old.Size())
	}
}

func TestParseLogLine(t *testing.T) {
	e := parseLogLine([]byte("2026-01-02T03:04:05.123Z stderr P a b c"))
	if e.ts.IsZero() || e.stream != "stderr" || !e.partial || string(e.content) != "a b c" {
		t.Fatalf("parsed %+v", e)
	}
	if e := parseLogLine([]byte("2026-01-02T03:04:05Z stdout F ")); e.ts.IsZero() || len(e.content) != 0 {
		t.Fatalf("empty line parsed as %+v", e)
	}
	for _, raw := range []string{"plain output", "2026-01-02 not a time", "2026-01-02T03:04:05Z stdin F x", "2026-01-02T03:04:05Z stdout X x"} {
		if e := parseLogLine([]byte(raw)); !e.ts.IsZero() || e.stream != "stdout" || e.partial || string(e.content) != raw {
			t.Fatalf("raw line %q parsed as %+v", raw, e)
		}
	}
}

func TestServeLogHonoursOptions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0.log")
	start := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	// one at :00, two at :01, three at :02, four at :03 (partial at :03 + end at :04).
	long := strings.Repeat("y", maxLogLine)
	writeLog(t, p, maxLogBytes, start, "one\ntwo\nthree\n"+long+"end\n", "")
	serve := func(o logOptions) string {
		var out bytes.Buffer
		if err := serveLog(context.Background(), &out, func() {}, p, o, func() bool { return false }); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	all := logOptions{tail: -1, limit: -1}
	if got := serve(all); got != "one\ntwo\nthree\n"+long+"end\n" {
		t.Fatalf("plain: %.60q", got)
	}
	o := all
	o.tail = 3
	if got := serve(o); got != "three\n"+long+"end\n" {
		t.Fatalf("tail 3 (file lines): %.60q", got)
	}
	o = all
	o.since = start.Add(time.Second)
	if got := serve(o); !strings.HasPrefix(got, "two\nthree\n") {
		t.Fatalf("since :01: %.60q", got)
	}
	o = all
	o.since = start.Add(4 * time.Second) // after the line's first part: the whole line goes
	if got := serve(o); got != "" {
		t.Fatalf("since :04: %.60q", got)
	}
	o = all
	o.timestamps, o.tail = true, 2
	if got := serve(o); got != "2026-01-02T03:04:03Z "+long+"end\n" {
		t.Fatalf("timestamps: %.60q", got)
	}
	o = all
	o.limit = 6
	if got := serve(o); got != "one\ntw" {
		t.Fatalf("limit 6: %q", got)
	}
	// A raw log (from before lines had times) is served as it is.
	raw := filepath.Join(t.TempDir(), "raw.log")
	_ = os.WriteFile(raw, []byte("a\nb\nno-newline"), 0o644)
	var out bytes.Buffer
	if err := serveLog(context.Background(), &out, func() {}, raw, logOptions{tail: -1, limit: -1, timestamps: true}, func() bool { return false }); err != nil || out.String() != "a\nb\nno-newline" {
		t.Fatalf("raw log: %q %v", out.String(), err)
	}
}

func TestLogReaderFollowsRotation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0.log")
	w, err := openLogWriter(p, 300) // about four lines a file
	if err != nil {
		t.Fatal(err)
	}
	r, err := openLogReader(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	collect := func(e logEntry) error { got = append(got, string(e.content)); return nil }
	for i := 0; i < 20; i++ {
		if err := w.write("stdout", false, []byte(strings.Repeat("z", 30)+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // the reader keeps up as a follower does: at most one rotation between reads
			if err := r.next(collect); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := r.next(collect); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if len(got) != 20 {
		t.Fatalf("a follower across rotations read %d of 20 lines: %v", len(got), got)
	}
	for i, s := range got {
		if s[len(s)-1] != byte('a'+i) {
			t.Fatalf("line %d out of order: %v", i, got)
		}
	}
}

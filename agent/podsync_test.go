package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestCapLogRotatesPastTheLimit(t *testing.T) {
	a := &Agent{}
	p := filepath.Join(t.TempDir(), "0.log")
	small := []byte("line\n")
	if err := os.WriteFile(p, small, 0o644); err != nil {
		t.Fatal(err)
	}
	a.capLog(p)
	if b, _ := os.ReadFile(p); !bytes.Equal(b, small) {
		t.Fatal("a small log was rotated")
	}
	big := bytes.Repeat([]byte("x"), maxLogBytes+1)
	if err := os.WriteFile(p, big, 0o644); err != nil {
		t.Fatal(err)
	}
	a.capLog(p)
	if fi, _ := os.Stat(p); fi.Size() != 0 {
		t.Fatalf("log not truncated: %d bytes", fi.Size())
	}
	if fi, err := os.Stat(p + ".1"); err != nil || fi.Size() != int64(len(big)) {
		t.Fatalf("rotated copy missing: %v", err)
	}
}

func TestTailKeepsLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 1, "c\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 1, "c"},
		{"a\nb\n", 5, "a\nb\n"},
		{"a\n", 0, ""},
	} {
		if got := string(tail([]byte(tc.in), tc.n)); got != tc.want {
			t.Fatalf("tail(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

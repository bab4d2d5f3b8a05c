package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff/fsm"
	"skiff/master"
	"skiff/raft"
)

// captureOutput runs fn with stdout and stderr sent to a buffer, and returns it. Tests
// using it must not run in parallel.
func captureOutput(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	ferr := fn()
	os.Stdout, os.Stderr = stdout, stderr
	w.Close()
	return <-done, ferr
}

// startTestMaster runs a one-master cluster in-process and returns it with the kubeconfig
// path it wrote.
func startTestMaster(t *testing.T) (*master.Master, string) {
	t.Helper()
	m, err := master.Start(context.Background(), master.Config{
		Raft:    raft.Config{ID: "m1", DataDir: filepath.Join(t.TempDir(), "m1"), BindAddr: "127.0.0.1:0"},
		APIAddr: "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	select {
	case <-m.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the API did not start within 30s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(m.KubeconfigPath()); err == nil {
			return m, m.KubeconfigPath()
		}
		if time.Now().After(deadline) {
			t.Fatal("no kubeconfig written")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func putKV(t *testing.T, m *master.Master, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k := fsm.Key{Resource: "debugkv", Name: key}
	res, err := m.Node().Propose(ctx, &fsm.Txn{Ops: []fsm.Op{fsm.DeleteIfExists(k), fsm.Create(k, []byte(value), fsm.Meta{})}})
	if err != nil || res.Err != nil {
		t.Fatalf("put %s: %v %v", key, err, res)
	}
}

func getKV(m *master.Master, key string) (string, bool) {
	r := m.Node().FSM().State().Get(fsm.Key{Resource: "debugkv", Name: key})
	if r == nil {
		return "", false
	}
	return string(r.Value), true
}

func TestSnapshotCommands(t *testing.T) {
	m, kc := startTestMaster(t)
	putKV(t, m, "a", "one")
	dir := t.TempDir()
	file := filepath.Join(dir, "backup.snap")

	out, err := captureOutput(t, func() error { return runSnapshot([]string{"save", "--kubeconfig", kc, file}) })
	saveOut := out
	if err != nil {
		t.Fatalf("save: %v\n%s", err, out)
	}
	for _, want := range []string{"Saved " + file, "revision", "objects", "bytes", "sha256"} {
		if !strings.Contains(out, want) {
			t.Fatalf("save output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("save left %s.tmp behind", file)
	}

	out, err = captureOutput(t, func() error { return runSnapshot([]string{"inspect", file}) })
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	for _, want := range []string{"checksum verified", "Revision", "State hash", "debugkv", "by master m1"} {
		if !strings.Contains(strings.ToLower(out), strings.ToLower(want)) && !strings.Contains(out, want) {
			t.Fatalf("inspect output lacks %q:\n%s", want, out)
		}
	}

	// Both report the file's SHA-256, as sha256sum would.
	data, _ := os.ReadFile(file)
	sum := sha256.Sum256(data)
	if hexSum := hex.EncodeToString(sum[:]); strings.Count(saveOut+out, hexSum) != 2 {
		t.Fatalf("save and inspect do not both report the file's sha256 %s:\n%s\n%s", hexSum, saveOut, out)
	}

	// Damaged files: inspect says why, restore refuses without contacting the cluster.
	bad := filepath.Join(dir, "bad.snap")
	if err := os.WriteFile(bad, data[:len(data)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := captureOutput(t, func() error { return runSnapshot([]string{"inspect", bad}) }); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("inspect of a truncated file: %v", err)
	}
	if _, err := captureOutput(t, func() error { return runSnapshot([]string{"restore", "--kubeconfig", kc, "--yes", bad}) }); err == nil || !strings.Contains(err.Error(), "nothing was sent") {
		t.Fatalf("restore of a truncated file: %v", err)
	}

	putKV(t, m, "a", "changed")
	putKV(t, m, "b", "new")
	before := m.Node().FSM().State().Hash()
	out, err = captureOutput(t, func() error { return runSnapshot([]string{"restore", "--kubeconfig", kc, file}) })
	if err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("restore without --yes: %v", err)
	}
	if !strings.Contains(out, "RESOURCE") || !strings.Contains(out, "debugkv") || m.Node().FSM().State().Hash() != before {
		t.Fatalf("restore without --yes did not just show the plan:\n%s", out)
	}

	out, err = captureOutput(t, func() error { return runSnapshot([]string{"restore", "--kubeconfig", kc, "--yes", file}) })
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Restored:") || !strings.Contains(out, "committed 1 of 1") {
		t.Fatalf("restore output:\n%s", out)
	}
	if v, _ := getKV(m, "a"); v != "one" {
		t.Fatalf("a = %q after restore", v)
	}
	if _, ok := getKV(m, "b"); ok {
		t.Fatal("b survived the restore")
	}
	if err := runSnapshot([]string{"frobnicate"}); err == nil {
		t.Fatal("unknown subcommand accepted")
	}
}

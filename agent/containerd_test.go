package agent

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff/agent/testimage"
)

// startTestContainerd runs a private containerd (real binary, real runc) under a temp dir
// and returns a Runtime on it. Every container it made is removed at the end.
func startTestContainerd(t *testing.T) (*Containerd, string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "skiff-ctd-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proc, err := StartContainerd(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := NewContainerd(proc.Socket, "skiff-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if list, err := rt.List(ctx, nil); err == nil {
			for _, c := range list {
				_ = rt.Stop(ctx, c.ID, time.Second)
				_ = rt.Remove(ctx, c.ID)
			}
		}
		rt.Close()
		proc.Stop()
		_ = os.RemoveAll(dir)
	})
	var archive bytes.Buffer
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	if err := img.WriteOCIArchive(&archive); err != nil {
		t.Fatal(err)
	}
	refs, err := rt.ImportImages(ctx, &archive)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0] != testimage.BusyboxRef {
		t.Fatalf("imported %v", refs)
	}
	return rt, dir
}

func waitState(t *testing.T, rt Runtime, id string, want ContainerState) ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := rt.Status(context.Background(), id)
		if err == nil && st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: state %q (err %v), want %q", id, st.State, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestContainerdRunsBusybox(t *testing.T) {
	rt, dir := startTestContainerd(t)
	ctx := context.Background()
	v, err := rt.Version(ctx)
	if err != nil || !strings.HasPrefix(v, "containerd://") {
		t.Fatalf("version %q %v", v, err)
	}
	imgs, err := rt.Images(ctx)
	if err != nil || len(imgs) != 1 || imgs[0].Ref != testimage.BusyboxRef || imgs[0].ID == "" {
		t.Fatalf("images %+v %v", imgs, err)
	}

	// A container that prints and exits with a code; env and a bind mount reach it.
	data := filepath.Join(dir, "data")
	_ = os.MkdirAll(data, 0o755)
	_ = os.WriteFile(filepath.Join(data, "f"), []byte("from-host"), 0o644)
	logPath := filepath.Join(dir, "logs", "echo.log")
	err = rt.Start(ctx, ContainerSpec{
		ID: "echo", Image: testimage.BusyboxRef, LogPath: logPath,
		Command: []string{"sh", "-c", "echo hello $FOO; cat /data/f; exit 3"},
		Env:     []string{"FOO=bar"},
		Mounts:  []Mount{{Source: data, Target: "/data", ReadOnly: true}},
		Labels:  map[string]string{"skiff.pod": "p1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	st := waitState(t, rt, "echo", StateExited)
	if st.ExitCode != 3 || st.Labels["skiff.pod"] != "p1" || st.ImageID == "" {
		t.Fatalf("exited container: %+v", st)
	}
	logs, _ := os.ReadFile(logPath)
	if !strings.Contains(string(logs), "hello bar") || !strings.Contains(string(logs), "from-host") {
		t.Fatalf("container log: %q", logs)
	}

	// A long-running container survives a new client (an agent restart) and stops on
	// SIGTERM within its grace period.
	if err := rt.Start(ctx, ContainerSpec{ID: "sleeper", Image: testimage.BusyboxRef, Command: []string{"sleep", "3600"}, Labels: map[string]string{"skiff.pod": "p1"}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, "sleeper", StateRunning)
	again, err := NewContainerd(filepath.Join(dir, "containerd.sock"), "skiff-test")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	list, err := again.List(ctx, map[string]string{"skiff.pod": "p1"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range list {
		found = found || c.ID == "sleeper" && c.State == StateRunning
	}
	// The label filter keeps the other pod's exited container (same label) and no others.
	if !found || len(list) != 2 {
		t.Fatalf("a new client does not see the running container: %+v", list)
	}
	if err := again.Stop(ctx, "sleeper", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := waitState(t, rt, "sleeper", StateExited); st.ExitCode != 143 && st.ExitCode != 137 {
		t.Fatalf("stopped container exit code %d", st.ExitCode)
	}
	if err := rt.Remove(ctx, "sleeper"); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Status(ctx, "sleeper"); !errors.Is(err, ErrContainerNotFound) {
		t.Fatalf("removed container: %v", err)
	}

	// A process that ignores SIGTERM is killed after the grace period.
	if err := rt.Start(ctx, ContainerSpec{ID: "stubborn", Image: testimage.BusyboxRef, Command: []string{"sh", "-c", "trap '' TERM; while true; do sleep 1; done"}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, "stubborn", StateRunning)
	time.Sleep(300 * time.Millisecond) // let the shell install its trap
	if err := rt.Stop(ctx, "stubborn", 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if st := waitState(t, rt, "stubborn", StateExited); st.ExitCode != 137 {
		t.Fatalf("killed container exit code %d, want 137", st.ExitCode)
	}

	if err := rt.Start(ctx, ContainerSpec{ID: "noimage", Image: "skiff.local/missing:1", Command: []string{"true"}}); !errors.Is(err, ErrImageNotFound) {
		t.Fatalf("missing image: %v", err)
	}
}

// The pull path against an in-process registry on loopback (plain HTTP).
func TestContainerdPullsFromRegistry(t *testing.T) {
	rt, _ := startTestContainerd(t)
	reg := testimage.NewRegistry()
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Add("tools/busybox", "v1", img); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	ref := host + "/tools/busybox:v1"
	if ok, _ := rt.HasImage(ctx, ref); ok {
		t.Fatal("image present before the pull")
	}
	if _, err := rt.Pull(ctx, ref, nil); err == nil {
		t.Fatal("pulled over HTTPS from a plain-HTTP registry")
	}
	digest, err := rt.Pull(ctx, ref, []string{host})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := rt.HasImage(ctx, ref); !ok || digest == "" {
		t.Fatalf("after the pull: present=%v digest=%q", ok, digest)
	}
	if err := rt.Start(ctx, ContainerSpec{ID: "pulled", Image: ref, Command: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	if st := waitState(t, rt, "pulled", StateExited); st.ExitCode != 0 {
		t.Fatalf("pulled image's container exited %d", st.ExitCode)
	}
	if _, err := rt.Pull(ctx, host+"/tools/missing:v1", []string{host}); err == nil {
		t.Fatal("pulled an image the registry does not have")
	}
}

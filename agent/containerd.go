package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Containerd is the Runtime over a containerd socket, in its own containerd namespace so
// several agents (or other users of the same containerd) never see each other's containers.
type Containerd struct {
	client    *containerd.Client
	namespace string
	// imageIDs caches image name → digest: status is read for every container on every
	// sync pass, and the image of a container never changes.
	imageIDs sync.Map
	// logWriter is the skiff binary, run as `skiff log-writer` to timestamp container
	// output (see RunLogWriter); empty writes raw output files through the shim.
	logWriter string
}

// SetLogWriter names the skiff binary that writes container logs in the CRI format; call it
// before the first Start. Without it logs are raw (no times), and containers asking for
// stdin or a TTY cannot start.
func (c *Containerd) SetLogWriter(binary string) { c.logWriter = binary }

// NewContainerd connects to the containerd socket at address.
func NewContainerd(address, namespace string) (*Containerd, error) {
	c, err := containerd.New(address, containerd.WithDefaultNamespace(namespace), containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connecting to containerd at %s: %w", address, err)
	}
	return &Containerd{client: c, namespace: namespace}, nil
}

// Close releases the connection; containers keep running.
func (c *Containerd) Close() error { return c.client.Close() }

func (c *Containerd) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, c.namespace)
}

func (c *Containerd) Version(ctx context.Context) (string, error) {
	v, err := c.client.Version(c.ctx(ctx))
	if err != nil {
		return "", err
	}
	return "containerd://" + v.Version, nil
}

func (c *Containerd) ImportImages(ctx context.Context, archive io.Reader) ([]string, error) {
	imgs, err := c.client.Import(c.ctx(ctx), archive, containerd.WithAllPlatforms(false))
	if err != nil {
		return nil, fmt.Errorf("importing image archive: %w", err)
	}
	var refs []string
	for _, img := range imgs {
		// Unpack now, so the first container does not pay for it.
		if err := containerd.NewImage(c.client, img).Unpack(c.ctx(ctx), ""); err != nil {
			return nil, fmt.Errorf("unpacking %s: %w", img.Name, err)
		}
		refs = append(refs, img.Name)
	}
	return refs, nil
}

func (c *Containerd) Images(ctx context.Context) ([]Image, error) {
	imgs, err := c.client.ListImages(c.ctx(ctx))
	if err != nil {
		return nil, err
	}
	out := make([]Image, 0, len(imgs))
	for _, img := range imgs {
		size, _ := img.Size(c.ctx(ctx))
		out = append(out, Image{Ref: img.Name(), ID: img.Target().Digest.String(), Size: size})
	}
	return out, nil
}

func (c *Containerd) Start(ctx context.Context, spec ContainerSpec) error {
	ctx = c.ctx(ctx)
	img, err := c.client.GetImage(ctx, spec.Image)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("%w: %s", ErrImageNotFound, spec.Image)
	}
	if err != nil {
		return err
	}
	opts := []oci.SpecOpts{oci.WithImageConfig(img)}
	if len(spec.Command) > 0 {
		opts = append(opts, oci.WithProcessArgs(append(append([]string{}, spec.Command...), spec.Args...)...))
	} else if len(spec.Args) > 0 {
		opts = append(opts, withImageEntrypointAndArgs(img, spec.Args))
	}
	if len(spec.Env) > 0 {
		opts = append(opts, oci.WithEnv(spec.Env))
	}
	if spec.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkingDir))
	}
	if spec.UID != nil {
		gid := uint32(0)
		if spec.GID != nil {
			gid = uint32(*spec.GID)
		}
		opts = append(opts, oci.WithUIDGID(uint32(*spec.UID), gid))
	}
	if spec.ReadOnly {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if spec.Privileged {
		opts = append(opts, oci.WithPrivileged)
	}
	if spec.MemoryBytes > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(spec.MemoryBytes)))
	}
	if spec.CPUMillis > 0 {
		opts = append(opts, oci.WithCPUCFS(spec.CPUMillis*100, 100000))
	}
	for _, m := range spec.Mounts {
		o := []string{"rbind"}
		if m.ReadOnly {
			o = append(o, "ro")
		} else {
			o = append(o, "rw")
		}
		opts = append(opts, oci.WithMounts([]specs.Mount{{Destination: m.Target, Source: m.Source, Type: "bind", Options: o}}))
	}
	if spec.TTY {
		opts = append(opts, oci.WithTTY)
	}
	switch {
	case spec.HostNetwork:
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostHostsFile, oci.WithHostResolvconf)
	case spec.NetNSPath != "":
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: spec.NetNSPath}))
	}
	ctr, err := c.client.NewContainer(ctx, spec.ID,
		containerd.WithImage(img),
		containerd.WithNewSnapshot(spec.ID+"-rootfs", img),
		containerd.WithContainerLabels(spec.Labels),
		containerd.WithNewSpec(opts...),
	)
	if errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("creating container %s: %w", spec.ID, ErrContainerExists)
	}
	if err != nil {
		return fmt.Errorf("creating container %s: %w", spec.ID, err)
	}
	creator, writer, err := c.ioCreator(spec)
	if err != nil {
		_ = ctr.Delete(ctx, containerd.WithSnapshotCleanup)
		return err
	}
	task, err := ctr.NewTask(ctx, creator)
	if err != nil {
		if writer != nil {
			_ = writer.Process.Kill() // it waits on FIFOs no shim will open
		}
		_ = ctr.Delete(ctx, containerd.WithSnapshotCleanup)
		return fmt.Errorf("creating task for %s: %w", spec.ID, err)
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
		_ = ctr.Delete(ctx, containerd.WithSnapshotCleanup)
		return fmt.Errorf("starting %s: %w", spec.ID, err)
	}
	return nil
}

// ioCreator wires a container's stdio: output to the log writer the shim runs (binary://),
// or, for a container with stdin or a TTY, FIFOs that a log writer the agent starts reads
// and holds open (returned, so a failed start can stop it). Without a log writer, output
// goes raw to the log file.
func (c *Containerd) ioCreator(spec ContainerSpec) (cio.Creator, *exec.Cmd, error) {
	if spec.LogPath == "" {
		return cio.NullIO, nil, nil
	}
	logPath, err := filepath.Abs(spec.LogPath)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, nil, err
	}
	switch {
	case (spec.Stdin || spec.TTY) && c.logWriter == "":
		return nil, nil, errors.New("containers with stdin or a TTY need the agent's log writer")
	case spec.Stdin || spec.TTY:
	case c.logWriter != "":
		return cio.BinaryIO(c.logWriter, map[string]string{"log-writer": logPath}), nil, nil
	default:
		return cio.LogFile(logPath), nil, nil
	}
	dir := StdioDir(logPath)
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	cfg := cio.Config{Stdout: filepath.Join(dir, "stdout"), Terminal: spec.TTY}
	if spec.Stdin {
		cfg.Stdin = filepath.Join(dir, "stdin")
	}
	if !spec.TTY {
		cfg.Stderr = filepath.Join(dir, "stderr")
	}
	args := []string{"log-writer", "--pid-file", filepath.Join(dir, "writer.pid")}
	for _, f := range []struct{ flag, path string }{{"--stdin", cfg.Stdin}, {"--stdout", cfg.Stdout}, {"--stderr", cfg.Stderr}} {
		if f.path == "" {
			continue
		}
		if err := unix.Mkfifo(f.path, 0o600); err != nil {
			return nil, nil, fmt.Errorf("making %s: %w", f.path, err)
		}
		args = append(args, f.flag, f.path)
	}
	cmd := exec.Command(c.logWriter, append(args, logPath)...)
	// A session of its own: it outlives the agent, like the container it serves.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting the log writer: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return func(string) (cio.IO, error) { return &fifoIO{cfg: cfg}, nil }, cmd, nil
}

// StdioDir is where the FIFOs of a container with stdin or a TTY live, beside its log.
func StdioDir(logPath string) string {
	return strings.TrimSuffix(logPath, ".log") + ".io"
}

// fifoIO hands the shim FIFO paths that another process (the log writer) serves.
type fifoIO struct{ cfg cio.Config }

func (f *fifoIO) Config() cio.Config { return f.cfg }
func (f *fifoIO) Cancel()            {}
func (f *fifoIO) Wait()              {}
func (f *fifoIO) Close() error       { return nil }

// CloseStdin closes the stdin of container id's main process (stdinOnce after an attach).
func (c *Containerd) CloseStdin(ctx context.Context, id string) error {
	ctx = c.ctx(ctx)
	task, err := c.task(ctx, id)
	if err != nil {
		return err
	}
	return task.CloseIO(ctx, containerd.WithStdinCloser)
}

// ResizeTTY sets the terminal size of container id's main process.
func (c *Containerd) ResizeTTY(ctx context.Context, id string, size TermSize) error {
	ctx = c.ctx(ctx)
	task, err := c.task(ctx, id)
	if err != nil {
		return err
	}
	return task.Resize(ctx, uint32(size.Width), uint32(size.Height))
}

func (c *Containerd) task(ctx context.Context, id string) (containerd.Task, error) {
	ctr, err := c.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", ErrContainerNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	return ctr.Task(ctx, nil)
}

// withImageEntrypointAndArgs keeps the image's entrypoint and replaces its cmd, as
// Kubernetes does when a container sets args but not command.
func withImageEntrypointAndArgs(img containerd.Image, args []string) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *specs.Spec) error {
		cfg, err := img.Spec(ctx)
		if err != nil {
			return err
		}
		s.Process.Args = append(append([]string{}, cfg.Config.Entrypoint...), args...)
		return nil
	}
}

func (c *Containerd) Stop(ctx context.Context, id string, grace time.Duration) error {
	ctx = c.ctx(ctx)
	ctr, err := c.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("%w: %s", ErrContainerNotFound, id)
	}
	if err != nil {
		return err
	}
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil // never started or already gone
	}
	if err != nil {
		return err
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return err
	}
	if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-time.After(grace):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Containerd) Remove(ctx context.Context, id string) error {
	ctx = c.ctx(ctx)
	ctr, err := c.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if task, err := ctr.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("deleting task of %s: %w", id, err)
		}
	}
	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("deleting container %s: %w", id, err)
	}
	return nil
}

func (c *Containerd) Status(ctx context.Context, id string) (ContainerStatus, error) {
	ctx = c.ctx(ctx)
	ctr, err := c.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return ContainerStatus{}, fmt.Errorf("%w: %s", ErrContainerNotFound, id)
	}
	if err != nil {
		return ContainerStatus{}, err
	}
	return c.status(ctx, ctr)
}

func (c *Containerd) status(ctx context.Context, ctr containerd.Container) (ContainerStatus, error) {
	info, err := ctr.Info(ctx)
	if err != nil {
		return ContainerStatus{}, err
	}
	// A container is created and started in one step (Start), so its creation time is its
	// start time, and unlike the agent's memory it survives an agent restart.
	st := ContainerStatus{ID: ctr.ID(), Image: info.Image, Labels: info.Labels, State: StateCreated, StartedAt: info.CreatedAt}
	if id, ok := c.imageIDs.Load(info.Image); ok {
		st.ImageID = id.(string)
	} else if img, err := c.client.GetImage(ctx, info.Image); err == nil {
		st.ImageID = img.Target().Digest.String()
		c.imageIDs.Store(info.Image, st.ImageID)
	}
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return st, nil
	}
	if err != nil {
		// The container is there (its labels are known); only its task cannot be read now.
		st.State = StateUnknown
		return st, nil
	}
	ts, err := task.Status(ctx)
	if err != nil {
		st.State = StateUnknown
		return st, nil
	}
	st.PID = task.Pid()
	switch ts.Status {
	case containerd.Running, containerd.Paused, containerd.Pausing:
		st.State = StateRunning
	case containerd.Stopped:
		st.State, st.ExitCode, st.FinishedAt = StateExited, int(ts.ExitStatus), ts.ExitTime
	case containerd.Created:
		st.State = StateCreated
	default:
		st.State = StateUnknown
	}
	return st, nil
}

func (c *Containerd) List(ctx context.Context, labels map[string]string) ([]ContainerStatus, error) {
	ctx = c.ctx(ctx)
	var filters []string
	var clauses []string
	for k, v := range labels {
		clauses = append(clauses, fmt.Sprintf("labels.%q==%q", k, v))
	}
	if len(clauses) > 0 {
		filters = []string{strings.Join(clauses, ",")}
	}
	ctrs, err := c.client.Containers(ctx, filters...)
	if err != nil {
		return nil, err
	}
	out := make([]ContainerStatus, 0, len(ctrs))
	for _, ctr := range ctrs {
		st, err := c.status(ctx, ctr)
		switch {
		case errdefs.IsNotFound(err):
			continue // removed since it was listed
		case err != nil:
			// Leaving it out would make its pod start the same attempt again.
			return nil, fmt.Errorf("reading container %s: %w", ctr.ID(), err)
		}
		out = append(out, st)
	}
	return out, nil
}

// lockedBuffer collects an exec's stdout and stderr, written from containerd's copy
// goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// registryHTTP talks to registries. A registry that stops answering fails the pull (and
// the pod retries with back-off) instead of holding its pod's worker forever; a large
// layer that keeps arriving may take as long as it needs.
var registryHTTP = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   10 * time.Second,
	ResponseHeaderTimeout: 60 * time.Second,
	IdleConnTimeout:       90 * time.Second,
}}

func (c *Containerd) Pull(ctx context.Context, ref string, insecure []string) (string, error) {
	plain := map[string]bool{}
	for _, h := range insecure {
		plain[h] = true
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: func(host string) ([]docker.RegistryHost, error) {
		scheme := "https"
		if plain[host] {
			scheme = "http"
		}
		return []docker.RegistryHost{{Client: registryHTTP, Host: host, Scheme: scheme, Path: "/v2",
			Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve}}, nil
	}})
	img, err := c.client.Pull(c.ctx(ctx), ref, containerd.WithPullUnpack, containerd.WithResolver(resolver))
	if err != nil {
		return "", fmt.Errorf("pulling %s: %w", ref, err)
	}
	c.imageIDs.Delete(ref)
	return img.Target().Digest.String(), nil
}

func (c *Containerd) HasImage(ctx context.Context, ref string) (bool, error) {
	_, err := c.client.GetImage(c.ctx(ctx), ref)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (c *Containerd) ExecStream(ctx context.Context, id string, cmd []string, tty bool, stdin io.Reader, stdout, stderr io.Writer, resize <-chan TermSize) (int, error) {
	ctx = c.ctx(ctx)
	ctr, err := c.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return 0, fmt.Errorf("%w: %s", ErrContainerNotFound, id)
	}
	if err != nil {
		return 0, err
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return 0, err
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return 0, err
	}
	proc := *spec.Process
	proc.Args = cmd
	proc.Terminal = tty
	// containerd keeps the process's stdin open until told: notice the end of the input
	// and close it on the shim's side too, or `echo x | kubectl exec -i … cat` never ends.
	var stdinDone chan struct{}
	if stdin != nil {
		stdinDone = make(chan struct{})
		stdin = &eofNotifier{r: stdin, done: stdinDone}
	}
	opts := []cio.Opt{cio.WithStreams(stdin, stdout, stderr)}
	if tty {
		opts = append(opts, cio.WithTerminal)
	}
	execID := fmt.Sprintf("exec-%d", time.Now().UnixNano())
	p, err := task.Exec(ctx, execID, &proc, cio.NewCreator(opts...))
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	defer p.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	exited, err := p.Wait(ctx)
	if err != nil {
		return 0, err
	}
	if err := p.Start(ctx); err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	for {
		select {
		case st := <-exited:
			code, _, err := st.Result()
			// Let the output copiers drain before the caller reports the exit.
			if io := p.IO(); io != nil {
				io.Wait()
			}
			return int(code), err
		case sz, ok := <-resize:
			if ok {
				_ = p.Resize(ctx, uint32(sz.Width), uint32(sz.Height))
			} else {
				resize = nil
			}
		case <-stdinDone:
			stdinDone = nil
			_ = p.CloseIO(ctx, containerd.WithStdinCloser)
		case <-ctx.Done():
			_ = p.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
			return 0, ctx.Err()
		}
	}
}

// eofNotifier closes done when its reader reaches the end.
type eofNotifier struct {
	r    io.Reader
	done chan struct{}
	once sync.Once
}

func (e *eofNotifier) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { close(e.done) })
	}
	return n, err
}

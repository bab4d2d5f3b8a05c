// Package agent is skiff's node agent (the kubelet analogue). This file is the seam to the
// container runtime: a small interface the pod sync loop drives, with containerd behind it
// in production and an in-memory twin in unit tests.
package agent

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrContainerNotFound is returned when a runtime call names a container that does not exist.
var ErrContainerNotFound = errors.New("container not found")

// ErrImageNotFound is returned when a container's image is not present on the node.
var ErrImageNotFound = errors.New("image not found")

// ErrContainerExists is returned by Start when a container with the spec's ID exists
// already; it is left alone (it may be running).
var ErrContainerExists = errors.New("container exists already")

// ContainerSpec is what to run. Network: containers of one pod join NetNSPath (empty: a
// new namespace of their own; HostNetwork: the host's) — the seam where CNI plugs in.
type ContainerSpec struct {
	ID          string
	Image       string
	Command     []string // replaces the image's entrypoint when set
	Args        []string // replaces the image's cmd when set
	Env         []string
	WorkingDir  string
	Labels      map[string]string
	LogPath     string
	Mounts      []Mount
	UID, GID    *int64
	ReadOnly    bool
	Privileged  bool
	MemoryBytes int64 // cgroup memory limit; 0 = none
	CPUMillis   int64 // cgroup CPU quota in millicores; 0 = none
	HostNetwork bool
	NetNSPath   string
	// Stdin keeps an input open for `kubectl attach` (its FIFO is in StdioDir(LogPath));
	// TTY gives the process a terminal.
	Stdin, TTY bool
}

// Mount is a bind mount into a container.
type Mount struct {
	Source, Target string
	ReadOnly       bool
}

// ContainerState is where a container is in its life.
type ContainerState string

const (
	StateCreated ContainerState = "created"
	StateRunning ContainerState = "running"
	StateExited  ContainerState = "exited"
	StateUnknown ContainerState = "unknown"
)

// ContainerStatus is what the runtime knows about one container.
type ContainerStatus struct {
	ID         string
	Image      string
	ImageID    string
	Labels     map[string]string
	State      ContainerState
	ExitCode   int
	StartedAt  time.Time
	FinishedAt time.Time
	PID        uint32
}

// TermSize is a terminal's size.
type TermSize struct{ Width, Height uint16 }

// Image is an image present on the node.
type Image struct {
	Ref  string
	ID   string
	Size int64
}

// Runtime runs containers. Implementations are safe for concurrent use; every call
// blocks until the runtime answered or ctx ended.
type Runtime interface {
	// Version names the runtime, for the Node's status.
	Version(ctx context.Context) (string, error)
	// ImportImages loads an OCI or docker image archive and returns the refs it held.
	ImportImages(ctx context.Context, archive io.Reader) ([]string, error)
	// Pull fetches and unpacks ref from its registry (plain HTTP for hosts in insecure)
	// and returns the image's digest.
	Pull(ctx context.Context, ref string, insecure []string) (string, error)
	// HasImage reports whether ref is present.
	HasImage(ctx context.Context, ref string) (bool, error)
	// Images lists the images present.
	Images(ctx context.Context) ([]Image, error)
	// Start creates and starts a container.
	Start(ctx context.Context, spec ContainerSpec) error
	// Stop sends SIGTERM, waits up to grace for the main process to exit, then SIGKILL.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove deletes a stopped container and its snapshot.
	Remove(ctx context.Context, id string) error
	// Status reports one container (ErrContainerNotFound if absent).
	Status(ctx context.Context, id string) (ContainerStatus, error)
	// ExecStream runs cmd in a running container with the given streams (stdin may be nil),
	// a terminal when tty is set (resize carries its size changes), and returns the exit
	// code once the command ends.
	ExecStream(ctx context.Context, id string, cmd []string, tty bool, stdin io.Reader, stdout, stderr io.Writer, resize <-chan TermSize) (int, error)
	// CloseStdin closes the stdin of a container's main process (started with Stdin).
	CloseStdin(ctx context.Context, id string) error
	// ResizeTTY sets the terminal size of a container's main process (started with TTY).
	ResizeTTY(ctx context.Context, id string, size TermSize) error
	// List reports the containers this agent created (its namespace) whose labels include
	// every given label (nil: all), for adoption after an agent restart.
	List(ctx context.Context, labels map[string]string) ([]ContainerStatus, error)
}

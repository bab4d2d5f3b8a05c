package agent

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"
)

// fakeRuntime is the in-memory twin of Runtime: the project keeps a small interface at
// every I/O boundary and a twin of it for unit tests, so the pod lifecycle can be tested
// without containerd. Containers are records that "run" until the test ends them (exit) or
// the agent stops them; nothing executes. It mirrors containerd's answers where the agent
// depends on them: Start fails with ErrImageNotFound before ErrContainerExists, Remove of
// an absent container succeeds, Stop of a container that is not running is a no-op.
//
// Besides the Runtime methods it has controls for tests (put, exit, setState, failStarts,
// failNextList, hideUntilStartTried, blockStarts, setExec) and records the calls that
// change containers, so tests can assert on what the agent did, not only on what it
// reported. It is safe for concurrent use.
type fakeRuntime struct {
	mu     sync.Mutex
	images map[string]string // ref → image ID
	ctrs   map[string]*ContainerStatus
	calls  []fakeCall
	lists  int // List calls so far, failed ones included

	// The next startFails Start calls fail with startErr; the next List with listErr.
	startFails int
	startErr   error
	listErr    error
	// hidden containers are left out of List until the agent tries to Start them again,
	// as a runtime whose listing missed a container would show it.
	hidden map[string]bool
	gate   *startGate
	exec   func(id string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
}

// fakeCall is one call that changed (or tried to change) a container.
type fakeCall struct {
	Op    string // "start", "stop" or "remove"
	ID    string
	Grace time.Duration // for "stop"
	Err   error         // what the call returned
}

// startGate holds the Start calls it matches until released: a slow image pull or a
// wedged runtime, for one pod only.
type startGate struct {
	match   func(ContainerSpec) bool
	entered chan string // IDs of the held Start calls, as they arrive
	release chan struct{}
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{images: map[string]string{}, ctrs: map[string]*ContainerStatus{}, hidden: map[string]bool{}}
}

func imageID(ref string) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(ref)))
}

// addImage makes ref present on the "node".
func (f *fakeRuntime) addImage(ref string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[ref] = imageID(ref)
}

// exit ends container id's process with code, as if it had exited by itself.
func (f *fakeRuntime) exit(id string, code int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrs[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrContainerNotFound, id)
	}
	if c.State != StateRunning {
		return fmt.Errorf("container %s is %s, not running", id, c.State)
	}
	c.State, c.ExitCode, c.FinishedAt, c.PID = StateExited, code, time.Now(), 0
	return nil
}

// put adds a container as a previous run of the agent could have left it.
func (f *fakeRuntime) put(c ContainerStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.Labels = maps.Clone(c.Labels)
	f.ctrs[c.ID] = &c
}

// setState puts container id in state, as a runtime that cannot read a container's task
// for a while reports it StateUnknown and then reads it again.
func (f *fakeRuntime) setState(id string, state ContainerState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrs[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrContainerNotFound, id)
	}
	c.State = state
	return nil
}

// failStarts makes the next n Start calls fail with err (n = 0 stops failing).
func (f *fakeRuntime) failStarts(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startFails, f.startErr = n, err
}

// failNextList makes the next List call fail with err.
func (f *fakeRuntime) failNextList(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listErr = err
}

// hideUntilStartTried leaves container id out of every List until a Start names it.
func (f *fakeRuntime) hideUntilStartTried(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hidden[id] = true
}

// blockStarts holds every Start whose spec matches until release is called (or the
// call's context ends); entered receives the ID of each held call. Only one gate is
// active at a time.
func (f *fakeRuntime) blockStarts(match func(ContainerSpec) bool) (entered <-chan string, release func()) {
	g := &startGate{match: match, entered: make(chan string, 16), release: make(chan struct{})}
	f.mu.Lock()
	f.gate = g
	f.mu.Unlock()
	var once sync.Once
	return g.entered, func() {
		once.Do(func() {
			f.mu.Lock()
			if f.gate == g {
				f.gate = nil
			}
			f.mu.Unlock()
			close(g.release)
		})
	}
}

// setExec makes ExecStream run fn (for exec probes and `kubectl exec`).
func (f *fakeRuntime) setExec(fn func(id string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exec = fn
}

// callsOf returns the recorded calls of op ("start", "stop", "remove") naming id ("" for
// any), in order.
func (f *fakeRuntime) callsOf(op, id string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.Op == op && (id == "" || c.ID == id) {
			out = append(out, c)
		}
	}
	return out
}

// listCount is how many List calls the agent has made: each sync pass makes at least one.
func (f *fakeRuntime) listCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

// Version names the fake.
func (f *fakeRuntime) Version(context.Context) (string, error) { return "fake://1.0", nil }

// ImportImages reads an "archive" of image refs, one a line, and makes them present.
func (f *fakeRuntime) ImportImages(_ context.Context, archive io.Reader) ([]string, error) {
	var refs []string
	s := bufio.NewScanner(archive)
	for s.Scan() {
		if ref := strings.TrimSpace(s.Text()); ref != "" {
			refs = append(refs, ref)
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	for _, ref := range refs {
		f.addImage(ref)
	}
	return refs, nil
}

// Pull always succeeds: the image is present afterwards.
func (f *fakeRuntime) Pull(_ context.Context, ref string, _ []string) (string, error) {
	f.addImage(ref)
	return imageID(ref), nil
}

func (f *fakeRuntime) HasImage(_ context.Context, ref string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.images[ref]
	return ok, nil
}

func (f *fakeRuntime) Images(context.Context) ([]Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Image
	for ref, id := range f.images {
		out = append(out, Image{Ref: ref, ID: id, Size: 1 << 20})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// Start "runs" spec at once, unless a gate holds it, its image is absent, the ID is taken
// or the test asked for failures. A failed Start leaves no container behind.
func (f *fakeRuntime) Start(ctx context.Context, spec ContainerSpec) error {
	f.mu.Lock()
	g := f.gate
	f.mu.Unlock()
	if g != nil && g.match(spec) {
		select {
		case g.entered <- spec.ID:
		default:
		}
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.start(spec)
	f.calls = append(f.calls, fakeCall{Op: "start", ID: spec.ID, Err: err})
	return err
}

func (f *fakeRuntime) start(spec ContainerSpec) error {
	delete(f.hidden, spec.ID)
	img, ok := f.images[spec.Image]
	if !ok {
		return fmt.Errorf("%w: %s", ErrImageNotFound, spec.Image)
	}
	if _, ok := f.ctrs[spec.ID]; ok {
		return fmt.Errorf("creating container %s: %w", spec.ID, ErrContainerExists)
	}
	if f.startFails > 0 {
		f.startFails--
		return f.startErr
	}
	f.ctrs[spec.ID] = &ContainerStatus{ID: spec.ID, Image: spec.Image, ImageID: img, Labels: maps.Clone(spec.Labels),
		State: StateRunning, StartedAt: time.Now(), PID: uint32(1000 + len(f.calls))}
	return nil
}

// Stop ends a running container at once: exit code 143 (it honoured SIGTERM), or 137
// (SIGKILL) when there is no grace.
func (f *fakeRuntime) Stop(_ context.Context, id string, grace time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrs[id]
	var err error
	switch {
	case !ok:
		err = fmt.Errorf("%w: %s", ErrContainerNotFound, id)
	case c.State == StateRunning:
		c.State, c.ExitCode, c.FinishedAt, c.PID = StateExited, 143, time.Now(), 0
		if grace <= 0 {
			c.ExitCode = 137
		}
	}
	f.calls = append(f.calls, fakeCall{Op: "stop", ID: id, Grace: grace, Err: err})
	return err
}

// Remove deletes a container whatever its state; an absent one is no error (containerd's
// Remove is idempotent too).
func (f *fakeRuntime) Remove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ctrs, id)
	f.calls = append(f.calls, fakeCall{Op: "remove", ID: id})
	return nil
}

func (f *fakeRuntime) Status(_ context.Context, id string) (ContainerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrs[id]
	if !ok {
		return ContainerStatus{}, fmt.Errorf("%w: %s", ErrContainerNotFound, id)
	}
	return copyStatus(c), nil
}

// ExecStream runs the test's exec func in a running container.
func (f *fakeRuntime) ExecStream(_ context.Context, id string, cmd []string, _ bool, stdin io.Reader, stdout, stderr io.Writer, _ <-chan TermSize) (int, error) {
	f.mu.Lock()
	c, ok := f.ctrs[id]
	running := ok && c.State == StateRunning
	fn := f.exec
	f.mu.Unlock()
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: %s", ErrContainerNotFound, id)
	case !running:
		return 0, fmt.Errorf("container %s is not running", id)
	case fn == nil:
		return 0, errors.New("fakeRuntime: no exec func set")
	}
	return fn(id, cmd, stdin, stdout, stderr)
}

func (f *fakeRuntime) CloseStdin(_ context.Context, id string) error { return f.needRunning(id) }

func (f *fakeRuntime) ResizeTTY(_ context.Context, id string, _ TermSize) error {
	return f.needRunning(id)
}

func (f *fakeRuntime) needRunning(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrs[id]
	switch {
	case !ok:
		return fmt.Errorf("%w: %s", ErrContainerNotFound, id)
	case c.State != StateRunning:
		return fmt.Errorf("container %s is not running", id)
	}
	return nil
}

// List reports the containers carrying every given label, by ID, leaving out hidden ones.
func (f *fakeRuntime) List(_ context.Context, labels map[string]string) ([]ContainerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if err := f.listErr; err != nil {
		f.listErr = nil
		return nil, err
	}
	out := []ContainerStatus{}
	for id, c := range f.ctrs {
		if f.hidden[id] || !hasLabels(c.Labels, labels) {
			continue
		}
		out = append(out, copyStatus(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// copyStatus copies c so callers never share its labels map with the fake.
func copyStatus(c *ContainerStatus) ContainerStatus {
	out := *c
	out.Labels = maps.Clone(c.Labels)
	return out
}

var _ Runtime = (*fakeRuntime)(nil)

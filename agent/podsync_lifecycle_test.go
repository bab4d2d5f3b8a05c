package agent

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"skiff/master/api/apitest"
)

// These tests drive the agent's pod lifecycle (podsync.go, backoff.go) end to end, except
// for containerd: a real agent.Agent runs against the in-process API cluster (real Raft,
// real HTTPS) and the in-memory fakeRuntime. Tests act as the container processes (exit
// with a code) and as users (create, update status, delete through client-go), and assert
// on the pod status read back from the API and on the calls the runtime saw. They never
// run in parallel: some lower the package's back-off variables.

// lifecycleImage is the one image the fake has unless a test says otherwise.
const lifecycleImage = "registry.test/busybox:1.36"

// lifecycleWait bounds every wait: generous, since two cores are shared with the race
// detector and other work; a healthy run takes a fraction of it.
const lifecycleWait = 30 * time.Second

// lifecycle is one test's world: an API cluster, a fake runtime, clients, and the agents
// the test runs on them.
type lifecycle struct {
	t       *testing.T
	rt      *fakeRuntime
	cs      kubernetes.Interface
	client  *Client
	node    string
	dataDir string
	log     *slog.Logger
	running atomic.Int32 // agents running now
}

// newLifecycle starts a one-master API over TLS and builds the agent's client and a
// client-go client against it; the agent starts with startAgent.
func newLifecycle(t *testing.T) *lifecycle {
	t.Helper()
	w := &testLogWriter{t: t}
	t.Cleanup(w.stop) // runs last: agent goroutines outliving the test (event posts) must not t.Log
	ac := apitest.Start(t, 1, true, nil)
	srv := ac.Servers[0]
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	client, err := NewClient(caPEM, ac.Token, []string{srv.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, BearerToken: ac.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, QPS: 1000, Burst: 1000, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rt := newFakeRuntime()
	rt.addImage(lifecycleImage)
	return &lifecycle{t: t, rt: rt, cs: cs, client: client, node: "node-1", dataDir: t.TempDir(),
		log: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))}
}

// setBackoff lowers the restart back-off for this test. The agent reads the variables
// without a lock, so they may change only while no agent runs; the restore is a cleanup
// registered before any agent's, so it runs after they stopped.
func (l *lifecycle) setBackoff(base, max time.Duration) {
	l.t.Helper()
	if l.running.Load() > 0 {
		l.t.Fatal("setBackoff while an agent runs: call it before startAgent")
	}
	oldBase, oldMax := backoffBase, backoffMax
	backoffBase, backoffMax = base, max
	l.t.Cleanup(func() { backoffBase, backoffMax = oldBase, oldMax })
}

// startAgent runs an agent on the fake runtime until stop is called or the test ends.
// Stopping waits for Run to return, which waits for every pod sync.
func (l *lifecycle) startAgent() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	a := New(Config{Name: l.node, DataDir: l.dataDir, Address: "127.0.0.1", Runtime: l.rt, Client: l.client,
		Logger: l.log, Resync: 100 * time.Millisecond})
	done := make(chan struct{})
	l.running.Add(1)
	go func() {
		defer close(done)
		_ = a.Run(ctx) // nil, or ctx's error when stopped before registering
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			l.running.Add(-1)
		})
	}
	l.t.Cleanup(stop)
	return stop
}

// testLogWriter sends the agent's log to t.Log (shown for failed tests) until stop.
type testLogWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

func lifecycleContainer(name string) corev1.Container {
	return corev1.Container{Name: name, Image: lifecycleImage, ImagePullPolicy: corev1.PullIfNotPresent}
}

// newPod is a pod bound to the agent with one container, "main". Pods use the host's
// network: with Config.Network nil a pod of its own network would make the agent create a
// real network namespace on this host.
func (l *lifecycle) newPod(name string, policy corev1.RestartPolicy) *corev1.Pod {
	grace := int64(30)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: l.node, HostNetwork: true, RestartPolicy: policy,
			TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{lifecycleContainer("main")}},
	}
}

func (l *lifecycle) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), lifecycleWait)
	l.t.Cleanup(cancel)
	return ctx
}

// create creates p and returns it as stored (with its UID).
func (l *lifecycle) create(p *corev1.Pod) *corev1.Pod {
	l.t.Helper()
	out, err := l.cs.CoreV1().Pods(p.Namespace).Create(l.ctx(), p, metav1.CreateOptions{})
	if err != nil {
		l.t.Fatalf("creating pod %s: %v", p.Name, err)
	}
	return out
}

func (l *lifecycle) get(name string) *corev1.Pod {
	l.t.Helper()
	p, err := l.cs.CoreV1().Pods("default").Get(l.ctx(), name, metav1.GetOptions{})
	if err != nil {
		l.t.Fatalf("reading pod %s: %v", name, err)
	}
	return p
}

// waitPod polls pod name until ok holds and returns it; what says what is awaited. On
// timeout it fails the test with the last status seen.
func (l *lifecycle) waitPod(name, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	l.t.Helper()
	deadline := time.Now().Add(lifecycleWait)
	var last *corev1.Pod
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := l.cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		cancel()
		if err == nil && ok(p) {
			return p
		}
		last, lastErr = p, err
		time.Sleep(20 * time.Millisecond)
	}
	if lastErr != nil {
		l.t.Fatalf("pod %s: %s: not within %s; last read failed: %v", name, what, lifecycleWait, lastErr)
	}
	l.t.Fatalf("pod %s: %s: not within %s; last status:\n%s", name, what, lifecycleWait, statusJSON(last))
	return nil
}

// waitFor polls a condition on the fake runtime.
func (l *lifecycle) waitFor(what string, ok func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(lifecycleWait)
	for !ok() {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: not within %s", what, lifecycleWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPasses waits until the agent has made n more sync passes (each lists the
// containers), so "nothing happened" is asserted after the agent had its chances.
func (l *lifecycle) waitPasses(n int) {
	l.t.Helper()
	target := l.rt.listCount() + n
	l.waitFor(fmt.Sprintf("%d more sync passes", n), func() bool { return l.rt.listCount() >= target })
}

// exit ends container id with code, as its process would.
func (l *lifecycle) exit(id string, code int) {
	l.t.Helper()
	if err := l.rt.exit(id, code); err != nil {
		l.t.Fatal(err)
	}
}

// started reports whether the fake started container id (a successful Start).
func (l *lifecycle) started(id string) bool {
	for _, c := range l.rt.callsOf("start", id) {
		if c.Err == nil {
			return true
		}
	}
	return false
}

// successfulStarts lists, in order, the IDs of the containers the fake started for pod uid.
func (l *lifecycle) successfulStarts(uid string) []string {
	var out []string
	for _, c := range l.rt.callsOf("start", "") {
		if c.Err == nil && strings.HasPrefix(c.ID, uid+"-") {
			out = append(out, c.ID)
		}
	}
	return out
}

func statusJSON(p *corev1.Pod) string {
	if p == nil {
		return "(none)"
	}
	b, _ := json.MarshalIndent(p.Status, "", "  ")
	return string(b)
}

// ctrStatus finds container name's status among p's containers and init containers.
func ctrStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// runningAs reports whether container name runs as container ID id.
func runningAs(p *corev1.Pod, name, id string) bool {
	cs := ctrStatus(p, name)
	return cs != nil && cs.State.Running != nil && cs.ContainerID == "containerd://"+id
}

// terminated returns container name's Terminated state, nil unless it is terminated.
func terminated(p *corev1.Pod, name string) *corev1.ContainerStateTerminated {
	if cs := ctrStatus(p, name); cs != nil {
		return cs.State.Terminated
	}
	return nil
}

// A pod runs with every condition True and its container reported running; under
// restartPolicy Never an exit 0 makes it Succeeded and an exit 1 Failed, and neither
// container is started again.
func TestLifecycleNeverPodRunsThenCompletes(t *testing.T) {
	l := newLifecycle(t)
	l.startAgent()

	ok := l.create(l.newPod("ok", corev1.RestartPolicyNever))
	id := containerID(ok, "main", 0)
	p := l.waitPod("ok", "running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
	})
	for _, c := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		if s := podCondition(p, c); s != corev1.ConditionTrue {
			t.Errorf("condition %s is %q, want True", c, s)
		}
	}
	cs := ctrStatus(p, "main")
	switch {
	case cs == nil:
		t.Fatalf("no status for container main:\n%s", statusJSON(p))
	case cs.State.Running == nil:
		t.Errorf("main not running: %+v", cs.State)
	case cs.ContainerID != "containerd://"+id:
		t.Errorf("containerID %q, want containerd://%s", cs.ContainerID, id)
	case cs.RestartCount != 0 || !cs.Ready || cs.Started == nil || !*cs.Started:
		t.Errorf("restartCount %d, ready %v, started %v; want 0, true, true", cs.RestartCount, cs.Ready, cs.Started)
	case cs.ImageID != imageID(lifecycleImage):
		t.Errorf("imageID %q, want the runtime's %q", cs.ImageID, imageID(lifecycleImage))
	}
	if p.Status.StartTime == nil || p.Status.HostIP != "127.0.0.1" {
		t.Errorf("startTime %v, hostIP %q; want set, 127.0.0.1", p.Status.StartTime, p.Status.HostIP)
	}

	l.exit(id, 0)
	p = l.waitPod("ok", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	if term := terminated(p, "main"); term == nil || term.ExitCode != 0 || term.Reason != "Completed" {
		t.Errorf("main after exit 0: %+v, want terminated, exit 0, Completed", ctrStatus(p, "main").State)
	}
	if s := podCondition(p, corev1.PodReady); s != corev1.ConditionFalse {
		t.Errorf("a finished pod is Ready=%q, want False", s)
	}

	bad := l.create(l.newPod("bad", corev1.RestartPolicyNever))
	badID := containerID(bad, "main", 0)
	l.waitPod("bad", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", badID) })
	l.exit(badID, 1)
	p = l.waitPod("bad", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := terminated(p, "main"); term == nil || term.ExitCode != 1 || term.Reason != "Error" {
		t.Errorf("main after exit 1: %+v, want terminated, exit 1, Error", ctrStatus(p, "main").State)
	}

	l.waitPasses(3)
	for _, pod := range []*corev1.Pod{ok, bad} {
		if got := l.successfulStarts(string(pod.UID)); len(got) != 1 {
			t.Errorf("pod %s: containers started %v, want only the first attempt (restartPolicy Never)", pod.Name, got)
		}
	}
}

// Under restartPolicy Always a failed container is restarted at once the first time, and
// after its second failure waits in CrashLoopBackOff, its exit as the last state, with the
// pod Running (a crash-looping pod does not go back to Pending).
func TestLifecycleAlwaysRestartsThenCrashLoops(t *testing.T) {
	l := newLifecycle(t)
	// A back-off far longer than the test's waits: the first restart is seen only if it
	// is immediate, and CrashLoopBackOff lasts for as long as the test looks at it.
	l.setBackoff(10*time.Minute, 10*time.Minute)
	l.startAgent()

	pod := l.create(l.newPod("crashy", corev1.RestartPolicyAlways))
	id0, id1, id2 := containerID(pod, "main", 0), containerID(pod, "main", 1), containerID(pod, "main", 2)
	l.waitPod("crashy", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", id0) })

	l.exit(id0, 1)
	p := l.waitPod("crashy", "restarted once", func(p *corev1.Pod) bool { return runningAs(p, "main", id1) })
	cs := ctrStatus(p, "main")
	if cs.RestartCount != 1 {
		t.Errorf("restartCount %d after one restart, want 1", cs.RestartCount)
	}
	if last := cs.LastTerminationState.Terminated; last == nil || last.ExitCode != 1 || last.ContainerID != "containerd://"+id0 {
		t.Errorf("lastState %+v, want attempt 0's exit 1", cs.LastTerminationState)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running", p.Status.Phase)
	}

	l.exit(id1, 1)
	p = l.waitPod("crashy", "in CrashLoopBackOff", func(p *corev1.Pod) bool {
		cs := ctrStatus(p, "main")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
	})
	cs = ctrStatus(p, "main")
	if last := cs.LastTerminationState.Terminated; last == nil || last.ExitCode != 1 {
		t.Errorf("lastState %+v, want the exit 1", cs.LastTerminationState)
	}
	if cs.RestartCount != 1 || cs.Ready {
		t.Errorf("restartCount %d, ready %v; want 1, false", cs.RestartCount, cs.Ready)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s in CrashLoopBackOff, want Running", p.Status.Phase)
	}
	if s := podCondition(p, corev1.ContainersReady); s != corev1.ConditionFalse {
		t.Errorf("ContainersReady %q in CrashLoopBackOff, want False", s)
	}
	l.waitPasses(3)
	if l.started(id2) {
		t.Error("attempt 2 started during the back-off")
	}
	if p := l.get("crashy"); ctrStatus(p, "main").State.Waiting == nil {
		t.Errorf("the back-off ended early:\n%s", statusJSON(p))
	}
}

// Once the back-off has elapsed a crash-looping container is started again.
func TestLifecycleCrashLoopRestartsAfterBackOff(t *testing.T) {
	l := newLifecycle(t)
	l.setBackoff(300*time.Millisecond, 300*time.Millisecond)
	l.startAgent()

	pod := l.create(l.newPod("crashy", corev1.RestartPolicyAlways))
	for n := 0; n < 3; n++ {
		id := containerID(pod, "main", n)
		l.waitPod("crashy", fmt.Sprintf("attempt %d running", n), func(p *corev1.Pod) bool { return runningAs(p, "main", id) })
		l.exit(id, 2)
	}
	p := l.waitPod("crashy", "attempt 3 running", func(p *corev1.Pod) bool { return runningAs(p, "main", containerID(pod, "main", 3)) })
	if cs := ctrStatus(p, "main"); cs.RestartCount != 3 || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 2 {
		t.Errorf("restartCount %d, lastState %+v; want 3 and exit 2", cs.RestartCount, cs.LastTerminationState)
	}
	// Only the previous attempt is kept (for logs --previous); older ones are removed.
	l.waitFor("attempt 1 removed", func() bool {
		_, err := l.rt.Status(context.Background(), containerID(pod, "main", 1))
		return errors.Is(err, ErrContainerNotFound)
	})
	if _, err := l.rt.Status(context.Background(), containerID(pod, "main", 2)); err != nil {
		t.Errorf("the previous attempt is gone: %v", err)
	}
}

// Under OnFailure an exit 0 completes the pod without a restart and an exit 1 restarts.
func TestLifecycleOnFailure(t *testing.T) {
	l := newLifecycle(t)
	l.startAgent()

	done := l.create(l.newPod("done", corev1.RestartPolicyOnFailure))
	doneID := containerID(done, "main", 0)
	l.waitPod("done", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", doneID) })
	l.exit(doneID, 0)
	p := l.waitPod("done", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	if cs := ctrStatus(p, "main"); cs.RestartCount != 0 || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
		t.Errorf("main %+v restartCount %d, want terminated with exit 0, no restart", cs.State, cs.RestartCount)
	}

	failing := l.create(l.newPod("failing", corev1.RestartPolicyOnFailure))
	id0, id1 := containerID(failing, "main", 0), containerID(failing, "main", 1)
	l.waitPod("failing", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", id0) })
	l.exit(id0, 1)
	p = l.waitPod("failing", "restarted", func(p *corev1.Pod) bool { return runningAs(p, "main", id1) })
	if cs := ctrStatus(p, "main"); cs.RestartCount != 1 || p.Status.Phase != corev1.PodRunning {
		t.Errorf("restartCount %d, phase %s; want 1, Running", cs.RestartCount, p.Status.Phase)
	}

	l.waitPasses(3)
	if got := l.successfulStarts(string(done.UID)); len(got) != 1 {
		t.Errorf("the pod that exited 0 under OnFailure had containers %v started, want one", got)
	}
}

// Init containers run one at a time, in order, each after the previous one exited 0, and
// the main container only after all of them; meanwhile the pod is Pending, not
// Initialized.
func TestLifecycleInitContainersRunInOrder(t *testing.T) {
	l := newLifecycle(t)
	l.startAgent()

	spec := l.newPod("inits", corev1.RestartPolicyAlways)
	spec.Spec.InitContainers = []corev1.Container{lifecycleContainer("first"), lifecycleContainer("second")}
	pod := l.create(spec)
	first, second, main := containerID(pod, "first", 0), containerID(pod, "second", 0), containerID(pod, "main", 0)

	p := l.waitPod("inits", "first init container running", func(p *corev1.Pod) bool { return runningAs(p, "first", first) })
	if p.Status.Phase != corev1.PodPending || podCondition(p, corev1.PodInitialized) != corev1.ConditionFalse {
		t.Errorf("phase %s, Initialized %q while initializing; want Pending, False", p.Status.Phase, podCondition(p, corev1.PodInitialized))
	}
	l.waitPasses(3)
	if l.started(second) || l.started(main) {
		t.Fatal("a container started while the first init container runs")
	}

	l.exit(first, 0)
	l.waitPod("inits", "second init container running", func(p *corev1.Pod) bool { return runningAs(p, "second", second) })
	l.waitPasses(3)
	if l.started(main) {
		t.Fatal("the main container started while the second init container runs")
	}

	l.exit(second, 0)
	p = l.waitPod("inits", "running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && runningAs(p, "main", main) })
	if s := podCondition(p, corev1.PodInitialized); s != corev1.ConditionTrue {
		t.Errorf("Initialized %q once the init containers completed, want True", s)
	}
	for _, name := range []string{"first", "second"} {
		if term := terminated(p, name); term == nil || term.ExitCode != 0 {
			t.Errorf("init container %s: %+v, want terminated with exit 0", name, ctrStatus(p, name))
		}
	}
	if got, want := l.successfulStarts(string(pod.UID)), []string{first, second, main}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("start order %v, want %v", got, want)
	}
}

// A failing init container fails the pod under Never (the main container never starts)
// and is retried under Always until it succeeds.
func TestLifecycleFailingInitContainer(t *testing.T) {
	l := newLifecycle(t)
	l.setBackoff(10*time.Minute, 10*time.Minute) // only the immediate first retry matters
	l.startAgent()

	withInit := func(name string, policy corev1.RestartPolicy) *corev1.Pod {
		p := l.newPod(name, policy)
		p.Spec.InitContainers = []corev1.Container{lifecycleContainer("init")}
		return l.create(p)
	}

	never := withInit("never", corev1.RestartPolicyNever)
	neverInit := containerID(never, "init", 0)
	l.waitPod("never", "init running", func(p *corev1.Pod) bool { return runningAs(p, "init", neverInit) })
	l.exit(neverInit, 1)
	p := l.waitPod("never", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := terminated(p, "init"); term == nil || term.ExitCode != 1 {
		t.Errorf("init: %+v, want terminated with exit 1", ctrStatus(p, "init"))
	}

	always := withInit("always", corev1.RestartPolicyAlways)
	init0, init1 := containerID(always, "init", 0), containerID(always, "init", 1)
	l.waitPod("always", "init running", func(p *corev1.Pod) bool { return runningAs(p, "init", init0) })
	l.exit(init0, 1)
	p = l.waitPod("always", "init retried", func(p *corev1.Pod) bool { return runningAs(p, "init", init1) })
	if cs := ctrStatus(p, "init"); cs.RestartCount != 1 || p.Status.Phase != corev1.PodPending {
		t.Errorf("init restartCount %d, phase %s; want 1, Pending", cs.RestartCount, p.Status.Phase)
	}
	l.exit(init1, 0)
	l.waitPod("always", "main running", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && runningAs(p, "main", containerID(always, "main", 0))
	})

	l.waitPasses(3)
	if got := l.successfulStarts(string(never.UID)); len(got) != 1 {
		t.Errorf("pod never: started %v, want only its init container's first attempt", got)
	}
}

// A container whose Start fails waits with CreateContainerError (the runtime's message),
// is retried with back-off, and runs once the runtime recovers; a failed start is not a
// restart.
func TestLifecycleStartFailureIsRetried(t *testing.T) {
	l := newLifecycle(t)
	l.setBackoff(100*time.Millisecond, 200*time.Millisecond)
	l.rt.failStarts(1<<30, errors.New("runc create failed: boom"))
	l.startAgent()

	pod := l.create(l.newPod("flaky", corev1.RestartPolicyAlways))
	id := containerID(pod, "main", 0)
	p := l.waitPod("flaky", "CreateContainerError", func(p *corev1.Pod) bool {
		cs := ctrStatus(p, "main")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CreateContainerError"
	})
	if msg := ctrStatus(p, "main").State.Waiting.Message; !strings.Contains(msg, "boom") {
		t.Errorf("waiting message %q does not carry the runtime's error", msg)
	}
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s before any container ran, want Pending", p.Status.Phase)
	}
	l.waitFor("the start retried", func() bool { return len(l.rt.callsOf("start", id)) >= 3 })

	l.rt.failStarts(0, nil)
	p = l.waitPod("flaky", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", id) })
	if cs := ctrStatus(p, "main"); cs.RestartCount != 0 || p.Status.Phase != corev1.PodRunning {
		t.Errorf("restartCount %d, phase %s; want 0, Running", cs.RestartCount, p.Status.Phase)
	}
}

// A container whose image is not on the node (imagePullPolicy Never) waits with
// ErrImageNeverPull and starts once the image is imported.
func TestLifecycleMissingImage(t *testing.T) {
	l := newLifecycle(t)
	l.startAgent()

	spec := l.newPod("noimage", corev1.RestartPolicyAlways)
	spec.Spec.Containers[0].Image = "registry.test/absent:1"
	spec.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	pod := l.create(spec)
	l.waitPod("noimage", "ErrImageNeverPull", func(p *corev1.Pod) bool {
		cs := ctrStatus(p, "main")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ErrImageNeverPull"
	})
	if _, err := l.rt.ImportImages(context.Background(), strings.NewReader("registry.test/absent:1\n")); err != nil {
		t.Fatal(err)
	}
	l.waitPod("noimage", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", containerID(pod, "main", 0)) })
}

// A running container that the runtime's list misses (a hiccup) makes the agent try to
// start the same attempt again; the runtime answers ErrContainerExists and the agent must
// leave that container alone: not stop it, not remove it, not count a restart. A failed
// list changes nothing either.
func TestLifecycleContainerMissingFromListIsLeftAlone(t *testing.T) {
	l := newLifecycle(t)
	l.startAgent()

	pod := l.create(l.newPod("steady", corev1.RestartPolicyAlways))
	id := containerID(pod, "main", 0)
	l.waitPod("steady", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", id) })

	l.rt.hideUntilStartTried(id)
	l.waitFor("the agent tries to start the hidden attempt again", func() bool {
		for _, c := range l.rt.callsOf("start", id) {
			if errors.Is(c.Err, ErrContainerExists) {
				return true
			}
		}
		return false
	})
	l.rt.failNextList(errors.New("containerd: transport is closing"))
	l.waitPasses(5)

	if st, err := l.rt.Status(context.Background(), id); err != nil || st.State != StateRunning {
		t.Fatalf("the container is %v (%v), want still running", st.State, err)
	}
	if got := l.rt.callsOf("stop", id); len(got) != 0 {
		t.Errorf("the agent stopped the running container: %+v", got)
	}
	if got := l.rt.callsOf("remove", id); len(got) != 0 {
		t.Errorf("the agent removed the running container: %+v", got)
	}
	if got := l.successfulStarts(string(pod.UID)); len(got) != 1 {
		t.Errorf("containers started %v, want only the first", got)
	}
	p := l.get("steady")
	if cs := ctrStatus(p, "main"); !runningAs(p, "main", id) || cs.RestartCount != 0 || p.Status.Phase != corev1.PodRunning {
		t.Errorf("status after the hiccups, want main running as %s with restartCount 0:\n%s", id, statusJSON(p))
	}
}

// A readiness gate no one has set keeps the pod not Ready though its containers are;
// once another component sets the gate's condition True the pod becomes Ready, and the
// agent keeps that condition, which is not its own.
func TestLifecycleReadinessGates(t *testing.T) {
	l := newLifecycle(t)
	l.startAgent()

	const gate corev1.PodConditionType = "skiff.test/load-balancer-attached"
	spec := l.newPod("gated", corev1.RestartPolicyAlways)
	spec.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: gate}}
	l.create(spec)
	p := l.waitPod("gated", "containers ready", func(p *corev1.Pod) bool {
		return podCondition(p, corev1.ContainersReady) == corev1.ConditionTrue
	})
	if s := podCondition(p, corev1.PodReady); s != corev1.ConditionFalse {
		t.Fatalf("Ready %q with its gate unset, want False", s)
	}
	l.waitPasses(3)
	if s := podCondition(l.get("gated"), corev1.PodReady); s != corev1.ConditionFalse {
		t.Fatalf("Ready %q with its gate unset, want False", s)
	}

	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := l.get("gated")
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: gate, Status: corev1.ConditionTrue,
			Reason: "Attached", LastTransitionTime: metav1.Now()})
		_, err := l.cs.CoreV1().Pods("default").UpdateStatus(l.ctx(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("setting the gate's condition: %v", err)
	}
	l.waitPod("gated", "Ready", func(p *corev1.Pod) bool { return podCondition(p, corev1.PodReady) == corev1.ConditionTrue })
	l.waitPasses(5)
	p = l.get("gated")
	if s := podCondition(p, gate); s != corev1.ConditionTrue {
		t.Errorf("the gate's condition is %q after the agent's passes, want True (kept):\n%s", s, statusJSON(p))
	}
	if s := podCondition(p, corev1.PodReady); s != corev1.ConditionTrue {
		t.Errorf("Ready %q, want True", s)
	}
}

// Deleting a pod with a grace period stops its running container with that grace,
// removes all its containers (the previous attempt too) and then the pod itself.
func TestLifecycleDeleteStopsWithGrace(t *testing.T) {
	l := newLifecycle(t)
	l.startAgent()

	pod := l.create(l.newPod("doomed", corev1.RestartPolicyAlways))
	id0, id1 := containerID(pod, "main", 0), containerID(pod, "main", 1)
	l.waitPod("doomed", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", id0) })
	l.exit(id0, 1)
	l.waitPod("doomed", "restarted", func(p *corev1.Pod) bool { return runningAs(p, "main", id1) })

	grace := int64(7)
	if err := l.cs.CoreV1().Pods("default").Delete(l.ctx(), "doomed", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(lifecycleWait)
	for {
		_, err := l.cs.CoreV1().Pods("default").Get(l.ctx(), "doomed", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pod is still there (%v) %s after its deletion", err, lifecycleWait)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The grace is a deadline shared by the pod's containers (and their preStop hooks):
	// Stop gets what is left of the 7 s, a moment less.
	stops := l.rt.callsOf("stop", id1)
	if len(stops) == 0 || stops[0].Grace > 7*time.Second || stops[0].Grace < 5*time.Second {
		t.Errorf("stops of the running container %+v, want one with (nearly all of) the 7 s grace", stops)
	}
	if got := l.rt.callsOf("stop", id0); len(got) != 0 {
		t.Errorf("the exited attempt was stopped: %+v", got)
	}
	left, err := l.rt.List(context.Background(), map[string]string{labelPodUID: string(pod.UID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("containers left after the deletion: %+v", left)
	}
	for _, id := range []string{id0, id1} {
		if len(l.rt.callsOf("remove", id)) == 0 {
			t.Errorf("container %s was not removed", id)
		}
	}

	// A finished pod has no grace period: the API deletes it at once, and the agent
	// removes the containers it left as those of a pod that is gone.
	done := l.create(l.newPod("done", corev1.RestartPolicyNever))
	doneID := containerID(done, "main", 0)
	l.waitPod("done", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", doneID) })
	l.exit(doneID, 0)
	l.waitPod("done", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	if err := l.cs.CoreV1().Pods("default").Delete(l.ctx(), "done", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.cs.CoreV1().Pods("default").Get(l.ctx(), "done", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a finished pod outlived its deletion: %v", err)
	}
	l.waitFor("the finished pod's container removed", func() bool {
		_, err := l.rt.Status(context.Background(), doneID)
		return errors.Is(err, ErrContainerNotFound)
	})
}

// A pod whose container start hangs (a slow pull, a wedged runtime) holds up only itself:
// another pod starts and runs meanwhile, and the slow one runs once its start returns.
func TestLifecycleSlowPodDoesNotBlockOthers(t *testing.T) {
	l := newLifecycle(t)
	entered, release := l.rt.blockStarts(func(s ContainerSpec) bool { return s.Labels[labelPodName] == "slow" })
	t.Cleanup(release)
	l.startAgent()

	slow := l.create(l.newPod("slow", corev1.RestartPolicyAlways))
	select {
	case <-entered:
	case <-time.After(lifecycleWait):
		t.Fatal("the slow pod's start never began")
	}
	fast := l.create(l.newPod("fast", corev1.RestartPolicyAlways))
	l.waitPod("fast", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", containerID(fast, "main", 0)) })

	slowID := containerID(slow, "main", 0)
	if len(l.rt.callsOf("start", slowID)) != 0 {
		t.Fatal("the slow start returned before it was released")
	}
	if p := l.get("slow"); p.Status.Phase == corev1.PodRunning {
		t.Errorf("the slow pod is Running while its start hangs:\n%s", statusJSON(p))
	}
	release()
	l.waitPod("slow", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", slowID) })
}

// A readiness exec probe gates the container's readiness: failing, the pod is not Ready;
// passing, it is.
func TestLifecycleReadinessProbe(t *testing.T) {
	l := newLifecycle(t)
	var ready atomic.Bool
	l.rt.setExec(func(id string, cmd []string, _ io.Reader, stdout, _ io.Writer) (int, error) {
		if strings.Join(cmd, " ") != "cat /tmp/ready" {
			return 127, nil
		}
		if !ready.Load() {
			fmt.Fprintln(stdout, "cat: /tmp/ready: No such file or directory")
			return 1, nil
		}
		return 0, nil
	})
	l.startAgent()

	spec := l.newPod("probed", corev1.RestartPolicyAlways)
	spec.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1,
		ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}}}
	pod := l.create(spec)
	id := containerID(pod, "main", 0)
	p := l.waitPod("probed", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", id) })
	if cs := ctrStatus(p, "main"); cs.Ready || podCondition(p, corev1.PodReady) != corev1.ConditionFalse {
		t.Fatalf("ready %v before the probe passed:\n%s", cs.Ready, statusJSON(p))
	}
	ready.Store(true)
	l.waitPod("probed", "Ready", func(p *corev1.Pod) bool {
		return ctrStatus(p, "main").Ready && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
	})
}

// A restarted agent adopts the containers its predecessor started: it starts, stops and
// removes nothing, and reports the same container as it was, started when it started.
func TestLifecycleRestartedAgentAdopts(t *testing.T) {
	l := newLifecycle(t)
	stop := l.startAgent()

	pod := l.create(l.newPod("kept", corev1.RestartPolicyAlways))
	id := containerID(pod, "main", 0)
	before := l.waitPod("kept", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", id) })
	startedAt := ctrStatus(before, "main").State.Running.StartedAt.Time
	stop()
	calls := len(l.rt.callsOf("start", "")) + len(l.rt.callsOf("stop", "")) + len(l.rt.callsOf("remove", ""))
	// A new second, so a start time the new agent made up differs from the first one's.
	l.waitFor("the next second", func() bool { return time.Now().Truncate(time.Second).After(startedAt) })

	l.startAgent()
	l.waitPasses(5)
	if now := len(l.rt.callsOf("start", "")) + len(l.rt.callsOf("stop", "")) + len(l.rt.callsOf("remove", "")); now != calls {
		t.Errorf("the restarted agent changed containers: %d calls, %d before", now, calls)
	}
	p := l.get("kept")
	cs := ctrStatus(p, "main")
	if !runningAs(p, "main", id) || cs.RestartCount != 0 {
		t.Fatalf("after the agent's restart, want main running as %s, no restart:\n%s", id, statusJSON(p))
	}
	if got := cs.State.Running.StartedAt.Time; !got.Equal(startedAt) {
		t.Errorf("startedAt moved from %s to %s across an agent restart; the container did not restart", startedAt, got)
	}
}

// A container the runtime cannot read for a while (StateUnknown) may still be running:
// the agent must not start another attempt of it, nor stop or remove it, and reports it
// running again, not restarted, once the runtime reads it again.
func TestLifecycleUnknownContainerIsNotStartedTwice(t *testing.T) {
	l := newLifecycle(t)
	l.startAgent()

	pod := l.create(l.newPod("murky", corev1.RestartPolicyAlways))
	id := containerID(pod, "main", 0)
	l.waitPod("murky", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", id) })

	if err := l.rt.setState(id, StateUnknown); err != nil {
		t.Fatal(err)
	}
	l.waitPasses(5)
	if got := l.successfulStarts(string(pod.UID)); len(got) != 1 {
		t.Errorf("containers started %v while the first was unknown, want only the first", got)
	}
	if got := append(l.rt.callsOf("stop", id), l.rt.callsOf("remove", id)...); len(got) != 0 {
		t.Errorf("the unknown container was stopped or removed: %+v", got)
	}

	if err := l.rt.setState(id, StateRunning); err != nil {
		t.Fatal(err)
	}
	p := l.waitPod("murky", "running and Ready again", func(p *corev1.Pod) bool {
		return runningAs(p, "main", id) && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
	})
	if cs := ctrStatus(p, "main"); cs.RestartCount != 0 || p.Status.Phase != corev1.PodRunning {
		t.Errorf("restartCount %d, phase %s; want 0, Running", cs.RestartCount, p.Status.Phase)
	}
}

// A container that was created but never started (an agent that died between the two)
// is neither running nor exited: the agent removes it and starts the same attempt again,
// which is not a restart.
func TestLifecycleUnstartedContainerIsStartedAgain(t *testing.T) {
	l := newLifecycle(t)
	pod := l.create(l.newPod("half", corev1.RestartPolicyAlways))
	id := containerID(pod, "main", 0)
	l.rt.put(ContainerStatus{ID: id, Image: lifecycleImage, ImageID: imageID(lifecycleImage), State: StateCreated,
		Labels: map[string]string{labelPodUID: string(pod.UID), labelPodNS: "default", labelPodName: "half", labelContainer: "main", labelAttempt: "0"}})
	l.startAgent()

	p := l.waitPod("half", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", id) })
	if cs := ctrStatus(p, "main"); cs.RestartCount != 0 {
		t.Errorf("restartCount %d, want 0", cs.RestartCount)
	}
	if len(l.rt.callsOf("remove", id)) == 0 {
		t.Error("the unstarted container was never removed")
	}
}

// A status that did not change is not written again: every write is a Raft commit and a
// watch event for every watcher, so a pod that is steady (running, or waiting out a
// back-off) must keep its resourceVersion across passes.
func TestLifecycleSteadyStatusIsNotRewritten(t *testing.T) {
	l := newLifecycle(t)
	l.setBackoff(10*time.Minute, 10*time.Minute)
	l.startAgent()

	l.create(l.newPod("steady", corev1.RestartPolicyAlways))
	crashy := l.create(l.newPod("crashy", corev1.RestartPolicyAlways))
	id0, id1 := containerID(crashy, "main", 0), containerID(crashy, "main", 1)
	l.waitPod("crashy", "running", func(p *corev1.Pod) bool { return runningAs(p, "main", id0) })
	l.exit(id0, 1)
	l.waitPod("crashy", "restarted", func(p *corev1.Pod) bool { return runningAs(p, "main", id1) })
	l.exit(id1, 1)
	l.waitPod("crashy", "in CrashLoopBackOff", func(p *corev1.Pod) bool {
		cs := ctrStatus(p, "main")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
	})
	l.waitPod("steady", "Ready", func(p *corev1.Pod) bool { return podCondition(p, corev1.PodReady) == corev1.ConditionTrue })

	// The pass that wrote the last status may still be on its way: settle first.
	l.waitPasses(3)
	before := map[string]string{"steady": l.get("steady").ResourceVersion, "crashy": l.get("crashy").ResourceVersion}
	l.waitPasses(10)
	for name, rv := range before {
		if p := l.get(name); p.ResourceVersion != rv {
			t.Errorf("pod %s was rewritten while steady: resourceVersion %s → %s; status now:\n%s", name, rv, p.ResourceVersion, statusJSON(p))
		}
	}
}

// A sidecar (an init container with restartPolicy Always, which the API accepts and the
// scheduler accounts for) starts before the main containers and keeps running beside
// them: the pod initializes once it has started, it is restarted whenever it exits
// whatever the pod's restartPolicy, and it is stopped once the main containers of a pod
// that does not restart them have completed, so the pod can finish (kubelet's
// SidecarContainers, on by default since 1.29).
func TestLifecycleSidecarInitContainer(t *testing.T) {
	l := newLifecycle(t)
	l.setBackoff(10*time.Minute, 10*time.Minute) // only the immediate first restart matters
	l.startAgent()

	always := corev1.ContainerRestartPolicyAlways
	spec := l.newPod("sidecar", corev1.RestartPolicyNever)
	side := lifecycleContainer("proxy")
	side.RestartPolicy = &always
	spec.Spec.InitContainers = []corev1.Container{side}
	pod := l.create(spec)
	side0, side1, main := containerID(pod, "proxy", 0), containerID(pod, "proxy", 1), containerID(pod, "main", 0)

	p := l.waitPod("sidecar", "main running beside the sidecar", func(p *corev1.Pod) bool {
		return runningAs(p, "proxy", side0) && runningAs(p, "main", main)
	})
	if p.Status.Phase != corev1.PodRunning || podCondition(p, corev1.PodInitialized) != corev1.ConditionTrue {
		t.Errorf("phase %s, Initialized %q; want Running, True:\n%s", p.Status.Phase, podCondition(p, corev1.PodInitialized), statusJSON(p))
	}

	l.exit(side0, 1)
	l.waitPod("sidecar", "sidecar restarted under restartPolicy Never", func(p *corev1.Pod) bool { return runningAs(p, "proxy", side1) })

	l.exit(main, 0)
	l.waitPod("sidecar", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	if len(l.rt.callsOf("stop", side1)) == 0 {
		t.Error("the sidecar was not stopped once the main container completed")
	}
}

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Container labels: how the agent recognises its containers after a restart.
const (
	labelPodUID    = "skiff.pod.uid"
	labelPodNS     = "skiff.pod.namespace"
	labelPodName   = "skiff.pod.name"
	labelContainer = "skiff.container.name"
	labelAttempt   = "skiff.container.attempt"
)

// Restart back-off, as the kubelet's: 10 s doubling to 5 min.
var (
	backoffBase = 10 * time.Second
	backoffMax  = 5 * time.Minute
)

// podWorker is the agent's memory about one pod beyond what the store and the runtime say.
type podWorker struct {
	nextStart map[string]time.Time     // "pull:"/"start:" + container → earliest retry
	delay     map[string]time.Duration // "pull:"/"start:" + container → current back-off
	crashes   *crashBackoff            // restarts of exited containers
	waiting   map[string]*corev1.ContainerStateWaiting
	started   map[string]time.Time   // container ID → when it started
	probes    map[string]*probeState // container ID → its probes' state
	netns     string
	podIP     string // from the pod network; "" without one (or for hostNetwork pods)
	// finalChecked is set once a final pod's network was released.
	finalChecked bool
	// initialized is set once every init container is done (sidecars started).
	initialized bool

	// The fields below are guarded by Agent.workersMu.
	// busy is set while a goroutine syncs or tears down the pod: a pass skips a busy pod
	// (setting rerun), so a slow pull or a long graceful stop holds up only its own pod.
	busy, rerun bool
	// syncingRV is the resourceVersion of the pod object the busy goroutine works from; a
	// pass that finds a newer one asks for a rerun.
	syncingRV string
	// syncedAt is when the pod's last sync ended: a container list taken before that may
	// miss what the sync started.
	syncedAt time.Time
}

// retryLater backs key (a failed pull or start) off: its delay starts at backoffBase and
// doubles up to backoffMax, counted from now.
func (w *podWorker) retryLater(key string) {
	d := min(max(2*w.delay[key], backoffBase), backoffMax)
	w.delay[key], w.nextStart[key] = d, time.Now().Add(d)
}

// terminationGrace is how long pod's containers get between SIGTERM and SIGKILL: the
// deletion's grace period once the pod is being deleted, else its spec's, else 30 s.
func terminationGrace(pod *corev1.Pod) time.Duration {
	switch {
	case pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil:
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

// claim marks pod uid's worker busy for the caller and returns it with when its last sync
// ended; ok is false when another goroutine has it (a later pass is asked for then if rv,
// the pod's resourceVersion, is not the one that goroutine works from).
func (a *Agent) claim(uid, rv string) (w *podWorker, syncedAt time.Time, ok bool) {
	w = a.worker(uid)
	a.workersMu.Lock()
	defer a.workersMu.Unlock()
	if w.busy {
		w.rerun = w.rerun || rv != w.syncingRV
		return nil, time.Time{}, false
	}
	w.busy, w.syncingRV = true, rv
	return w, w.syncedAt, true
}

// release ends the caller's claim on w and asks for another pass if one skipped the pod.
func (a *Agent) release(w *podWorker) {
	a.workersMu.Lock()
	w.busy, w.syncedAt = false, time.Now()
	rerun := w.rerun
	w.rerun = false
	a.workersMu.Unlock()
	if rerun {
		a.nudge()
	}
}

// syncParallelism bounds how many pods sync at once.
const syncParallelism = 16

func (a *Agent) worker(uid string) *podWorker {
	a.workersMu.Lock()
	defer a.workersMu.Unlock()
	w := a.workers[uid]
	if w == nil {
		w = &podWorker{nextStart: map[string]time.Time{}, delay: map[string]time.Duration{}, crashes: newCrashBackoff(), waiting: map[string]*corev1.ContainerStateWaiting{}, started: map[string]time.Time{}, probes: map[string]*probeState{}}
		a.workers[uid] = w
	}
	return w
}

// syncAll makes the runtime match the pods bound to this node, and reports their status.
// Only the Run loop calls it.
func (a *Agent) syncAll(ctx context.Context) {
	a.mu.Lock()
	if !a.synced {
		a.mu.Unlock()
		return
	}
	pods := make([]*corev1.Pod, 0, len(a.pods))
	for _, p := range a.pods {
		pods = append(pods, p.DeepCopy())
	}
	for uid := range a.finishedDeletes {
		if a.pods[uid] == nil {
			delete(a.finishedDeletes, uid)
		}
	}
	a.mu.Unlock()
	listedAt := time.Now()
	all, err := a.cfg.Runtime.List(ctx, nil)
	if err != nil {
		a.log.Warn("listing containers failed", "error", err)
		return
	}
	byPod := map[string][]ContainerStatus{}
	for _, c := range all {
		if uid := c.Labels[labelPodUID]; uid != "" {
			byPod[uid] = append(byPod[uid], c)
		}
	}
	// Each pod syncs in a goroutine of its own, as kubelet's pod workers do, at most
	// syncParallelism at once: starting a container is a few hundred milliseconds of
	// containerd and runc work, and a slow pull or a long graceful stop must hold up only
	// its own pod. The pass does not wait for them; a pod still busy is skipped.
	desired := map[string]bool{}
	for _, p := range pods {
		uid := string(p.UID)
		desired[uid] = true
		w, syncedAt, ok := a.claim(uid, p.ResourceVersion)
		if !ok {
			continue
		}
		a.syncs.Add(1)
		go func(p *corev1.Pod, ctrs []ContainerStatus) {
			defer a.syncs.Done()
			defer a.release(w)
			select {
			case a.syncSlots <- struct{}{}:
				defer func() { <-a.syncSlots }()
			case <-ctx.Done():
				return
			}
			if syncedAt.After(listedAt) {
				// The list predates the end of this pod's previous sync.
				var err error
				if ctrs, err = a.cfg.Runtime.List(ctx, map[string]string{labelPodUID: uid}); err != nil {
					a.log.Warn("listing the pod's containers failed", "pod", p.Namespace+"/"+p.Name, "error", err)
					return
				}
			}
			if err := a.syncPod(ctx, p, w, ctrs); err != nil && ctx.Err() == nil {
				a.log.Warn("syncing pod", "pod", p.Namespace+"/"+p.Name, "error", err)
			}
		}(p, byPod[uid])
	}
	for uid, ctrs := range byPod {
		if desired[uid] {
			continue
		}
		// The pod is gone from the store (deleted, or bound elsewhere): stop what it left.
		w, _, ok := a.claim(uid, "")
		if !ok {
			continue
		}
		a.syncs.Add(1)
		go func(uid string, ctrs []ContainerStatus) {
			defer a.syncs.Done()
			defer a.release(w)
			a.teardown(ctx, uid, nil, nil, ctrs, 2*time.Second)
		}(uid, ctrs)
	}
	// A pod can leave without containers (it never got one started) yet hold a network
	// namespace and an address, remembered by a worker or, across restarts, on disk.
	a.workersMu.Lock()
	var gone []string
	for uid, w := range a.workers {
		if !desired[uid] && byPod[uid] == nil && !w.busy {
			gone = append(gone, uid)
		}
	}
	a.workersMu.Unlock()
	if n := a.cfg.Network; n != nil {
		for _, uid := range n.Attached() {
			if !desired[uid] && byPod[uid] == nil && !slices.Contains(gone, uid) {
				gone = append(gone, uid)
			}
		}
	}
	for _, uid := range gone {
		w, _, ok := a.claim(uid, "")
		if !ok {
			continue
		}
		a.teardown(ctx, uid, nil, nil, nil, 0)
		a.release(w)
	}
}

// deletionFinished reports whether the agent already finished the deletion of pod uid as
// it stands at resourceVersion rv: a pod with finalizers stays after that, and must not be
// sent a DELETE on every pass.
func (a *Agent) deletionFinished(uid, rv string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.finishedDeletes[uid] == rv
}

// teardown stops and removes a pod's containers, its network and its directory.
// pod and w, when known, give the containers' preStop hooks (stopContainers).
func (a *Agent) teardown(ctx context.Context, uid string, pod *corev1.Pod, w *podWorker, ctrs []ContainerStatus, grace time.Duration) {
	a.stopContainers(ctx, pod, w, ctrs, grace)
	for _, c := range ctrs {
		if err := a.cfg.Runtime.Remove(ctx, c.ID); err != nil {
			a.log.Warn("removing container", "container", c.ID, "error", err)
		}
	}
	a.workersMu.Lock()
	delete(a.workers, uid)
	a.workersMu.Unlock()
	a.releaseNetwork(ctx, uid)
	// Its logs and volumes go with it, as the kubelet removes a deleted pod's directory.
	_ = os.RemoveAll(filepath.Join(a.cfg.DataDir, "pods", uid))
}

// releaseNetwork gives back pod uid's address (CNI DEL) and deletes its network namespace.
// It is idempotent, and needs nothing but the UID, so it works for pods a previous run of
// the agent set up.
func (a *Agent) releaseNetwork(ctx context.Context, uid string) {
	name := netnsName(uid)
	path := "/var/run/netns/" + name
	if n := a.cfg.Network; n != nil {
		if err := n.Detach(ctx, uid, path); err != nil {
			a.log.Warn("releasing the pod network", "pod", uid, "error", err)
		}
	}
	if _, err := os.Stat(path); err == nil {
		_ = exec.Command("ip", "netns", "delete", name).Run()
	}
}

// latest returns, per container name, the newest attempt and the one before it.
func latest(ctrs []ContainerStatus) (cur, prev map[string]ContainerStatus) {
	cur, prev = map[string]ContainerStatus{}, map[string]ContainerStatus{}
	sort.Slice(ctrs, func(i, j int) bool { return attempt(ctrs[i]) < attempt(ctrs[j]) })
	for _, c := range ctrs {
		name := c.Labels[labelContainer]
		if old, ok := cur[name]; ok {
			prev[name] = old
		}
		cur[name] = c
	}
	return cur, prev
}

func attempt(c ContainerStatus) int {
	n, _ := strconv.Atoi(c.Labels[labelAttempt])
	return n
}

// syncPod brings one pod's containers in line with its spec and reports its status. The
// caller guarantees no other goroutine syncs the same pod (and so uses w) meanwhile.
func (a *Agent) syncPod(ctx context.Context, pod *corev1.Pod, w *podWorker, ctrs []ContainerStatus) error {
	uid := string(pod.UID)
	if pod.DeletionTimestamp != nil {
		grace := terminationGrace(pod)
		for _, c := range ctrs {
			if c.State == StateRunning {
				a.event(pod, corev1.EventTypeNormal, "Killing", "Stopping container "+c.Labels[labelContainer])
			}
		}
		a.teardown(ctx, uid, pod, w, ctrs, grace)
		if len(ctrs) == 0 && a.deletionFinished(uid, pod.ResourceVersion) {
			// Already told the API server; the pod waits for its finalizers.
			return nil
		}
		if err := a.cfg.Client.FinishPodDeletion(ctx, pod); err != nil {
			return err
		}
		a.mu.Lock()
		a.finishedDeletes[uid] = pod.ResourceVersion
		a.mu.Unlock()
		return nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		// Final: nothing restarts, so the address goes back to the pool (the status keeps
		// it, as the kubelet's does).
		if w.netns != "" || w.podIP != "" || !w.finalChecked {
			a.releaseNetwork(ctx, uid)
			w.netns, w.podIP, w.finalChecked = "", "", true
		}
		return nil
	}
	fresh := false
	if !pod.Spec.HostNetwork && w.netns == "" {
		w.netns, fresh = a.ensureNetNS(uid)
	}
	if !pod.Spec.HostNetwork && w.netns != "" && w.podIP == "" && a.cfg.Network != nil {
		ip, err := a.cfg.Network.Attach(ctx, uid, "/var/run/netns/"+w.netns, pod, fresh)
		if err != nil {
			a.event(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: "+err.Error())
			return err // containers wait for the network; the next pass retries
		}
		w.podIP = ip
	}
	ctrs = a.dropUnstarted(ctx, pod, ctrs)
	cur, prev := latest(ctrs)
	// Once initialized, a pod stays so: a sidecar restarting later does not hold up the
	// main containers again (as kubelet; the Initialized condition says it across restarts
	// of the agent).
	initDone := w.initialized || podCondition(pod, corev1.PodInitialized) == corev1.ConditionTrue
	if !initDone {
		initDone = a.syncInitContainers(ctx, pod, w, cur)
		w.initialized = initDone
	}
	if initDone {
		// Sidecars (init containers with restartPolicy Always) run beside the main
		// containers and are restarted whatever the pod's restartPolicy.
		for _, c := range pod.Spec.InitContainers {
			if st, ok := cur[c.Name]; isSidecar(c) && (!ok || st.State == StateExited) {
				a.maybeStart(ctx, pod, w, c, st, ok)
			}
		}
		for _, c := range pod.Spec.Containers {
			st, ok := cur[c.Name]
			if ok && st.State != StateExited {
				continue
			}
			if ok && !restarts(pod.Spec.RestartPolicy, st.ExitCode) {
				continue
			}
			a.maybeStart(ctx, pod, w, c, st, ok)
		}
	}
	// Re-read what runs now, so the status reflects what this pass did.
	if now, err := a.cfg.Runtime.List(ctx, map[string]string{labelPodUID: uid}); err == nil {
		cur, prev = latest(now)
	}
	probed := sidecars(pod)
	if initDone {
		probed = append(probed, pod.Spec.Containers...)
	}
	for _, c := range probed {
		st, ok := cur[c.Name]
		if !ok || st.State != StateRunning {
			continue
		}
		if w.started[st.ID].IsZero() {
			w.started[st.ID] = startTime(st)
		}
		a.capLog(a.LogPath(uid, c.Name, attempt(st)))
		ps := w.probes[st.ID]
		if ps == nil {
			ps = newProbeState()
			w.probes[st.ID] = ps
		}
		failures := ps.lastFailure
		out := a.runProbes(ctx, pod, w, c, st.ID, ps, w.started[st.ID])
		if ps.lastFailure != "" && ps.lastFailure != failures {
			a.event(pod, corev1.EventTypeWarning, "Unhealthy", ps.lastFailure)
		}
		if out.kill {
			a.log.Info("restarting container", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "reason", out.reason)
			a.event(pod, corev1.EventTypeNormal, "Killing", fmt.Sprintf("Container %s %s, will be restarted", c.Name, out.reason))
			grace := terminationGrace(pod)
			a.stopContainers(ctx, pod, w, []ContainerStatus{st}, grace)
			if now, err := a.cfg.Runtime.List(ctx, map[string]string{labelPodUID: uid}); err == nil {
				cur, prev = latest(now)
			}
		}
	}
	status := a.podStatus(pod, w, cur, prev, initDone)
	if status.Phase == corev1.PodSucceeded || status.Phase == corev1.PodFailed {
		// The main containers are done for good: sidecars stop too, so the pod can end.
		if running := runningSidecars(pod, cur); len(running) > 0 {
			grace := terminationGrace(pod)
			a.stopContainers(ctx, pod, w, running, grace)
			if now, err := a.cfg.Runtime.List(ctx, map[string]string{labelPodUID: uid}); err == nil {
				cur, prev = latest(now)
			}
			status = a.podStatus(pod, w, cur, prev, initDone)
		}
	}
	if statusEqual(&pod.Status, status) {
		return nil
	}
	pod.Status = *status
	_, err := a.cfg.Client.UpdatePodStatus(ctx, pod)
	if IsConflict(err) || IsNotFound(err) {
		return nil // a newer pod is on its way through the watch
	}
	return err
}

// startTime is when container c started, as the runtime reports it, or now for a runtime
// that does not say.
func startTime(c ContainerStatus) time.Time {
	if !c.StartedAt.IsZero() {
		return c.StartedAt.Truncate(time.Second)
	}
	return time.Now().Truncate(time.Second)
}

// syncInitContainers runs pod's init containers in order and reports whether all are done:
// a regular one has exited 0, a sidecar is running (and started, when it has a startup
// probe). It starts, or restarts as the policies say, the first one that is not.
func (a *Agent) syncInitContainers(ctx context.Context, pod *corev1.Pod, w *podWorker, cur map[string]ContainerStatus) bool {
	for _, c := range pod.Spec.InitContainers {
		st, ok := cur[c.Name]
		if isSidecar(c) {
			switch {
			case ok && st.State == StateRunning:
				if ps := w.probes[st.ID]; c.StartupProbe == nil || ps != nil && ps.started {
					continue
				}
			case ok && st.State != StateExited:
			default:
				a.maybeStart(ctx, pod, w, c, st, ok)
			}
			return false
		}
		switch {
		case ok && st.State == StateExited && st.ExitCode == 0:
			continue
		case ok && st.State != StateExited:
		case ok && pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
		default:
			a.maybeStart(ctx, pod, w, c, st, ok)
		}
		return false
	}
	return true
}

// isSidecar reports whether init container c is a sidecar: restartPolicy Always makes it
// start in order with the init containers, then run beside the main ones.
func isSidecar(c corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// sidecars returns pod's sidecar init containers.
func sidecars(pod *corev1.Pod) []corev1.Container {
	var out []corev1.Container
	for _, c := range pod.Spec.InitContainers {
		if isSidecar(c) {
			out = append(out, c)
		}
	}
	return out
}

// runningSidecars returns the running containers of pod's sidecars.
func runningSidecars(pod *corev1.Pod, cur map[string]ContainerStatus) []ContainerStatus {
	var out []ContainerStatus
	for _, c := range sidecars(pod) {
		if st, ok := cur[c.Name]; ok && st.State == StateRunning {
			out = append(out, st)
		}
	}
	return out
}

// podCondition returns the status of pod's condition t ("" when absent).
func podCondition(pod *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func restarts(policy corev1.RestartPolicy, exitCode int) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// maybeStart starts the next attempt of container c unless its back-off has not elapsed.
// dropUnstarted removes containers that were created but never started: a sync creates and
// starts a container in one step, so one found in that state was left by an agent that died
// in between. Left alone it would block its pod forever (it is neither running nor exited);
// removed, this pass starts the same attempt again.
func (a *Agent) dropUnstarted(ctx context.Context, pod *corev1.Pod, ctrs []ContainerStatus) []ContainerStatus {
	kept := ctrs[:0:0]
	for _, c := range ctrs {
		if c.State != StateCreated {
			kept = append(kept, c)
			continue
		}
		a.log.Info("removing a container that was created but never started", "pod", pod.Namespace+"/"+pod.Name, "container", c.Labels[labelContainer], "id", c.ID)
		if err := a.cfg.Runtime.Remove(ctx, c.ID); err != nil {
			a.log.Warn("removing an unstarted container", "id", c.ID, "error", err)
			kept = append(kept, c) // try again on the next pass
		}
	}
	return kept
}

func (a *Agent) maybeStart(ctx context.Context, pod *corev1.Pod, w *podWorker, c corev1.Container, last ContainerStatus, hasLast bool) {
	n := 0
	finished := last.FinishedAt
	if hasLast {
		n = attempt(last) + 1
		if finished.IsZero() {
			finished = time.Now()
		}
		if w.crashes.wait(c.Name, finished, time.Now()) > 0 {
			w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", w.crashes.current(c.Name), c.Name, pod.Name)}
			a.event(pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container "+c.Name+" in pod "+pod.Name)
			return
		}
	}
	// A start that failed (config, runtime) is retried with its own back-off.
	startKey := "start:" + c.Name
	if time.Now().Before(w.nextStart[startKey]) {
		return // w.waiting still says why
	}
	if !a.ensureImage(ctx, pod, w, c) {
		return
	}
	spec, err := a.containerSpec(ctx, pod, w, c, n)
	var cfgErr *configError
	if errors.As(err, &cfgErr) {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: cfgErr.msg}
		a.event(pod, corev1.EventTypeWarning, "Failed", "Error: "+cfgErr.msg)
		return
	}
	if err == nil {
		err = a.cfg.Runtime.Start(ctx, spec)
	}
	switch {
	case errors.Is(err, ErrImageNotFound):
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull",
			Message: fmt.Sprintf("image %q is not present on node %s; import it with `skiff image import` (registry pulls are not supported yet)", c.Image, a.cfg.Name)}
		a.event(pod, corev1.EventTypeWarning, "ErrImageNeverPull", w.waiting[c.Name].Message)
		return
	case errors.Is(err, ErrContainerExists):
		// This attempt exists already although the last list did not show it (a runtime
		// hiccup): it must not be removed, it may be running. The next pass sees it.
		a.log.Warn("container attempt exists already", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "attempt", n)
		return
	case err != nil:
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: err.Error()}
		a.event(pod, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		_ = a.cfg.Runtime.Remove(ctx, spec.ID)
	default:
		delete(w.waiting, c.Name)
		a.log.Info("started container", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "attempt", n)
		a.event(pod, corev1.EventTypeNormal, "Started", "Started container "+c.Name)
	}
	if err != nil {
		w.retryLater(startKey)
		return
	}
	delete(w.delay, startKey)
	delete(w.nextStart, startKey)
	if hasLast {
		w.crashes.restarted(c.Name, finished)
	}
	// Keep the previous attempt for `kubectl logs --previous`; older ones go, with their
	// logs and what the agent remembered about them.
	if hasLast && n >= 2 {
		old := containerID(pod, c.Name, n-2)
		if err := a.cfg.Runtime.Remove(ctx, old); err == nil {
			logPath := a.LogPath(string(pod.UID), c.Name, n-2)
			_ = os.Remove(logPath)
			_ = os.Remove(logPath + ".1")
			_ = os.RemoveAll(StdioDir(logPath))
			delete(w.started, old)
			delete(w.probes, old)
		}
	}
}

func containerID(pod *corev1.Pod, name string, n int) string {
	return fmt.Sprintf("%s-%s-%d", pod.UID, name, n)
}

// LogPath is where attempt n of a container writes its output.
func (a *Agent) LogPath(uid, container string, n int) string {
	return filepath.Join(a.cfg.DataDir, "pods", uid, container, strconv.Itoa(n)+".log")
}

func (a *Agent) containerSpec(ctx context.Context, pod *corev1.Pod, w *podWorker, c corev1.Container, n int) (ContainerSpec, error) {
	spec := ContainerSpec{
		ID: containerID(pod, c.Name, n), Image: c.Image, Command: c.Command, Args: c.Args, WorkingDir: c.WorkingDir,
		LogPath:     a.LogPath(string(pod.UID), c.Name, n),
		HostNetwork: pod.Spec.HostNetwork,
		Stdin:       c.Stdin, TTY: c.TTY,
		Labels: map[string]string{labelPodUID: string(pod.UID), labelPodNS: pod.Namespace, labelPodName: pod.Name,
			labelContainer: c.Name, labelAttempt: strconv.Itoa(n)},
	}
	if w.netns != "" {
		spec.NetNSPath = "/var/run/netns/" + w.netns
	}
	src := a.sources(pod)
	src.podIP = w.podIP
	env, err := src.resolveEnv(ctx, pod, c)
	if err != nil {
		return spec, err
	}
	spec.Env = env
	spec.Command, spec.Args = expandArgs(c.Command, env), expandArgs(c.Args, env)
	paths, err := src.prepareVolumes(ctx, pod)
	if err != nil {
		return spec, err
	}
	if spec.Mounts, err = mounts(pod, c, paths); err != nil {
		return spec, err
	}
	if lim := c.Resources.Limits; lim != nil {
		if m, ok := lim[corev1.ResourceMemory]; ok {
			spec.MemoryBytes = m.Value()
		}
		if cpu, ok := lim[corev1.ResourceCPU]; ok {
			spec.CPUMillis = cpu.MilliValue()
		}
	}
	if sc := c.SecurityContext; sc != nil {
		spec.UID, spec.GID = sc.RunAsUser, sc.RunAsGroup
		spec.ReadOnly = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		spec.Privileged = sc.Privileged != nil && *sc.Privileged
	}
	if psc := pod.Spec.SecurityContext; psc != nil && spec.UID == nil {
		spec.UID, spec.GID = psc.RunAsUser, psc.RunAsGroup
	}
	return spec, nil
}

// netnsName is the name of pod uid's network namespace (under /var/run/netns).
func netnsName(uid string) string {
	name := "skiff-" + uid
	if len(name) > 40 {
		name = name[:40]
	}
	return name
}

// ensureNetNS makes the pod's network namespace (loopback up), shared by its containers,
// and reports whether it had to create it (a namespace that outlived the agent is reused).
// CNI adds the pod's interface there; without iproute2 each container gets its own.
func (a *Agent) ensureNetNS(uid string) (string, bool) {
	name := netnsName(uid)
	if _, err := os.Stat("/var/run/netns/" + name); err == nil {
		return name, false
	}
	// The pod's directory records that the namespace exists, for Teardown to find it even
	// when the pod never got a container.
	_ = os.MkdirAll(filepath.Join(a.cfg.DataDir, "pods", uid), 0o755)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		a.log.Warn("creating the pod network namespace failed; containers get their own", "error", err, "output", string(out))
		return "", false
	}
	_ = exec.Command("ip", "-n", name, "link", "set", "lo", "up").Run()
	return name, true
}

// podStatus computes the pod's status from what runs.
func (a *Agent) podStatus(pod *corev1.Pod, w *podWorker, cur, prev map[string]ContainerStatus, initDone bool) *corev1.PodStatus {
	old := &pod.Status
	st := &corev1.PodStatus{HostIP: a.cfg.Address, HostIPs: []corev1.HostIP{{IP: a.cfg.Address}}, QOSClass: old.QOSClass, StartTime: old.StartTime}
	if pod.Spec.HostNetwork {
		st.PodIP, st.PodIPs = a.cfg.Address, []corev1.PodIP{{IP: a.cfg.Address}}
	} else if w.podIP != "" {
		st.PodIP, st.PodIPs = w.podIP, []corev1.PodIP{{IP: w.podIP}}
	}
	if st.StartTime == nil {
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		st.StartTime = &now
	}
	statuses := func(cs []corev1.Container) []corev1.ContainerStatus {
		var out []corev1.ContainerStatus
		for _, c := range cs {
			out = append(out, a.containerStatus(w, c, cur, prev))
		}
		return out
	}
	st.InitContainerStatuses = statuses(pod.Spec.InitContainers)
	st.ContainerStatuses = statuses(pod.Spec.Containers)
	running, exited, failed, ready := 0, 0, 0, 0
	for _, cs := range st.ContainerStatuses {
		// A container waiting to restart counts as exited, as kubelet's getPhase has it:
		// a pod in CrashLoopBackOff stays Running instead of going back to Pending.
		term := cs.State.Terminated
		if cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil {
			term = cs.LastTerminationState.Terminated
		}
		switch {
		case cs.State.Running != nil:
			running++
		case term != nil:
			exited++
			if term.ExitCode != 0 {
				failed++
			}
		}
		if cs.Ready {
			ready++
		}
	}
	total := len(pod.Spec.Containers)
	// Sidecars count towards ContainersReady, as kubelet has it.
	for i, c := range pod.Spec.InitContainers {
		if isSidecar(c) {
			total++
			if st.InitContainerStatuses[i].Ready {
				ready++
			}
		}
	}
	switch {
	case !initDone:
		st.Phase = corev1.PodPending
		for i, cs := range st.InitContainerStatuses {
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && pod.Spec.RestartPolicy == corev1.RestartPolicyNever && !isSidecar(pod.Spec.InitContainers[i]) {
				st.Phase = corev1.PodFailed
			}
		}
	case exited == len(pod.Spec.Containers) && pod.Spec.RestartPolicy != corev1.RestartPolicyAlways && (failed == 0 || pod.Spec.RestartPolicy == corev1.RestartPolicyNever):
		st.Phase = corev1.PodSucceeded
		if failed > 0 {
			st.Phase = corev1.PodFailed
		}
	case running > 0 || exited > 0:
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		c := corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))}
		for _, o := range old.Conditions {
			if o.Type == t && o.Status == s {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		return c
	}
	allReady := ready == total && st.Phase == corev1.PodRunning
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodScheduled, true), cond(corev1.PodInitialized, initDone),
		cond(corev1.ContainersReady, allReady), cond(corev1.PodReady, allReady && readinessGatesPass(pod)),
	}
	// Conditions other components own (readiness gates' among them) are theirs to change.
	for _, o := range old.Conditions {
		switch o.Type {
		case corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady:
		default:
			st.Conditions = append(st.Conditions, o)
		}
	}
	return st
}

// readinessGatesPass reports whether every readiness gate of pod has its condition True;
// until then the pod is not Ready, whatever its containers say.
func readinessGatesPass(pod *corev1.Pod) bool {
	for _, g := range pod.Spec.ReadinessGates {
		if podCondition(pod, g.ConditionType) != corev1.ConditionTrue {
			return false
		}
	}
	return true
}

func (a *Agent) containerStatus(w *podWorker, c corev1.Container, cur, prev map[string]ContainerStatus) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	r, ok := cur[c.Name]
	if !ok {
		cs.State.Waiting = w.waiting[c.Name]
		if cs.State.Waiting == nil {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		}
		return cs
	}
	cs.ContainerID, cs.ImageID, cs.RestartCount = "containerd://"+r.ID, r.ImageID, int32(attempt(r))
	started := w.started[r.ID]
	if started.IsZero() {
		started = startTime(r)
		w.started[r.ID] = started
	}
	switch r.State {
	case StateRunning:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}
		cs.Ready = true
		if ps := w.probes[r.ID]; ps != nil {
			cs.Ready = ps.started && ps.ready
		} else if c.ReadinessProbe != nil || c.StartupProbe != nil {
			cs.Ready = false // not probed yet
		}
	case StateExited:
		reason := "Completed"
		if r.ExitCode != 0 {
			reason = "Error"
		}
		cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: int32(r.ExitCode), Reason: reason, ContainerID: cs.ContainerID,
			StartedAt: metav1.NewTime(started), FinishedAt: metav1.NewTime(r.FinishedAt.Truncate(time.Second))}
		if wt := w.waiting[c.Name]; wt != nil {
			// Waiting to restart: report that, with the exit as the last state.
			cs.LastTerminationState.Terminated = cs.State.Terminated
			cs.State = corev1.ContainerState{Waiting: wt}
		}
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	running := cs.State.Running != nil
	if ps := w.probes[r.ID]; ps != nil && running {
		running = ps.started
	}
	cs.Started = &running
	if p, ok := prev[c.Name]; ok && p.State == StateExited && cs.LastTerminationState.Terminated == nil {
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: int32(p.ExitCode), ContainerID: "containerd://" + p.ID,
			Reason: map[bool]string{true: "Completed", false: "Error"}[p.ExitCode == 0], FinishedAt: metav1.NewTime(p.FinishedAt.Truncate(time.Second))}
	}
	return cs
}

// statusEqual compares statuses as JSON, so an unchanged status is never rewritten.
func statusEqual(a, b *corev1.PodStatus) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// maxLogBytes caps a container's log file; past it the file is rotated to <file>.1 (the
// previous rotation is dropped), as the kubelet's default rotation keeps logs bounded.
const maxLogBytes = 10 << 20

// capLog rotates a log file that grew past maxLogBytes by copy-and-truncate: the shim keeps
// appending to the same file, so it cannot be renamed away under it. Lines written between
// the copy and the truncate may be lost; the cap matters more than they do.
func (a *Agent) capLog(path string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() <= maxLogBytes {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if err := os.WriteFile(path+".1", data, 0o640); err != nil {
		return
	}
	_ = os.Truncate(path, 0)
}

// ensureImage applies the container's imagePullPolicy: Never uses what is present,
// IfNotPresent pulls when absent, Always pulls every time a container starts. A failed pull
// waits with ErrImagePull, then ImagePullBackOff, and retries with back-off.
func (a *Agent) ensureImage(ctx context.Context, pod *corev1.Pod, w *podWorker, c corev1.Container) bool {
	policy := c.ImagePullPolicy
	if policy == "" {
		policy = corev1.PullIfNotPresent
		if ref := c.Image; !strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") || strings.HasSuffix(ref, ":latest") {
			policy = corev1.PullAlways
		}
	}
	if policy == corev1.PullNever {
		return true // a missing image surfaces as ErrImageNeverPull from Start
	}
	if policy == corev1.PullIfNotPresent {
		if ok, err := a.cfg.Runtime.HasImage(ctx, c.Image); err == nil && ok {
			return true
		}
	}
	key := "pull:" + c.Name
	if time.Now().Before(w.nextStart[key]) {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: fmt.Sprintf("Back-off pulling image %q", c.Image)}
		return false
	}
	if _, err := a.cfg.Runtime.Pull(ctx, c.Image, a.cfg.InsecureRegistries); err != nil {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: err.Error()}
		a.event(pod, corev1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %v", c.Image, err))
		w.retryLater(key)
		return false
	}
	delete(w.delay, key)
	a.event(pod, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q", c.Image))
	return true
}

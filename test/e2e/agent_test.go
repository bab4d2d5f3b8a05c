package e2e

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	"skiff/agent/testimage"
	"skiff/test/cluster"
)

func waitPod(t *testing.T, cs *kubernetes.Clientset, name, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last *corev1.Pod
	for time.Now().Before(deadline) {
		p, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			last = p
			if ok(p) {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pod %s: %s not reached within 60s; last status %+v", name, what, last.Status)
	return nil
}

func nodeReady(cs *kubernetes.Clientset, name string) corev1.ConditionStatus {
	n, err := cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func waitNode(t *testing.T, cs *kubernetes.Clientset, name string, want corev1.ConditionStatus) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for nodeReady(cs, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("node %s: Ready=%q, want %q", name, nodeReady(cs, name), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func podSpec(name, node string, restart corev1.RestartPolicy, image string, cmd ...string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		NodeName: node, RestartPolicy: restart, TerminationGracePeriodSeconds: &grace,
		Containers: []corev1.Container{{Name: "main", Image: image, Command: cmd}}}}
}

// Real containers through containerd: pods bound by hand run, fail, wait for a missing
// image and crash-loop as Kubernetes describes; containers survive kill -9 of the agent and
// are adopted; a dead agent's Node goes Unknown and comes back Ready; the agent carries on
// when a master dies.
func TestAgentRunsPods(t *testing.T) {
	c := cluster.Start(t, 3)
	regSrv := httptest.NewUnstartedServer(nil)
	registryHost := regSrv.Listener.Addr().String()
	agent := c.StartAgent("n1", "--insecure-registries", registryHost)
	cs := clientFor(t, c.WriteKubeconfig(0))
	waitNode(t, cs, "n1", corev1.ConditionTrue)
	node, _ := cs.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if !strings.HasPrefix(node.Status.NodeInfo.ContainerRuntimeVersion, "containerd://") || node.Status.Capacity.Cpu().IsZero() || len(node.Status.Images) == 0 {
		t.Fatalf("node status incomplete: %+v", node.Status)
	}

	ctx := context.Background()
	create := func(p *corev1.Pod) {
		t.Helper()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(podSpec("sleeper", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sleep", "3600"))
	create(podSpec("fails", "n1", corev1.RestartPolicyNever, testimage.BusyboxRef, "sh", "-c", "exit 2"))
	create(podSpec("done", "n1", corev1.RestartPolicyOnFailure, testimage.BusyboxRef, "true"))
	never := podSpec("noimage", "n1", corev1.RestartPolicyAlways, "skiff.local/missing:1")
	never.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	create(never)
	create(podSpec("nopull", "n1", corev1.RestartPolicyAlways, "127.0.0.1:1/missing:1")) // nothing listens there
	// The pull path: an in-process registry on loopback that the agent may use over HTTP.
	reg := testimage.NewRegistry()
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Add("tools/busybox", "v1", img); err != nil {
		t.Fatal(err)
	}
	// The static Go test program, built now and served from the registry too.
	echoBin := filepath.Join(t.TempDir(), "echo")
	build := exec.Command("go", "build", "-o", echoBin, "skiff/test/images/echo")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the Go test image: %v\n%s", err, out)
	}
	echoImg, err := testimage.Binary("tools/echo:v1", echoBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Add("tools/echo", "v1", echoImg); err != nil {
		t.Fatal(err)
	}
	regSrv.Config.Handler = reg
	regSrv.Start()
	defer regSrv.Close()
	create(podSpec("pulled", "n1", corev1.RestartPolicyAlways, registryHost+"/tools/busybox:v1", "sleep", "3600"))
	create(podSpec("crash", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sh", "-c", "exit 1"))

	running := waitPod(t, cs, "sleeper", "Running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	cid := running.Status.ContainerStatuses[0].ContainerID
	waitPod(t, cs, "fails", "Failed with exit code 2", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodFailed && len(p.Status.ContainerStatuses) == 1 &&
			p.Status.ContainerStatuses[0].State.Terminated != nil && p.Status.ContainerStatuses[0].State.Terminated.ExitCode == 2
	})
	waitPod(t, cs, "done", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	waitPod(t, cs, "noimage", "waiting on the missing image", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "ErrImageNeverPull"
	})
	waitPod(t, cs, "nopull", "waiting on a failed pull", func(p *corev1.Pod) bool {
		if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Waiting == nil {
			return false
		}
		r := p.Status.ContainerStatuses[0].State.Waiting.Reason
		return r == "ErrImagePull" || r == "ImagePullBackOff"
	})
	waitPod(t, cs, "pulled", "Running from a pulled image", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	echo := podSpec("echo", "n1", corev1.RestartPolicyAlways, registryHost+"/tools/echo:v1")
	echo.Spec.Containers[0].Command = nil
	echo.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}
	create(echo)
	waitPod(t, cs, "echo", "Ready: the Go program serves its readiness probe", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	crashed := waitPod(t, cs, "crash", "restarted and backing off", func(p *corev1.Pod) bool {
		if len(p.Status.ContainerStatuses) != 1 {
			return false
		}
		st := p.Status.ContainerStatuses[0]
		return st.RestartCount >= 1 && st.LastTerminationState.Terminated != nil &&
			st.State.Waiting != nil && st.State.Waiting.Reason == "CrashLoopBackOff"
	})
	if crashed.Status.Phase != corev1.PodRunning {
		t.Fatalf("a pod in CrashLoopBackOff (restartPolicy Always) is %s, want Running as kubelet reports it", crashed.Status.Phase)
	}

	// Probes: a failing liveness probe restarts; readiness gates Ready (HTTP through the
	// pod's own network namespace, TCP to a closed port).
	live := podSpec("live", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sh", "-c", "touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 3600")
	live.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}},
		PeriodSeconds: 1, FailureThreshold: 2}
	create(live)
	web := podSpec("web", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sh", "-c", "mkdir -p /www && echo ok > /www/index.html && httpd -f -p 8080 -h /www")
	web.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	web.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intstr.FromString("http")}}, PeriodSeconds: 1}
	create(web)
	closed := podSpec("closed", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sleep", "3600")
	closed.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9999)}}, PeriodSeconds: 1}
	create(closed)
	waitPod(t, cs, "web", "Ready through its HTTP readiness probe", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	waitPod(t, cs, "live", "restarted by its liveness probe", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	// What happened is in the pods' Events, as `kubectl describe pod` shows them.
	k0 := &kubectl{t: t, bin: "/usr/bin/kubectl", kubeconfig: c.WriteKubeconfig(0)}
	deadlineEv := time.Now().Add(30 * time.Second)
	for {
		out, _ := k0.run("describe", "pod", "live")
		if strings.Contains(out, "Unhealthy") && strings.Contains(out, "Killing") && strings.Contains(out, "Started") {
			break
		}
		if time.Now().After(deadlineEv) {
			t.Fatalf("kubectl describe pod live lacks the probe events:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if p := waitPod(t, cs, "closed", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }); p.Status.ContainerStatuses[0].Ready {
		t.Fatal("a pod whose readiness probe fails is Ready")
	}

	// ConfigMap and Secret keys reach the container as env and as files.
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Data: map[string]string{"greeting": "hello", "a": "from-envfrom"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pw"},
		Data: map[string][]byte{"password": []byte("s3cret")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := podSpec("config", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sh", "-c",
		`echo "expanded: $(GREETING) $$(GREETING)"; echo "env: $GREETING $PASSWORD $P_a $POD_NAME"; echo "files: $(cat /cfg/greeting) $(cat /sec/password)"; touch /scratch/ok && echo scratch-ok; sleep 3600`)
	cfg.Spec.Containers[0].Env = []corev1.EnvVar{
		{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}, Key: "greeting"}}},
		{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "pw"}, Key: "password"}}},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	cfg.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{Prefix: "P_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}}}
	cfg.Spec.Volumes = []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}}},
		{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "pw"}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	cfg.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/cfg", ReadOnly: true}, {Name: "sec", MountPath: "/sec", ReadOnly: true}, {Name: "scratch", MountPath: "/scratch"}}
	create(cfg)
	cp := waitPod(t, cs, "config", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	logFile := filepath.Join(agent.Dir, "pods", string(cp.UID), "main", "0.log")
	var logs []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if logs, _ = os.ReadFile(logFile); strings.Contains(string(logs), "scratch-ok") {
			break
		}
	}
	// $(GREETING) is Kubernetes' expansion in command and args; $$ escapes it, so the shell
	// gets $(GREETING) and runs a command of that name, which prints nothing.
	for _, want := range []string{"expanded: hello \n", "env: hello s3cret from-envfrom config", "files: hello s3cret", "scratch-ok"} {
		if !strings.Contains(string(logs), want) {
			t.Fatalf("container output lacks %q:\n%s", want, logs)
		}
	}
	// Logs through the masters (proxied to the agent), with kubectl and client-go.
	k := &kubectl{t: t, bin: "/usr/bin/kubectl", kubeconfig: c.WriteKubeconfig(1)}
	k.ok([]string{"logs", "config"}, "env: hello s3cret from-envfrom config", "scratch-ok")
	if out := k.ok([]string{"logs", "config", "-c", "main", "--tail=1"}); strings.TrimSpace(out) != "scratch-ok" {
		t.Fatalf("kubectl logs --tail=1: %q", out)
	}
	tailOne := int64(1)
	raw, err := cs.CoreV1().Pods("default").GetLogs("config", &corev1.PodLogOptions{TailLines: &tailOne}).DoRaw(ctx)
	if err != nil || strings.TrimSpace(string(raw)) != "scratch-ok" {
		t.Fatalf("client-go logs: %q %v", raw, err)
	}
	k.fails([]string{"logs", "noimage"}, "waiting to start")

	// Exec through a master: output, exit codes, stdin, and a TTY.
	k.ok([]string{"exec", "config", "--", "sh", "-c", "echo out-$POD_NAME"}, "out-config")
	k.fails([]string{"exec", "config", "--", "sh", "-c", "exit 3"}, "exit code 3")
	in := exec.Command(k.bin, "--kubeconfig", k.kubeconfig, "exec", "-i", "config", "--", "sh", "-c", "cat; echo on-stderr >&2")
	in.Stdin = strings.NewReader("piped-in\n")
	if out, err := in.CombinedOutput(); err != nil || !strings.Contains(string(out), "piped-in") || !strings.Contains(string(out), "on-stderr") {
		t.Fatalf("kubectl exec -i: %v %s", err, out)
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", c.WriteKubeconfig(2))
	if err != nil {
		t.Fatal(err)
	}
	execURL := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("config").SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "main", Command: []string{"sh", "-c", "tty; echo done"}, Stdout: true, TTY: true}, scheme.ParameterCodec).URL()
	ex, err := remotecommand.NewWebSocketExecutor(restCfg, "GET", execURL.String())
	if err != nil {
		t.Fatal(err)
	}
	var ttyOut bytes.Buffer
	if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &ttyOut, Tty: true}); err != nil {
		t.Fatalf("exec with a TTY: %v", err)
	}
	if !strings.Contains(ttyOut.String(), "/dev/pts/") || !strings.Contains(ttyOut.String(), "done") {
		t.Fatalf("exec with a TTY printed %q", ttyOut.String())
	}
	bad := podSpec("badcfg", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "true")
	bad.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}}}
	create(bad)
	create(podSpec("badcmd", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "/no/such/binary"))
	badvol := podSpec("badvol", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "true")
	badvol.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/no/such/dir"}}}}
	badvol.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/v"}}
	create(badvol)
	// A hostPath of type "" is not checked before the mount (as in Kubernetes); the runtime's
	// refusal is the clear reason.
	for name, reason := range map[string]string{"badcmd": "CreateContainerError", "badvol": "CreateContainerError"} {
		p := waitPod(t, cs, name, "waiting with "+reason, func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
				p.Status.ContainerStatuses[0].State.Waiting.Reason == reason
		})
		if p.Status.ContainerStatuses[0].State.Waiting.Message == "" {
			t.Fatalf("%s waits without saying why", name)
		}
	}
	waitPod(t, cs, "badcfg", "waiting on its missing configmap", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "CreateContainerConfigError"
	})

	// kill -9 the agent: the container keeps running, and the restarted agent adopts it.
	agent.Kill()
	if out, err := agent.Ctr("task", "ls"); err != nil || !strings.Contains(out, strings.TrimPrefix(cid, "containerd://")) || !strings.Contains(out, "RUNNING") {
		t.Fatalf("container not running after the agent died: %v\n%s", err, out)
	}
	agent.Restart()
	time.Sleep(3 * time.Second)
	p := waitPod(t, cs, "sleeper", "still Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if got := p.Status.ContainerStatuses[0].ContainerID; got != cid || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Fatalf("after the agent restart: container %s restarts %d, want the same %s, 0", got, p.Status.ContainerStatuses[0].RestartCount, cid)
	}

	// An agent that stops gossiping makes its node Unknown; back, Ready.
	agent.Kill()
	waitNode(t, cs, "n1", corev1.ConditionUnknown)
	agent.Restart()
	waitNode(t, cs, "n1", corev1.ConditionTrue)

	// A master dies while the agent watches: the agent carries on through another.
	leader := c.Leader(-1)
	c.Kill(leader)
	cs2 := clientFor(t, c.WriteKubeconfig((leader+1)%3))
	if _, err := cs2.CoreV1().Pods("default").Create(ctx, podSpec("after", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sleep", "3600"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs2, "after", "Running after a master died", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })

	// Deleting a pod stops and removes its container.
	if err := cs2.CoreV1().Pods("default").Delete(ctx, "sleeper", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := cs2.CoreV1().Pods("default").Get(ctx, "sleeper", metav1.GetOptions{})
		out, _ := agent.Ctr("containers", "ls", "-q")
		if err != nil && !strings.Contains(out, strings.TrimPrefix(cid, "containerd://")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted pod still present (get err %v) or its container remains:\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A deleted pod's containers run their preStop hook before SIGTERM.
	hostDir := t.TempDir()
	hooked := podSpec("hooked", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sleep", "3600")
	hooked.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir}}}}
	hooked.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/host"}}
	hooked.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo bye > /host/prestop"}}}}
	if _, err := cs2.CoreV1().Pods("default").Create(ctx, hooked, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs2, "hooked", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if err := cs2.CoreV1().Pods("default").Delete(ctx, "hooked", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := cs2.CoreV1().Pods("default").Get(ctx, "hooked", metav1.GetOptions{}); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pod with a preStop hook not deleted within 60 s")
		}
	}
	if b, err := os.ReadFile(filepath.Join(hostDir, "prestop")); err != nil || strings.TrimSpace(string(b)) != "bye" {
		t.Fatalf("the preStop hook did not run before the container stopped: %q %v", b, err)
	}
}

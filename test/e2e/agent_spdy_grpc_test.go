package e2e

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/agent/testimage"
	"skiff/test/cluster"
)

// kubectl before 1.30 speaks only SPDY for exec and attach: kubectl 1.27 runs a command,
// gets its output, its exit code and piped input, attaches to a stdin:true container and
// hears why an attach to one without stdin is refused. gRPC readiness probes: the Go test
// image serving grpc.health.v1 becomes Ready; a service it reports NOT_SERVING keeps its
// pod unready with an Unhealthy event saying so.
func TestAgentSPDYExecAndGRPCProbe(t *testing.T) {
	const old = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27"
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("kubectl 1.27 is not installed at %s", old)
	}
	c := cluster.Start(t, 1)
	regSrv := httptest.NewUnstartedServer(nil)
	registryHost := regSrv.Listener.Addr().String()
	c.StartAgent("n1", "--insecure-registries", registryHost)
	kc := c.WriteKubeconfig(0)
	cs := clientFor(t, kc)
	k := &kubectl{t: t, bin: old, kubeconfig: kc}
	ctx := context.Background()

	// The Go test image, with its gRPC health endpoint, from an in-process registry.
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
	reg := testimage.NewRegistry()
	if err := reg.Add("tools/echo", "v1", echoImg); err != nil {
		t.Fatal(err)
	}
	regSrv.Config.Handler = reg
	regSrv.Start()
	defer regSrv.Close()

	waitNode(t, cs, "n1", corev1.ConditionTrue)
	create := func(p *corev1.Pod) {
		t.Helper()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(podSpec("sh", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sleep", "3600"))
	echoin := podSpec("echoin", "n1", corev1.RestartPolicyNever, testimage.BusyboxRef, "sh", "-c", "read line; echo got-$line")
	echoin.Spec.Containers[0].Stdin, echoin.Spec.Containers[0].StdinOnce = true, true
	create(echoin)
	grpcPod := func(name, service string) *corev1.Pod {
		p := podSpec(name, "n1", corev1.RestartPolicyAlways, registryHost+"/tools/echo:v1")
		p.Spec.Containers[0].Command = nil
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "ECHO_GRPC_HEALTH", Value: "9090"}}
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			GRPC: &corev1.GRPCAction{Port: 9090, Service: &service}}, PeriodSeconds: 1, TimeoutSeconds: 2}
		return p
	}
	create(grpcPod("grpc-up", ""))
	create(grpcPod("grpc-down", "other"))

	// exec over SPDY: output, exit code, piped stdin.
	waitPod(t, cs, "sh", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if out := k.ok([]string{"exec", "sh", "--", "echo", "hi"}); strings.TrimSpace(out) != "hi" {
		t.Fatalf("kubectl 1.27 exec echo hi printed %q", out)
	}
	code := exec.Command(old, "--kubeconfig", kc, "exec", "sh", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	out, err := runWithin(code, 60*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(out, "out") || !strings.Contains(out, "err") {
		t.Fatalf("kubectl 1.27 exec … exit 3: %v (want exit code 3)\n%s", err, out)
	}
	cat := exec.Command(old, "--kubeconfig", kc, "exec", "-i", "sh", "--", "cat")
	cat.Stdin = strings.NewReader("piped-through\n")
	if out, err := runWithin(cat, 60*time.Second); err != nil || strings.TrimSpace(out) != "piped-through" {
		t.Fatalf("kubectl 1.27 exec -i cat: %v\n%q", err, out)
	}
	k.fails([]string{"exec", "sh", "-c", "nope", "--", "true"}, "nope")

	// attach over SPDY feeds the stdin:true container; one without stdin is refused with why.
	waitPod(t, cs, "echoin", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	att := exec.Command(old, "--kubeconfig", kc, "attach", "-i", "echoin")
	att.Stdin = strings.NewReader("hello\n")
	if out, err := runWithin(att, 60*time.Second); err != nil || !strings.Contains(out, "got-hello") {
		t.Fatalf("kubectl 1.27 attach -i: %v\n%s", err, out)
	}
	waitPod(t, cs, "echoin", "Succeeded once its input was read", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	k.fails([]string{"attach", "-i", "sh"}, "stdin: true")

	// gRPC readiness: SERVING makes the pod Ready; NOT_SERVING keeps the other unready.
	waitPod(t, cs, "grpc-up", "Ready through its gRPC readiness probe", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	eventually(t, "an Unhealthy event saying grpc-down's service is NOT_SERVING", func() bool {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "grpc-down" && e.Reason == "Unhealthy" && strings.Contains(e.Message, "NOT_SERVING") {
				return true
			}
		}
		return false
	})
	if p, err := cs.CoreV1().Pods("default").Get(ctx, "grpc-down", metav1.GetOptions{}); err != nil ||
		p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].Ready {
		t.Fatalf("grpc-down should be Running and not Ready: %v %+v", err, p.Status)
	}
}

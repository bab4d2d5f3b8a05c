package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	"skiff/agent/testimage"
	"skiff/test/cluster"
)

// Pod networking and the streaming subresources with real kubectl: pods get distinct IPs
// from their node's pod CIDR (CNI bridge + host-local), reach each other by IP, are probed
// and listed in Endpoints by IP, keep their IP across an agent kill -9, and give it back
// when deleted; kubectl port-forward reaches a pod's port; kubectl attach feeds a stdin:true
// container; kubectl logs --timestamps, --since and --since-time use the times the log
// writer put on every line.
func TestAgentPodNetworkPortForwardAttachLogs(t *testing.T) {
	c := cluster.Start(t, 1)
	agent := c.StartAgent("n1")
	cs := clientFor(t, c.WriteKubeconfig(0))
	k := &kubectl{t: t, bin: "/usr/bin/kubectl", kubeconfig: c.WriteKubeconfig(0)}
	ctx := context.Background()
	waitNode(t, cs, "n1", corev1.ConditionTrue)
	node, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, podCIDR, err := net.ParseCIDR(node.Spec.PodCIDR)
	if err != nil || len(node.Spec.PodCIDRs) != 1 || node.Spec.PodCIDRs[0] != node.Spec.PodCIDR {
		t.Fatalf("node podCIDR %q podCIDRs %v: %v", node.Spec.PodCIDR, node.Spec.PodCIDRs, err)
	}
	create := func(p *corev1.Pod) {
		t.Helper()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	web := podSpec("web", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sh", "-c",
		"mkdir -p /www && echo hello-from-web > /www/index.html && httpd -f -p 80 -h /www")
	web.Labels = map[string]string{"app": "web"}
	web.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}
	web.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
		HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intstr.FromString("http")}}, PeriodSeconds: 1}
	create(web)
	create(podSpec("client", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sleep", "3600"))
	echoin := podSpec("echoin", "n1", corev1.RestartPolicyNever, testimage.BusyboxRef, "sh", "-c", "read line; echo got-$line")
	echoin.Spec.Containers[0].Stdin, echoin.Spec.Containers[0].StdinOnce = true, true
	create(echoin)
	shell := podSpec("shell", "n1", corev1.RestartPolicyNever, testimage.BusyboxRef, "sh")
	shell.Spec.Containers[0].Stdin, shell.Spec.Containers[0].TTY = true, true
	create(shell)
	create(podSpec("ticker", "n1", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sh", "-c",
		"echo early; sleep 4; while true; do echo tick; sleep 0.3; done"))
	if _, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Distinct addresses from the node's CIDR; the HTTP readiness probe reaches the pod's IP.
	hasIP := func(p *corev1.Pod) bool { return p.Status.PodIP != "" && p.Status.Phase == corev1.PodRunning }
	wp := waitPod(t, cs, "web", "Ready with a pod IP", func(p *corev1.Pod) bool {
		return hasIP(p) && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	cp := waitPod(t, cs, "client", "Running with a pod IP", hasIP)
	webIP := wp.Status.PodIP
	for _, p := range []*corev1.Pod{wp, cp} {
		if ip := net.ParseIP(p.Status.PodIP); ip == nil || !podCIDR.Contains(ip) || len(p.Status.PodIPs) != 1 || p.Status.PodIPs[0].IP != p.Status.PodIP {
			t.Fatalf("pod %s has IP %q (podIPs %v), not one from the node's %s", p.Name, p.Status.PodIP, p.Status.PodIPs, podCIDR)
		}
	}
	if webIP == cp.Status.PodIP {
		t.Fatalf("two pods share the IP %s", webIP)
	}
	// One pod reaches another by IP, and the Service's Endpoints list that IP.
	k.ok([]string{"exec", "client", "--", "wget", "-qO-", "http://" + webIP + "/"}, "hello-from-web")
	eventually(t, "the web Service's Endpoints to list the pod IP", func() bool {
		ep, err := cs.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && len(ep.Subsets) == 1 && len(ep.Subsets[0].Addresses) == 1 && ep.Subsets[0].Addresses[0].IP == webIP
	})

	// A second agent on this host gets a CIDR of its own (its own bridge); pods on the two
	// nodes reach each other through the host.
	c.StartAgent("n2")
	waitNode(t, cs, "n2", corev1.ConditionTrue)
	web2 := podSpec("web2", "n2", corev1.RestartPolicyAlways, testimage.BusyboxRef, "sh", "-c",
		"mkdir -p /www && echo hello-from-n2 > /www/index.html && httpd -f -p 80 -h /www")
	create(web2)
	w2 := waitPod(t, cs, "web2", "Running with a pod IP", hasIP)
	node2, err := cs.CoreV1().Nodes().Get(ctx, "n2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, podCIDR2, err := net.ParseCIDR(node2.Spec.PodCIDR)
	if err != nil || podCIDR2.Contains(podCIDR.IP) || podCIDR.Contains(podCIDR2.IP) || !podCIDR2.Contains(net.ParseIP(w2.Status.PodIP)) {
		t.Fatalf("n2's podCIDR %q overlaps n1's %s or lacks web2's IP %s: %v", node2.Spec.PodCIDR, podCIDR, w2.Status.PodIP, err)
	}
	waitFor(t, "a pod on n1 to reach a pod on n2 by IP", time.Minute, func() (bool, string) {
		out, err := k.run("exec", "client", "--", "wget", "-qO-", "http://"+w2.Status.PodIP+"/")
		return err == nil && strings.Contains(out, "hello-from-n2"), out
	})

	// kubectl port-forward to the pod's port 80, on a local port kubectl picks: SPDY
	// tunnelled through a WebSocket (kubectl's default), then plain SPDY (its fallback).
	for _, env := range []string{"KUBECTL_PORT_FORWARD_WEBSOCKETS=true", "KUBECTL_PORT_FORWARD_WEBSOCKETS=false"} {
		portForward(t, k, env, "pod/web", "hello-from-web")
	}

	// kubectl attach feeds the stdin:true container; stdinOnce closes its input after.
	waitPod(t, cs, "echoin", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	att := exec.Command(k.bin, "--kubeconfig", k.kubeconfig, "attach", "-i", "echoin")
	att.Stdin = strings.NewReader("hello\n")
	out, err := runWithin(att, 30*time.Second)
	if err != nil || !strings.Contains(out, "got-hello") {
		t.Fatalf("kubectl attach -i: %v\n%s", err, out)
	}
	waitPod(t, cs, "echoin", "Succeeded once its input was read", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	k.fails([]string{"attach", "-i", "client"}, "stdin")
	// A TTY (as `kubectl run -it` gets): the shell reads the terminal and exits on "exit".
	waitPod(t, cs, "shell", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	restCfg, err := clientcmd.BuildConfigFromFlags("", k.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	attachURL := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("shell").SubResource("attach").
		VersionedParams(&corev1.PodAttachOptions{Container: "main", Stdin: true, Stdout: true, TTY: true}, scheme.ParameterCodec).URL()
	ex, err := remotecommand.NewWebSocketExecutor(restCfg, "GET", attachURL.String())
	if err != nil {
		t.Fatal(err)
	}
	var ttyOut strings.Builder
	ttyIn := strings.NewReader("tty; echo sum-$((40+2))\nexit\n")
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = ex.StreamWithContext(actx, remotecommand.StreamOptions{Stdin: ttyIn, Stdout: &ttyOut, Tty: true})
	cancel()
	if err != nil || !strings.Contains(ttyOut.String(), "sum-42") || !strings.Contains(ttyOut.String(), "/dev/pts/") {
		t.Fatalf("attach with a TTY: %v\n%q", err, ttyOut.String())
	}

	// Logs carry times: --timestamps shows them, --since and --since-time filter by them.
	var stamped string
	eventually(t, "ticker to tick", func() bool {
		stamped, _ = k.run("logs", "ticker", "--timestamps")
		return strings.Count(stamped, "tick") >= 3
	})
	lineRE := regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z) (early|tick)$`)
	var earlyAt, firstTick time.Time
	for _, line := range strings.Split(strings.TrimSpace(stamped), "\n") {
		m := lineRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("kubectl logs --timestamps line %q lacks an RFC 3339 time:\n%s", line, stamped)
		}
		ts, _ := time.Parse(time.RFC3339Nano, m[1])
		if m[3] == "early" {
			earlyAt = ts
		} else if firstTick.IsZero() {
			firstTick = ts
		}
	}
	if earlyAt.IsZero() || firstTick.Sub(earlyAt) < 3*time.Second {
		t.Fatalf("times do not follow the container's sleeps (early %v, first tick %v):\n%s", earlyAt, firstTick, stamped)
	}
	if plain := k.ok([]string{"logs", "ticker", "--tail=2"}); strings.TrimSpace(plain) != "tick\ntick" {
		t.Fatalf("kubectl logs --tail=2 without --timestamps: %q", plain)
	}
	// "early" is more than 3 s older than every tick; ticks come every 0.3 s.
	recent := k.ok([]string{"logs", "ticker", "--since=2s"}, "tick")
	if strings.Contains(recent, "early") {
		t.Fatalf("kubectl logs --since=2s shows a line older than 3 s:\n%s", recent)
	}
	sinceTime := firstTick.Truncate(time.Second).Format(time.RFC3339)
	fromTicks := k.ok([]string{"logs", "ticker", "--since-time=" + sinceTime}, "tick")
	if strings.Contains(fromTicks, "early") {
		t.Fatalf("kubectl logs --since-time=%s shows the earlier line:\n%s", sinceTime, fromTicks)
	}
	if all := k.ok([]string{"logs", "ticker", "--since=1h"}, "early", "tick"); !strings.HasPrefix(all, "early\n") {
		t.Fatalf("kubectl logs --since=1h: %q", all)
	}

	// kill -9 of the agent: the restarted agent re-adopts the pods' addresses.
	agent.Kill()
	agent.Restart()
	eventually(t, "the agent to be back and report web still Ready at the same IP", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && p.Status.PodIP == webIP && nodeReady(cs, "n1") == corev1.ConditionTrue
	})
	eventually(t, "the restarted agent to serve exec, and web to answer at its IP", func() bool {
		out, err := k.run("exec", "client", "--", "wget", "-qO-", "http://"+webIP+"/")
		return err == nil && strings.Contains(out, "hello-from-web")
	})

	// Deleting the pod gives its address back to the node's pool.
	lease := ""
	_ = filepath.WalkDir(filepath.Join(agent.Dir, "cni", "ipam"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == webIP {
			lease = p
		}
		return nil
	})
	if lease == "" {
		t.Fatalf("no IPAM lease for %s under %s", webIP, filepath.Join(agent.Dir, "cni", "ipam"))
	}
	if err := cs.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted pod's address to be released", func() bool {
		_, err := os.Stat(lease)
		return os.IsNotExist(err)
	})
}

// portForward runs kubectl port-forward to target's port 80 with env set, and fetches
// the page three times (three connections over one forwarding session).
func portForward(t *testing.T, k *kubectl, env, target, want string) {
	t.Helper()
	pf := exec.Command(k.bin, "--kubeconfig", k.kubeconfig, "port-forward", target, ":80")
	pf.Env = append(os.Environ(), env)
	pfOut, err := pf.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pfErr strings.Builder
	pf.Stderr = &pfErr
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
	localAddr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pfOut)
		re := regexp.MustCompile(`Forwarding from (127\.0\.0\.1:\d+) -> 80`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				localAddr <- m[1]
			}
		}
	}()
	var addr string
	select {
	case addr = <-localAddr:
	case <-time.After(30 * time.Second):
		t.Fatalf("kubectl port-forward (%s) printed no forwarding line; stderr:\n%s", env, pfErr.String())
	}
	for i := 0; i < 3; i++ {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("GET through kubectl port-forward (%s): %v; stderr:\n%s", env, err, pfErr.String())
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), want) {
			t.Fatalf("GET through kubectl port-forward (%s): %d %q", env, resp.StatusCode, body)
		}
	}
}

// eventually polls cond until it holds, failing the test after a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitFor(t, what, time.Minute, func() (bool, string) { return cond(), "" })
}

// runWithin runs cmd, killing it after d, and returns its combined output.
func runWithin(cmd *exec.Cmd, d time.Duration) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), context.DeadlineExceeded
	}
}

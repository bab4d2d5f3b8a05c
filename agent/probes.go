package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeState is what the agent remembers about one container's probes.
type probeState struct {
	last                map[string]time.Time // probe kind → last run
	successes, failures map[string]int
	started, ready      bool
	lastFailure         string
}

func newProbeState() *probeState {
	return &probeState{last: map[string]time.Time{}, successes: map[string]int{}, failures: map[string]int{}}
}

// probeOutcome is what a pass of probes decided for a running container.
type probeOutcome struct {
	kill   bool   // liveness or startup failed past its threshold
	reason string // why, for logs and the container's last state
}

// runProbes runs whichever of c's probes are due and updates ps. It reports whether the
// container must be restarted.
func (a *Agent) runProbes(ctx context.Context, pod *corev1.Pod, w *podWorker, c corev1.Container, id string, ps *probeState, started time.Time) probeOutcome {
	now := time.Now()
	due := func(kind string, p *corev1.Probe) bool {
		if p == nil || now.Sub(started) < time.Duration(p.InitialDelaySeconds)*time.Second {
			return false
		}
		period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
		return now.Sub(ps.last[kind]) >= period
	}
	run := func(kind string, p *corev1.Probe) (passed, decided bool) {
		ps.last[kind] = now
		ok, msg := a.probe(ctx, pod, w, c, id, p)
		if ok {
			ps.successes[kind]++
			ps.failures[kind] = 0
		} else {
			ps.failures[kind]++
			ps.successes[kind] = 0
			ps.lastFailure = fmt.Sprintf("%s probe failed: %s", kind, msg)
		}
		success := max(p.SuccessThreshold, 1)
		failure := max(p.FailureThreshold, 1)
		switch {
		case ps.successes[kind] >= int(success):
			return true, true
		case ps.failures[kind] >= int(failure):
			return false, true
		}
		return false, false
	}
	if !ps.started {
		if c.StartupProbe == nil {
			ps.started = true
		} else if due("startup", c.StartupProbe) {
			passed, decided := run("startup", c.StartupProbe)
			if decided && !passed {
				return probeOutcome{kill: true, reason: ps.lastFailure}
			}
			ps.started = passed
		}
		if !ps.started {
			return probeOutcome{}
		}
	}
	if due("liveness", c.LivenessProbe) {
		if passed, decided := run("liveness", c.LivenessProbe); decided && !passed {
			return probeOutcome{kill: true, reason: ps.lastFailure}
		}
	}
	if c.ReadinessProbe == nil {
		ps.ready = true
	} else if due("readiness", c.ReadinessProbe) {
		if passed, decided := run("readiness", c.ReadinessProbe); decided {
			ps.ready = passed
		}
	}
	return probeOutcome{}
}

// probe runs one probe once.
func (a *Agent) probe(ctx context.Context, pod *corev1.Pod, w *podWorker, c corev1.Container, id string, p *corev1.Probe) (bool, string) {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// As the kubelet, probe the pod's IP from the node; a pod without one (no pod network)
	// is probed on its loopback from inside its namespace.
	nsPath, defaultHost := "", "127.0.0.1"
	switch {
	case pod.Spec.HostNetwork:
	case w.podIP != "":
		defaultHost = w.podIP
	case w.netns != "":
		nsPath = "/var/run/netns/" + w.netns
	}
	switch {
	case p.Exec != nil:
		var out lockedBuffer
		code, err := a.cfg.Runtime.ExecStream(ctx, id, p.Exec.Command, false, nil, &out, &out, nil)
		if err != nil {
			return false, err.Error()
		}
		if code != 0 {
			return false, fmt.Sprintf("command exited %d: %.200s", code, out.Bytes())
		}
		return true, ""
	case p.HTTPGet != nil:
		port, err := resolvePort(p.HTTPGet.Port, c)
		if err != nil {
			return false, err.Error()
		}
		host := p.HTTPGet.Host
		if host == "" {
			host = defaultHost
		}
		scheme := "http"
		if p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		// As kubelet's prober: an HTTPS probe does not verify the certificate (pods serve
		// self-signed ones), and every probe uses a fresh connection that ends with it.
		client := &http.Client{Timeout: timeout, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialInNetNS(ctx, nsPath, network, addr)
			},
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet's behaviour
			DisableKeepAlives: true,
		}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), p.HTTPGet.Path), nil)
		for _, h := range p.HTTPGet.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return true, ""
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return false, err.Error()
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = defaultHost
		}
		conn, err := dialInNetNS(ctx, nsPath, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case p.GRPC != nil:
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		return grpcProbe(ctx, nsPath, defaultHost, int(p.GRPC.Port), service)
	}
	return false, "the probe has no handler (exec, httpGet, tcpSocket or grpc)"
}

func resolvePort(p intstr.IntOrString, c corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}

// dialInNetNS dials from inside the network namespace at nsPath (the pod's), or from the
// host when nsPath is empty. A socket belongs to the namespace it was created in, so the
// dial happens on an OS thread moved into that namespace; the thread is never unlocked and
// so is discarded afterwards instead of returning to Go's pool in the wrong namespace.
func dialInNetNS(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if nsPath == "" {
		return d.DialContext(ctx, network, addr)
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: fmt.Errorf("opening %s: %w", nsPath, err)}
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			ch <- result{err: fmt.Errorf("entering %s: %w", nsPath, err)}
			return
		}
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

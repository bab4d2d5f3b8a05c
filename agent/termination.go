package agent

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// minStopGrace is the least time a container gets between SIGTERM and SIGKILL once its
// preStop hook used up the pod's grace period, as kubelet's minimumGracePeriodInSeconds.
const minStopGrace = 2 * time.Second

// stopContainers ends the running ones of a pod's containers as kubelet does: all at once,
// each running its preStop hook first, then SIGTERM, then SIGKILL when the grace period —
// one deadline for the hook and the signal together — has passed. pod and w may be nil
// (containers whose pod is gone from the store): no hooks run then. It blocks until every
// container stopped or failed to; errors are logged.
func (a *Agent) stopContainers(ctx context.Context, pod *corev1.Pod, w *podWorker, ctrs []ContainerStatus, grace time.Duration) {
	deadline := time.Now().Add(grace)
	var wg sync.WaitGroup
	for _, c := range ctrs {
		if c.State != StateRunning {
			continue
		}
		wg.Add(1)
		go func(c ContainerStatus) {
			defer wg.Done()
			if pod != nil && w != nil {
				if spec, ok := containerByName(pod, c.Labels[labelContainer]); ok && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil {
					a.runPreStop(ctx, pod, w, spec, c.ID, time.Until(deadline))
				}
			}
			if err := a.cfg.Runtime.Stop(ctx, c.ID, max(time.Until(deadline), minStopGrace)); err != nil {
				a.log.Warn("stopping container", "container", c.ID, "error", err)
			}
		}(c)
	}
	wg.Wait()
}

// runPreStop runs container c's preStop hook for at most budget; a failing hook is an
// Event (FailedPreStopHook), and the container is stopped anyway.
func (a *Agent) runPreStop(ctx context.Context, pod *corev1.Pod, w *podWorker, c corev1.Container, id string, budget time.Duration) {
	if budget <= 0 {
		return
	}
	h := c.Lifecycle.PreStop
	if h.Sleep != nil {
		t := time.NewTimer(min(time.Duration(h.Sleep.Seconds)*time.Second, budget))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return
	}
	p := &corev1.Probe{
		ProbeHandler:   corev1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket},
		TimeoutSeconds: int32(max(budget/time.Second, 1)),
	}
	if ok, why := a.probe(ctx, pod, w, c, id, p); !ok {
		a.event(pod, corev1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: "+why)
	}
}

func containerByName(pod *corev1.Pod, name string) (corev1.Container, bool) {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return c, true
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return c, true
		}
	}
	return corev1.Container{}, false
}

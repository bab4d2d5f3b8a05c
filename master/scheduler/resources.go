package scheduler

import (
	corev1 "k8s.io/api/core/v1"
)

// Requests that kube-scheduler assumes for a container that asks for nothing, when it scores
// (never when it filters): without them, pods without requests would all pile onto one node.
const (
	defaultMilliCPU = 100
	defaultMemory   = 200 << 20
)

// resources is an amount of every resource in integers (milli-CPU, bytes), so the placement
// loop compares int64s instead of resource.Quantity values.
type resources struct {
	milliCPU, memory, ephemeral int64
	// scalar holds extended resources and hugepages; nil when there are none.
	scalar map[corev1.ResourceName]int64
}

// fromList converts a ResourceList; pods are counted apart, so "pods" is ignored.
func fromList(l corev1.ResourceList) resources {
	var r resources
	r.addList(l, 1)
	return r
}

func (r *resources) addList(l corev1.ResourceList, sign int64) {
	for name, q := range l {
		switch name {
		case corev1.ResourceCPU:
			r.milliCPU += sign * q.MilliValue()
		case corev1.ResourceMemory:
			r.memory += sign * q.Value()
		case corev1.ResourceEphemeralStorage:
			r.ephemeral += sign * q.Value()
		case corev1.ResourcePods:
		default:
			if r.scalar == nil {
				r.scalar = map[corev1.ResourceName]int64{}
			}
			r.scalar[name] += sign * q.Value()
		}
	}
}

func (r *resources) add(o *resources, sign int64) {
	r.milliCPU += sign * o.milliCPU
	r.memory += sign * o.memory
	r.ephemeral += sign * o.ephemeral
	for name, v := range o.scalar {
		if r.scalar == nil {
			r.scalar = map[corev1.ResourceName]int64{}
		}
		r.scalar[name] += sign * v
	}
}

// atLeast raises every amount of r to o's where o's is larger.
func (r *resources) atLeast(o *resources) {
	r.milliCPU = max(r.milliCPU, o.milliCPU)
	r.memory = max(r.memory, o.memory)
	r.ephemeral = max(r.ephemeral, o.ephemeral)
	for name, v := range o.scalar {
		if r.scalar == nil {
			r.scalar = map[corev1.ResourceName]int64{}
		}
		r.scalar[name] = max(r.scalar[name], v)
	}
}

func (r *resources) clone() resources {
	c := *r
	c.scalar = nil
	for name, v := range r.scalar {
		if c.scalar == nil {
			c.scalar = map[corev1.ResourceName]int64{}
		}
		c.scalar[name] = v
	}
	return c
}

func (r *resources) isZero() bool {
	if r.milliCPU != 0 || r.memory != 0 || r.ephemeral != 0 {
		return false
	}
	for _, v := range r.scalar {
		if v != 0 {
			return false
		}
	}
	return true
}

// nonZeroList is what a container counts for when scoring: its CPU and memory requests, or
// the defaults when it asks for none.
func nonZeroList(l corev1.ResourceList) resources {
	r := resources{milliCPU: defaultMilliCPU, memory: defaultMemory}
	if q, ok := l[corev1.ResourceCPU]; ok {
		r.milliCPU = q.MilliValue()
	}
	if q, ok := l[corev1.ResourceMemory]; ok {
		r.memory = q.Value()
	}
	return r
}

// podRequests computes what a pod needs from a node as kube-scheduler does: the sum of its
// containers and restartable (sidecar) init containers, or the largest init container plus
// the sidecars started before it if that is more, plus the pod overhead. A pod-level
// resources stanza replaces the containers' sums for the resources it names. nonZero is the
// same with the scoring defaults for containers that request no CPU or memory.
func podRequests(spec *corev1.PodSpec) (req, nonZero resources) {
	for i := range spec.Containers {
		req.addList(spec.Containers[i].Resources.Requests, 1)
		nz := nonZeroList(spec.Containers[i].Resources.Requests)
		nonZero.add(&nz, 1)
	}
	var sidecars, sidecarsNZ, initMax, initMaxNZ resources
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		nz := nonZeroList(c.Resources.Requests)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			req.addList(c.Resources.Requests, 1)
			sidecars.addList(c.Resources.Requests, 1)
			nonZero.add(&nz, 1)
			sidecarsNZ.add(&nz, 1)
			continue
		}
		cur := sidecars.clone()
		cur.addList(c.Resources.Requests, 1)
		initMax.atLeast(&cur)
		curNZ := sidecarsNZ
		curNZ.add(&nz, 1)
		initMaxNZ.atLeast(&curNZ)
	}
	req.atLeast(&initMax)
	nonZero.atLeast(&initMaxNZ)
	if spec.Resources != nil {
		if q, ok := spec.Resources.Requests[corev1.ResourceCPU]; ok {
			req.milliCPU, nonZero.milliCPU = q.MilliValue(), q.MilliValue()
		}
		if q, ok := spec.Resources.Requests[corev1.ResourceMemory]; ok {
			req.memory, nonZero.memory = q.Value(), q.Value()
		}
	}
	req.addList(spec.Overhead, 1)
	nonZero.addList(spec.Overhead, 1)
	nonZero.ephemeral, nonZero.scalar = 0, nil
	return req, nonZero
}

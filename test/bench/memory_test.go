package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"skiff/test/cluster"
)

// memoryPods is how many pods BenchmarkMasterMemory stores (DESIGN.md §8 M1).
const memoryPods = 10000

// BenchmarkMasterMemory measures the resident memory of each of 3 master processes with
// 10,000 pods stored (DESIGN.md §8 M1: ≤ 250 MB), next to the same processes' memory with an
// empty cluster and the size of the stored pods, all in the same run. The pods name a
// scheduler that does not exist, so they stay Pending and nothing but the objects (the
// state, its indexes, the watch history, the scheduler's cache) adds up.
func BenchmarkMasterMemory(b *testing.B) {
	c := cluster.Start(b, 3, "--log-level", "warn")
	leader := c.WaitLeader(-1)
	cs := clientset(b, c.WriteKubeconfig(leader))
	ctx := context.Background()

	settle := func() []int {
		// Let the masters' garbage collectors run after the burst, as they would by the
		// time an operator looks.
		time.Sleep(5 * time.Second)
		rss := make([]int, len(c.Names))
		for i := range c.Names {
			rss[i] = rssKB(c.PID(i))
		}
		return rss
	}
	empty := settle()

	var stored atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	start := time.Now()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= memoryPods {
					return
				}
				p, err := cs.CoreV1().Pods("default").Create(ctx, memoryPod(int(i)), metav1.CreateOptions{})
				if err != nil {
					b.Errorf("creating pod %d: %v", i, err)
					return
				}
				raw, _ := json.Marshal(p)
				stored.Add(int64(len(raw)))
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	took := time.Since(start)
	full := settle()

	rep := &report{title: fmt.Sprintf("master memory: 3 master processes, %d pods (~%d bytes of JSON each)", memoryPods, stored.Load()/memoryPods)}
	rep.add("created %d pods through the API in %s", memoryPods, took.Round(time.Millisecond))
	worst := 0
	for i := range c.Names {
		role := "follower"
		if i == leader {
			role = "leader"
		}
		rep.add("%-8s %s: RSS %6.1f MB empty → %6.1f MB with %d pods (+%.1f MB, %.1f KB per pod)", role, c.Names[i],
			float64(empty[i])/1024, float64(full[i])/1024, memoryPods, float64(full[i]-empty[i])/1024, float64(full[i]-empty[i])/memoryPods)
		worst = max(worst, full[i])
	}
	rep.add("the pods' JSON: %.1f MB; largest master RSS / that = %.1f×", float64(stored.Load())/(1<<20), float64(worst)*1024/float64(stored.Load()))
	rep.add("M1 largest master RSS with %d pods: %.1f MB (target ≤ 250 MB)", memoryPods, float64(worst)/1024)
	fmt.Fprint(os.Stdout, rep)
	b.ReportMetric(float64(worst)/1024, "M1-MB")
}

// memoryPod is a pod as a Deployment would make it: labels, an owner-style annotation, one
// container with a command, environment, requests and limits, a port and a probe.
func memoryPod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("mem-%05d", i),
			Labels:      map[string]string{"app": fmt.Sprintf("app-%d", i%100), "tier": "web", "pod-template-hash": "5d8f7c6b9"},
			Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-27T00:00:00Z"},
		},
		Spec: corev1.PodSpec{
			SchedulerName: "no-such-scheduler",
			Containers: []corev1.Container{{
				Name:    "web",
				Image:   "registry.example/team/web:1.4.2",
				Command: []string{"/bin/web", "--listen=:8080", "--log-level=info"},
				Env: []corev1.EnvVar{
					{Name: "MODE", Value: "production"},
					{Name: "SHARD", Value: fmt.Sprint(i % 16)},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
				},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}},
			}},
		},
	}
}

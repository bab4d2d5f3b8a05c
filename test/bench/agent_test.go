package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	skiffagent "skiff/agent"
	"skiff/agent/testimage"
	"skiff/gossip"
	"skiff/test/cluster"
)

func clientset(b *testing.B, kubeconfig string) *kubernetes.Clientset {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return cs
}

// rssKB reads a process's resident set size.
func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// BenchmarkAgent measures pod create → Running (seen by a watch) for 100 pods of a local
// image on one agent (DESIGN.md §8 P1: p99 ≤ 2 s), the agent's memory with them, and how
// long the leader takes to mark a dead agent's Node Unknown, next to memberlist's own
// detection bound.
func BenchmarkAgent(b *testing.B) {
	c := cluster.Start(b, 3, "--log-level", "warn")
	agent := c.StartAgent("n1")
	cs := clientset(b, c.WriteKubeconfig(0))
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err == nil && len(n.Status.Conditions) > 0 && n.Status.Conditions[0].Status == corev1.ConditionTrue {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("agent did not register")
		}
		time.Sleep(100 * time.Millisecond)
	}

	const pods = 100
	var mu sync.Mutex
	created := map[string]time.Time{}
	running := map[string]time.Duration{}
	w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "n1").String()})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || p.Status.Phase != corev1.PodRunning {
				continue
			}
			now := time.Now()
			mu.Lock()
			if t0, ok := created[p.Name]; ok {
				if _, seen := running[p.Name]; !seen {
					running[p.Name] = now.Sub(t0)
				}
			}
			n := len(running)
			mu.Unlock()
			if n == pods {
				return
			}
		}
	}()
	grace := int64(1)
	start := time.Now()
	for i := 0; i < pods; i++ {
		name := fmt.Sprintf("p%03d", i)
		mu.Lock()
		created[name] = time.Now()
		mu.Unlock()
		_, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: "n1", TerminationGracePeriodSeconds: &grace,
				Containers: []corev1.Container{{Name: "c", Image: testimage.BusyboxRef, Command: []string{"sleep", "3600"}}}}}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d pods Running within 5 minutes", len(running), pods)
	}
	all := time.Since(start)
	w.Stop()
	var lat durations
	for _, d := range running {
		lat = append(lat, d)
	}
	rss := rssKB(agent.PID())

	// Baseline in the same run: the same containerd starting the same containers directly,
	// 16 at a time, with nothing of skiff in between.
	rt, err := skiffagent.NewContainerd(filepath.Join(agent.Dir, "containerd", "containerd.sock"), "skiff-n1")
	if err != nil {
		b.Fatal(err)
	}
	var base durations
	var bmu sync.Mutex
	var bwg sync.WaitGroup
	sem := make(chan struct{}, 16)
	bstart := time.Now()
	for i := 0; i < pods; i++ {
		bwg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; bwg.Done() }()
			t0 := time.Now()
			id := fmt.Sprintf("baseline-%d", i)
			if err := rt.Start(ctx, skiffagent.ContainerSpec{ID: id, Image: testimage.BusyboxRef, Command: []string{"sleep", "3600"}}); err != nil {
				b.Error(err)
				return
			}
			bmu.Lock()
			base = append(base, time.Since(t0))
			bmu.Unlock()
		}(i)
	}
	bwg.Wait()
	baseAll := time.Since(bstart)
	for i := 0; i < pods; i++ {
		_ = rt.Stop(ctx, fmt.Sprintf("baseline-%d", i), 100*time.Millisecond)
		_ = rt.Remove(ctx, fmt.Sprintf("baseline-%d", i))
	}
	rt.Close()

	// Agent death → Node Ready=Unknown, with memberlist's detection bound for comparison.
	agent.Kill()
	t0 := time.Now()
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err == nil && len(n.Status.Conditions) > 0 && n.Status.Conditions[0].Status == corev1.ConditionUnknown {
			break
		}
		if time.Since(t0) > 2*time.Minute {
			b.Fatal("node not marked Unknown within 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	toUnknown := time.Since(t0)
	bound := gossip.DefaultProbeInterval * time.Duration(gossip.DefaultSuspicionMult) * 2

	rep := &report{title: fmt.Sprintf("agent: %d pods of a local busybox image on one agent (containerd 1.6, runc)", pods)}
	rep.add("pod create → Running (watch): %s; all %d Running after %s (target p99 ≤ 2000ms)", lat, pods, all.Round(time.Millisecond))
	rep.add("baseline, containerd alone starting %d containers 16 at a time: %s; all started after %s", pods, base, baseAll.Round(time.Millisecond))
	rep.add("skiff all-Running time / containerd-alone time = %.2f×", float64(all)/float64(baseAll))
	rep.add("agent RSS with %d pods: %.1f MB (containerd and shims excluded)", pods, float64(rss)/1024)
	rep.add("agent kill -9 → Node Ready=Unknown: %s (memberlist suspicion at defaults: probe %s × mult %d, ~%s to declare dead)",
		toUnknown.Round(time.Millisecond), gossip.DefaultProbeInterval, gossip.DefaultSuspicionMult, bound)
	fmt.Fprint(os.Stdout, rep)
	b.ReportMetric(float64(lat.pct(99))/1e6, "P1-p99-ms")
}

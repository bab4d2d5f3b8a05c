package faults

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"skiff/agent"
	"skiff/agent/testimage"
	"skiff/test/cluster"
)

// clientset is a client-go client for kubeconfig.
func clientset(t *testing.T, kubeconfig string) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 10 * time.Second
	cfg.QPS, cfg.Burst = 1000, 1000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// sleeper is a pod that runs busybox's sleep, left to the scheduler.
func sleeper(name string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		TerminationGracePeriodSeconds: &grace,
		Containers:                    []corev1.Container{{Name: "main", Image: testimage.BusyboxRef, Command: []string{"sleep", "3600"}}},
	}}
}

// registrations counts how often the agent has registered its node (once per start).
func registrations(a *cluster.Agent) int {
	b, _ := os.ReadFile(a.LogPath())
	return strings.Count(string(b), `msg="node registered"`)
}

// podContainers is what containerd runs for the agent, by pod UID.
type podContainers map[string][]agent.ContainerStatus

// listContainers asks the agent's containerd directly.
func listContainers(ctx context.Context, rt *agent.Containerd) (podContainers, error) {
	all, err := rt.List(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := podContainers{}
	for _, c := range all {
		uid := c.Labels["skiff.pod.uid"]
		out[uid] = append(out[uid], c)
	}
	return out, nil
}

// twice names the pods that run two containers of the same name at once.
func (pc podContainers) twice() []string {
	var bad []string
	for uid, ctrs := range pc {
		running := map[string][]string{}
		for _, c := range ctrs {
			if c.State == agent.StateRunning {
				name := c.Labels["skiff.container.name"]
				running[name] = append(running[name], c.ID)
			}
		}
		for name, ids := range running {
			if len(ids) > 1 {
				bad = append(bad, fmt.Sprintf("pod %s container %s runs as %v", uid, name, ids))
			}
		}
	}
	return bad
}

// kill -9 the agent ten times, at random points of its life (some before it has
// registered again, some while it starts a new pod's container), while writes go on: the
// containers it runs keep running (same container IDs, same PIDs), every restart adopts
// them, and no pod ever runs twice: containerd, watched throughout, never holds two
// running containers for one pod's container.
func TestKillAgentRepeatedly(t *testing.T) {
	c := start(t, 3)
	a := c.StartAgent("n1")
	cs := clientset(t, c.WriteKubeconfig(0))
	ctx := context.Background()
	waitFor(t, "node n1 Ready", 60*time.Second, func() (bool, string) {
		n, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, string(cond.Status)
			}
		}
		return false, "no Ready condition"
	})
	w := c.StartWorkload(cluster.WorkloadOptions{Clients: 2})

	var pods []string
	create := func(name string) {
		t.Helper()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, sleeper(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, name)
	}
	rt, err := agent.NewContainerd(filepath.Join(a.Dir, "containerd", "containerd.sock"), "skiff-n1")
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	running := func(names ...string) map[string]corev1.ContainerStatus {
		t.Helper()
		out := map[string]corev1.ContainerStatus{}
		for _, name := range names {
			waitFor(t, "pod "+name+" Running", 60*time.Second, func() (bool, string) {
				p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return false, err.Error()
				}
				if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].ContainerID == "" {
					var inContainerd []string
					if pc, err := listContainers(ctx, rt); err == nil {
						for _, ctr := range pc[string(p.UID)] {
							inContainerd = append(inContainerd, fmt.Sprintf("%s (%s, pid %d)", ctr.ID, ctr.State, ctr.PID))
						}
					}
					return false, fmt.Sprintf("phase %s, container statuses %+v; in containerd: %v", p.Status.Phase, p.Status.ContainerStatuses, inContainerd)
				}
				out[name] = p.Status.ContainerStatuses[0]
				return true, ""
			})
		}
		return out
	}
	for i := 0; i < 3; i++ {
		create(fmt.Sprintf("steady-%d", i))
	}
	before := running(pods...)

	first, err := listContainers(ctx, rt)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]uint32{} // container ID → PID of the steady pods
	for _, ctrs := range first {
		for _, ctr := range ctrs {
			pids[ctr.ID] = ctr.PID
		}
	}

	// Watch containerd throughout for a pod running twice.
	var mu sync.Mutex
	var violations []string
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watching sync.WaitGroup
	watching.Add(1)
	go func() {
		defer watching.Done()
		for watchCtx.Err() == nil {
			if pc, err := listContainers(watchCtx, rt); err == nil {
				if bad := pc.twice(); len(bad) > 0 {
					mu.Lock()
					violations = append(violations, bad...)
					mu.Unlock()
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	regs := 0 // registrations before the last restart
	for round := 0; round < 10; round++ {
		if round == 3 || round == 7 {
			// The agent starts this pod's container about when it dies.
			create(fmt.Sprintf("late-%d", round))
			time.Sleep(time.Duration(rng.Int63n(int64(500 * time.Millisecond))))
		}
		a.Kill()
		pc, err := listContainers(ctx, rt)
		if err != nil {
			t.Fatal(err)
		}
		alive := 0
		for _, ctrs := range pc {
			for _, ctr := range ctrs {
				if pid, ok := pids[ctr.ID]; ok && ctr.State == agent.StateRunning && ctr.PID == pid {
					alive++
				}
			}
		}
		if alive != len(pids) {
			t.Fatalf("round %d: %d of the %d steady containers still run as before with the agent dead: %+v", round, alive, len(pids), pc)
		}
		regs = registrations(a)
		a.Restart()
		if round%2 == 0 {
			// Let it come up fully this time.
			waitFor(t, "the agent to register again", 60*time.Second, func() (bool, string) {
				return registrations(a) > regs, "not yet"
			})
		} else {
			// Kill it again at a random point of its start.
			time.Sleep(time.Duration(rng.Int63n(int64(2 * time.Second))))
		}
		t.Logf("round %d: killed and restarted the agent", round)
	}
	waitFor(t, "the agent to register after the last restart", 60*time.Second, func() (bool, string) {
		return registrations(a) > regs, "not yet"
	})
	// A pod created now runs only once the restarted agent syncs, and every sync covers
	// every pod: after it, any duplicate the restarts made would be there to see.
	create("after")
	after := running(pods...)
	stopWatch()
	watching.Wait()

	for name, st := range before {
		if got := after[name]; got.ContainerID != st.ContainerID || got.RestartCount != 0 {
			t.Errorf("pod %s: container %s (restarts %d) after the kills, want the same %s with no restart",
				name, got.ContainerID, got.RestartCount, st.ContainerID)
		}
	}
	pc, err := listContainers(ctx, rt)
	if err != nil {
		t.Fatal(err)
	}
	for id, pid := range pids {
		found := false
		for _, ctrs := range pc {
			for _, ctr := range ctrs {
				found = found || (ctr.ID == id && ctr.PID == pid && ctr.State == agent.StateRunning)
			}
		}
		if !found {
			t.Errorf("container %s (pid %d) no longer runs as before", id, pid)
		}
	}
	if len(pc) != len(pods) {
		t.Errorf("containerd holds containers of %d pods, want %d", len(pc), len(pods))
	}
	for _, name := range pods {
		uid := ""
		if p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{}); err == nil {
			uid = string(p.UID)
		}
		n := 0
		for _, ctr := range pc[uid] {
			if ctr.State == agent.StateRunning {
				n++
			}
		}
		if n != 1 {
			t.Errorf("pod %s runs %d containers, want 1: %+v", name, n, pc[uid])
		}
	}
	mu.Lock()
	for _, v := range violations {
		t.Errorf("a pod ran twice: %s", v)
	}
	mu.Unlock()
	finish(t, c, w)
}

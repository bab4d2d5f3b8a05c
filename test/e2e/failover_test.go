package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"skiff/agent/testimage"
	"skiff/test/cluster"
)

const rollingDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: roll}
spec:
  replicas: 10
  selector: {matchLabels: {app: roll}}
  strategy: {rollingUpdate: {maxSurge: 2, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: roll}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: ` + testimage.BusyboxRef + `
        command: [sleep, "3600"]
        readinessProbe:
          exec: {command: ["true"]}
          initialDelaySeconds: 2
          periodSeconds: 1
`

// podLedger follows every pod of a selector through a watch and checks, at every event,
// the Deployment's promises: never more than replicas+maxSurge live pods, never fewer than
// replicas−maxUnavailable ready ones, and a pod, once bound, never bound elsewhere.
type podLedger struct {
	mu         sync.Mutex
	pods       map[string]*corev1.Pod
	boundTo    map[string]string
	maxLive    int
	minReady   int
	violations []string
	events     int
}

func (l *podLedger) observe(p *corev1.Pod, deleted bool, limitLive, floorReady int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events++
	l.record(p, deleted)
	l.check(p.Name, limitLive, floorReady)
}

// load replaces what the ledger knows with a fresh list, and checks it as a whole.
func (l *podLedger) load(list []corev1.Pod, limitLive, floorReady int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pods = map[string]*corev1.Pod{}
	for i := range list {
		l.record(&list[i], false)
	}
	l.check("a relist", limitLive, floorReady)
}

func (l *podLedger) record(p *corev1.Pod, deleted bool) {
	if node, ok := l.boundTo[p.Name]; ok && p.Spec.NodeName != "" && node != p.Spec.NodeName {
		l.violations = append(l.violations, fmt.Sprintf("pod %s bound to %s, then to %s", p.Name, node, p.Spec.NodeName))
	}
	if p.Spec.NodeName != "" {
		l.boundTo[p.Name] = p.Spec.NodeName
	}
	if deleted {
		delete(l.pods, p.Name)
	} else {
		l.pods[p.Name] = p
	}
}

func (l *podLedger) check(after string, limitLive, floorReady int) {
	live, ready := 0, 0
	for _, q := range l.pods {
		if q.DeletionTimestamp != nil {
			continue
		}
		live++
		for _, c := range q.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	l.maxLive = max(l.maxLive, live)
	l.minReady = min(l.minReady, ready)
	if live > limitLive {
		l.violations = append(l.violations, fmt.Sprintf("%d live pods (limit %d) after %s", live, limitLive, after))
	}
	if ready < floorReady {
		l.violations = append(l.violations, fmt.Sprintf("%d ready pods (floor %d) after %s", ready, floorReady, after))
	}
}

// follow watches the pods through cs until ctx ends, re-listing if the watch breaks.
func (l *podLedger) follow(ctx context.Context, t *testing.T, cs *kubernetes.Clientset, selector string, limitLive, floorReady int) {
	for ctx.Err() == nil {
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		l.load(list.Items, limitLive, floorReady)
		w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: list.ResourceVersion})
		if err != nil {
			continue
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				break
			}
			l.observe(p, ev.Type == watch.Deleted, limitLive, floorReady)
		}
		w.Stop()
	}
}

// Kill -9 the leader in the middle of a rolling update of a 10-replica Deployment: the new
// leader finishes it, and a watcher over the whole run never sees more than maxSurge extra
// or maxUnavailable missing pods, nor a pod bound twice.
func TestLeaderKilledDuringRollingUpdate(t *testing.T) {
	c := cluster.Start(t, 3)
	c.StartAgent("n1")
	c.StartAgent("n2")
	leader := c.Leader(-1)
	watcher := (leader + 1) % 3
	cs := clientFor(t, c.WriteKubeconfig(watcher))
	waitNode(t, cs, "n1", corev1.ConditionTrue)
	waitNode(t, cs, "n2", corev1.ConditionTrue)
	k := &kubectl{t: t, bin: "/usr/bin/kubectl", kubeconfig: c.WriteKubeconfig(watcher)}
	k.ok([]string{"apply", "-f", k.file("roll.yaml", rollingDeployment)}, "created")
	k.ok([]string{"rollout", "status", "deployment/roll", "--timeout=55s"}, "successfully rolled out")

	ledger := &podLedger{boundTo: map[string]string{}, minReady: 1 << 30}
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { defer close(followed); ledger.follow(ctx, t, cs, "app=roll", 10+2, 10-1) }()
	waitFor(t, "the watcher to see the 10 pods", 30*time.Second, func() (bool, string) {
		ledger.mu.Lock()
		defer ledger.mu.Unlock()
		return len(ledger.pods) == 10, fmt.Sprintf("%d pods", len(ledger.pods))
	})

	k.ok([]string{"set", "env", "deployment/roll", "GENERATION=2"}, "env updated")
	waitFor(t, "the rollout to be under way", 30*time.Second, func() (bool, string) {
		d, err := cs.AppsV1().Deployments("default").Get(context.Background(), "roll", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return d.Status.UpdatedReplicas >= 3 && d.Status.UpdatedReplicas < 10, fmt.Sprintf("updated %d", d.Status.UpdatedReplicas)
	})
	c.Kill(leader)
	killedAt := time.Now()
	if c.WaitLeader(leader) < 0 {
		t.Fatal("no new leader after killing the old one")
	}
	var done *appsv1.Deployment
	waitFor(t, "the new leader to finish the rollout", 90*time.Second, func() (bool, string) {
		d, err := cs.AppsV1().Deployments("default").Get(context.Background(), "roll", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		done = d
		st := d.Status
		return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == 10 && st.Replicas == 10 && st.AvailableReplicas == 10,
			fmt.Sprintf("%+v", st)
	})
	t.Logf("rollout finished %s after the leader was killed", time.Since(killedAt).Round(100*time.Millisecond))
	cancel()
	<-followed
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	if len(ledger.violations) > 0 {
		t.Fatalf("rolling update broke its promises across the failover (%d events seen):\n%s", ledger.events, strings.Join(ledger.violations, "\n"))
	}
	if ledger.events < 20 {
		t.Fatalf("the watcher saw only %d events: it did not follow the rollout", ledger.events)
	}
	t.Logf("watcher: %d events, at most %d live pods, at least %d ready; deployment %s at generation %d",
		ledger.events, ledger.maxLive, ledger.minReady, done.Name, done.Generation)
	c.Restart(leader)
	c.WaitReady(leader)
	c.Verify()
}

// Kill -9 the leader just before a CronJob's scheduled minute: exactly one Job is created
// for that time, by whichever leader gets there.
func TestLeaderKilledAroundCronJobSchedule(t *testing.T) {
	c := cluster.Start(t, 3)
	leader := c.Leader(-1)
	other := (leader + 1) % 3
	cs := clientFor(t, c.WriteKubeconfig(other))
	k := &kubectl{t: t, bin: "/usr/bin/kubectl", kubeconfig: c.WriteKubeconfig(other)}
	k.ok([]string{"apply", "-f", k.file("cron.yaml", tickCronJob)}, "cronjob.batch/tick created")
	// Wait for the run at the next minute boundary to be due in under a second, then kill.
	next := time.Now().Truncate(time.Minute).Add(time.Minute)
	if time.Until(next) < 3*time.Second {
		next = next.Add(time.Minute)
	}
	time.Sleep(time.Until(next) - 500*time.Millisecond)
	c.Kill(leader)
	if c.WaitLeader(leader) < 0 {
		t.Fatal("no new leader after the kill")
	}
	want := fmt.Sprintf("tick-%d", next.Unix()/60)
	waitFor(t, "the Job for the scheduled minute", 60*time.Second, func() (bool, string) {
		_, err := cs.BatchV1().Jobs("default").Get(context.Background(), want, metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	// Give a duplicate every chance to appear, then count.
	time.Sleep(3 * time.Second)
	jobs, err := cs.BatchV1().Jobs("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	forMinute := 0
	for _, j := range jobs.Items {
		if ts := j.Annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"]; ts == next.UTC().Format(time.RFC3339) || j.Name == want {
			forMinute++
		}
	}
	if forMinute != 1 {
		t.Fatalf("%d Jobs for the scheduled time %s, want exactly 1: %+v", forMinute, next.UTC().Format(time.RFC3339), jobs.Items)
	}
	c.Restart(leader)
	c.WaitReady(leader)
	c.Verify()
}

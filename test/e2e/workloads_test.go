package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"skiff/agent/testimage"
	"skiff/test/cluster"
)

// busyboxRegistry serves the busybox test image as <host>/tools/busybox:v2 from an
// in-process registry, so a rolling update has a genuinely different image to pull.
func busyboxRegistry(t *testing.T) string {
	t.Helper()
	reg := testimage.NewRegistry()
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Add("tools/busybox", "v2", img); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// waitFor polls cond until it holds, failing after a generous deadline with what it last saw.
func waitFor(t *testing.T, what string, deadline time.Duration, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(deadline)
	last := ""
	for time.Now().Before(end) {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s; last seen: %s", what, deadline, last)
}

// podsOf lists the live (not terminating) pods matching selector, counted per node.
func podsOf(cs *kubernetes.Clientset, selector string) (map[string]int, []corev1.Pod, error) {
	list, err := cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, nil, err
	}
	perNode := map[string]int{}
	var live []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		perNode[p.Spec.NodeName]++
		live = append(live, p)
	}
	return perNode, live, nil
}

const webDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxSurge: 2, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: %s
        command: [sleep, "3600"]
`

const agentsDaemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logger}
spec:
  selector: {matchLabels: {app: logger}}
  template:
    metadata: {labels: {app: logger}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: ` + testimage.BusyboxRef + `
        command: [sleep, "3600"]
`

const countJob = `apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: ` + testimage.BusyboxRef + `
        command: [sh, -c, "echo counted"]
`

const tickCronJob = `apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: ` + testimage.BusyboxRef + `
            command: [sh, -c, "date"]
`

const stuckPod = `apiVersion: v1
kind: Pod
metadata: {name: stuck}
spec:
  nodeSelector: {disktype: ssd}
  containers:
  - name: main
    image: ` + testimage.BusyboxRef + `
    command: [sleep, "3600"]
`

const dbStatefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: ` + testimage.BusyboxRef + `
        command: [sleep, "3600"]
`

// The leader's scheduler and controllers with real agents and real containers, driven by
// real kubectl: a Deployment spreads over both agents, rolls to a new image, rolls back and
// scales; a DaemonSet covers every node including one that joins later; a StatefulSet comes
// up in order; a Job runs to completion; a CronJob fires; draining a node moves its pods;
// an unschedulable pod says why in `kubectl describe`.
func TestWorkloadsOnRealAgents(t *testing.T) {
	c := cluster.Start(t, 3)
	registryHost := busyboxRegistry(t)
	c.StartAgent("n1", "--insecure-registries", registryHost)
	c.StartAgent("n2", "--insecure-registries", registryHost)
	cs := clientFor(t, c.WriteKubeconfig(0))
	waitNode(t, cs, "n1", corev1.ConditionTrue)
	waitNode(t, cs, "n2", corev1.ConditionTrue)
	k := &kubectl{t: t, bin: "/usr/bin/kubectl", kubeconfig: c.WriteKubeconfig(1)}
	long := func(args ...string) string { return k.ok(append(args, "--request-timeout=0")) }

	// The CronJob first: its minute boundary passes while the rest runs.
	k.ok([]string{"apply", "-f", k.file("cron.yaml", tickCronJob)}, "cronjob.batch/tick created")

	k.ok([]string{"apply", "-f", k.file("web.yaml", fmt.Sprintf(webDeployment, testimage.BusyboxRef))}, "deployment.apps/web created")
	k.ok([]string{"rollout", "status", "deployment/web", "--timeout=50s"}, "successfully rolled out")
	perNode, _, err := podsOf(cs, "app=web")
	if err != nil || perNode["n1"] != 3 || perNode["n2"] != 3 {
		t.Fatalf("6 replicas over 2 agents should be spread 3/3, got %v (%v)", perNode, err)
	}

	// Rolling update to an image pulled from the registry, then back.
	newImage := registryHost + "/tools/busybox:v2"
	k.ok([]string{"set", "image", "deployment/web", "main=" + newImage}, "image updated")
	k.ok([]string{"rollout", "status", "deployment/web", "--timeout=55s"}, "successfully rolled out")
	_, live, _ := podsOf(cs, "app=web")
	for _, p := range live {
		if p.Spec.Containers[0].Image != newImage {
			t.Fatalf("pod %s still runs %s after the rollout", p.Name, p.Spec.Containers[0].Image)
		}
	}
	k.ok([]string{"rollout", "history", "deployment/web"}, "1", "2")
	k.ok([]string{"rollout", "undo", "deployment/web"}, "rolled back")
	k.ok([]string{"rollout", "status", "deployment/web", "--timeout=55s"}, "successfully rolled out")
	waitFor(t, "every pod back on the old image", 30*time.Second, func() (bool, string) {
		_, live, _ := podsOf(cs, "app=web")
		for _, p := range live {
			if p.Spec.Containers[0].Image != testimage.BusyboxRef {
				return false, p.Name + " runs " + p.Spec.Containers[0].Image
			}
		}
		return len(live) == 6, fmt.Sprintf("%d pods", len(live))
	})
	k.ok([]string{"scale", "deployment/web", "--replicas=4"}, "scaled")
	k.ok([]string{"rollout", "status", "deployment/web", "--timeout=50s"}, "successfully rolled out")
	waitFor(t, "4 replicas after scaling", 30*time.Second, func() (bool, string) {
		_, live, _ := podsOf(cs, "app=web")
		return len(live) == 4, fmt.Sprintf("%d pods", len(live))
	})
	// Paused, a template change starts nothing; resumed, it rolls out. A restart rolls too.
	k.ok([]string{"rollout", "pause", "deployment/web"}, "paused")
	k.ok([]string{"set", "env", "deployment/web", "PAUSED_CHANGE=1"}, "env updated")
	time.Sleep(time.Second) // a paused Deployment that rolled anyway would show it by now
	if out := strings.TrimSpace(k.ok([]string{"get", "deployment", "web", "-o", "jsonpath={.status.updatedReplicas}"})); out != "" && out != "0" {
		t.Fatalf("a paused Deployment rolled out its template change: updatedReplicas %s", out)
	}
	k.ok([]string{"rollout", "resume", "deployment/web"}, "resumed")
	k.ok([]string{"rollout", "status", "deployment/web", "--timeout=50s"}, "successfully rolled out")
	k.ok([]string{"rollout", "restart", "deployment/web"}, "restarted")
	k.ok([]string{"rollout", "status", "deployment/web", "--timeout=50s"}, "successfully rolled out")
	k.ok([]string{"rollout", "history", "deployment/web"}, "5")

	// DaemonSet on both nodes, then on a node that joins.
	k.ok([]string{"apply", "-f", k.file("ds.yaml", agentsDaemonSet)}, "daemonset.apps/logger created")
	k.ok([]string{"rollout", "status", "daemonset/logger", "--timeout=50s"}, "successfully rolled out")
	c.StartAgent("n3")
	waitNode(t, cs, "n3", corev1.ConditionTrue)
	waitFor(t, "a DaemonSet pod on the joining node", 60*time.Second, func() (bool, string) {
		perNode, live, _ := podsOf(cs, "app=logger")
		running := 0
		for _, p := range live {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return perNode["n1"] == 1 && perNode["n2"] == 1 && perNode["n3"] == 1 && running == 3, fmt.Sprintf("%v, %d running", perNode, running)
	})

	k.ok([]string{"apply", "-f", k.file("sts.yaml", dbStatefulSet)}, "statefulset.apps/db created")
	k.ok([]string{"rollout", "status", "statefulset/db", "--timeout=50s"}, "roll out complete")
	k.ok([]string{"get", "pods", "db-0", "db-1"}, "Running")

	k.ok([]string{"apply", "-f", k.file("job.yaml", countJob)}, "job.batch/count created")
	k.ok([]string{"wait", "--for=condition=complete", "job/count", "--timeout=55s"}, "condition met")
	k.ok([]string{"get", "job", "count"}, "3/3")

	// An unschedulable pod says why.
	k.ok([]string{"apply", "-f", k.file("stuck.yaml", stuckPod)}, "pod/stuck created")
	waitFor(t, "describe shows why the pod is pending", 30*time.Second, func() (bool, string) {
		out, _ := k.run("describe", "pod", "stuck")
		return strings.Contains(out, "FailedScheduling") && strings.Contains(out, "0/3 nodes are available") &&
			strings.Contains(out, "didn't match Pod's node affinity/selector"), out
	})

	// Draining n1 moves its Deployment and StatefulSet pods elsewhere; DaemonSet pods stay.
	long("drain", "n1", "--ignore-daemonsets", "--timeout=55s")
	waitFor(t, "no web pods left on the drained node", 60*time.Second, func() (bool, string) {
		perNode, live, _ := podsOf(cs, "app=web")
		ready := 0
		for _, p := range live {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return perNode["n1"] == 0 && ready == 4, fmt.Sprintf("%v, %d ready", perNode, ready)
	})
	k.ok([]string{"get", "node", "n1"}, "SchedulingDisabled")
	k.ok([]string{"uncordon", "n1"}, "uncordoned")

	// Cascading deletion: in the foreground the Deployment goes only after its pods; an
	// orphaning delete leaves the StatefulSet's pods running without an owner.
	long("delete", "deployment", "web", "--cascade=foreground", "--timeout=55s")
	waitFor(t, "no web pods or ReplicaSets after a foreground delete", 60*time.Second, func() (bool, string) {
		list, err := cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err.Error()
		}
		rs, err := cs.AppsV1().ReplicaSets("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err.Error()
		}
		return len(list.Items) == 0 && len(rs.Items) == 0, fmt.Sprintf("%d pods, %d replicasets", len(list.Items), len(rs.Items))
	})
	k.ok([]string{"delete", "statefulset", "db", "--cascade=orphan"}, "deleted")
	time.Sleep(2 * time.Second) // a wrongly cascading delete would have marked the pods by now
	for _, name := range []string{"db-0", "db-1"} {
		p, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil || p.DeletionTimestamp != nil || len(p.OwnerReferences) != 0 {
			t.Fatalf("orphaned pod %s: err %v, deleting %v, owners %v", name, err, p.DeletionTimestamp, p.OwnerReferences)
		}
	}

	// By now the CronJob's first minute has passed.
	waitFor(t, "the CronJob fired a Job that completed", 75*time.Second, func() (bool, string) {
		jobs, err := cs.BatchV1().Jobs("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, j := range jobs.Items {
			seen = append(seen, j.Name)
			if strings.HasPrefix(j.Name, "tick-") && j.Status.Succeeded == 1 {
				return true, ""
			}
		}
		return false, strings.Join(seen, ",")
	})
	c.Verify()
}

package registry

import (
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func columnNames(r *Resource) string {
	names := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		names[i] = strings.ToUpper(c.Name)
		if c.Priority > 0 {
			names[i] = "(" + names[i] + ")"
		}
	}
	return strings.Join(names, " | ")
}

func TestColumns(t *testing.T) {
	want := map[string]string{
		"pods":                 "NAME | READY | STATUS | RESTARTS | AGE | (IP) | (NODE) | (NOMINATED NODE) | (READINESS GATES)",
		"deployments":          "NAME | READY | UP-TO-DATE | AVAILABLE | AGE | (CONTAINERS) | (IMAGES) | (SELECTOR)",
		"replicasets":          "NAME | DESIRED | CURRENT | READY | AGE | (CONTAINERS) | (IMAGES) | (SELECTOR)",
		"daemonsets":           "NAME | DESIRED | CURRENT | READY | UP-TO-DATE | AVAILABLE | NODE SELECTOR | AGE | (CONTAINERS) | (IMAGES) | (SELECTOR)",
		"statefulsets":         "NAME | READY | AGE | (CONTAINERS) | (IMAGES)",
		"jobs":                 "NAME | STATUS | COMPLETIONS | DURATION | AGE | (CONTAINERS) | (IMAGES) | (SELECTOR)",
		"cronjobs":             "NAME | SCHEDULE | TIMEZONE | SUSPEND | ACTIVE | LAST SCHEDULE | AGE | (CONTAINERS) | (IMAGES) | (SELECTOR)",
		"services":             "NAME | TYPE | CLUSTER-IP | EXTERNAL-IP | PORT(S) | AGE | (SELECTOR)",
		"nodes":                "NAME | STATUS | ROLES | AGE | VERSION | (INTERNAL-IP) | (EXTERNAL-IP) | (OS-IMAGE) | (KERNEL-VERSION) | (CONTAINER-RUNTIME)",
		"namespaces":           "NAME | STATUS | AGE",
		"configmaps":           "NAME | DATA | AGE",
		"secrets":              "NAME | TYPE | DATA | AGE",
		"events":               "LAST SEEN | TYPE | REASON | OBJECT | (SUBOBJECT) | (SOURCE) | MESSAGE | (FIRST SEEN) | (COUNT) | (NAME)",
		"endpoints":            "NAME | ENDPOINTS | AGE",
		"serviceaccounts":      "NAME | SECRETS | AGE",
		"leases":               "NAME | HOLDER | AGE",
		"poddisruptionbudgets": "NAME | MIN AVAILABLE | MAX UNAVAILABLE | ALLOWED DISRUPTIONS | AGE",
	}
	for _, r := range All() {
		if got := columnNames(r); got != want[r.Resource] {
			t.Errorf("%s columns:\n got %s\nwant %s", r.Resource, got, want[r.Resource])
		}
	}
}

func TestRows(t *testing.T) {
	cases := []struct {
		name string
		obj  runtime.Object
		want []interface{}
	}{
		{"running pod", &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-0", CreationTimestamp: ago(3*time.Minute + 2*time.Second)},
			Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.5", ContainerStatuses: []corev1.ContainerStatus{
				{Name: "a", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
				{Name: "b", Ready: true, RestartCount: 2, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
					LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: ago(5 * time.Second)}}},
			}},
		}, []interface{}{"web-0", "2/2", "Running", "2 (5s ago)", "3m2s", "10.244.1.5", "node-1", "<none>", "<none>"}},
		{"pending pod", &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: ago(5 * time.Second)},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodPending},
		}, []interface{}{"p", "0/1", "Pending", "0", "5s", "<none>", "<none>", "<none>", "<none>"}},
		{"crashlooping pod", &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: ago(5 * time.Hour)},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "a", RestartCount: 7,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: ago(90 * time.Second)}},
			}}},
		}, []interface{}{"p", "0/1", "CrashLoopBackOff", "7 (90s ago)", "5h", "<none>", "<none>", "<none>", "<none>"}},
		{"creating pod", &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: ago(3 * 24 * time.Hour)},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "a",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}},
		}, []interface{}{"p", "0/1", "ContainerCreating", "0", "3d", "<none>", "<none>", "<none>", "<none>"}},
		{"completed pod", &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}},
			Status: corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{Name: "a",
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}}},
		}, []interface{}{"p", "0/1", "Completed", "0", "<unknown>", "<none>", "<none>", "<none>", "<none>"}},
		{"init pod", &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: ago(time.Second)},
			Spec:       corev1.PodSpec{InitContainers: []corev1.Container{{Name: "i1"}, {Name: "i2"}}, Containers: []corev1.Container{{Name: "a"}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{
				{Name: "i1", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}},
				{Name: "i2", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			}},
		}, []interface{}{"p", "0/1", "Init:1/2", "0", "1s", "<none>", "<none>", "<none>", "<none>"}},
		{"terminating pod", &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: ago(time.Minute), DeletionTimestamp: &metav1.Time{Time: now}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}, ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "x"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: "x", Status: corev1.ConditionTrue}}},
		}, []interface{}{"p", "0/1", "Terminating", "0", "60s", "<none>", "<none>", "<none>", "1/1"}},
		{"deployment", mkDeployment(func(d *appsv1.Deployment) {
			d.CreationTimestamp = ago(10 * time.Minute)
			d.Spec.Replicas = ptrTo(int32(3))
			d.Status = appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2}
		}), []interface{}{"web", "2/3", int64(3), int64(2), "10m", "web", "nginx:1.25", "app=web"}},
		{"replicaset", mkReplicaSet(func(rs *appsv1.ReplicaSet) {
			rs.CreationTimestamp = ago(time.Hour)
			rs.Status = appsv1.ReplicaSetStatus{Replicas: 1, ReadyReplicas: 1}
		}), []interface{}{"web-abc", int64(1), int64(1), int64(1), "60m", "web", "nginx:1.25", "app=web"}},
		{"daemonset", mkDaemonSet(func(ds *appsv1.DaemonSet) {
			ds.CreationTimestamp = ago(2 * time.Hour)
			ds.Spec.Template.Spec.NodeSelector = nil
			ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 2, UpdatedNumberScheduled: 3, NumberAvailable: 2}
		}), []interface{}{"agent", int64(3), int64(3), int64(2), int64(3), int64(2), "<none>", "120m", "web", "nginx:1.25", "app in (web)"}},
		{"statefulset", mkStatefulSet(func(s *appsv1.StatefulSet) {
			s.CreationTimestamp = ago(48 * time.Hour)
			s.Status.ReadyReplicas = 1
		}), []interface{}{"db", "1/1", "2d", "web", "nginx:1.25"}},
		{"complete job", mkJob(func(j *batchv1.Job) {
			j.CreationTimestamp = ago(time.Hour)
			j.Status = batchv1.JobStatus{Succeeded: 1, StartTime: ptrTo(ago(time.Hour)), CompletionTime: ptrTo(ago(time.Hour - 45*time.Second)),
				Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}
		}), []interface{}{"pi", "Complete", "1/1", "45s", "60m", "web", "nginx:1.25", "batch.kubernetes.io/controller-uid=uid-pi"}},
		{"running job", mkJob(func(j *batchv1.Job) {
			j.Spec.Completions = nil
			j.Spec.Parallelism = ptrTo(int32(3))
			j.Status = batchv1.JobStatus{StartTime: ptrTo(ago(150 * time.Second))}
		}), []interface{}{"pi", "Running", "0/1 of 3", "2m30s", "<unknown>", "web", "nginx:1.25", "batch.kubernetes.io/controller-uid=uid-pi"}},
		{"cronjob", mkCronJob(func(c *batchv1.CronJob) {
			c.CreationTimestamp = ago(24 * time.Hour)
			c.Status.LastScheduleTime = ptrTo(ago(30 * time.Minute))
			c.Status.Active = []corev1.ObjectReference{{Name: "hourly-1"}}
		}), []interface{}{"hourly", "0 * * * *", "<none>", "False", int64(1), "30m", "24h", "web", "nginx:1.25", ""}},
		{"clusterip service", mkService(func(s *corev1.Service) {
			s.CreationTimestamp = ago(time.Minute)
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
		}), []interface{}{"web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,443/TCP", "60s", "app=web"}},
		{"loadbalancer service", mkService(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.Ports = []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP}}
			s.Spec.ClusterIP = "10.96.0.11"
			s.Spec.Selector = nil
		}), []interface{}{"web", "LoadBalancer", "10.96.0.11", "<pending>", "80:30080/TCP", "<unknown>", "<none>"}},
		{"headless service", mkService(func(s *corev1.Service) { s.Spec.ClusterIP = "None"; s.Spec.Ports = nil }),
			[]interface{}{"web", "ClusterIP", "None", "<none>", "<none>", "<unknown>", "app=web"}},
		{"node", &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n1", CreationTimestamp: ago(5 * 24 * time.Hour),
				Labels: map[string]string{"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": ""}},
			Spec: corev1.NodeSpec{Unschedulable: true},
			Status: corev1.NodeStatus{
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.10"}},
				NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.0-skiff", OSImage: "Debian GNU/Linux 13"},
			},
		}, []interface{}{"n1", "Ready,SchedulingDisabled", "control-plane,worker", "5d", "v1.37.0-skiff", "192.168.1.10", "<none>", "Debian GNU/Linux 13", "<unknown>", "<unknown>"}},
		{"not ready node", &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}, Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}}},
			[]interface{}{"n2", "NotReady", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"}},
		{"namespace", mkNamespace(func(n *corev1.Namespace) { n.CreationTimestamp = ago(400 * 24 * time.Hour) }),
			[]interface{}{"team-a", "Active", "400d"}},
		{"configmap", mkConfigMap(), []interface{}{"cfg", int64(3), "<unknown>"}},
		{"secret", mkSecret(), []interface{}{"creds", "Opaque", int64(1), "<unknown>"}},
		{"serviceaccount", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", CreationTimestamp: ago(time.Second)}},
			[]interface{}{"default", int64(0), "1s"}},
		{"lease", mkLease(), []interface{}{"skiff-leader", "m1", "<unknown>"}},
		{"endpoints", mkEndpoints(func(ep *corev1.Endpoints) {
			ep.Subsets[0].Addresses = append(ep.Subsets[0].Addresses, corev1.EndpointAddress{IP: "10.244.2.7"})
		}), []interface{}{"web", "10.244.1.5:80,10.244.2.7:80,10.244.1.5:443 + 1 more...", "<unknown>"}},
		{"empty endpoints", &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "e"}}, []interface{}{"e", "<none>", "<unknown>"}},
		{"event", &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "web-0.1"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-0", FieldPath: "spec.containers{web}"},
			Reason:         "BackOff", Message: "Back-off restarting failed container\n", Type: corev1.EventTypeWarning,
			Source:         corev1.EventSource{Component: "kubelet", Host: "n1"},
			FirstTimestamp: ago(10 * time.Minute), LastTimestamp: ago(20 * time.Second), Count: 12,
		}, []interface{}{"20s", "Warning", "BackOff", "pod/web-0", "spec.containers{web}", "kubelet, n1",
			"Back-off restarting failed container", "10m", int64(12), "web-0.1"}},
		{"new-style event", &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "n"},
			InvolvedObject: corev1.ObjectReference{Kind: "Node"},
			EventTime:      metav1.NewMicroTime(now.Add(-3 * time.Second)), ReportingController: "skiff", Reason: "R", Type: "Normal",
		}, []interface{}{"3s", "Normal", "R", "node", "", "skiff", "", "3s", int64(1), "n"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := resourceFor(t, c.obj)
			got := r.Row(c.obj, now)
			if len(got) != len(r.Columns) {
				t.Fatalf("%d cells for %d columns", len(got), len(r.Columns))
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("row\n got %#v\nwant %#v", got, c.want)
			}
		})
	}
}

func TestRowIgnoresForeignObject(t *testing.T) {
	if cells := Lookup("", "v1", "pods").Row(&corev1.Service{}, now); cells != nil {
		t.Errorf("pod Row(service) = %v", cells)
	}
}

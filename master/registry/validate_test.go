package registry

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Valid objects, defaulted as the API server would store them. Each builder
// applies optional mutations after defaulting.

func meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), ResourceVersion: "1"}
}

func podSpec() corev1.PodSpec {
	return corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", Image: "busybox", Command: []string{"true"}}},
		Containers: []corev1.Container{{
			Name:  "web",
			Image: "nginx:1.25",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
			Env: []corev1.EnvVar{
				{Name: "MODE", Value: "prod"},
				{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			},
			VolumeMounts:   []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/cfg"}, {Name: "data", MountPath: "/data", SubPath: "web"}},
			LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http")}}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}},
		}},
		Volumes: []corev1.Volume{
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			{Name: "data"},
		},
		NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
		Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "web", Effect: corev1.TaintEffectNoSchedule}},
	}
}

func mkPod(mut ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: meta("web-0"), Spec: podSpec()}
	p.Labels = map[string]string{"app": "web"}
	defaultPod(p)
	for _, m := range mut {
		m(p)
	}
	return p
}

func template(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec()}
}

var webLabels = map[string]string{"app": "web"}

func mkDeployment(mut ...func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: meta("web"), Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: webLabels},
		Template: template(webLabels),
	}}
	defaultDeployment(d)
	for _, m := range mut {
		m(d)
	}
	return d
}

func mkReplicaSet(mut ...func(*appsv1.ReplicaSet)) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{ObjectMeta: meta("web-abc"), Spec: appsv1.ReplicaSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: webLabels},
		Template: template(webLabels),
	}}
	defaultReplicaSet(rs)
	for _, m := range mut {
		m(rs)
	}
	return rs
}

func mkStatefulSet(mut ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{ObjectMeta: meta("db"), Spec: appsv1.StatefulSetSpec{
		ServiceName: "db",
		Selector:    &metav1.LabelSelector{MatchLabels: webLabels},
		Template:    template(webLabels),
	}}
	defaultStatefulSet(s)
	for _, m := range mut {
		m(s)
	}
	return s
}

func mkDaemonSet(mut ...func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{ObjectMeta: meta("agent"), Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web"}}}},
		Template: template(webLabels),
	}}
	defaultDaemonSet(ds)
	for _, m := range mut {
		m(ds)
	}
	return ds
}

func mkJob(mut ...func(*batchv1.Job)) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: meta("pi"), Spec: batchv1.JobSpec{Template: template(nil)}}
	j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	defaultJob(j)
	for _, m := range mut {
		m(j)
	}
	return j
}

func mkCronJob(mut ...func(*batchv1.CronJob)) *batchv1.CronJob {
	cj := &batchv1.CronJob{ObjectMeta: meta("hourly"), Spec: batchv1.CronJobSpec{
		Schedule:    "0 * * * *",
		JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(nil)}},
	}}
	cj.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	defaultCronJob(cj)
	for _, m := range mut {
		m(cj)
	}
	return cj
}

func mkService(mut ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: meta("web"), Spec: corev1.ServiceSpec{
		Selector: webLabels,
		Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}, {Name: "https", Port: 443}},
	}}
	defaultService(s)
	for _, m := range mut {
		m(s)
	}
	return s
}

func mkConfigMap(mut ...func(*corev1.ConfigMap)) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: meta("cfg"), Data: map[string]string{"app.conf": "x=1", "KEY_2": "v"}, BinaryData: map[string][]byte{"blob.bin": {1, 2}}}
	for _, m := range mut {
		m(cm)
	}
	return cm
}

func mkSecret(mut ...func(*corev1.Secret)) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: meta("creds"), Data: map[string][]byte{"password": []byte("hunter2")}}
	defaultSecret(s)
	for _, m := range mut {
		m(s)
	}
	return s
}

func mkNamespace(mut ...func(*corev1.Namespace)) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", UID: "u", ResourceVersion: "1"}}
	defaultNamespace(ns)
	for _, m := range mut {
		m(ns)
	}
	return ns
}

func mkNode(mut ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1.example.com"}, Spec: corev1.NodeSpec{
		PodCIDR: "10.244.1.0/24",
		Taints:  []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}},
	}}
	for _, m := range mut {
		m(n)
	}
	return n
}

func mkEvent(mut ...func(*corev1.Event)) *corev1.Event {
	e := &corev1.Event{ObjectMeta: meta("web-0.17a2b3c4d5e6f"), InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-0"},
		Reason: "Scheduled", Message: "assigned", Type: corev1.EventTypeNormal}
	for _, m := range mut {
		m(e)
	}
	return e
}

func mkEndpoints(mut ...func(*corev1.Endpoints)) *corev1.Endpoints {
	ep := &corev1.Endpoints{ObjectMeta: meta("web"), Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "10.244.1.5"}},
		Ports:     []corev1.EndpointPort{{Name: "http", Port: 80}, {Name: "https", Port: 443}},
	}}}
	defaultEndpoints(ep)
	for _, m := range mut {
		m(ep)
	}
	return ep
}

func mkLease(mut ...func(*coordinationv1.Lease)) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: meta("skiff-leader"), Spec: coordinationv1.LeaseSpec{
		HolderIdentity: ptrTo("m1"), LeaseDurationSeconds: ptrTo(int32(15)),
	}}
	for _, m := range mut {
		m(l)
	}
	return l
}

func resourceFor(t *testing.T, obj runtime.Object) *Resource {
	t.Helper()
	for _, r := range All() {
		if fmt.Sprintf("%T", r.New()) == fmt.Sprintf("%T", obj) {
			return r
		}
	}
	t.Fatalf("no resource for %T", obj)
	return nil
}

func TestValidObjects(t *testing.T) {
	objs := []runtime.Object{
		mkPod(), mkDeployment(), mkReplicaSet(), mkStatefulSet(), mkDaemonSet(), mkJob(), mkCronJob(),
		mkService(), mkConfigMap(), mkSecret(), mkNamespace(), mkNode(), mkEvent(), mkEndpoints(), mkLease(),
		&corev1.ServiceAccount{ObjectMeta: meta("default")},
		// Variants that are valid too.
		mkStatefulSet(func(s *appsv1.StatefulSet) {
			// A mount may name a volumeClaimTemplate instead of a pod volume.
			s.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "claim"}}}
			s.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "claim", MountPath: "/claim"}}
		}),
		mkPod(func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyOnFailure; p.Spec.NodeName = "node-1" }),
		mkPod(func(p *corev1.Pod) {
			// A sidecar (restartable init container) may have probes.
			p.Spec.InitContainers[0].RestartPolicy = ptrTo(corev1.ContainerRestartPolicyAlways)
			p.Spec.InitContainers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}},
				TimeoutSeconds: 1, PeriodSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}
		}),
		mkService(func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone; s.Spec.Ports = nil }),
		mkService(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = 30080
			s.Spec.ClusterIP = "10.96.0.10"
			s.Spec.ClusterIPs = []string{"10.96.0.10"}
		}),
		mkDeployment(func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
			d.Spec.Replicas = ptrTo(int32(0))
		}),
		mkDeployment(func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxSurge = ptrTo(intstr.FromInt32(0))
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromInt32(1))
		}),
		mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "@hourly"; c.Spec.TimeZone = ptrTo("Europe/Paris") }),
		mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "@every 1h30m" }),
		mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "*/15 9-17 ? JAN-mar mon-FRI" }),
		mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "0,30 0 1,15 * 0" }),
		mkJob(func(j *batchv1.Job) {
			j.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion)
			j.Spec.Completions = ptrTo(int32(5))
			j.Spec.Parallelism = ptrTo(int32(2))
		}),
		mkSecret(func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeTLS
			s.Data = map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}
		}),
		mkEvent(func(e *corev1.Event) {
			e.Namespace = "default"
			e.InvolvedObject = corev1.ObjectReference{Kind: "Node", Name: "node-1"}
		}),
		mkNamespace(func(ns *corev1.Namespace) { ns.Spec.Finalizers = append(ns.Spec.Finalizers, "example.com/cleanup") }),
	}
	for i, obj := range objs {
		t.Run(fmt.Sprintf("%d-%T", i, obj), func(t *testing.T) {
			if errs := resourceFor(t, obj).Validate(obj, nil); len(errs) != 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
		})
	}
}

type wantErr struct {
	typ  field.ErrorType
	path string
}

func req(path string) wantErr      { return wantErr{field.ErrorTypeRequired, path} }
func inv(path string) wantErr      { return wantErr{field.ErrorTypeInvalid, path} }
func dup(path string) wantErr      { return wantErr{field.ErrorTypeDuplicate, path} }
func nsup(path string) wantErr     { return wantErr{field.ErrorTypeNotSupported, path} }
func forbid(path string) wantErr   { return wantErr{field.ErrorTypeForbidden, path} }
func notFound(path string) wantErr { return wantErr{field.ErrorTypeNotFound, path} }
func tooLong(path string) wantErr  { return wantErr{field.ErrorTypeTooLong, path} }

func TestInvalidObjects(t *testing.T) {
	big := strings.Repeat("x", 600*1024)
	cases := []struct {
		name string
		obj  runtime.Object
		want wantErr
	}{
		// Metadata.
		{"name required", mkConfigMap(func(c *corev1.ConfigMap) { c.Name = "" }), req("metadata.name")},
		{"name not a subdomain", mkConfigMap(func(c *corev1.ConfigMap) { c.Name = "Bad_Name" }), inv("metadata.name")},
		{"namespace name not a label", mkNamespace(func(n *corev1.Namespace) { n.Name = "a.b" }), inv("metadata.name")},
		{"namespace on cluster-scoped", mkNode(func(n *corev1.Node) { n.Namespace = "default" }), forbid("metadata.namespace")},
		{"bad namespace", mkConfigMap(func(c *corev1.ConfigMap) { c.Namespace = "Not OK" }), inv("metadata.namespace")},
		{"bad label key", mkConfigMap(func(c *corev1.ConfigMap) { c.Labels = map[string]string{"-bad": "v"} }), inv("metadata.labels")},
		{"bad label value", mkConfigMap(func(c *corev1.ConfigMap) { c.Labels = map[string]string{"k": "sp ace"} }), inv("metadata.labels")},
		{"bad annotation key", mkConfigMap(func(c *corev1.ConfigMap) { c.Annotations = map[string]string{"a b": ""} }), inv("metadata.annotations")},
		{"annotations too big", mkConfigMap(func(c *corev1.ConfigMap) { c.Annotations = map[string]string{"big": big} }), tooLong("metadata.annotations")},
		{"bad finalizer", mkConfigMap(func(c *corev1.ConfigMap) { c.Finalizers = []string{"cleanup"} }), inv("metadata.finalizers")},

		// Pods.
		{"no containers", mkPod(func(p *corev1.Pod) { p.Spec.Containers = nil }), req("spec.containers")},
		{"image required", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }), req("spec.containers[0].image")},
		{"image whitespace", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = " nginx" }), inv("spec.containers[0].image")},
		{"container name", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Name = "Web" }), inv("spec.containers[0].name")},
		{"container name required", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Name = "" }), req("spec.containers[0].name")},
		{"duplicate container across init", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Name = "init" }), dup("spec.containers[0].name")},
		{"port 0", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 0 }), req("spec.containers[0].ports[0].containerPort")},
		{"port too big", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 70000 }), inv("spec.containers[0].ports[0].containerPort")},
		{"port protocol", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = "ICMP" }), nsup("spec.containers[0].ports[0].protocol")},
		{"port name", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Name = "http_port" }), inv("spec.containers[0].ports[0].name")},
		{"duplicate port name", mkPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "http", ContainerPort: 81, Protocol: "TCP"})
		}), dup("spec.containers[0].ports[1].name")},
		{"restartPolicy", mkPod(func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }), nsup("spec.restartPolicy")},
		{"dnsPolicy", mkPod(func(p *corev1.Pod) { p.Spec.DNSPolicy = "Google" }), nsup("spec.dnsPolicy")},
		{"imagePullPolicy", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "Sometimes" }), nsup("spec.containers[0].imagePullPolicy")},
		{"probe without handler", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe.HTTPGet = nil }), req("spec.containers[0].livenessProbe")},
		{"probe two handlers", mkPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe.Exec = &corev1.ExecAction{Command: []string{"true"}}
		}), forbid("spec.containers[0].readinessProbe.tcpSocket")},
		{"probe negative", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe.PeriodSeconds = -1 }), inv("spec.containers[0].readinessProbe.periodSeconds")},
		{"liveness successThreshold", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe.SuccessThreshold = 2 }), inv("spec.containers[0].livenessProbe.successThreshold")},
		{"probe port name", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intstr.FromInt32(0) }), inv("spec.containers[0].livenessProbe.httpGet.port")},
		{"init container probe", mkPod(func(p *corev1.Pod) {
			p.Spec.InitContainers[0].LivenessProbe = p.Spec.Containers[0].LivenessProbe
		}), forbid("spec.initContainers[0].livenessProbe")},
		{"requests above limits", mkPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("2")
		}), inv("spec.containers[0].resources.requests")},
		{"negative quantity", mkPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory] = resource.MustParse("-1")
		}), inv("spec.containers[0].resources.limits[memory]")},
		{"unknown resource", mkPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["gpu"] = resource.MustParse("1")
		}), inv("spec.containers[0].resources.limits[gpu]")},
		{"extended resource needs equal request", mkPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["example.com/gpu"] = resource.MustParse("2")
			p.Spec.Containers[0].Resources.Requests["example.com/gpu"] = resource.MustParse("1")
		}), inv("spec.containers[0].resources.requests")},
		{"mount of unknown volume", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].Name = "nope" }), notFound("spec.containers[0].volumeMounts[0].name")},
		{"relative mountPath", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].MountPath = "etc" }), inv("spec.containers[0].volumeMounts[0].mountPath")},
		{"duplicate mountPath", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[1].MountPath = "/etc/cfg" }), inv("spec.containers[0].volumeMounts[1].mountPath")},
		{"subPath escapes", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[1].SubPath = "../x" }), inv("spec.containers[0].volumeMounts[1].subPath")},
		{"volume name", mkPod(func(p *corev1.Pod) {
			p.Spec.Volumes[1].Name = "Data"
			p.Spec.Containers[0].VolumeMounts[1].Name = "Data"
		}), inv("spec.volumes[1].name")},
		{"duplicate volume", mkPod(func(p *corev1.Pod) { p.Spec.Volumes[1].Name = "cfg" }), dup("spec.volumes[1].name")},
		{"no volume source", mkPod(func(p *corev1.Pod) { p.Spec.Volumes[1].VolumeSource = corev1.VolumeSource{} }), req("spec.volumes[1]")},
		{"two volume sources", mkPod(func(p *corev1.Pod) {
			p.Spec.Volumes[0].HostPath = &corev1.HostPathVolumeSource{Path: "/tmp"}
		}), forbid("spec.volumes[0].configMap")},
		{"configMap volume name", mkPod(func(p *corev1.Pod) { p.Spec.Volumes[0].ConfigMap.Name = "" }), req("spec.volumes[0].configMap.name")},
		{"volume mode", mkPod(func(p *corev1.Pod) { p.Spec.Volumes[0].ConfigMap.DefaultMode = ptrTo(int32(01000)) }), inv("spec.volumes[0].configMap.defaultMode")},
		{"env name", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Env[0].Name = "A=B" }), inv("spec.containers[0].env[0].name")},
		{"env value and valueFrom", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Env[1].Value = "x" }), inv("spec.containers[0].env[1].valueFrom")},
		{"env valueFrom empty", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Env[1].ValueFrom = &corev1.EnvVarSource{} }), inv("spec.containers[0].env[1].valueFrom")},
		{"envFrom without source", mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{Prefix: "X_"}} }), inv("spec.containers[0].envFrom[0]")},
		{"secretKeyRef key", mkPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Env[1].ValueFrom = &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}
		}), req("spec.containers[0].env[1].valueFrom.secretKeyRef.key")},
		{"preStop without handler", mkPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{}}
		}), req("spec.containers[0].lifecycle.preStop")},
		{"secret volume items", mkPod(func(p *corev1.Pod) {
			p.Spec.Volumes[1].VolumeSource = corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", Items: []corev1.KeyToPath{{Key: "k", Path: "/abs"}}}}
		}), inv("spec.volumes[1].secret.items[0].path")},
		{"nodeSelector", mkPod(func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"a": "b c"} }), inv("spec.nodeSelector")},
		{"toleration Exists with value", mkPod(func(p *corev1.Pod) { p.Spec.Tolerations[0].Operator = corev1.TolerationOpExists }), inv("spec.tolerations[0].operator")},
		{"serviceAccountName", mkPod(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "Bad SA" }), inv("spec.serviceAccountName")},
		{"activeDeadlineSeconds", mkPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo(int64(0)) }), inv("spec.activeDeadlineSeconds")},
		{"hostNetwork ports", mkPod(func(p *corev1.Pod) { p.Spec.HostNetwork = true; p.Spec.Containers[0].Ports[0].HostPort = 8080 }), inv("spec.containers[0].ports[0].containerPort")},

		// Services.
		{"service ports required", mkService(func(s *corev1.Service) { s.Spec.Ports = nil }), req("spec.ports")},
		{"service port range", mkService(func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 }), inv("spec.ports[0].port")},
		{"service port names required", mkService(func(s *corev1.Service) { s.Spec.Ports[1].Name = "" }), req("spec.ports[1].name")},
		{"service port names unique", mkService(func(s *corev1.Service) { s.Spec.Ports[1].Name = "http" }), dup("spec.ports[1].name")},
		{"service duplicate port", mkService(func(s *corev1.Service) { s.Spec.Ports[1].Port = 80 }), dup("spec.ports[1]")},
		{"service type", mkService(func(s *corev1.Service) { s.Spec.Type = "Magic" }), nsup("spec.type")},
		{"service selector", mkService(func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "a b"} }), inv("spec.selector")},
		{"service name is a label", mkService(func(s *corev1.Service) { s.Name = "web.v1" }), inv("metadata.name")},
		{"nodePort on ClusterIP", mkService(func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30000 }), forbid("spec.ports[0].nodePort")},
		{"targetPort", mkService(func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("not_valid") }), inv("spec.ports[0].targetPort")},
		{"externalName required", mkService(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = nil, nil
		}), req("spec.externalName")},
		{"clusterIP", mkService(func(s *corev1.Service) { s.Spec.ClusterIP = "10.0.0.300" }), inv("spec.clusterIP")},
		{"sessionAffinity", mkService(func(s *corev1.Service) { s.Spec.SessionAffinity = "Sticky" }), nsup("spec.sessionAffinity")},

		// Workloads.
		{"deployment selector required", mkDeployment(func(d *appsv1.Deployment) { d.Spec.Selector = nil }), req("spec.selector")},
		{"deployment empty selector", mkDeployment(func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }), inv("spec.selector")},
		{"deployment selector mismatch", mkDeployment(func(d *appsv1.Deployment) { d.Spec.Template.Labels = map[string]string{"app": "other"} }), inv("spec.template.metadata.labels")},
		{"deployment restartPolicy", mkDeployment(func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever }), nsup("spec.template.spec.restartPolicy")},
		{"deployment replicas", mkDeployment(func(d *appsv1.Deployment) { d.Spec.Replicas = ptrTo(int32(-1)) }), inv("spec.replicas")},
		{"deployment surge and unavailable 0", mkDeployment(func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxSurge = ptrTo(intstr.FromInt32(0))
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromString("0%"))
		}), inv("spec.strategy.rollingUpdate.maxUnavailable")},
		{"deployment maxUnavailable > 100%", mkDeployment(func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromString("150%"))
		}), inv("spec.strategy.rollingUpdate.maxUnavailable")},
		{"deployment maxSurge not a percent", mkDeployment(func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxSurge = ptrTo(intstr.FromString("lots"))
		}), inv("spec.strategy.rollingUpdate.maxSurge")},
		{"deployment Recreate with rollingUpdate", mkDeployment(func(d *appsv1.Deployment) {
			d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
		}), forbid("spec.strategy.rollingUpdate")},
		{"deployment template container", mkDeployment(func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" }), req("spec.template.spec.containers[0].image")},
		{"deployment progressDeadline", mkDeployment(func(d *appsv1.Deployment) { d.Spec.MinReadySeconds = 700 }), inv("spec.progressDeadlineSeconds")},
		{"replicaset selector mismatch", mkReplicaSet(func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Labels = nil }), inv("spec.template.metadata.labels")},
		{"daemonset selector mismatch", mkDaemonSet(func(ds *appsv1.DaemonSet) {
			ds.Spec.Selector.MatchExpressions[0].Values = []string{"db"}
		}), inv("spec.template.metadata.labels")},
		{"daemonset bad selector operator", mkDaemonSet(func(ds *appsv1.DaemonSet) {
			ds.Spec.Selector.MatchExpressions[0].Operator = "Near"
		}), inv("spec.selector.matchExpressions[0].operator")},
		{"daemonset both zero", mkDaemonSet(func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromInt32(0))
		}), inv("spec.updateStrategy.rollingUpdate.maxUnavailable")},
		{"statefulset podManagementPolicy", mkStatefulSet(func(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = "Random" }), inv("spec.podManagementPolicy")},
		{"statefulset restartPolicy", mkStatefulSet(func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure }), nsup("spec.template.spec.restartPolicy")},
		{"statefulset partition", mkStatefulSet(func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = ptrTo(int32(-1)) }), inv("spec.updateStrategy.rollingUpdate.partition")},

		// Jobs and cron jobs.
		{"job restartPolicy Always", mkJob(func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways }), req("spec.template.spec.restartPolicy")},
		{"job parallelism", mkJob(func(j *batchv1.Job) { j.Spec.Parallelism = ptrTo(int32(-1)) }), inv("spec.parallelism")},
		{"job completions", mkJob(func(j *batchv1.Job) { j.Spec.Completions = ptrTo(int32(-2)) }), inv("spec.completions")},
		{"job backoffLimit", mkJob(func(j *batchv1.Job) { j.Spec.BackoffLimit = ptrTo(int32(-1)) }), inv("spec.backoffLimit")},
		{"job selector required", mkJob(func(j *batchv1.Job) { j.Spec.Selector = nil }), req("spec.selector")},
		{"job selector mismatch", mkJob(func(j *batchv1.Job) { j.Spec.Template.Labels = nil }), inv("spec.template.metadata.labels")},
		{"job indexed needs completions", mkJob(func(j *batchv1.Job) {
			j.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion)
			j.Spec.Completions = nil
		}), req("spec.completions")},
		{"job completionMode", mkJob(func(j *batchv1.Job) { j.Spec.CompletionMode = ptrTo(batchv1.CompletionMode("Sometimes")) }), nsup("spec.completionMode")},
		{"cronjob schedule required", mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "" }), req("spec.schedule")},
		{"cronjob 4 fields", mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "* * * *" }), inv("spec.schedule")},
		{"cronjob minute 60", mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "60 * * * *" }), inv("spec.schedule")},
		{"cronjob bad chars", mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "0 * * * MONDAY" }), inv("spec.schedule")},
		{"cronjob bad descriptor", mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "@fortnightly" }), inv("spec.schedule")},
		{"cronjob TZ in schedule", mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "TZ=UTC 0 * * * *" }), inv("spec.schedule")},
		{"cronjob timeZone", mkCronJob(func(c *batchv1.CronJob) { c.Spec.TimeZone = ptrTo("Mars/Olympus") }), inv("spec.timeZone")},
		{"cronjob timeZone Local", mkCronJob(func(c *batchv1.CronJob) { c.Spec.TimeZone = ptrTo("Local") }), inv("spec.timeZone")},
		{"cronjob concurrencyPolicy", mkCronJob(func(c *batchv1.CronJob) { c.Spec.ConcurrencyPolicy = "Sometimes" }), nsup("spec.concurrencyPolicy")},
		{"cronjob template restartPolicy", mkCronJob(func(c *batchv1.CronJob) {
			c.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
		}), req("spec.jobTemplate.spec.template.spec.restartPolicy")},
		{"cronjob selector", mkCronJob(func(c *batchv1.CronJob) {
			c.Spec.JobTemplate.Spec.Selector = &metav1.LabelSelector{MatchLabels: webLabels}
		}), inv("spec.jobTemplate.spec.selector")},
		{"cronjob long name", mkCronJob(func(c *batchv1.CronJob) { c.Name = strings.Repeat("a", 53) }), inv("metadata.name")},

		// Config and the rest.
		{"configmap key", mkConfigMap(func(c *corev1.ConfigMap) { c.Data["bad/key"] = "" }), inv("data[bad/key]")},
		{"configmap duplicate key", mkConfigMap(func(c *corev1.ConfigMap) { c.BinaryData["app.conf"] = nil }), inv("data[app.conf]")},
		{"configmap too big", mkConfigMap(func(c *corev1.ConfigMap) { c.Data["a"], c.Data["b"] = big, big }), tooLong("[]")},
		{"secret key", mkSecret(func(s *corev1.Secret) { s.Data["a b"] = nil }), inv("data[a b]")},
		{"secret too big", mkSecret(func(s *corev1.Secret) { s.Data["a"], s.Data["b"] = []byte(big), []byte(big) }), tooLong("data")},
		{"tls secret keys", mkSecret(func(s *corev1.Secret) { s.Type = corev1.SecretTypeTLS }), req("data[tls.crt]")},
		{"namespace finalizer", mkNamespace(func(n *corev1.Namespace) { n.Spec.Finalizers = []corev1.FinalizerName{"cleanup"} }), inv("spec.finalizers")},
		{"node taint effect", mkNode(func(n *corev1.Node) { n.Spec.Taints[0].Effect = "Never" }), nsup("spec.taints[0].effect")},
		{"node podCIDR", mkNode(func(n *corev1.Node) { n.Spec.PodCIDR = "10.0.0.0/33" }), inv("spec.podCIDR")},
		{"event namespace mismatch", mkEvent(func(e *corev1.Event) { e.InvolvedObject.Namespace = "other" }), inv("involvedObject.namespace")},
		{"new event needs reportingComponent", mkEvent(func(e *corev1.Event) { e.EventTime = metav1.NewMicroTime(time.Now()); e.Action = "Binding" }), req("reportingComponent")},
		{"dockerconfigjson", mkSecret(func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeDockerConfigJson
			s.Data = map[string][]byte{".dockerconfigjson": []byte("{")}
		}), inv("data[.dockerconfigjson]")},
		{"endpoints ip", mkEndpoints(func(ep *corev1.Endpoints) { ep.Subsets[0].Addresses[0].IP = "nope" }), inv("subsets[0].addresses[0].ip")},
		{"endpoints port name", mkEndpoints(func(ep *corev1.Endpoints) { ep.Subsets[0].Ports[1].Name = "" }), req("subsets[0].ports[1].name")},
		{"endpoints addresses", mkEndpoints(func(ep *corev1.Endpoints) { ep.Subsets[0].Addresses = nil }), req("subsets[0]")},
		{"lease duration", mkLease(func(l *coordinationv1.Lease) { l.Spec.LeaseDurationSeconds = ptrTo(int32(0)) }), inv("spec.leaseDurationSeconds")},
		{"lease transitions", mkLease(func(l *coordinationv1.Lease) { l.Spec.LeaseTransitions = ptrTo(int32(-1)) }), inv("spec.leaseTransitions")},
		{"serviceaccount name", &corev1.ServiceAccount{ObjectMeta: meta("Default")}, inv("metadata.name")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := resourceFor(t, c.obj).Validate(c.obj, nil)
			expectError(t, errs, c.want)
		})
	}
}

func expectError(t *testing.T, errs field.ErrorList, want wantErr) {
	t.Helper()
	for _, e := range errs {
		if e.Type == want.typ && e.Field == want.path {
			return
		}
	}
	t.Fatalf("want %s %s, got %v", want.path, want.typ, errs)
}

func TestValidateUpdate(t *testing.T) {
	type tc struct {
		name     string
		old, obj runtime.Object
		want     *wantErr // nil: valid
	}
	w := func(e wantErr) *wantErr { return &e }
	cases := []tc{
		// Pods: only images, activeDeadlineSeconds, tolerations (additions) may change.
		{"pod image change", mkPod(), mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.26"; p.Labels["v"] = "2" }), nil},
		{"pod toleration added", mkPod(), mkPod(func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists})
		}), nil},
		{"pod activeDeadlineSeconds set", mkPod(), mkPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo(int64(60)) }), nil},
		{"pod status only", mkPod(), mkPod(func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }), nil},
		{"pod nodeName change", mkPod(), mkPod(func(p *corev1.Pod) { p.Spec.NodeName = "node-1" }), w(forbid("spec"))},
		{"pod ports change", mkPod(), mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 81 }), w(forbid("spec"))},
		{"pod container added", mkPod(), mkPod(func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "x", Image: "x", ImagePullPolicy: "Always", TerminationMessagePolicy: "File"})
		}), w(forbid("spec.containers"))},
		{"pod toleration removed", mkPod(), mkPod(func(p *corev1.Pod) { p.Spec.Tolerations = nil }), w(forbid("spec.tolerations"))},
		{"pod activeDeadlineSeconds raised", mkPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo(int64(60)) }),
			mkPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo(int64(120)) }), w(inv("spec.activeDeadlineSeconds"))},
		{"pod name change", mkPod(), mkPod(func(p *corev1.Pod) { p.Name = "web-1" }), w(inv("metadata.name"))},
		{"pod uid change", mkPod(), mkPod(func(p *corev1.Pod) { p.UID = "other" }), w(inv("metadata.uid"))},

		// Workload selectors are immutable.
		{"deployment scale and image", mkDeployment(), mkDeployment(func(d *appsv1.Deployment) {
			d.Spec.Replicas = ptrTo(int32(5))
			d.Spec.Template.Spec.Containers[0].Image = "nginx:1.26"
		}), nil},
		{"deployment selector", mkDeployment(), mkDeployment(func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchLabels = map[string]string{"app": "web", "tier": "fe"}
			d.Spec.Template.Labels = map[string]string{"app": "web", "tier": "fe"}
		}), w(inv("spec.selector"))},
		{"replicaset selector", mkReplicaSet(), mkReplicaSet(func(rs *appsv1.ReplicaSet) {
			rs.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "x": "y"}}
			rs.Spec.Template.Labels = map[string]string{"app": "web", "x": "y"}
		}), w(inv("spec.selector"))},
		{"daemonset selector", mkDaemonSet(), mkDaemonSet(func(ds *appsv1.DaemonSet) {
			ds.Spec.Selector = &metav1.LabelSelector{MatchLabels: webLabels}
		}), w(inv("spec.selector"))},
		{"statefulset replicas", mkStatefulSet(), mkStatefulSet(func(s *appsv1.StatefulSet) { s.Spec.Replicas = ptrTo(int32(3)) }), nil},
		{"statefulset serviceName", mkStatefulSet(), mkStatefulSet(func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "other" }), w(forbid("spec"))},

		// Jobs.
		{"job template", mkJob(), mkJob(func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "perl:5" }), w(inv("spec.template"))},
		{"job completions", mkJob(), mkJob(func(j *batchv1.Job) { j.Spec.Completions = ptrTo(int32(3)) }), w(inv("spec.completions"))},
		{"job parallelism", mkJob(), mkJob(func(j *batchv1.Job) { j.Spec.Parallelism = ptrTo(int32(3)) }), nil},
		{"job suspend", mkJob(), mkJob(func(j *batchv1.Job) { j.Spec.Suspend = ptrTo(true) }), nil},
		{"suspended job scheduling directives", mkJob(func(j *batchv1.Job) { j.Spec.Suspend = ptrTo(true) }), mkJob(func(j *batchv1.Job) {
			j.Spec.Suspend = ptrTo(true)
			j.Spec.Template.Spec.NodeSelector = map[string]string{"zone": "a"}
		}), nil},
		{"cronjob schedule", mkCronJob(), mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "*/5 * * * *" }), nil},

		// Services, config, metadata.
		{"service clusterIP", mkService(func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.10" }),
			mkService(func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.11" }), w(inv("spec.clusterIP"))},
		{"service ports", mkService(), mkService(func(s *corev1.Service) { s.Spec.Ports[0].Port = 8080 }), nil},
		{"immutable configmap", mkConfigMap(func(c *corev1.ConfigMap) { c.Immutable = ptrTo(true) }),
			mkConfigMap(func(c *corev1.ConfigMap) { c.Immutable = ptrTo(true); c.Data["new"] = "x" }), w(forbid("data"))},
		{"secret type", mkSecret(), mkSecret(func(s *corev1.Secret) { s.Type = "example.com/other" }), w(inv("type"))},
		{"namespace change", mkConfigMap(), mkConfigMap(func(c *corev1.ConfigMap) { c.Namespace = "other" }), w(inv("metadata.namespace"))},
		{"new finalizer while deleting", mkConfigMap(func(c *corev1.ConfigMap) { c.DeletionTimestamp = &metav1.Time{} }),
			mkConfigMap(func(c *corev1.ConfigMap) {
				c.DeletionTimestamp = &metav1.Time{}
				c.Finalizers = []string{"example.com/f"}
			}), w(forbid("metadata.finalizers"))},
		{"lease renew", mkLease(), mkLease(func(l *coordinationv1.Lease) { l.Spec.HolderIdentity = ptrTo("m2") }), nil},
		{"node podCIDR", mkNode(), mkNode(func(n *corev1.Node) { n.Spec.PodCIDR = "10.244.2.0/24" }), w(forbid("spec.podCIDR"))},
		{"node cordon", mkNode(), mkNode(func(n *corev1.Node) { n.Spec.Unschedulable = true }), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := resourceFor(t, c.obj).Validate(c.obj, c.old)
			if c.want == nil {
				if len(errs) != 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			expectError(t, errs, *c.want)
		})
	}
}

func TestPodUpdateMessage(t *testing.T) {
	errs := validatePod(mkPod(func(p *corev1.Pod) { p.Spec.NodeName = "n1" }), mkPod())
	if len(errs) != 1 {
		t.Fatalf("errors: %v", errs)
	}
	msg := errs[0].Error()
	for _, s := range []string{"spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`", "spec.nodeName"} {
		if !strings.Contains(msg, s) {
			t.Errorf("message %q lacks %q", msg, s)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	// A few full messages, as kubectl would show them.
	for _, c := range []struct {
		obj  runtime.Object
		want string
	}{
		{mkPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }), "spec.containers[0].image: Required value"},
		{mkDeployment(func(d *appsv1.Deployment) { d.Spec.Template.Labels = map[string]string{"app": "x"} }),
			"spec.template.metadata.labels: Invalid value: {\"app\":\"x\"}: `selector` does not match template `labels`"},
		{mkJob(func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways }),
			`spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"`},
		{mkCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "61 * * * *" }),
			`spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61`},
		{mkPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("2")
		}), `spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1`},
	} {
		errs := resourceFor(t, c.obj).Validate(c.obj, nil)
		found := false
		for _, e := range errs {
			if e.Error() == c.want {
				found = true
			}
		}
		if !found {
			t.Errorf("want %q, got %v", c.want, errs)
		}
	}
}

func TestCronSchedule(t *testing.T) {
	for spec, ok := range map[string]bool{
		"* * * * *": true, "0 0 1 1 0": true, "59 23 31 12 6": true, "*/5 * * * *": true, "1-10/2 * * * *": true,
		"0 12 * * MON-FRI": true, "0 0 * jan,Jul *": true, "5/10 * * * *": true, "? * * * *": true,
		"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true, "@daily": true, "@midnight": true, "@hourly": true,
		"@every 5m": true, "CRON_TZ=UTC 0 * * * *": true, "  0 * * * *  ": true,
		"": false, "* * * *": false, "* * * * * *": false, "0 24 * * *": false, "0 0 0 * *": false, "0 0 * 13 *": false,
		"0 0 * * 7": false, "10-5 * * * *": false, "*/0 * * * *": false, "1-2-3 * * * *": false, "*/2/3 * * * *": false,
		"a * * * *": false, "-1 * * * *": false, "@every": false, "@every x": false, "@reboot": false, "TZ=Nowhere/City 0 * * * *": false,
	} {
		err := parseCronSchedule(spec)
		if (err == nil) != ok {
			t.Errorf("parseCronSchedule(%q) = %v, want ok=%v", spec, err, ok)
		}
	}
}

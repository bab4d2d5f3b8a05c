package registry

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// decode reads a YAML manifest into the registered type and applies the
// resource's defaults, as the API server does on create.
func decodeDefault(t *testing.T, group, resource, manifest string) runtime.Object {
	t.Helper()
	r := Lookup(group, "v1", resource)
	obj := r.New()
	if err := yaml.UnmarshalStrict([]byte(manifest), obj); err != nil {
		t.Fatalf("decode %s: %v", resource, err)
	}
	r.Default(obj)
	return obj
}

// sub returns the value at a dotted JSON path of obj (as generic JSON).
func sub(t *testing.T, obj interface{}, path ...interface{}) interface{} {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var v interface{}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]interface{})
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]interface{})
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// expectJSON compares each path's JSON value with the wanted one.
func expectJSON(t *testing.T, obj interface{}, want map[string]interface{}, paths map[string][]interface{}) {
	t.Helper()
	for name, p := range paths {
		got := sub(t, obj, p...)
		wb, _ := json.Marshal(want[name])
		gb, _ := json.Marshal(got)
		if string(wb) != string(gb) {
			t.Errorf("%s = %s, want %s", name, gb, wb)
		}
	}
}

const minimalPodSpec = `
    containers:
    - name: web
      image: nginx
      ports:
      - containerPort: 80
      livenessProbe:
        httpGet:
          port: 80
      readinessProbe:
        tcpSocket:
          port: 80
      volumeMounts:
      - name: cfg
        mountPath: /etc/cfg
    - name: side
      image: busybox:1.36
      resources:
        limits:
          cpu: 500m
          memory: 64Mi
    volumes:
    - name: cfg
      configMap:
        name: cfg
    - name: sec
      secret:
        secretName: s
    - name: scratch`

func TestDefaultPod(t *testing.T) {
	pod := decodeDefault(t, "", "pods", `
metadata: {name: p}
spec:`+minimalPodSpec).(*corev1.Pod)
	s := pod.Spec
	if s.RestartPolicy != corev1.RestartPolicyAlways || s.DNSPolicy != corev1.DNSClusterFirst ||
		*s.TerminationGracePeriodSeconds != 30 || s.SchedulerName != "default-scheduler" ||
		s.SecurityContext == nil || !*s.EnableServiceLinks ||
		s.ServiceAccountName != "default" || s.DeprecatedServiceAccount != "default" {
		t.Errorf("pod spec defaults: %+v", s)
	}
	web, side := s.Containers[0], s.Containers[1]
	for _, c := range []corev1.Container{web, side} {
		if c.TerminationMessagePath != "/dev/termination-log" || c.TerminationMessagePolicy != corev1.TerminationMessageReadFile {
			t.Errorf("%s termination message defaults: %q %q", c.Name, c.TerminationMessagePath, c.TerminationMessagePolicy)
		}
	}
	if web.ImagePullPolicy != corev1.PullAlways || side.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("imagePullPolicy: %s %s", web.ImagePullPolicy, side.ImagePullPolicy)
	}
	if web.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("port protocol %q", web.Ports[0].Protocol)
	}
	for _, p := range []*corev1.Probe{web.LivenessProbe, web.ReadinessProbe} {
		if p.TimeoutSeconds != 1 || p.PeriodSeconds != 10 || p.SuccessThreshold != 1 || p.FailureThreshold != 3 {
			t.Errorf("probe defaults %+v", p)
		}
	}
	if g := web.LivenessProbe.HTTPGet; g.Scheme != corev1.URISchemeHTTP || g.Path != "/" {
		t.Errorf("httpGet defaults %+v", g)
	}
	// Requests default to limits for pods.
	if !reflect.DeepEqual(side.Resources.Requests, side.Resources.Limits) {
		t.Errorf("requests %v, limits %v", side.Resources.Requests, side.Resources.Limits)
	}
	if *s.Volumes[0].ConfigMap.DefaultMode != 420 || *s.Volumes[1].Secret.DefaultMode != 420 {
		t.Errorf("volume default modes")
	}
	if s.Volumes[2].EmptyDir == nil {
		t.Errorf("a volume without source is an emptyDir: %+v", s.Volumes[2])
	}
	if errs := Lookup("", "v1", "pods").Validate(pod, nil); len(errs) != 0 {
		t.Errorf("defaulted pod is invalid: %v", errs)
	}

	// Defaulting is idempotent and keeps what is set.
	again := pod.DeepCopy()
	defaultPod(again)
	if !reflect.DeepEqual(again, pod) {
		t.Errorf("defaulting twice changed the pod")
	}
	custom := decodeDefault(t, "", "pods", `
metadata: {name: p}
spec:
  restartPolicy: Never
  serviceAccountName: builder
  enableServiceLinks: false
  containers:
  - {name: c, image: "registry:5000/app:v1", imagePullPolicy: Never}`).(*corev1.Pod)
	if custom.Spec.RestartPolicy != corev1.RestartPolicyNever || custom.Spec.ServiceAccountName != "builder" ||
		*custom.Spec.EnableServiceLinks || custom.Spec.Containers[0].ImagePullPolicy != corev1.PullNever {
		t.Errorf("defaults overrode set values: %+v", custom.Spec)
	}
}

func TestImageTag(t *testing.T) {
	for image, want := range map[string]string{
		"nginx":                             "latest",
		"nginx:latest":                      "latest",
		"nginx:1.25":                        "1.25",
		"localhost:5000/nginx":              "latest",
		"localhost:5000/nginx:v2":           "v2",
		"nginx@sha256:" + sha256zeroes:      "",
		"nginx:1.25@sha256:" + sha256zeroes: "1.25",
	} {
		if got := imageTag(image); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", image, got, want)
		}
	}
}

const sha256zeroes = "0000000000000000000000000000000000000000000000000000000000000000"

func TestDefaultDeployment(t *testing.T) {
	d := decodeDefault(t, "apps", "deployments", `
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:`+strings.ReplaceAll(minimalPodSpec, "\n", "\n  ")).(*appsv1.Deployment)
	expectJSON(t, d, map[string]interface{}{
		"replicas":             1,
		"strategy":             map[string]interface{}{"type": "RollingUpdate", "rollingUpdate": map[string]interface{}{"maxSurge": "25%", "maxUnavailable": "25%"}},
		"revisionHistoryLimit": 10,
		"progressDeadline":     600,
		"restartPolicy":        "Always",
		"dnsPolicy":            "ClusterFirst",
		"grace":                30,
		"scheduler":            "default-scheduler",
		"securityContext":      map[string]interface{}{},
		"pullPolicy":           "Always",
		"enableServiceLinks":   nil, // pod-only default
		"serviceAccountName":   nil, // set by admission on pods only
		"probeTimeout":         1,
	}, map[string][]interface{}{
		"replicas":             {"spec", "replicas"},
		"strategy":             {"spec", "strategy"},
		"revisionHistoryLimit": {"spec", "revisionHistoryLimit"},
		"progressDeadline":     {"spec", "progressDeadlineSeconds"},
		"restartPolicy":        {"spec", "template", "spec", "restartPolicy"},
		"dnsPolicy":            {"spec", "template", "spec", "dnsPolicy"},
		"grace":                {"spec", "template", "spec", "terminationGracePeriodSeconds"},
		"scheduler":            {"spec", "template", "spec", "schedulerName"},
		"securityContext":      {"spec", "template", "spec", "securityContext"},
		"pullPolicy":           {"spec", "template", "spec", "containers", 0, "imagePullPolicy"},
		"enableServiceLinks":   {"spec", "template", "spec", "enableServiceLinks"},
		"serviceAccountName":   {"spec", "template", "spec", "serviceAccountName"},
		"probeTimeout":         {"spec", "template", "spec", "containers", 0, "livenessProbe", "timeoutSeconds"},
	})
	if errs := validateDeployment(d, nil); len(errs) != 0 {
		t.Errorf("defaulted deployment is invalid: %v", errs)
	}
	// Recreate keeps no rollingUpdate.
	rec := decodeDefault(t, "apps", "deployments", `
metadata: {name: web}
spec:
  strategy: {type: Recreate}
  selector: {matchLabels: {app: web}}
  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c, image: i}]}}`).(*appsv1.Deployment)
	if rec.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("Recreate got rollingUpdate %+v", rec.Spec.Strategy.RollingUpdate)
	}
}

func TestDefaultOtherWorkloads(t *testing.T) {
	const tmpl = `
  selector: {matchLabels: {app: a}}
  template: {metadata: {labels: {app: a}}, spec: {containers: [{name: c, image: i}]}}`
	rs := decodeDefault(t, "apps", "replicasets", "metadata: {name: a}\nspec:"+tmpl).(*appsv1.ReplicaSet)
	if *rs.Spec.Replicas != 1 || rs.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Errorf("replicaset defaults %+v", rs.Spec)
	}
	sts := decodeDefault(t, "apps", "statefulsets", "metadata: {name: a}\nspec:\n  serviceName: a"+tmpl).(*appsv1.StatefulSet)
	expectJSON(t, sts, map[string]interface{}{
		"replicas": 1, "policy": "OrderedReady", "revisions": 10,
		"strategy":  map[string]interface{}{"type": "RollingUpdate", "rollingUpdate": map[string]interface{}{"partition": 0}},
		"retention": map[string]interface{}{"whenDeleted": "Retain", "whenScaled": "Retain"},
	}, map[string][]interface{}{
		"replicas": {"spec", "replicas"}, "policy": {"spec", "podManagementPolicy"}, "revisions": {"spec", "revisionHistoryLimit"},
		"strategy": {"spec", "updateStrategy"}, "retention": {"spec", "persistentVolumeClaimRetentionPolicy"},
	})
	ds := decodeDefault(t, "apps", "daemonsets", "metadata: {name: a}\nspec:"+tmpl).(*appsv1.DaemonSet)
	expectJSON(t, ds, map[string]interface{}{
		"strategy":  map[string]interface{}{"type": "RollingUpdate", "rollingUpdate": map[string]interface{}{"maxSurge": 0, "maxUnavailable": 1}},
		"revisions": 10,
	}, map[string][]interface{}{"strategy": {"spec", "updateStrategy"}, "revisions": {"spec", "revisionHistoryLimit"}})
	if errs := validateStatefulSet(sts, nil); len(errs) != 0 {
		t.Errorf("defaulted statefulset invalid: %v", errs)
	}
	if errs := validateDaemonSet(ds, nil); len(errs) != 0 {
		t.Errorf("defaulted daemonset invalid: %v", errs)
	}
	if errs := validateReplicaSet(rs, nil); len(errs) != 0 {
		t.Errorf("defaulted replicaset invalid: %v", errs)
	}
}

func TestDefaultService(t *testing.T) {
	svc := decodeDefault(t, "", "services", `
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
  - {name: https, port: 443, targetPort: web-tls, protocol: TCP}`).(*corev1.Service)
	s := svc.Spec
	if s.Type != corev1.ServiceTypeClusterIP || s.SessionAffinity != corev1.ServiceAffinityNone ||
		*s.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack || !reflect.DeepEqual(s.IPFamilies, []corev1.IPFamily{corev1.IPv4Protocol}) ||
		*s.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyCluster || s.ExternalTrafficPolicy != "" {
		t.Errorf("service defaults %+v", s)
	}
	if p := s.Ports[0]; p.Protocol != corev1.ProtocolTCP || p.TargetPort != intstr.FromInt32(80) {
		t.Errorf("port defaults %+v", p)
	}
	if p := s.Ports[1]; p.TargetPort != intstr.FromString("web-tls") {
		t.Errorf("named targetPort changed: %+v", p)
	}
	np := decodeDefault(t, "", "services", `
metadata: {name: web}
spec: {type: LoadBalancer, sessionAffinity: ClientIP, ports: [{port: 80}]}`).(*corev1.Service)
	if np.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster || !*np.Spec.AllocateLoadBalancerNodePorts ||
		*np.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds != 10800 {
		t.Errorf("LoadBalancer defaults %+v", np.Spec)
	}
	headless := decodeDefault(t, "", "services", `
metadata: {name: db}
spec: {clusterIP: None}`).(*corev1.Service)
	if *headless.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyRequireDualStack || !reflect.DeepEqual(headless.Spec.ClusterIPs, []string{"None"}) {
		t.Errorf("headless service without selector defaults %+v", headless.Spec)
	}
	if errs := validateService(headless, nil); len(errs) != 0 {
		t.Errorf("headless invalid: %v", errs)
	}
	ext := decodeDefault(t, "", "services", `
metadata: {name: db}
spec: {type: ExternalName, externalName: db.example.com}`).(*corev1.Service)
	if ext.Spec.IPFamilyPolicy != nil || ext.Spec.IPFamilies != nil || ext.Spec.InternalTrafficPolicy != nil {
		t.Errorf("ExternalName got IP defaults %+v", ext.Spec)
	}
	if errs := validateService(ext, nil); len(errs) != 0 {
		t.Errorf("ExternalName invalid: %v", errs)
	}
}

func TestDefaultJob(t *testing.T) {
	job := decodeDefault(t, "batch", "jobs", `
metadata: {name: pi, uid: 0f2c5e6a-1111-2222-3333-444455556666}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: perl}]`).(*batchv1.Job)
	s := job.Spec
	if *s.Parallelism != 1 || *s.Completions != 1 || *s.BackoffLimit != 6 || *s.CompletionMode != batchv1.NonIndexedCompletion ||
		*s.Suspend || *s.PodReplacementPolicy != batchv1.TerminatingOrFailed {
		t.Errorf("job defaults %+v", s)
	}
	if s.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("template restartPolicy changed to %q", s.Template.Spec.RestartPolicy)
	}
	uid := string(job.UID)
	if !reflect.DeepEqual(s.Selector, &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: uid}}) {
		t.Errorf("generated selector %+v", s.Selector)
	}
	wantLabels := map[string]string{
		"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
		"batch.kubernetes.io/job-name": "pi", "job-name": "pi",
	}
	if !reflect.DeepEqual(s.Template.Labels, wantLabels) {
		t.Errorf("template labels %v", s.Template.Labels)
	}
	if errs := validateJob(job, nil); len(errs) != 0 {
		t.Errorf("defaulted job invalid: %v", errs)
	}

	// Only parallelism set: completions stays unset.
	par := decodeDefault(t, "batch", "jobs", `
metadata: {name: w}
spec: {parallelism: 3, template: {spec: {restartPolicy: OnFailure, containers: [{name: c, image: i}]}}}`).(*batchv1.Job)
	if par.Spec.Completions != nil || *par.Spec.Parallelism != 3 {
		t.Errorf("parallel job defaults %+v", par.Spec)
	}
	// No UID yet: no selector is generated.
	if par.Spec.Selector != nil {
		t.Errorf("selector generated without a UID: %+v", par.Spec.Selector)
	}
	// A manual selector is left alone.
	manual := decodeDefault(t, "batch", "jobs", `
metadata: {name: m, uid: u1}
spec:
  manualSelector: true
  selector: {matchLabels: {app: m}}
  template: {metadata: {labels: {app: m}}, spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}`).(*batchv1.Job)
	if len(manual.Spec.Template.Labels) != 1 || len(manual.Spec.Selector.MatchLabels) != 1 {
		t.Errorf("manual selector job changed: %+v", manual.Spec)
	}
	if manual.Labels["app"] != "m" {
		t.Errorf("job labels default to template labels: %v", manual.Labels)
	}
}

func TestDefaultCronJob(t *testing.T) {
	cj := decodeDefault(t, "batch", "cronjobs", `
metadata: {name: hello}
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: hello, image: busybox}]`).(*batchv1.CronJob)
	s := cj.Spec
	if s.ConcurrencyPolicy != batchv1.AllowConcurrent || *s.Suspend || *s.SuccessfulJobsHistoryLimit != 3 || *s.FailedJobsHistoryLimit != 1 {
		t.Errorf("cronjob defaults %+v", s)
	}
	c := s.JobTemplate.Spec.Template.Spec.Containers[0]
	if c.ImagePullPolicy != corev1.PullAlways || s.JobTemplate.Spec.Template.Spec.DNSPolicy != corev1.DNSClusterFirst {
		t.Errorf("job template pod defaults %+v", s.JobTemplate.Spec.Template.Spec)
	}
	if s.JobTemplate.Spec.BackoffLimit != nil {
		t.Errorf("job template got job defaults: %+v", s.JobTemplate.Spec)
	}
	if errs := validateCronJob(cj, nil); len(errs) != 0 {
		t.Errorf("defaulted cronjob invalid: %v", errs)
	}
}

func TestDefaultNamespaceSecretNode(t *testing.T) {
	ns := decodeDefault(t, "", "namespaces", `metadata: {name: team-a}`).(*corev1.Namespace)
	if !reflect.DeepEqual(ns.Spec.Finalizers, []corev1.FinalizerName{"kubernetes"}) || ns.Status.Phase != corev1.NamespaceActive ||
		ns.Labels["kubernetes.io/metadata.name"] != "team-a" {
		t.Errorf("namespace defaults %+v", ns)
	}
	sec := decodeDefault(t, "", "secrets", `
metadata: {name: s}
data: {a: YQ==}
stringData: {b: bee}`).(*corev1.Secret)
	if sec.Type != corev1.SecretTypeOpaque || string(sec.Data["a"]) != "a" || string(sec.Data["b"]) != "bee" || sec.StringData != nil {
		t.Errorf("secret defaults %+v", sec)
	}
	node := decodeDefault(t, "", "nodes", `
metadata: {name: n1}
status: {capacity: {cpu: "4", memory: 8Gi}}`).(*corev1.Node)
	if q := node.Status.Allocatable[corev1.ResourceCPU]; q.Cmp(resource.MustParse("4")) != 0 {
		t.Errorf("node allocatable %v", node.Status.Allocatable)
	}
}

func TestDefaultHostNetworkPorts(t *testing.T) {
	pod := decodeDefault(t, "", "pods", `
metadata: {name: p}
spec:
  hostNetwork: true
  containers: [{name: c, image: i, ports: [{containerPort: 9100}]}]`).(*corev1.Pod)
	if p := pod.Spec.Containers[0].Ports[0]; p.HostPort != 9100 {
		t.Errorf("hostPort = %d", p.HostPort)
	}
	if errs := validatePod(pod, nil); len(errs) != 0 {
		t.Errorf("hostNetwork pod invalid: %v", errs)
	}
}

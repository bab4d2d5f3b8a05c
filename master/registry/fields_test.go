package registry

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestFields(t *testing.T) {
	cases := []struct {
		name string
		obj  runtime.Object
		want map[string]string
	}{
		{"pod", &corev1.Pod{
			Spec: corev1.PodSpec{NodeName: "n1", RestartPolicy: corev1.RestartPolicyAlways, SchedulerName: "default-scheduler",
				ServiceAccountName: "default", HostNetwork: true},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}},
		}, map[string]string{
			"spec.nodeName": "n1", "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
			"spec.serviceAccountName": "default", "spec.hostNetwork": "true",
			"status.phase": "Running", "status.podIP": "10.0.0.1", "status.nominatedNodeName": "",
		}},
		{"unscheduled pod", &corev1.Pod{}, map[string]string{
			"spec.nodeName": "", "spec.restartPolicy": "", "spec.schedulerName": "", "spec.serviceAccountName": "",
			"spec.hostNetwork": "false", "status.phase": "", "status.podIP": "", "status.nominatedNodeName": "",
		}},
		{"event", &corev1.Event{
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-0", UID: "u1", APIVersion: "v1",
				ResourceVersion: "42", FieldPath: "spec.containers{web}"},
			Reason: "Pulled", Type: "Normal", Source: corev1.EventSource{Component: "kubelet", Host: "n1"},
		}, map[string]string{
			"involvedObject.kind": "Pod", "involvedObject.namespace": "default", "involvedObject.name": "web-0",
			"involvedObject.uid": "u1", "involvedObject.apiVersion": "v1", "involvedObject.resourceVersion": "42",
			"involvedObject.fieldPath": "spec.containers{web}", "reason": "Pulled", "reportingComponent": "",
			"source": "kubelet", "type": "Normal",
		}},
		{"secret", &corev1.Secret{Type: corev1.SecretTypeTLS}, map[string]string{"type": "kubernetes.io/tls"}},
		{"node", &corev1.Node{Spec: corev1.NodeSpec{Unschedulable: true}}, map[string]string{"spec.unschedulable": "true"}},
		{"namespace", &corev1.Namespace{Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}, map[string]string{"status.phase": "Terminating"}},
		{"replicaset", &appsv1.ReplicaSet{Status: appsv1.ReplicaSetStatus{Replicas: 3}}, map[string]string{"status.replicas": "3"}},
		{"job", &batchv1.Job{Status: batchv1.JobStatus{Succeeded: 2}}, map[string]string{"status.successful": "2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := resourceFor(t, c.obj)
			if got := r.Fields(c.obj); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Fields = %v\nwant %v", got, c.want)
			}
		})
	}
	// Resources without extra field selectors.
	for _, res := range []string{"configmaps", "services", "endpoints", "serviceaccounts"} {
		if Lookup("", "v1", res).Fields != nil {
			t.Errorf("%s has Fields", res)
		}
	}
	if r := Lookup("", "v1", "pods"); !reflect.DeepEqual(r.IndexedFields, []string{"spec.nodeName", "status.phase"}) {
		t.Errorf("pod IndexedFields = %v", r.IndexedFields)
	}
}

package registry

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Field selector values, as the Kubernetes registries' ToSelectableFields /
// GetAttrs return them (metadata.name and metadata.namespace excepted: every
// resource supports those and the API layer handles them).

func podFields(pod *corev1.Pod) map[string]string {
	podIP := ""
	if len(pod.Status.PodIPs) > 0 {
		podIP = pod.Status.PodIPs[0].IP
	} else {
		podIP = pod.Status.PodIP
	}
	return map[string]string{
		"spec.nodeName":            pod.Spec.NodeName,
		"spec.restartPolicy":       string(pod.Spec.RestartPolicy),
		"spec.schedulerName":       pod.Spec.SchedulerName,
		"spec.serviceAccountName":  pod.Spec.ServiceAccountName,
		"spec.hostNetwork":         strconv.FormatBool(pod.Spec.HostNetwork),
		"status.phase":             string(pod.Status.Phase),
		"status.podIP":             podIP,
		"status.nominatedNodeName": pod.Status.NominatedNodeName,
	}
}

func eventFields(ev *corev1.Event) map[string]string {
	source := ev.Source.Component
	if source == "" {
		source = ev.ReportingController
	}
	return map[string]string{
		"involvedObject.kind":            ev.InvolvedObject.Kind,
		"involvedObject.namespace":       ev.InvolvedObject.Namespace,
		"involvedObject.name":            ev.InvolvedObject.Name,
		"involvedObject.uid":             string(ev.InvolvedObject.UID),
		"involvedObject.apiVersion":      ev.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": ev.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       ev.InvolvedObject.FieldPath,
		"reason":                         ev.Reason,
		"reportingComponent":             ev.ReportingController,
		"source":                         source,
		"type":                           ev.Type,
	}
}

func secretFields(s *corev1.Secret) map[string]string {
	return map[string]string{"type": string(s.Type)}
}

func nodeFields(n *corev1.Node) map[string]string {
	return map[string]string{"spec.unschedulable": strconv.FormatBool(n.Spec.Unschedulable)}
}

func namespaceFields(ns *corev1.Namespace) map[string]string {
	return map[string]string{"status.phase": string(ns.Status.Phase)}
}

func replicaSetFields(rs *appsv1.ReplicaSet) map[string]string {
	return map[string]string{"status.replicas": strconv.Itoa(int(rs.Status.Replicas))}
}

func jobFields(job *batchv1.Job) map[string]string {
	return map[string]string{"status.successful": strconv.Itoa(int(job.Status.Succeeded))}
}

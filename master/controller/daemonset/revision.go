package daemonset

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// isUpdated reports whether p runs the template revision hash names: the
// controller-revision-hash label newPod copies from controller.TemplateHash of the template.
func isUpdated(p *corev1.Pod, hash string) bool {
	return p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash
}

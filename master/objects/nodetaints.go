package objects

import corev1 "k8s.io/api/core/v1"

// EffectiveTaints is node's taints as placement must see them: its spec's, plus the
// NoSchedule taint Kubernetes' node lifecycle controller would add for a node that is not
// Ready (node.kubernetes.io/not-ready, or unreachable when its Ready condition is Unknown).
// skiff derives that taint from the condition instead of writing it, so the scheduler and
// the DaemonSet controller must both add it here, or a daemon pod would be made for a node
// the scheduler will never bind it to. The result may share node's slice when nothing is
// added; do not modify it.
func EffectiveTaints(node *corev1.Node) []corev1.Taint {
	t := notReadyTaint(node)
	if t == nil {
		return node.Spec.Taints
	}
	for _, have := range node.Spec.Taints {
		if have.Key == t.Key && have.Effect == t.Effect {
			return node.Spec.Taints
		}
	}
	return append(append([]corev1.Taint(nil), node.Spec.Taints...), *t)
}

func notReadyTaint(node *corev1.Node) *corev1.Taint {
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		switch c.Status {
		case corev1.ConditionTrue:
			return nil
		case corev1.ConditionUnknown:
			return &corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}
		}
		break
	}
	return &corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
}

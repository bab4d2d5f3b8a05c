package daemonset

import (
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/master/controller"
	"skiff/master/podstatus"
)

// newPod builds the daemon pod for node from the template, as Kubernetes does: default
// tolerations added, the revision hash label set, and a required node affinity on the
// node's name in place of the template's required terms (the controller has already
// checked those), so the scheduler binds it there.
func newPod(ds *appsv1.DaemonSet, node, hash string) *corev1.Pod {
	pod := controller.PodFromTemplate(&ds.Spec.Template, ds, daemonSets)
	addDefaultTolerations(&pod.Spec)
	pod.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] = hash
	pod.Spec.Affinity = pinToNode(pod.Spec.Affinity, node)
	return pod
}

// pinToNode returns affinity with its required node affinity replaced by a single term
// selecting the node named node (Kubernetes' ReplaceDaemonSetPodNodeNameNodeAffinity).
func pinToNode(affinity *corev1.Affinity, node string) *corev1.Affinity {
	required := &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
		MatchFields: []corev1.NodeSelectorRequirement{{
			Key: metav1.ObjectNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{node},
		}},
	}}}
	if affinity == nil {
		affinity = &corev1.Affinity{}
	}
	if affinity.NodeAffinity == nil {
		affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = required
	return affinity
}

// targetNode is the node a daemon pod is meant for: where it is bound, or else the node its
// metadata.name affinity pins it to; "" if neither.
func targetNode(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, req := range term.MatchFields {
			if req.Key == metav1.ObjectNameField && req.Operator == corev1.NodeSelectorOpIn && len(req.Values) == 1 {
				return req.Values[0]
			}
		}
	}
	return ""
}

// podsByNode groups pods by their target node. Pods that finished and are being deleted
// are left out: nothing more is to be done with them, and their node may get a new pod.
func podsByNode(ps []*corev1.Pod) map[string][]*corev1.Pod {
	out := map[string][]*corev1.Pod{}
	for _, p := range ps {
		if p.DeletionTimestamp != nil && podstatus.Terminal(p) {
			continue
		}
		if n := targetNode(p); n != "" {
			out[n] = append(out[n], p)
		}
	}
	return out
}

// sortOldestFirst orders pods bound before unbound, then oldest first, then by name (the
// order Kubernetes keeps the first of and counts status from).
func sortOldestFirst(ps []*corev1.Pod) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Spec.NodeName != "") != (b.Spec.NodeName != "") {
			return a.Spec.NodeName != ""
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

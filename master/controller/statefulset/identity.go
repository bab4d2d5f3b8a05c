package statefulset

import (
	"regexp"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"skiff/master/controller"
)

// podName splits a pod name into its StatefulSet's name and ordinal.
var podName = regexp.MustCompile(`^(.*)-([0-9]+)$`)

// ordinalOf returns p's ordinal in set, or -1 if p's name does not make it a member.
func ordinalOf(set *appsv1.StatefulSet, p *corev1.Pod) int {
	m := podName.FindStringSubmatch(p.Name)
	if m == nil || m[1] != set.Name {
		return -1
	}
	ord, err := strconv.ParseInt(m[2], 10, 32)
	if err != nil {
		return -1
	}
	return int(ord)
}

// startOrdinal is the first replica's ordinal (spec.ordinals.start, default 0).
func startOrdinal(set *appsv1.StatefulSet) int {
	if set.Spec.Ordinals != nil {
		return int(set.Spec.Ordinals.Start)
	}
	return 0
}

func replicaCount(set *appsv1.StatefulSet) int {
	if set.Spec.Replicas == nil {
		return 1
	}
	return int(*set.Spec.Replicas)
}

func nameFor(set *appsv1.StatefulSet, ord int) string {
	return set.Name + "-" + strconv.Itoa(ord)
}

// newPod builds the replica with ordinal ord from template at revision: its stable name,
// the identity labels, hostname and subdomain, and an emptyDir in place of each volume
// claim template.
func newPod(set *appsv1.StatefulSet, template *corev1.PodTemplateSpec, revision string, ord int) *corev1.Pod {
	pod := controller.PodFromTemplate(template, set, statefulSets)
	pod.Name = nameFor(set, ord) // the generateName PodFromTemplate sets stays, as in Kubernetes; the name wins
	pod.Labels[appsv1.StatefulSetRevisionLabel] = revision
	setIdentity(set, pod, ord)
	pod.Spec.Hostname = pod.Name
	pod.Spec.Subdomain = set.Spec.ServiceName
	claimVolumes(set, &pod.Spec)
	return pod
}

// setIdentity sets the labels that tell a replica's name and ordinal.
func setIdentity(set *appsv1.StatefulSet, pod *corev1.Pod, ord int) {
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[appsv1.StatefulSetPodNameLabel] = pod.Name
	pod.Labels[appsv1.PodIndexLabel] = strconv.Itoa(ord)
}

// identityMatches reports whether p carries the identity labels of its ordinal in set (a
// user may have changed them; the controller puts them back).
func identityMatches(set *appsv1.StatefulSet, p *corev1.Pod) bool {
	ord := ordinalOf(set, p)
	return ord >= 0 && p.Namespace == set.Namespace &&
		p.Labels[appsv1.StatefulSetPodNameLabel] == p.Name && p.Labels[appsv1.PodIndexLabel] == strconv.Itoa(ord)
}

// claimVolumes stands an emptyDir in for each volume claim template, replacing a template
// volume of the same name as the claim would in Kubernetes: skiff has no persistent
// volumes, and without the volume a pod mounting the claim would not be valid.
func claimVolumes(set *appsv1.StatefulSet, spec *corev1.PodSpec) {
	if len(set.Spec.VolumeClaimTemplates) == 0 {
		return
	}
	claims := map[string]bool{}
	var vols []corev1.Volume
	for _, c := range set.Spec.VolumeClaimTemplates {
		claims[c.Name] = true
		vols = append(vols, corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	for _, v := range spec.Volumes {
		if !claims[v.Name] {
			vols = append(vols, v)
		}
	}
	spec.Volumes = vols
}

// byOrdinalDescending sorts members of set from the highest ordinal down.
func byOrdinalDescending(set *appsv1.StatefulSet, ps []*corev1.Pod) {
	sort.SliceStable(ps, func(i, j int) bool { return ordinalOf(set, ps[i]) > ordinalOf(set, ps[j]) })
}

package controller

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/dump"
	"skiff/master/registry"
)

// TemplateHash returns the name of a pod template revision exactly as Kubernetes'
// controller.ComputeHash computes it: FNV-32a over the template's hash dump, then the
// collision count (when set) as eight little-endian bytes, rendered with
// rand.SafeEncodeString. Deployments name their ReplicaSets with it (pod-template-hash),
// DaemonSets and StatefulSets their revisions (controller-revision-hash). Equal templates
// give equal names on every master, so a revision is recognised after a leader change;
// the collision count moves a name off an object that already took it.
func TemplateHash(template *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%v", dump.ForHash(*template))
	if collisionCount != nil {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, uint32(*collisionCount))
		h.Write(b)
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// PodFromTemplate builds a pod of owner (of resource r) as Kubernetes' GetPodFromTemplate
// does: copies of the template's labels, annotations, finalizers and spec, in owner's
// namespace, named from "<owner>-" (or "<owner>" when the dash would make the name
// invalid), with a controller reference to owner. It is left unscheduled for the scheduler
// to bind; controllers add what their kind needs (a revision label, a name, a finalizer).
// The labels map is always allocated, so callers may add to it.
func PodFromTemplate(template *corev1.PodTemplateSpec, owner metav1.Object, r *registry.Resource) *corev1.Pod {
	prefix := owner.GetName() + "-"
	if len(validation.IsDNS1123Subdomain(prefix+"a")) != 0 {
		prefix = owner.GetName()
	}
	podLabels := maps.Clone(template.Labels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    prefix,
			Namespace:       owner.GetNamespace(),
			Labels:          podLabels,
			Annotations:     maps.Clone(template.Annotations),
			Finalizers:      slices.Clone(template.Finalizers),
			OwnerReferences: []metav1.OwnerReference{OwnerReference(owner, r)},
		},
		Spec: *template.Spec.DeepCopy(),
	}
}

package controller

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/master/registry"
)

func podTemplate(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

func TestTemplateHash(t *testing.T) {
	a, a2, b := podTemplate("web:1"), podTemplate("web:1"), podTemplate("web:2")
	one := int32(1)
	// The names are pinned: a change would make every running ReplicaSet, DaemonSet and
	// StatefulSet pod look like an old revision after an upgrade.
	if got := TemplateHash(&a, nil); got != "5454644c78" {
		t.Fatalf("hash %q, want 5454644c78", got)
	}
	if got := TemplateHash(&a, &one); got != "5c5666cc55" {
		t.Fatalf("hash with collision count 1 %q, want 5c5666cc55", got)
	}
	if TemplateHash(&a, nil) != TemplateHash(&a2, nil) {
		t.Fatal("equal templates hash differently")
	}
	if TemplateHash(&a, nil) == TemplateHash(&b, nil) {
		t.Fatal("different templates hash the same")
	}
	for _, r := range TemplateHash(&a, nil) {
		if !strings.ContainsRune("bcdfghjklmnpqrstvwxz2456789", r) {
			t.Fatalf("hash %q is not in the safe alphabet", TemplateHash(&a, nil))
		}
	}
}

func TestPodFromTemplate(t *testing.T) {
	tpl := podTemplate("web:1")
	tpl.Annotations = map[string]string{"note": "x"}
	tpl.Finalizers = []string{"example.com/hold"}
	owner := &metav1.ObjectMeta{Name: "web", Namespace: "prod", UID: "owner-uid"}
	rs := registry.Lookup("apps", "v1", "replicasets")
	p := PodFromTemplate(&tpl, owner, rs)
	if p.GenerateName != "web-" || p.Namespace != "prod" || p.Name != "" {
		t.Fatalf("pod named %q/%q (generateName %q)", p.Namespace, p.Name, p.GenerateName)
	}
	if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != "owner-uid" || ref.Kind != "ReplicaSet" || ref.APIVersion != "apps/v1" {
		t.Fatalf("controller reference %+v", p.OwnerReferences)
	}
	if p.Labels["app"] != "web" || p.Annotations["note"] != "x" || len(p.Finalizers) != 1 || p.Spec.Containers[0].Image != "web:1" {
		t.Fatalf("pod not from the template: %+v", p)
	}
	// The pod owns its copies: changing it leaves the template alone.
	p.Labels["extra"], p.Annotations["note"], p.Finalizers[0] = "y", "changed", "other"
	p.Spec.Containers[0].Image = "web:2"
	if tpl.Labels["extra"] != "" || tpl.Annotations["note"] != "x" || tpl.Finalizers[0] != "example.com/hold" || tpl.Spec.Containers[0].Image != "web:1" {
		t.Fatalf("template changed through the pod: %+v", tpl)
	}
	// A name too long for the dash keeps the owner's name alone as the prefix.
	long := &metav1.ObjectMeta{Name: strings.Repeat("a", 252), Namespace: "prod"}
	if p := PodFromTemplate(&tpl, long, rs); p.GenerateName != long.Name {
		t.Fatalf("prefix %q for a 252-character owner", p.GenerateName)
	}
	// A template without labels still gives a map to add to.
	if p := PodFromTemplate(&corev1.PodTemplateSpec{}, owner, rs); p.Labels == nil {
		t.Fatal("nil labels")
	}
}

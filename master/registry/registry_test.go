package registry

import (
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

func TestAllResourcesRegistered(t *testing.T) {
	want := []struct {
		group, resource, kind string
		namespaced            bool
		shortNames            []string
		all                   bool
		subresources          []string
	}{
		{"", "configmaps", "ConfigMap", true, []string{"cm"}, false, nil},
		{"", "endpoints", "Endpoints", true, []string{"ep"}, false, nil},
		{"", "events", "Event", true, []string{"ev"}, false, nil},
		{"", "namespaces", "Namespace", false, []string{"ns"}, false, []string{"status"}},
		{"", "nodes", "Node", false, []string{"no"}, false, []string{"status"}},
		{"", "pods", "Pod", true, []string{"po"}, true, []string{"status", "eviction"}},
		{"", "secrets", "Secret", true, nil, false, nil},
		{"", "serviceaccounts", "ServiceAccount", true, []string{"sa"}, false, nil},
		{"", "services", "Service", true, []string{"svc"}, true, []string{"status"}},
		{"apps", "daemonsets", "DaemonSet", true, []string{"ds"}, true, []string{"status"}},
		{"apps", "deployments", "Deployment", true, []string{"deploy"}, true, []string{"status", "scale"}},
		{"apps", "replicasets", "ReplicaSet", true, []string{"rs"}, true, []string{"status", "scale"}},
		{"apps", "statefulsets", "StatefulSet", true, []string{"sts"}, true, []string{"status", "scale"}},
		{"batch", "cronjobs", "CronJob", true, []string{"cj"}, true, []string{"status"}},
		{"batch", "jobs", "Job", true, nil, true, []string{"status"}},
		{"coordination.k8s.io", "leases", "Lease", true, nil, false, nil},
		{"policy", "poddisruptionbudgets", "PodDisruptionBudget", true, []string{"pdb"}, false, []string{"status"}},
	}
	all := All()
	if len(all) != len(want) {
		t.Fatalf("All() has %d resources, want %d", len(all), len(want))
	}
	for i, w := range want {
		r := all[i]
		t.Run(w.resource, func(t *testing.T) {
			if r.Group != w.group || r.Resource != w.resource || r.Kind != w.kind || r.Version != "v1" {
				t.Fatalf("All()[%d] = %s/%s %s, want %s/v1 %s", i, r.Group, r.Version, r.Resource, w.group, w.resource)
			}
			if r.Namespaced != w.namespaced {
				t.Errorf("Namespaced = %v, want %v", r.Namespaced, w.namespaced)
			}
			if !reflect.DeepEqual(r.ShortNames, w.shortNames) {
				t.Errorf("ShortNames = %v, want %v", r.ShortNames, w.shortNames)
			}
			if got := reflect.DeepEqual(r.Categories, []string{"all"}); got != w.all {
				t.Errorf("Categories = %v, want all=%v", r.Categories, w.all)
			}
			if !reflect.DeepEqual(r.Subresources, w.subresources) {
				t.Errorf("Subresources = %v, want %v", r.Subresources, w.subresources)
			}
			if r.Singular != strings.ToLower(w.kind) || r.ListKind != w.kind+"List" {
				t.Errorf("Singular/ListKind = %q/%q", r.Singular, r.ListKind)
			}
			wantVerbs := verbsAll
			if w.resource == "namespaces" || w.resource == "services" {
				wantVerbs = verbsNoDeleteCollect
			}
			if !reflect.DeepEqual(r.Verbs, wantVerbs) {
				t.Errorf("Verbs = %v, want %v", r.Verbs, wantVerbs)
			}
			if r.New == nil || r.NewList == nil || r.Default == nil || r.Validate == nil || r.Row == nil || len(r.Columns) == 0 {
				t.Fatal("missing function or columns")
			}
			hasScale := r.HasSubresource("scale")
			if (r.GetScale != nil) != hasScale || (r.SetScale != nil) != hasScale {
				t.Errorf("GetScale/SetScale set = %v/%v, scale subresource %v", r.GetScale != nil, r.SetScale != nil, hasScale)
			}

			// Lookup, ByKind and the scheme agree with each other.
			if got := Lookup(w.group, "v1", w.resource); got != r {
				t.Errorf("Lookup(%q, v1, %q) = %v", w.group, w.resource, got)
			}
			if got := ByKind(r.GroupVersionKind()); got != r {
				t.Errorf("ByKind(%v) = %v", r.GroupVersionKind(), got)
			}
			if gv := r.GroupVersion(); gv.Group != w.group || gv.Version != "v1" {
				t.Errorf("GroupVersion() = %v", gv)
			}
			for _, pair := range []struct {
				obj  runtime.Object
				kind string
			}{{r.New(), r.Kind}, {r.NewList(), r.ListKind}} {
				gvks, _, err := Scheme().ObjectKinds(pair.obj)
				if err != nil {
					t.Fatalf("scheme does not know %T: %v", pair.obj, err)
				}
				if gvks[0] != r.GroupVersion().WithKind(pair.kind) {
					t.Errorf("scheme kind of %T = %v", pair.obj, gvks[0])
				}
				n, err := Scheme().New(r.GroupVersion().WithKind(pair.kind))
				if err != nil || reflect.TypeOf(n) != reflect.TypeOf(pair.obj) {
					t.Errorf("Scheme().New(%s) = %T, %v", pair.kind, n, err)
				}
			}

			// The first column is the name (events: last seen, name last);
			// a row of an empty object has one cell per column.
			nameCol := r.Columns[0]
			if r.Resource == "events" {
				nameCol = r.Columns[len(r.Columns)-1]
			}
			if nameCol.Name != "Name" || nameCol.Format != "name" {
				t.Errorf("name column = %+v", nameCol)
			}
			obj := r.New()
			r.Default(obj)
			if cells := r.Row(obj, time.Now()); len(cells) != len(r.Columns) {
				t.Errorf("Row has %d cells for %d columns", len(cells), len(r.Columns))
			}
			if r.Fields != nil {
				if f := r.Fields(obj); len(f) == 0 {
					t.Errorf("Fields of an empty object is empty")
				}
			}
			for _, f := range r.IndexedFields {
				if _, ok := r.Fields(obj)[f]; !ok {
					t.Errorf("indexed field %q is not among Fields", f)
				}
			}
		})
	}
}

func TestLookupUnknown(t *testing.T) {
	if r := Lookup("", "v1", "widgets"); r != nil {
		t.Errorf("Lookup(widgets) = %v", r)
	}
	if r := Lookup("apps", "v1beta1", "deployments"); r != nil {
		t.Errorf("Lookup(apps/v1beta1) = %v", r)
	}
	if r := Lookup("", "v1", "pod"); r != nil {
		t.Errorf("Lookup by singular = %v", r)
	}
	if r := ByKind(schema.GroupVersionKind{Group: "extensions", Version: "v1beta1", Kind: "Deployment"}); r != nil {
		t.Errorf("ByKind(extensions) = %v", r)
	}
}

func TestSchemeMetaAndPolicy(t *testing.T) {
	s := Scheme()
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"},
		{Group: "policy", Version: "v1", Kind: "Eviction"},
		{Group: "meta.k8s.io", Version: "v1", Kind: "Table"},
		{Group: "meta.k8s.io", Version: "v1", Kind: "PartialObjectMetadataList"},
		{Group: "", Version: "v1", Kind: "Status"},
		{Group: "", Version: "v1", Kind: "WatchEvent"},
		{Group: "apps", Version: "v1", Kind: "ControllerRevision"},
		{Group: "", Version: "v1", Kind: "Binding"},
	} {
		if !s.Recognizes(gvk) {
			t.Errorf("scheme does not recognize %v", gvk)
		}
	}
	// A typed decode through the scheme's codecs.
	data := []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":2}}`)
	obj, gvk, err := serializer.NewCodecFactory(s).UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := obj.(*appsv1.Deployment)
	if !ok || gvk.Kind != "Deployment" || d.Name != "web" || *d.Spec.Replicas != 2 {
		t.Fatalf("decoded %T %v %+v", obj, gvk, obj)
	}
}

func TestScale(t *testing.T) {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
		Replicas: ptrTo(int32(3)),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
	}, Status: appsv1.DeploymentStatus{Replicas: 2}}
	r := Lookup("apps", "v1", "deployments")
	spec, status, sel := r.GetScale(d)
	if spec != 3 || status != 2 || sel != "app=web" {
		t.Fatalf("GetScale = %d %d %q", spec, status, sel)
	}
	r.SetScale(d, 5)
	if *d.Spec.Replicas != 5 {
		t.Fatalf("SetScale: replicas %d", *d.Spec.Replicas)
	}
	for _, name := range []string{"replicasets", "statefulsets"} {
		r := Lookup("apps", "v1", name)
		obj := r.New()
		r.Default(obj)
		r.SetScale(obj, 7)
		if n, _, _ := r.GetScale(obj); n != 7 {
			t.Errorf("%s: scale %d after SetScale(7)", name, n)
		}
	}
	// A foreign object is ignored, not a panic.
	r.SetScale(&corev1.Pod{}, 1)
	if n, s, sel := r.GetScale(&corev1.Pod{}); n != 0 || s != 0 || sel != "" {
		t.Errorf("GetScale(pod) = %d %d %q", n, s, sel)
	}
}

func TestValidateWrongType(t *testing.T) {
	r := Lookup("", "v1", "pods")
	errs := r.Validate(&corev1.Service{}, nil)
	if len(errs) != 1 || errs[0].Type != "InternalError" {
		t.Fatalf("Validate(service) via pods = %v", errs)
	}
}

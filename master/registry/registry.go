// Package registry describes the Kubernetes API resources skiff serves: their
// group/version/kind, scope, discovery data, Go types, defaulting, validation,
// field selectors, table printing and scale subresource accessors.
//
// Defaulting and validation mirror what the Kubernetes API server does for the
// commonly used fields (k8s.io/kubernetes pkg/apis/*/v1/defaults.go and
// pkg/apis/*/validation), written here against the v1 types because
// k8s.io/kubernetes cannot be imported.
package registry

import (
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource describes one API resource the server serves.
type Resource struct {
	Group, Version, Kind, Resource, Singular, ListKind string // Resource is the plural, e.g. "pods"
	Namespaced                                         bool
	// ShortNames as Kubernetes advertises them in discovery (po, svc, deploy, ...).
	ShortNames []string
	// Categories: "all" for the resources Kubernetes puts in it.
	Categories []string
	// Verbs as in Kubernetes discovery.
	Verbs []string
	// Subresources served besides the main resource: "status", "scale".
	Subresources []string

	// New returns an empty typed object, e.g. &corev1.Pod{}.
	New func() runtime.Object
	// NewList returns an empty typed list, e.g. &corev1.PodList{}.
	NewList func() runtime.Object

	// Default sets defaults in place, as the Kubernetes API server does on
	// create and update (type defaulting plus the create-time strategy and
	// admission defaults that every cluster applies, see each resource).
	Default func(obj runtime.Object)
	// Validate checks obj; old is nil on create and the stored object on
	// update. Paths and messages follow Kubernetes (e.g.
	// "spec.containers[0].image: Required value").
	Validate func(obj, old runtime.Object) field.ErrorList

	// Fields returns the values of the field selectors this resource supports
	// beyond metadata.name and metadata.namespace (nil when none).
	Fields func(obj runtime.Object) map[string]string
	// IndexedFields names the Fields worth an index in the store.
	IndexedFields []string

	// Columns and Row render the resource as `kubectl get` prints it (server
	// side tables: Row returns every column's cell, including priority-1
	// "wide" ones; AGE-like cells are computed relative to now).
	Columns []metav1.TableColumnDefinition
	Row     func(obj runtime.Object, now time.Time) []interface{}

	// GetScale and SetScale are set for resources with a scale subresource:
	// they read spec.replicas, status.replicas and the selector (in label
	// selector string form, as autoscaling/v1 Scale.status.selector), and
	// write spec.replicas.
	GetScale func(obj runtime.Object) (replicas int32, statusReplicas int32, selector string)
	SetScale func(obj runtime.Object, replicas int32)
}

// GroupVersion returns the resource's group and version.
func (r *Resource) GroupVersion() schema.GroupVersion {
	return schema.GroupVersion{Group: r.Group, Version: r.Version}
}

// GroupVersionKind returns the resource's group, version and kind.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// GroupVersionResource returns the resource's group, version and plural name.
func (r *Resource) GroupVersionResource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}
}

// HasSubresource reports whether the resource serves the named subresource.
func (r *Resource) HasSubresource(name string) bool {
	for _, s := range r.Subresources {
		if s == name {
			return true
		}
	}
	return false
}

// Verbs as Kubernetes discovery lists them.
var (
	verbsAll             = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	verbsNoDeleteCollect = []string{"create", "delete", "get", "list", "patch", "update", "watch"}
)

var (
	initOnce  sync.Once
	resources []*Resource
	byGVR     map[schema.GroupVersionResource]*Resource
	byGVK     map[schema.GroupVersionKind]*Resource
	scheme    *runtime.Scheme
)

func initRegistry() {
	resources = append(resources, coreResources()...)
	resources = append(resources, appsResources()...)
	resources = append(resources, batchResources()...)
	resources = append(resources, coordinationResources()...)
	resources = append(resources, policyResources()...)
	byGVR = make(map[schema.GroupVersionResource]*Resource, len(resources))
	byGVK = make(map[schema.GroupVersionKind]*Resource, len(resources))
	for _, r := range resources {
		byGVR[r.GroupVersionResource()] = r
		byGVK[r.GroupVersionKind()] = r
	}

	scheme = runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(appsv1.AddToScheme(scheme))
	utilruntime.Must(batchv1.AddToScheme(scheme))
	utilruntime.Must(coordinationv1.AddToScheme(scheme))
	utilruntime.Must(policyv1.AddToScheme(scheme))
	// Table, TableOptions, PartialObjectMetadata(List) in meta.k8s.io/v1 and
	// the unversioned Status, APIVersions, APIGroupList, ... types.
	utilruntime.Must(metav1.AddMetaToScheme(scheme))
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
}

// All returns every resource, in a stable order (core, apps, batch,
// coordination.k8s.io; within a group as listed in Kubernetes discovery).
// The slice is the caller's; the Resources it points to are shared and must
// not be modified.
func All() []*Resource {
	initOnce.Do(initRegistry)
	return append([]*Resource(nil), resources...)
}

// Lookup finds a resource by group, version and plural resource name; nil if
// unknown.
func Lookup(group, version, resource string) *Resource {
	initOnce.Do(initRegistry)
	return byGVR[schema.GroupVersionResource{Group: group, Version: version, Resource: resource}]
}

// ByKind finds a resource by group, version and kind; nil if unknown.
func ByKind(gvk schema.GroupVersionKind) *Resource {
	initOnce.Do(initRegistry)
	return byGVK[gvk]
}

// Scheme returns the shared scheme with core/v1, apps/v1, batch/v1,
// coordination.k8s.io/v1, policy/v1 and the meta/v1 types registered. It must
// not be modified.
func Scheme() *runtime.Scheme {
	initOnce.Do(initRegistry)
	return scheme
}

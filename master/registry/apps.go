package registry

import (
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// appsResources lists the apps/v1 resources, in Kubernetes discovery order.
func appsResources() []*Resource {
	return []*Resource{
		{
			Group: "apps", Version: "v1", Kind: "DaemonSet", Resource: "daemonsets", Singular: "daemonset", ListKind: "DaemonSetList",
			Namespaced:   true,
			ShortNames:   []string{"ds"},
			Categories:   []string{"all"},
			Verbs:        verbsAll,
			Subresources: []string{"status"},
			New:          func() runtime.Object { return &appsv1.DaemonSet{} },
			NewList:      func() runtime.Object { return &appsv1.DaemonSetList{} },
			Default:      defaulter(defaultDaemonSet),
			Validate:     validator(validateDaemonSet),
			Columns:      daemonSetColumns,
			Row:          rower(daemonSetRow),
		},
		{
			Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Singular: "deployment", ListKind: "DeploymentList",
			Namespaced:   true,
			ShortNames:   []string{"deploy"},
			Categories:   []string{"all"},
			Verbs:        verbsAll,
			Subresources: []string{"status", "scale"},
			New:          func() runtime.Object { return &appsv1.Deployment{} },
			NewList:      func() runtime.Object { return &appsv1.DeploymentList{} },
			Default:      defaulter(defaultDeployment),
			Validate:     validator(validateDeployment),
			Columns:      deploymentColumns,
			Row:          rower(deploymentRow),
			GetScale: scaleGetter(func(d *appsv1.Deployment) (int32, int32, string) {
				return replicasOf(d.Spec.Replicas), d.Status.Replicas, selectorString(d.Spec.Selector)
			}),
			SetScale: scaleSetter(func(d *appsv1.Deployment, n int32) { d.Spec.Replicas = &n }),
		},
		{
			Group: "apps", Version: "v1", Kind: "ReplicaSet", Resource: "replicasets", Singular: "replicaset", ListKind: "ReplicaSetList",
			Namespaced:   true,
			ShortNames:   []string{"rs"},
			Categories:   []string{"all"},
			Verbs:        verbsAll,
			Subresources: []string{"status", "scale"},
			New:          func() runtime.Object { return &appsv1.ReplicaSet{} },
			NewList:      func() runtime.Object { return &appsv1.ReplicaSetList{} },
			Default:      defaulter(defaultReplicaSet),
			Validate:     validator(validateReplicaSet),
			Fields:       fielder(replicaSetFields),
			Columns:      replicaSetColumns,
			Row:          rower(replicaSetRow),
			GetScale: scaleGetter(func(rs *appsv1.ReplicaSet) (int32, int32, string) {
				return replicasOf(rs.Spec.Replicas), rs.Status.Replicas, selectorString(rs.Spec.Selector)
			}),
			SetScale: scaleSetter(func(rs *appsv1.ReplicaSet, n int32) { rs.Spec.Replicas = &n }),
		},
		{
			Group: "apps", Version: "v1", Kind: "StatefulSet", Resource: "statefulsets", Singular: "statefulset", ListKind: "StatefulSetList",
			Namespaced:   true,
			ShortNames:   []string{"sts"},
			Categories:   []string{"all"},
			Verbs:        verbsAll,
			Subresources: []string{"status", "scale"},
			New:          func() runtime.Object { return &appsv1.StatefulSet{} },
			NewList:      func() runtime.Object { return &appsv1.StatefulSetList{} },
			Default:      defaulter(defaultStatefulSet),
			Validate:     validator(validateStatefulSet),
			Columns:      statefulSetColumns,
			Row:          rower(statefulSetRow),
			GetScale: scaleGetter(func(s *appsv1.StatefulSet) (int32, int32, string) {
				return replicasOf(s.Spec.Replicas), s.Status.Replicas, selectorString(s.Spec.Selector)
			}),
			SetScale: scaleSetter(func(s *appsv1.StatefulSet, n int32) { s.Spec.Replicas = &n }),
		},
	}
}

// replicasOf reads an optional replica count (Kubernetes defaults it to 1).
func replicasOf(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// selectorString renders a label selector the way Scale.status.selector and
// `kubectl get -o wide` do; "" when it is nil or cannot be converted.
func selectorString(sel *metav1.LabelSelector) string {
	if sel == nil {
		return ""
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return ""
	}
	return s.String()
}

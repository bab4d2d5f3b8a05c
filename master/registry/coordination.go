package registry

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// coordinationResources lists the coordination.k8s.io/v1 resources.
func coordinationResources() []*Resource {
	return []*Resource{
		{
			Group: "coordination.k8s.io", Version: "v1", Kind: "Lease", Resource: "leases", Singular: "lease", ListKind: "LeaseList",
			Namespaced: true,
			Verbs:      verbsAll,
			New:        func() runtime.Object { return &coordinationv1.Lease{} },
			NewList:    func() runtime.Object { return &coordinationv1.LeaseList{} },
			Default:    defaulter(func(*coordinationv1.Lease) {}),
			Validate:   validator(validateLease),
			Columns:    leaseColumns,
			Row:        rower(leaseRow),
		},
	}
}

package registry

import (
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// batchResources lists the batch/v1 resources, in Kubernetes discovery order.
func batchResources() []*Resource {
	return []*Resource{
		{
			Group: "batch", Version: "v1", Kind: "CronJob", Resource: "cronjobs", Singular: "cronjob", ListKind: "CronJobList",
			Namespaced:   true,
			ShortNames:   []string{"cj"},
			Categories:   []string{"all"},
			Verbs:        verbsAll,
			Subresources: []string{"status"},
			New:          func() runtime.Object { return &batchv1.CronJob{} },
			NewList:      func() runtime.Object { return &batchv1.CronJobList{} },
			Default:      defaulter(defaultCronJob),
			Validate:     validator(validateCronJob),
			Columns:      cronJobColumns,
			Row:          rower(cronJobRow),
		},
		{
			Group: "batch", Version: "v1", Kind: "Job", Resource: "jobs", Singular: "job", ListKind: "JobList",
			Namespaced:   true,
			Categories:   []string{"all"},
			Verbs:        verbsAll,
			Subresources: []string{"status"},
			New:          func() runtime.Object { return &batchv1.Job{} },
			NewList:      func() runtime.Object { return &batchv1.JobList{} },
			Default:      defaulter(defaultJob),
			Validate:     validator(validateJob),
			Fields:       fielder(jobFields),
			Columns:      jobColumns,
			Row:          rower(jobRow),
		},
	}
}

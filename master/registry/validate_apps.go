package registry

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validation of apps/v1 workloads, after k8s.io/kubernetes
// pkg/apis/apps/validation.

var specPath = field.NewPath("spec")

// validateWorkloadSelector checks a workload's selector (required, non-empty,
// well formed) and that it matches the template's labels; it also validates
// the template, whose restartPolicy must be Always and which may not set
// activeDeadlineSeconds. selKind and kind name the resource in the messages,
// as Kubernetes words them ("empty selector is invalid for deployment" is
// also what a ReplicaSet gets).
func validateWorkloadSelector(sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec, selKind, kind string) field.ErrorList {
	var errs field.ErrorList
	selPath := specPath.Child("selector")
	tmplPath := specPath.Child("template")
	if sel == nil {
		errs = append(errs, field.Required(selPath, ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, selPath)...)
		if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
			errs = append(errs, field.Invalid(selPath, sel, "empty selector is invalid for "+selKind))
		}
	}
	if selector, err := metav1.LabelSelectorAsSelector(sel); err != nil {
		if sel != nil {
			errs = append(errs, field.Invalid(selPath, sel, "invalid label selector"))
		}
	} else if !selector.Empty() && !selector.Matches(labels.Set(tmpl.Labels)) {
		errs = append(errs, field.Invalid(tmplPath.Child("metadata", "labels"), tmpl.Labels, "`selector` does not match template `labels`"))
	}
	errs = append(errs, validatePodTemplateSpec(tmpl, tmplPath)...)
	if tmpl.Spec.RestartPolicy != corev1.RestartPolicyAlways && tmpl.Spec.RestartPolicy != "" {
		errs = append(errs, field.NotSupported(tmplPath.Child("spec", "restartPolicy"), tmpl.Spec.RestartPolicy, []corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if tmpl.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(tmplPath.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in "+kind+" is not Supported"))
	}
	return errs
}

func validateDeployment(d, old *appsv1.Deployment) field.ErrorList {
	var om *metav1.ObjectMeta
	if old != nil {
		om = &old.ObjectMeta
	}
	errs := validateObjectMeta(&d.ObjectMeta, om, true, apivalidation.NameIsDNSSubdomain)
	spec := &d.Spec
	errs = append(errs, validateNonnegative32(spec.Replicas, specPath.Child("replicas"))...)
	errs = append(errs, validateWorkloadSelector(spec.Selector, &spec.Template, "deployment", "ReplicaSet")...)

	stPath := specPath.Child("strategy")
	switch spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if spec.Strategy.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(stPath.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if ru := spec.Strategy.RollingUpdate; ru == nil {
			errs = append(errs, field.Required(stPath.Child("rollingUpdate"), "this should be defaulted and never be nil"))
		} else {
			errs = append(errs, validateRollingUpdate(ru.MaxUnavailable, ru.MaxSurge, stPath.Child("rollingUpdate"), "may not be 0 when `maxSurge` is 0")...)
		}
	default:
		errs = append(errs, field.NotSupported(stPath.Child("type"), spec.Strategy.Type,
			[]appsv1.DeploymentStrategyType{appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType}))
	}
	errs = append(errs, validateNonnegative32(spec.RevisionHistoryLimit, specPath.Child("revisionHistoryLimit"))...)
	errs = append(errs, validateNonnegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	if spec.ProgressDeadlineSeconds != nil {
		errs = append(errs, validateNonnegative(int64(*spec.ProgressDeadlineSeconds), specPath.Child("progressDeadlineSeconds"))...)
		if *spec.ProgressDeadlineSeconds <= spec.MinReadySeconds {
			errs = append(errs, field.Invalid(specPath.Child("progressDeadlineSeconds"), *spec.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
		}
	}
	if old != nil {
		errs = append(errs, apivalidation.ValidateImmutableField(spec.Selector, old.Spec.Selector, specPath.Child("selector"))...)
	}
	return errs
}

// validateRollingUpdate checks maxUnavailable/maxSurge of a deployment or
// daemon set: int ≥ 0 or a percentage, not both 0, maxUnavailable ≤ 100%.
func validateRollingUpdate(mu, ms *intstr.IntOrString, fldPath *field.Path, bothZeroMsg string) field.ErrorList {
	var errs field.ErrorList
	if mu != nil {
		errs = append(errs, validatePositiveIntOrPercent(*mu, fldPath.Child("maxUnavailable"))...)
	}
	if ms != nil {
		errs = append(errs, validatePositiveIntOrPercent(*ms, fldPath.Child("maxSurge"))...)
	}
	if intOrPercentValue(mu) == 0 && intOrPercentValue(ms) == 0 {
		var v interface{}
		if mu != nil {
			v = *mu
		}
		errs = append(errs, field.Invalid(fldPath.Child("maxUnavailable"), v, bothZeroMsg))
	}
	errs = append(errs, validateNotMoreThan100Percent(mu, fldPath.Child("maxUnavailable"))...)
	return errs
}

func validateReplicaSet(rs, old *appsv1.ReplicaSet) field.ErrorList {
	var om *metav1.ObjectMeta
	if old != nil {
		om = &old.ObjectMeta
	}
	errs := validateObjectMeta(&rs.ObjectMeta, om, true, apivalidation.NameIsDNSSubdomain)
	errs = append(errs, validateNonnegative32(rs.Spec.Replicas, specPath.Child("replicas"))...)
	errs = append(errs, validateNonnegative(int64(rs.Spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	errs = append(errs, validateWorkloadSelector(rs.Spec.Selector, &rs.Spec.Template, "deployment", "ReplicaSet")...)
	if old != nil {
		errs = append(errs, apivalidation.ValidateImmutableField(rs.Spec.Selector, old.Spec.Selector, specPath.Child("selector"))...)
	}
	return errs
}

func validateDaemonSet(ds, old *appsv1.DaemonSet) field.ErrorList {
	var om *metav1.ObjectMeta
	if old != nil {
		om = &old.ObjectMeta
	}
	errs := validateObjectMeta(&ds.ObjectMeta, om, true, apivalidation.NameIsDNSSubdomain)
	spec := &ds.Spec
	errs = append(errs, validateWorkloadSelector(spec.Selector, &spec.Template, "daemonset", "DaemonSet")...)
	errs = append(errs, validateNonnegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	errs = append(errs, validateNonnegative32(spec.RevisionHistoryLimit, specPath.Child("revisionHistoryLimit"))...)
	usPath := specPath.Child("updateStrategy")
	switch spec.UpdateStrategy.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
	case appsv1.RollingUpdateDaemonSetStrategyType:
		if ru := spec.UpdateStrategy.RollingUpdate; ru == nil {
			errs = append(errs, field.Required(usPath.Child("rollingUpdate"), ""))
		} else {
			errs = append(errs, validateRollingUpdate(ru.MaxUnavailable, ru.MaxSurge, usPath.Child("rollingUpdate"), "cannot be 0 when maxSurge is 0")...)
			errs = append(errs, validateNotMoreThan100Percent(ru.MaxSurge, usPath.Child("rollingUpdate", "maxSurge"))...)
		}
	case "":
		errs = append(errs, field.Required(usPath.Child("type"), ""))
	default:
		errs = append(errs, field.NotSupported(usPath.Child("type"), spec.UpdateStrategy.Type,
			[]appsv1.DaemonSetUpdateStrategyType{appsv1.OnDeleteDaemonSetStrategyType, appsv1.RollingUpdateDaemonSetStrategyType}))
	}
	if old != nil {
		errs = append(errs, apivalidation.ValidateImmutableField(spec.Selector, old.Spec.Selector, specPath.Child("selector"))...)
	}
	return errs
}

func validateStatefulSet(s, old *appsv1.StatefulSet) field.ErrorList {
	var om *metav1.ObjectMeta
	if old != nil {
		om = &old.ObjectMeta
	}
	errs := validateObjectMeta(&s.ObjectMeta, om, true, apivalidation.NameIsDNSSubdomain)
	spec := &s.Spec
	switch spec.PodManagementPolicy {
	case "":
		errs = append(errs, field.Required(specPath.Child("podManagementPolicy"), ""))
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		errs = append(errs, field.Invalid(specPath.Child("podManagementPolicy"), spec.PodManagementPolicy,
			"must be 'OrderedReady' or 'Parallel'"))
	}
	usPath := specPath.Child("updateStrategy")
	switch spec.UpdateStrategy.Type {
	case "":
		errs = append(errs, field.Required(usPath, ""))
	case appsv1.OnDeleteStatefulSetStrategyType:
		if spec.UpdateStrategy.RollingUpdate != nil {
			errs = append(errs, field.Invalid(usPath.Child("rollingUpdate"), spec.UpdateStrategy.RollingUpdate,
				"only allowed for updateStrategy 'RollingUpdate'"))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := spec.UpdateStrategy.RollingUpdate; ru != nil {
			errs = append(errs, validateNonnegative32(ru.Partition, usPath.Child("rollingUpdate", "partition"))...)
			if ru.MaxUnavailable != nil {
				errs = append(errs, validatePositiveIntOrPercent(*ru.MaxUnavailable, usPath.Child("rollingUpdate", "maxUnavailable"))...)
				if intOrPercentValue(ru.MaxUnavailable) == 0 {
					errs = append(errs, field.Invalid(usPath.Child("rollingUpdate", "maxUnavailable"), *ru.MaxUnavailable, "cannot be 0"))
				}
				errs = append(errs, validateNotMoreThan100Percent(ru.MaxUnavailable, usPath.Child("rollingUpdate", "maxUnavailable"))...)
			}
		}
	default:
		errs = append(errs, field.Invalid(usPath, spec.UpdateStrategy, "must be 'RollingUpdate' or 'OnDelete'"))
	}
	if p := spec.PersistentVolumeClaimRetentionPolicy; p != nil {
		pp := specPath.Child("persistentVolumeClaimRetentionPolicy")
		valid := []appsv1.PersistentVolumeClaimRetentionPolicyType{appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
		if !hasValue(valid, p.WhenDeleted) {
			errs = append(errs, field.NotSupported(pp.Child("whenDeleted"), p.WhenDeleted, valid))
		}
		if !hasValue(valid, p.WhenScaled) {
			errs = append(errs, field.NotSupported(pp.Child("whenScaled"), p.WhenScaled, valid))
		}
	}
	errs = append(errs, validateNonnegative32(spec.Replicas, specPath.Child("replicas"))...)
	errs = append(errs, validateNonnegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	errs = append(errs, validateNonnegative32(spec.RevisionHistoryLimit, specPath.Child("revisionHistoryLimit"))...)
	if spec.ServiceName != "" {
		errs = append(errs, validateDNS1123Label(spec.ServiceName, specPath.Child("serviceName"))...)
	}
	if spec.Ordinals != nil {
		errs = append(errs, validateNonnegative(int64(spec.Ordinals.Start), specPath.Child("ordinals", "start"))...)
	}
	// Mounts may name a volumeClaimTemplate; Kubernetes validates the template as the pod
	// will be, with each claim as a volume.
	tmpl := spec.Template.DeepCopy()
	for _, claim := range spec.VolumeClaimTemplates {
		tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{Name: claim.Name,
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim.Name}}})
	}
	errs = append(errs, validateWorkloadSelector(spec.Selector, tmpl, "statefulset", "StatefulSet")...)
	if old != nil {
		clone := s.Spec.DeepCopy()
		clone.Replicas = old.Spec.Replicas
		clone.Template = old.Spec.Template
		clone.UpdateStrategy = old.Spec.UpdateStrategy
		clone.MinReadySeconds = old.Spec.MinReadySeconds
		clone.Ordinals = old.Spec.Ordinals
		clone.RevisionHistoryLimit = old.Spec.RevisionHistoryLimit
		clone.PersistentVolumeClaimRetentionPolicy = old.Spec.PersistentVolumeClaimRetentionPolicy
		if !semanticEqual(*clone, old.Spec) {
			errs = append(errs, field.Forbidden(specPath, "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
		}
	}
	return errs
}

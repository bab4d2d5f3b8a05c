package registry

import (
	"time"

	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// policyResources lists the policy/v1 resources.
func policyResources() []*Resource {
	return []*Resource{
		{
			Group: "policy", Version: "v1", Kind: "PodDisruptionBudget", Resource: "poddisruptionbudgets", Singular: "poddisruptionbudget", ListKind: "PodDisruptionBudgetList",
			Namespaced:   true,
			ShortNames:   []string{"pdb"},
			Verbs:        verbsAll,
			Subresources: []string{"status"},
			New:          func() runtime.Object { return &policyv1.PodDisruptionBudget{} },
			NewList:      func() runtime.Object { return &policyv1.PodDisruptionBudgetList{} },
			Default:      defaulter(defaultPodDisruptionBudget),
			Validate:     validator(validatePodDisruptionBudget),
			Columns:      pdbColumns,
			Row:          rower(pdbRow),
		},
	}
}

// defaultPodDisruptionBudget sets nothing: Kubernetes leaves unhealthyPodEvictionPolicy
// unset (meaning IfHealthyBudget), and in policy/v1 an empty selector selects every pod of
// the namespace.
func defaultPodDisruptionBudget(*policyv1.PodDisruptionBudget) {}

// validatePodDisruptionBudget follows k8s.io/kubernetes pkg/apis/policy/validation.
func validatePodDisruptionBudget(p, old *policyv1.PodDisruptionBudget) field.ErrorList {
	var om *metav1.ObjectMeta
	if old != nil {
		om = &old.ObjectMeta
	}
	errs := validateObjectMeta(&p.ObjectMeta, om, true, apivalidation.NameIsDNSSubdomain)
	if p.Spec.MinAvailable != nil && p.Spec.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(specPath, p.Spec, "minAvailable and maxUnavailable cannot be both set"))
	}
	for name, v := range map[string]*intstr.IntOrString{"minAvailable": p.Spec.MinAvailable, "maxUnavailable": p.Spec.MaxUnavailable} {
		if v == nil {
			continue
		}
		path := specPath.Child(name)
		switch v.Type {
		case intstr.Int:
			if v.IntVal < 0 {
				errs = append(errs, field.Invalid(path, v.IntVal, "must be greater than or equal to 0"))
			}
		case intstr.String:
			pct, err := intstr.GetScaledValueFromIntOrPercent(v, 100, false)
			if err != nil || pct < 0 || pct > 100 {
				errs = append(errs, field.Invalid(path, v.StrVal, "must be a valid percent value between 0 and 100"))
			}
		}
	}
	if p.Spec.Selector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(p.Spec.Selector, metav1validation.LabelSelectorValidationOptions{}, specPath.Child("selector"))...)
	}
	if pol := p.Spec.UnhealthyPodEvictionPolicy; pol != nil && *pol != policyv1.IfHealthyBudget && *pol != policyv1.AlwaysAllow {
		errs = append(errs, field.NotSupported(specPath.Child("unhealthyPodEvictionPolicy"), *pol, []policyv1.UnhealthyPodEvictionPolicyType{policyv1.IfHealthyBudget, policyv1.AlwaysAllow}))
	}
	return errs
}

var pdbColumns = []metav1.TableColumnDefinition{
	nameColumn,
	{Name: "Min Available", Type: "string", Description: policyv1.PodDisruptionBudgetSpec{}.SwaggerDoc()["minAvailable"]},
	{Name: "Max Unavailable", Type: "string", Description: policyv1.PodDisruptionBudgetSpec{}.SwaggerDoc()["maxUnavailable"]},
	{Name: "Allowed Disruptions", Type: "integer", Description: policyv1.PodDisruptionBudgetStatus{}.SwaggerDoc()["disruptionsAllowed"]},
	ageColumn,
}

func pdbRow(p *policyv1.PodDisruptionBudget, now time.Time) []interface{} {
	show := func(v *intstr.IntOrString) string {
		if v == nil {
			return "N/A"
		}
		return v.String()
	}
	return []interface{}{p.Name, show(p.Spec.MinAvailable), show(p.Spec.MaxUnavailable), int64(p.Status.DisruptionsAllowed), translateTimestampSince(p.CreationTimestamp, now)}
}

package registry

import (
	"fmt"
	"path"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Metadata validation shared by every resource, after
// k8s.io/apimachinery/pkg/api/validation.ValidateObjectMeta(Update) and the
// core wrapper that also checks finalizer names.
//
// Two things are left to the API layer on purpose: a namespaced object with
// an empty metadata.namespace is accepted (the API layer fills it from the
// request path, and rejects a namespace on cluster-scoped resources), and an
// update without metadata.resourceVersion is accepted (the API layer decides
// between conditional and unconditional updates).

var metadataPath = field.NewPath("metadata")

// validateObjectMeta validates metadata on create (old == nil) or update.
func validateObjectMeta(m, old *metav1.ObjectMeta, namespaced bool, nameFn apivalidation.ValidateNameFunc) field.ErrorList {
	var errs field.ErrorList
	if old == nil {
		if len(m.Name) == 0 {
			errs = append(errs, field.Required(metadataPath.Child("name"), "name or generateName is required"))
		} else {
			for _, msg := range nameFn(m.Name, false) {
				errs = append(errs, field.Invalid(metadataPath.Child("name"), m.Name, msg))
			}
		}
	} else {
		errs = append(errs, apivalidation.ValidateImmutableField(m.Name, old.Name, metadataPath.Child("name"))...)
		errs = append(errs, apivalidation.ValidateImmutableField(m.Namespace, old.Namespace, metadataPath.Child("namespace"))...)
		if m.UID != "" && old.UID != "" {
			errs = append(errs, apivalidation.ValidateImmutableField(m.UID, old.UID, metadataPath.Child("uid"))...)
		}
		if m.Generation < old.Generation {
			errs = append(errs, field.Invalid(metadataPath.Child("generation"), m.Generation, "must not be decremented"))
		}
		if old.DeletionTimestamp != nil {
			errs = append(errs, apivalidation.ValidateNoNewFinalizers(m.Finalizers, old.Finalizers, metadataPath.Child("finalizers"))...)
		}
	}
	if namespaced {
		if m.Namespace != "" {
			for _, msg := range apivalidation.ValidateNamespaceName(m.Namespace, false) {
				errs = append(errs, field.Invalid(metadataPath.Child("namespace"), m.Namespace, msg))
			}
		}
	} else if m.Namespace != "" {
		errs = append(errs, field.Forbidden(metadataPath.Child("namespace"), "not allowed on this type"))
	}
	errs = append(errs, apivalidation.ValidateNonnegativeField(m.Generation, metadataPath.Child("generation"))...)
	errs = append(errs, metav1validation.ValidateLabels(m.Labels, metadataPath.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(m.Annotations, metadataPath.Child("annotations"))...)
	errs = append(errs, apivalidation.ValidateOwnerReferences(m.OwnerReferences, metadataPath.Child("ownerReferences"))...)
	errs = append(errs, apivalidation.ValidateFinalizers(m.Finalizers, metadataPath.Child("finalizers"))...)
	for _, f := range m.Finalizers {
		errs = append(errs, validateKubeFinalizerName(f, metadataPath.Child("finalizers"))...)
	}
	return errs
}

var standardFinalizers = map[string]bool{
	string(corev1.FinalizerKubernetes): true,
	metav1.FinalizerOrphanDependents:   true,
	metav1.FinalizerDeleteDependents:   true,
}

func validateKubeFinalizerName(name string, fldPath *field.Path) field.ErrorList {
	if !strings.Contains(name, "/") && !standardFinalizers[name] {
		return field.ErrorList{field.Invalid(fldPath, name, "name is neither a standard finalizer name nor is it fully qualified")}
	}
	return nil
}

// validateDNS1123Label / Subdomain mirror the core validation helpers.
func validateDNS1123Label(value string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(value) {
		errs = append(errs, field.Invalid(fldPath, value, msg))
	}
	return errs
}

func validateDNS1123Subdomain(value string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(value) {
		errs = append(errs, field.Invalid(fldPath, value, msg))
	}
	return errs
}

func validateQualifiedName(value string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(value) {
		errs = append(errs, field.Invalid(fldPath, value, msg))
	}
	return errs
}

func validateNonnegative(value int64, fldPath *field.Path) field.ErrorList {
	return apivalidation.ValidateNonnegativeField(value, fldPath)
}

func validateNonnegative32(value *int32, fldPath *field.Path) field.ErrorList {
	if value == nil {
		return nil
	}
	return apivalidation.ValidateNonnegativeField(int64(*value), fldPath)
}

// validatePortNumOrName checks an int-or-string port (targetPort, probe port).
func validatePortNumOrName(port intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch port.Type {
	case intstr.Int:
		for _, msg := range validation.IsValidPortNum(port.IntValue()) {
			errs = append(errs, field.Invalid(fldPath, port.IntValue(), msg))
		}
	case intstr.String:
		for _, msg := range validation.IsValidPortName(port.StrVal) {
			errs = append(errs, field.Invalid(fldPath, port.StrVal, msg))
		}
	default:
		errs = append(errs, field.InternalError(fldPath, fmt.Errorf("unknown type: %v", port.Type)))
	}
	return errs
}

// validatePositiveIntOrPercent: an integer ≥ 0 or a percentage string.
func validatePositiveIntOrPercent(v intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch v.Type {
	case intstr.String:
		for _, msg := range validation.IsValidPercent(v.StrVal) {
			errs = append(errs, field.Invalid(fldPath, v, msg))
		}
	case intstr.Int:
		errs = append(errs, validateNonnegative(int64(v.IntValue()), fldPath)...)
	default:
		errs = append(errs, field.Invalid(fldPath, v, "must be an integer or percentage (e.g '5%')"))
	}
	return errs
}

// intOrPercentValue returns the integer value or the percentage number.
func intOrPercentValue(v *intstr.IntOrString) int {
	if v == nil {
		return 0
	}
	if v.Type == intstr.Int {
		return v.IntValue()
	}
	var n int
	if _, err := fmt.Sscanf(strings.TrimSuffix(v.StrVal, "%"), "%d", &n); err != nil {
		return -1
	}
	return n
}

func isPercent(v *intstr.IntOrString) bool {
	return v != nil && v.Type == intstr.String && strings.HasSuffix(v.StrVal, "%")
}

func validateNotMoreThan100Percent(v *intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if isPercent(v) && intOrPercentValue(v) > 100 {
		return field.ErrorList{field.Invalid(fldPath, *v, "must not be greater than 100%")}
	}
	return nil
}

// validateLocalDescendingPath: relative and without "..".
func validateLocalDescendingPath(p string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if path.IsAbs(p) {
		errs = append(errs, field.Invalid(fldPath, p, "must be a relative path"))
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			errs = append(errs, field.Invalid(fldPath, p, "must not contain '..'"))
			break
		}
	}
	return errs
}

// semanticEqual compares API values the way Kubernetes does (quantities by
// value, times by instant).
func semanticEqual(a, b interface{}) bool { return apiequality.Semantic.DeepEqual(a, b) }

// sortedKeys returns a map's keys in order, for deterministic error lists.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validatePortProtocol checks a port's protocol is set and supported.
func validatePortProtocol(proto corev1.Protocol, fldPath *field.Path) field.ErrorList {
	switch {
	case proto == "":
		return field.ErrorList{field.Required(fldPath, "")}
	case !hasValue(supportedPortProtocols, proto):
		return field.ErrorList{field.NotSupported(fldPath, proto, supportedPortProtocols)}
	}
	return nil
}

// validatePortNumber checks n is a valid port (1-65535).
func validatePortNumber(n int32, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsValidPortNum(int(n)) {
		errs = append(errs, field.Invalid(fldPath, n, msg))
	}
	return errs
}

// validatePortName checks a port name (required when the object has several ports) is a
// DNS-1123 label not used by another port of the same object (names records the ones seen).
func validatePortName(name string, required bool, names map[string]bool, fldPath *field.Path) field.ErrorList {
	if name == "" {
		if required {
			return field.ErrorList{field.Required(fldPath, "")}
		}
		return nil
	}
	errs := validateDNS1123Label(name, fldPath)
	if names[name] {
		errs = append(errs, field.Duplicate(fldPath, name))
	}
	names[name] = true
	return errs
}

package api

import (
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// writeOptionsKind names the options object of a write verb, as kube-apiserver's errors
// about its query parameters do.
var writeOptionsKind = map[string]string{
	http.MethodPost:   "CreateOptions",
	http.MethodPut:    "UpdateOptions",
	http.MethodPatch:  "PatchOptions",
	http.MethodDelete: "DeleteOptions",
}

// validateWriteOptions refuses a write whose dryRun or fieldValidation query parameter has
// a value Kubernetes does not define, with kube's 422 Invalid: a misspelt dryRun=all must
// not be taken for a real write, nor fieldValidation=strict for Warn.
func validateWriteOptions(c echo.Context) error {
	kind, ok := writeOptionsKind[c.Request().Method]
	if !ok {
		return nil
	}
	var errs field.ErrorList
	errs = append(errs, validateDryRun(field.NewPath("dryRun"), c.QueryParams()["dryRun"])...)
	if v := c.QueryParam("fieldValidation"); v != "" {
		allowed := []string{metav1.FieldValidationIgnore, metav1.FieldValidationWarn, metav1.FieldValidationStrict}
		if !slices.Contains(allowed, v) {
			errs = append(errs, field.NotSupported(field.NewPath("fieldValidation"), v, allowed))
		}
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: kind}, "", errs)
	}
	return nil
}

// validateDryRun accepts only "All", the one dry-run mode Kubernetes defines.
func validateDryRun(path *field.Path, values []string) field.ErrorList {
	var errs field.ErrorList
	for i, v := range values {
		if v != metav1.DryRunAll {
			errs = append(errs, field.NotSupported(path.Index(i), v, []string{metav1.DryRunAll}))
		}
	}
	return errs
}

// isDryRun reports whether a delete is a dry run: client-go and kubectl drain put dryRun in
// the DeleteOptions body, others in the query.
func isDryRun(c echo.Context, opts *metav1.DeleteOptions) bool {
	return dryRun(c) || opts != nil && slices.Contains(opts.DryRun, metav1.DryRunAll)
}

// validateListOptions checks resourceVersionMatch as kube-apiserver's ValidateListOptions
// does: NotOlderThan and Exact need a resourceVersion, Exact not "0", a watch takes none.
func validateListOptions(c echo.Context, watch bool) error {
	match := c.QueryParam("resourceVersionMatch")
	if match == "" {
		return nil
	}
	path := field.NewPath("resourceVersionMatch")
	var errs field.ErrorList
	switch {
	case watch:
		errs = append(errs, field.Forbidden(path, "resourceVersionMatch is forbidden for watch"))
	case match != string(metav1.ResourceVersionMatchNotOlderThan) && match != string(metav1.ResourceVersionMatchExact):
		errs = append(errs, field.NotSupported(path, match, []string{string(metav1.ResourceVersionMatchExact), string(metav1.ResourceVersionMatchNotOlderThan), ""}))
	case c.QueryParam("resourceVersion") == "":
		errs = append(errs, field.Forbidden(path, "resourceVersionMatch is forbidden unless resourceVersion is provided"))
	case match == string(metav1.ResourceVersionMatchExact) && c.QueryParam("resourceVersion") == "0":
		errs = append(errs, field.Forbidden(path, `resourceVersionMatch "Exact" is forbidden for resourceVersion "0"`))
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", errs)
	}
	return nil
}

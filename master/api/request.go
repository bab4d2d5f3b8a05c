package api

import (
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"skiff/master/registry"
)

// requestInfo is what a resource URL names.
type requestInfo struct {
	Group, Version string
	Resource       *registry.Resource
	Namespace      string
	Name           string
	Subresource    string
	// Watch is set by ?watch=true or the legacy /watch/ prefix.
	Watch bool
}

// parsePath resolves /api/v1/... and /apis/<group>/<version>/... into a requestInfo.
// It returns ok=false for discovery paths (no resource named).
func parsePath(path string) (info requestInfo, ok bool, err error) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		info.Version, parts = parts[1], parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		info.Group, info.Version, parts = parts[1], parts[2], parts[3:]
	default:
		return info, false, nil
	}
	if len(parts) > 0 && parts[0] == "watch" {
		info.Watch, parts = true, parts[1:]
	}
	if len(parts) == 0 {
		return info, false, nil
	}
	resource := parts[0]
	rest := parts[1:]
	if resource == "namespaces" && len(parts) >= 3 && registry.Lookup(info.Group, info.Version, parts[2]) != nil {
		info.Namespace, resource, rest = parts[1], parts[2], parts[3:]
	}
	info.Resource = registry.Lookup(info.Group, info.Version, resource)
	if info.Resource == nil {
		return info, true, apierrors.NewNotFound(groupResource(info.Group, resource), "")
	}
	if len(rest) > 0 {
		info.Name = rest[0]
	}
	if len(rest) > 1 {
		info.Subresource = rest[1]
	}
	if len(rest) > 2 {
		return info, true, apierrors.NewNotFound(grOf(info.Resource), strings.Join(rest, "/"))
	}
	if info.Resource.Namespaced && info.Namespace == "" && info.Name != "" {
		if resource != "namespaces" {
			return info, true, apierrors.NewNotFound(grOf(info.Resource), info.Name)
		}
	}
	if !info.Resource.Namespaced && info.Namespace != "" {
		return info, true, apierrors.NewNotFound(grOf(info.Resource), info.Name)
	}
	if info.Subresource != "" && !hasSubresource(info.Resource, info.Subresource) &&
		!(info.Resource.Resource == "pods" && podProxySubresources[info.Subresource]) {
		return info, true, apierrors.NewNotFound(grOf(info.Resource), info.Name+"/"+info.Subresource)
	}
	return info, true, nil
}

func hasSubresource(r *registry.Resource, sub string) bool {
	for _, s := range r.Subresources {
		if s == sub {
			return true
		}
	}
	return false
}

// verb names the Kubernetes verb of a request, for errors and audit.
func verb(method string, info requestInfo) string {
	switch method {
	case http.MethodGet:
		if info.Watch {
			return "watch"
		}
		if info.Name == "" {
			return "list"
		}
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		if info.Name == "" {
			return "deletecollection"
		}
		return "delete"
	}
	return strings.ToLower(method)
}

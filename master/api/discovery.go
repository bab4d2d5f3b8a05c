package api

import (
	"context"
	"encoding/json"
	"sync"

	"crypto/sha256"
	"encoding/hex"
	"fmt"
	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
	"skiff/master/registry"
)

// KubernetesVersion is the Kubernetes API version skiff serves; kubectl compares it with
// its own to warn about skew.
const KubernetesVersion = "v1.32.0"

func contextWithTimeout(c echo.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request().Context(), d)
}

func (s *Server) version(c echo.Context) error {
	return c.JSON(http.StatusOK, version.Info{
		Major: "1", Minor: "32", GitVersion: KubernetesVersion + "+skiff",
		GoVersion: runtime.Version(), Compiler: runtime.Compiler,
		Platform: runtime.GOOS + "/" + runtime.GOARCH, BuildDate: "1970-01-01T00:00:00Z",
	})
}

func (s *Server) apiVersions(c echo.Context) error {
	return c.JSON(http.StatusOK, &metav1.APIVersions{
		TypeMeta:                   metav1.TypeMeta{Kind: "APIVersions"},
		Versions:                   []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: s.advertise}},
	})
}

// groups lists the non-core API groups in a stable order.
func groups() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range registry.All() {
		if r.Group != "" && !seen[r.Group] {
			seen[r.Group] = true
			out = append(out, r.Group)
		}
	}
	sort.Strings(out)
	return out
}

func apiGroup(group string) metav1.APIGroup {
	var versions []metav1.GroupVersionForDiscovery
	seen := map[string]bool{}
	for _, r := range registry.All() {
		if r.Group == group && !seen[r.Version] {
			seen[r.Version] = true
			versions = append(versions, metav1.GroupVersionForDiscovery{GroupVersion: group + "/" + r.Version, Version: r.Version})
		}
	}
	return metav1.APIGroup{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
		Name:     group, Versions: versions, PreferredVersion: versions[0],
	}
}

func (s *Server) apiGroups(c echo.Context) error {
	list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, g := range groups() {
		list.Groups = append(list.Groups, apiGroup(g))
	}
	return c.JSON(http.StatusOK, list)
}

// discovery answers /api/v1, /apis/<group> and /apis/<group>/<version>.
func (s *Server) discovery(c echo.Context, info requestInfo) error {
	path := strings.Trim(c.Request().URL.Path, "/")
	if strings.HasPrefix(path, "apis/") && strings.Count(path, "/") == 1 {
		group := strings.TrimPrefix(path, "apis/")
		for _, g := range groups() {
			if g == group {
				return c.JSON(http.StatusOK, apiGroup(g))
			}
		}
		return writeStatus(c, apierrors.NewNotFound(groupResource(group, ""), ""))
	}
	list := resourceList(info.Group, info.Version)
	if list == nil {
		return writeStatus(c, apierrors.NewNotFound(groupResource(info.Group, ""), info.Version))
	}
	return c.JSON(http.StatusOK, list)
}

func resourceList(group, ver string) *metav1.APIResourceList {
	gv := ver
	if group != "" {
		gv = group + "/" + ver
	}
	list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv}
	for _, r := range registry.All() {
		if r.Group != group || r.Version != ver {
			continue
		}
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: r.Resource, SingularName: r.Singular, Namespaced: r.Namespaced, Kind: r.Kind,
			Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
			StorageVersionHash: storageVersionHash(r),
		})
		for _, sub := range r.Subresources {
			ar := metav1.APIResource{Name: r.Resource + "/" + sub, Namespaced: r.Namespaced, Kind: r.Kind, Verbs: []string{"get", "patch", "update"}}
			switch sub {
			case "scale":
				ar.Group, ar.Version, ar.Kind = "autoscaling", "v1", "Scale"
			case "eviction":
				ar.Group, ar.Version, ar.Kind, ar.Verbs = "policy", "v1", "Eviction", []string{"create"}
			}
			list.APIResources = append(list.APIResources, ar)
		}
	}
	if len(list.APIResources) == 0 {
		return nil
	}
	return list
}

func storageVersionHash(r *registry.Resource) string {
	sum := sha256.Sum256([]byte(r.Group + "/" + r.Version + "/" + r.Kind))
	return hex.EncodeToString(sum[:])[:11]
}

// openAPIRoot lists one OpenAPI v3 document per group version. kubectl reads them to learn
// that the server validates fields itself (the fieldValidation parameter on PATCH), and then
// sends fieldValidation=Strict instead of validating on the client.
func (s *Server) openAPIRoot(c echo.Context) error {
	paths := map[string]any{}
	for _, gv := range groupVersions() {
		paths[gv] = map[string]string{"serverRelativeURL": "/openapi/v3/" + gv + "?hash=" + hashOf(gv)}
	}
	return c.JSON(http.StatusOK, map[string]any{"paths": paths})
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s + KubernetesVersion))
	return strings.ToUpper(hex.EncodeToString(sum[:16]))
}

func groupVersions() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range registry.All() {
		gv := "api/" + r.Version
		if r.Group != "" {
			gv = "apis/" + r.Group + "/" + r.Version
		}
		if !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	return out
}

// openAPIV2 serves a Swagger 2.0 document with the same PATCH operations as the v3
// documents, in protobuf for the kubectl versions (≤ 1.27) that read v2 to decide whether
// the server validates fields, or in JSON when asked.
func (s *Server) openAPIV2(c echo.Context) error {
	v2Once.Do(buildOpenAPIV2)
	if v2Err != nil {
		return writeStatus(c, v2Err)
	}
	if strings.Contains(c.Request().Header.Get("Accept"), "protobuf") {
		return c.Blob(http.StatusOK, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", v2Proto)
	}
	return c.Blob(http.StatusOK, "application/json", v2JSON)
}

var (
	v2Once          sync.Once
	v2JSON, v2Proto []byte
	v2Err           error
)

func buildOpenAPIV2() {
	paths := map[string]any{}
	for _, r := range registry.All() {
		gv := "/api/" + r.Version
		if r.Group != "" {
			gv = "/apis/" + r.Group + "/" + r.Version
		}
		if r.Namespaced {
			gv += "/namespaces/{namespace}"
		}
		var params []map[string]any
		for _, p := range []string{"dryRun", "fieldManager", "fieldValidation", "force"} {
			params = append(params, map[string]any{"name": p, "in": "query", "type": "string", "uniqueItems": true})
		}
		paths[fmt.Sprintf("%s/%s/{name}", gv, r.Resource)] = map[string]any{"patch": map[string]any{
			"operationId":                     "patch" + r.Kind,
			"parameters":                      params,
			"responses":                       map[string]any{"200": map[string]string{"description": "OK"}},
			"x-kubernetes-action":             "patch",
			"x-kubernetes-group-version-kind": map[string]string{"group": r.Group, "version": r.Version, "kind": r.Kind},
		}}
	}
	doc := map[string]any{
		"swagger":     "2.0",
		"info":        map[string]string{"title": "Kubernetes", "version": KubernetesVersion},
		"paths":       paths,
		"definitions": map[string]any{},
	}
	if v2JSON, v2Err = json.Marshal(doc); v2Err != nil {
		return
	}
	parsed, err := openapiv2.ParseDocument(v2JSON)
	if err != nil {
		v2Err = fmt.Errorf("building the OpenAPI v2 document: %w", err)
		return
	}
	v2Proto, v2Err = proto.Marshal(parsed)
}

func (s *Server) openAPIGroupVersion(c echo.Context) error {
	gv := strings.Trim(strings.TrimPrefix(c.Request().URL.Path, "/openapi/v3/"), "/")
	var group, ver string
	switch parts := strings.Split(gv, "/"); {
	case len(parts) == 2 && parts[0] == "api":
		ver = parts[1]
	case len(parts) == 3 && parts[0] == "apis":
		group, ver = parts[1], parts[2]
	default:
		return writeStatus(c, apierrors.NewNotFound(groupResource("", "openapi"), gv))
	}
	paths := map[string]any{}
	for _, r := range registry.All() {
		if r.Group != group || r.Version != ver {
			continue
		}
		gvk := map[string]string{"group": r.Group, "version": r.Version, "kind": r.Kind}
		params := []map[string]any{}
		for _, p := range []string{"dryRun", "fieldManager", "fieldValidation", "force"} {
			params = append(params, map[string]any{"name": p, "in": "query", "schema": map[string]string{"type": "string"}})
		}
		op := map[string]any{
			"x-kubernetes-group-version-kind": gvk,
			"x-kubernetes-action":             "patch",
			"parameters":                      params,
			"responses":                       map[string]any{"200": map[string]string{"description": "OK"}},
		}
		prefix := "/" + gv
		if r.Namespaced {
			prefix += "/namespaces/{namespace}"
		}
		paths[fmt.Sprintf("%s/%s/{name}", prefix, r.Resource)] = map[string]any{"patch": op}
	}
	if len(paths) == 0 {
		return writeStatus(c, apierrors.NewNotFound(groupResource("", "openapi"), gv))
	}
	return c.JSON(http.StatusOK, map[string]any{
		"openapi":    "3.0.0",
		"info":       map[string]string{"title": "Kubernetes", "version": KubernetesVersion},
		"paths":      paths,
		"components": map[string]any{"schemas": map[string]any{}},
	})
}

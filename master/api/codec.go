package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
	"skiff/master/registry"
)

// protobufCodec decodes the protobuf envelope Kubernetes clients send.
var protobufCodec = protobuf.NewSerializer(registry.Scheme(), registry.Scheme())

// MaxBodyBytes bounds a request body, as the Kubernetes API server does (3 MiB).
const MaxBodyBytes = 3 << 20

func groupResource(group, resource string) schema.GroupResource {
	return schema.GroupResource{Group: group, Resource: resource}
}

func grOf(r *registry.Resource) schema.GroupResource { return groupResource(r.Group, r.Resource) }

func gkOf(r *registry.Resource) schema.GroupKind {
	return schema.GroupKind{Group: r.Group, Kind: r.Kind}
}

// readBody reads the request body up to MaxBodyBytes; larger bodies are a 413.
func readBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, MaxBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest("reading request body: " + err.Error())
	}
	if len(body) > MaxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d bytes", MaxBodyBytes))
	}
	return body, nil
}

// toJSON converts a YAML body to JSON; JSON passes through.
func toJSON(c echo.Context, body []byte) ([]byte, error) {
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
	if ct == "application/yaml" || ct == "application/x-yaml" || ct == "text/yaml" {
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, apierrors.NewBadRequest("the body is not valid YAML: " + err.Error())
		}
		return j, nil
	}
	if ct == "application/vnd.kubernetes.protobuf" {
		// kubectl and client-go send built-in types as protobuf; everything downstream
		// works on JSON, so convert once here.
		obj, _, err := protobufCodec.Decode(body, nil, nil)
		if err != nil {
			return nil, apierrors.NewBadRequest("the body is not a valid Kubernetes protobuf object: " + err.Error())
		}
		j, err := json.Marshal(obj)
		if err != nil {
			return nil, apierrors.NewBadRequest("converting protobuf body: " + err.Error())
		}
		return j, nil
	}
	switch ct {
	case "", "application/json", "*/*",
		// A patched object is decoded under its PATCH request's content type.
		"application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json":
		return body, nil
	}
	return nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason:  metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got %q)", ct)}}
}

// decodeObject decodes body into a new object of r, checking that the body names the kind
// and version of the URL. With strict set (fieldValidation=Strict), unknown and duplicate
// fields are errors; otherwise they are dropped, as Kubernetes does.
func decodeObject(c echo.Context, r *registry.Resource, body []byte) (runtime.Object, error) {
	j, err := toJSON(c, body)
	if err != nil {
		return nil, err
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, apierrors.NewBadRequest("the body is not a valid JSON object: " + err.Error())
	}
	gvk := r.GroupVersionKind()
	if tm.Kind != "" && tm.Kind != gvk.Kind || tm.APIVersion != "" && tm.APIVersion != gvk.GroupVersion().String() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) or kind (%s) does not match the expected %s %s",
			tm.APIVersion, tm.Kind, gvk.GroupVersion(), gvk.Kind))
	}
	obj := r.New()
	strict := fieldValidation(c)
	strictErrs, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("decoding %s: %v", gvk.Kind, err))
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, 0, len(strictErrs))
		for _, e := range strictErrs {
			msgs = append(msgs, e.Error())
		}
		switch strict {
		case "Strict":
			return nil, apierrors.NewBadRequest(fmt.Sprintf("strict decoding error: %s", strings.Join(msgs, ", ")))
		case "Warn":
			for _, m := range msgs {
				if h, err := utilnet.NewWarningHeader(299, "-", m); err == nil {
					c.Response().Header().Add("Warning", h)
				}
			}
		}
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj, nil
}

// fieldValidation is the request's fieldValidation mode: Strict, Warn or Ignore. Kubernetes
// defaults to Warn for JSON bodies.
func fieldValidation(c echo.Context) string {
	switch v := c.QueryParam("fieldValidation"); v {
	case "Strict", "Warn", "Ignore":
		return v
	}
	return "Warn"
}

// wantsYAML reports whether the client asked for YAML rather than JSON.
func wantsYAML(c echo.Context) bool {
	for _, part := range strings.Split(c.Request().Header.Get("Accept"), ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		switch mt {
		case "application/json", "*/*", "application/*":
			return false
		case "application/yaml":
			return true
		}
	}
	return false
}

// writeObject answers with obj as JSON (or YAML if asked).
func writeObject(c echo.Context, code int, obj any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return writeStatus(c, err)
	}
	if wantsYAML(c) {
		y, err := yaml.JSONToYAML(b)
		if err == nil {
			return c.Blob(code, "application/yaml", y)
		}
	}
	return c.Blob(code, "application/json", b)
}

// writeRaw answers with already-encoded JSON.
func writeRaw(c echo.Context, code int, b []byte) error {
	if wantsYAML(c) {
		if y, err := yaml.JSONToYAML(b); err == nil {
			return c.Blob(code, "application/yaml", y)
		}
	}
	return c.Blob(code, "application/json", b)
}

// compact removes insignificant whitespace, for byte comparisons of encoded specs.
func compact(b []byte) []byte {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return b
	}
	return out.Bytes()
}

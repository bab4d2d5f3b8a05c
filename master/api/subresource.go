package api

import (
	"encoding/json"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"mime"
	"net/http"
	"skiff/master/objects"

	"github.com/labstack/echo/v4"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kjson "sigs.k8s.io/json"
)

// statusSubresource serves <resource>/<name>/status: reads return the whole object; writes
// change only its status.
func (s *Server) statusSubresource(c echo.Context, info requestInfo) error {
	switch c.Request().Method {
	case http.MethodGet:
		return s.get(c, info)
	case http.MethodPut:
		return s.update(c, info)
	case http.MethodPatch:
		return s.patch(c, info)
	}
	return writeStatus(c, apierrors.NewMethodNotSupported(grOf(info.Resource), c.Request().Method))
}

// scaleSubresource serves <resource>/<name>/scale as an autoscaling/v1 Scale.
func (s *Server) scaleSubresource(c echo.Context, info requestInfo) error {
	r := info.Resource
	_, obj, err := s.current(c, info)
	if err != nil {
		return writeStatus(c, err)
	}
	toScale := func() *autoscalingv1.Scale {
		acc := objects.Accessor(obj)
		replicas, current, selector := r.GetScale(obj)
		return &autoscalingv1.Scale{
			TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
			ObjectMeta: metav1.ObjectMeta{Name: acc.GetName(), Namespace: acc.GetNamespace(), UID: acc.GetUID(),
				ResourceVersion: acc.GetResourceVersion(), CreationTimestamp: acc.GetCreationTimestamp()},
			Spec:   autoscalingv1.ScaleSpec{Replicas: replicas},
			Status: autoscalingv1.ScaleStatus{Replicas: current, Selector: selector},
		}
	}
	var want *autoscalingv1.Scale
	conditionalPatch := false
	switch c.Request().Method {
	case http.MethodGet:
		return writeObject(c, http.StatusOK, toScale())
	case http.MethodPut:
		body, err := readBody(c)
		if err != nil {
			return writeStatus(c, err)
		}
		j, err := toJSON(c, body)
		if err != nil {
			return writeStatus(c, err)
		}
		want = &autoscalingv1.Scale{}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(j, want); err != nil {
			return writeStatus(c, apierrors.NewBadRequest("decoding Scale: "+err.Error()))
		}
	case http.MethodPatch:
		body, err := readBody(c)
		if err != nil {
			return writeStatus(c, err)
		}
		conditionalPatch = patchSetsResourceVersion(body)
		cur, _ := json.Marshal(toScale())
		pt, _, _ := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
		patched, err := applyPatch(types.PatchType(pt), cur, body, &autoscalingv1.Scale{})
		if err != nil {
			return writeStatus(c, err)
		}
		want = &autoscalingv1.Scale{}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(patched, want); err != nil {
			return writeStatus(c, apierrors.NewBadRequest("decoding Scale: "+err.Error()))
		}
	default:
		return writeStatus(c, apierrors.NewMethodNotSupported(grOf(r), c.Request().Method))
	}
	if want.Spec.Replicas < 0 {
		return writeStatus(c, apierrors.NewInvalid(schema.GroupKind{Group: "autoscaling", Kind: "Scale"}, info.Name,
			field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0")}))
	}
	// Only a resourceVersion the client sent makes the write conditional; otherwise a
	// conflict with a concurrent writer is retried on the latest object, as kube-apiserver
	// does, rather than returned as 409.
	clientRV := want.ResourceVersion
	if c.Request().Method == http.MethodPatch && !conditionalPatch {
		clientRV = ""
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if _, obj, err = s.current(c, info); err != nil {
				return writeStatus(c, err)
			}
		}
		if clientRV != "" {
			objects.Accessor(obj).SetResourceVersion(clientRV)
		}
		r.SetScale(obj, want.Spec.Replicas)
		out, err := s.replace(c, info, obj, false)
		if apierrors.IsConflict(err) && clientRV == "" && attempt < maxPatchRetries {
			continue
		}
		if err != nil {
			return writeStatus(c, err)
		}
		obj = out
		return writeObject(c, http.StatusOK, toScale())
	}
}

// patchSetsResourceVersion reports whether a PATCH body names metadata.resourceVersion (a
// precondition): a merge or strategic merge patch as a field, a JSON patch as a path.
func patchSetsResourceVersion(body []byte) bool {
	var asObject struct {
		Metadata struct {
			ResourceVersion *string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if json.Unmarshal(body, &asObject) == nil {
		return asObject.Metadata.ResourceVersion != nil
	}
	var asOps []struct {
		Path string `json:"path"`
	}
	if json.Unmarshal(body, &asOps) == nil {
		for _, op := range asOps {
			if op.Path == "/metadata/resourceVersion" {
				return true
			}
		}
	}
	return false
}

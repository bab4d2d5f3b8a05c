package api

import (
	"encoding/json"
	"errors"
	"fmt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"mime"
	"net/http"
	"skiff/master/objects"

	"github.com/labstack/echo/v4"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// maxPatchRetries bounds how often a patch without a resourceVersion is re-applied when a
// concurrent write wins, as the Kubernetes API server does.
const maxPatchRetries = 5

func (s *Server) patch(c echo.Context, info requestInfo) error {
	obj, err := s.patchObject(c, info, info.Subresource == "status")
	if err != nil {
		return writeStatus(c, err)
	}
	return writeObject(c, http.StatusOK, obj)
}

// patchObject applies the request's patch to the current object and stores the result.
// A patch that names no resourceVersion is retried on conflict against the newer object.
func (s *Server) patchObject(c echo.Context, info requestInfo, status bool) (runtime.Object, error) {
	r := info.Resource
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	pt, _, _ := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
	switch types.PatchType(pt) {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
	case types.ApplyYAMLPatchType, types.ApplyCBORPatchType:
		return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", grOf(r), info.Name,
			"server-side apply is not supported by skiff yet; use client-side kubectl apply", 0, false)
	default:
		return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", grOf(r), info.Name,
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s",
				types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType), 0, false)
	}
	for attempt := 0; ; attempt++ {
		st, err := s.readState(c)
		if err != nil {
			return nil, err
		}
		cur, err := s.getFrom(st, info)
		if err != nil {
			return nil, err
		}
		curJSON, err := json.Marshal(cur)
		if err != nil {
			return nil, err
		}
		patched, err := applyPatch(types.PatchType(pt), curJSON, body, r.New())
		if err != nil {
			return nil, err
		}
		obj, err := decodeObject(c, r, patched)
		if err != nil {
			return nil, err
		}
		acc := objects.Accessor(obj)
		pinned := acc.GetResourceVersion() != objects.Accessor(cur).GetResourceVersion()
		if !pinned {
			acc.SetResourceVersion(objects.Accessor(cur).GetResourceVersion())
		}
		out, err := s.replace(c, info, obj, status)
		if apierrors.IsConflict(err) && !pinned && attempt < maxPatchRetries {
			continue
		}
		return out, err
	}
}

// applyPatch applies a patch of type pt to the JSON document cur. dataStruct is the Go type
// strategic merge patches take their merge keys from.
func applyPatch(pt types.PatchType, cur, patch []byte, dataStruct any) ([]byte, error) {
	// As kube-apiserver: a patch document that does not parse is 400 Bad Request; a JSON
	// patch that parses but cannot be applied (a failed test, a missing path) is 422.
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, apierrors.NewBadRequest("invalid JSON patch: " + err.Error())
		}
		out, err := p.Apply(cur)
		if err != nil {
			var jerr *json.SyntaxError
			if errors.As(err, &jerr) {
				return nil, apierrors.NewBadRequest("invalid JSON patch: " + err.Error())
			}
			return nil, apierrors.NewInvalid(schema.GroupKind{}, "", field.ErrorList{
				field.Invalid(field.NewPath("patch"), string(patch), "the patch could not be applied: "+err.Error())})
		}
		return out, nil
	case types.MergePatchType:
		out, err := jsonpatch.MergePatch(cur, patch)
		if err != nil {
			return nil, apierrors.NewBadRequest("invalid JSON merge patch: " + err.Error())
		}
		return out, nil
	case types.StrategicMergePatchType:
		out, err := strategicpatch.StrategicMergePatch(cur, patch, dataStruct)
		if err != nil {
			return nil, apierrors.NewBadRequest("invalid strategic merge patch: " + err.Error())
		}
		return out, nil
	}
	return nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason:  metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the patch content type %q is not supported (use application/json-patch+json, application/merge-patch+json or application/strategic-merge-patch+json)", pt)}}
}

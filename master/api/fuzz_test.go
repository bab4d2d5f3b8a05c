package api

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"skiff/master/registry"
)

// FuzzDecodeObject feeds arbitrary bodies of every content type to the request decoder:
// it must return an object or an error, never panic.
func FuzzDecodeObject(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}`), uint8(0))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), uint8(1))
	f.Add([]byte("k8s\x00\x0a\x0b"), uint8(2))
	f.Add([]byte(`{"metadata":{"name":"x","name":"y"}}`), uint8(3))
	types := []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "application/json"}
	resources := registry.All()
	e := echo.New()
	f.Fuzz(func(t *testing.T, body []byte, sel uint8) {
		req := httptest.NewRequest("POST", "/api/v1/namespaces/default/x?fieldValidation=Strict", strings.NewReader(""))
		req.Header.Set("Content-Type", types[int(sel)%len(types)])
		c := e.NewContext(req, httptest.NewRecorder())
		r := resources[int(sel)%len(resources)]
		obj, err := decodeObject(c, r, body)
		if err == nil && obj == nil {
			t.Fatal("no object and no error")
		}
		if err == nil && r.Validate != nil {
			r.Default(obj)
			_ = r.Validate(obj, nil)
		}
	})
}

// FuzzParsePath resolves arbitrary URL paths without panicking.
func FuzzParsePath(f *testing.F) {
	for _, p := range []string{"/api/v1/namespaces/default/pods/x/status", "/apis/apps/v1/deployments", "/api/v1/watch/namespaces/a/configmaps", "/apis", "/api/v1/namespaces/x"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, path string) {
		info, isResource, err := parsePath(path)
		if isResource && err == nil && info.Resource == nil {
			t.Fatalf("%q: a resource request without a resource", path)
		}
	})
}

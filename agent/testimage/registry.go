package testimage

import (
	"net/http"
	"strconv"
	"strings"
)

// Registry serves images over the OCI distribution API (pull only: manifests and blobs), in
// process and without TLS, so tests exercise the agent's registry pull path where there is
// no internet.
type Registry struct {
	blobs     map[string][]byte // digest → content
	manifests map[string]string // "name:tag" → manifest digest
	types     map[string]string // digest → media type
}

// NewRegistry serves img under name:tag, e.g. ("busybox", "v1").
func NewRegistry() *Registry {
	return &Registry{blobs: map[string][]byte{}, manifests: map[string]string{}, types: map[string]string{}}
}

// Add makes img pullable as name:tag.
func (r *Registry) Add(name, tag string, img *Image) error {
	b, err := img.build()
	if err != nil {
		return err
	}
	md := b.manifestDesc.Digest
	for _, blob := range []struct {
		d    descriptor
		data []byte
	}{{b.layerDesc, b.layer}, {b.configDesc, b.config}, {b.manifestDesc, b.manifest}} {
		r.blobs[blob.d.Digest], r.types[blob.d.Digest] = blob.data, blob.d.MediaType
	}
	r.manifests[name+":"+tag] = md
	return nil
}

// ServeHTTP implements GET/HEAD /v2/, /v2/<name>/manifests/<tag|digest> and
// /v2/<name>/blobs/<digest>.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "read-only registry", http.StatusMethodNotAllowed)
		return
	}
	path := strings.TrimPrefix(req.URL.Path, "/v2/")
	if path == "" || path == req.URL.Path {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.WriteHeader(http.StatusOK)
		return
	}
	var digest string
	if i := strings.LastIndex(path, "/manifests/"); i >= 0 {
		name, ref := path[:i], path[i+len("/manifests/"):]
		digest = ref
		if !strings.HasPrefix(ref, "sha256:") {
			digest = r.manifests[name+":"+ref]
		}
	} else if i := strings.LastIndex(path, "/blobs/"); i >= 0 {
		digest = path[i+len("/blobs/"):]
	}
	data, ok := r.blobs[digest]
	if !ok {
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not found"}]}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", r.types[digest])
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	if req.Method == http.MethodGet {
		_, _ = w.Write(data)
	}
}

package testimage

import (
	"encoding/json"
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
	layer, diffID, err := img.layer()
	if err != nil {
		return err
	}
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": img.Entrypoint, "Cmd": img.Cmd, "Env": img.Env, "WorkingDir": img.WorkingDir},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	layerDesc := descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: digestOf(layer), Size: int64(len(layer))}
	configDesc := descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digestOf(config), Size: int64(len(config))}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": configDesc, "layers": []descriptor{layerDesc},
	})
	md := digestOf(manifest)
	r.blobs[layerDesc.Digest], r.blobs[configDesc.Digest], r.blobs[md] = layer, config, manifest
	r.types[layerDesc.Digest], r.types[configDesc.Digest], r.types[md] = layerDesc.MediaType, configDesc.MediaType, "application/vnd.oci.image.manifest.v1+json"
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

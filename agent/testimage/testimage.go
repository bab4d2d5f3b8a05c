// Package testimage builds container images locally, without a registry: an OCI image
// archive (the format `ctr images import` and containerd's Import read) holding one layer
// with a static binary. skiff's tests and `skiff dev` use it to run busybox (Debian's static
// busybox) where there is no internet.
package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"
)

// BusyboxRef is the name the busybox test image is imported under.
const BusyboxRef = "skiff.local/busybox:1"

// BusyboxPath is where Debian's busybox-static puts the binary.
const BusyboxPath = "/bin/busybox"

// File is one file of the image's single layer.
type File struct {
	Path string // absolute path inside the image
	Mode int64
	Data []byte
	// Link, when set, makes this a symlink to Link instead of a regular file.
	Link string
}

// Image describes an image to build.
type Image struct {
	Ref        string // e.g. "skiff.local/busybox:1"
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
}

// Busybox returns the busybox image: the static binary at /bin/busybox with the usual
// applet links (sh, sleep, echo, cat, ls, wget, nc, httpd …) and /tmp.
func Busybox() (*Image, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("reading %s (apt-get install busybox-static): %w", BusyboxPath, err)
	}
	img := &Image{
		Ref:   BusyboxRef,
		Files: []File{{Path: "/bin/busybox", Mode: 0o755, Data: bin}},
		Cmd:   []string{"sh"},
		Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}
	for _, applet := range []string{"sh", "ash", "sleep", "echo", "cat", "ls", "env", "id", "true", "false", "wget", "nc", "httpd", "ps", "kill", "hostname", "mkdir", "rm", "touch", "test", "grep", "head", "tail", "date", "seq", "printf", "pwd", "sed"} {
		img.Files = append(img.Files, File{Path: "/bin/" + applet, Link: "busybox"})
	}
	img.Files = append(img.Files, File{Path: "/tmp/", Mode: 0o1777}, File{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")})
	return img, nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// layer returns the gzipped layer tar and the digest of its uncompressed form (the diff ID).
func (img *Image) layer() (gz []byte, diffID string, err error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	files := append([]File(nil), img.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	dirs := map[string]bool{}
	epoch := time.Unix(0, 0)
	for _, f := range files {
		name := path.Clean(f.Path)[1:]
		for d := path.Dir(name); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return nil, "", err
			}
		}
		switch {
		case f.Link != "":
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: f.Link, Mode: 0o777, ModTime: epoch})
		case f.Path[len(f.Path)-1] == '/':
			dirs[name] = true
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: f.Mode, ModTime: epoch})
		default:
			if err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: epoch}); err == nil {
				_, err = tw.Write(f.Data)
			}
		}
		if err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return out.Bytes(), digestOf(raw.Bytes()), nil
}

// blobs are an image's layer, config and manifest with their descriptors.
type blobs struct {
	layer, config, manifest             []byte
	layerDesc, configDesc, manifestDesc descriptor
}

// build makes the image's blobs: one gzipped layer, the config, the manifest.
func (img *Image) build() (*blobs, error) {
	layer, diffID, err := img.layer()
	if err != nil {
		return nil, err
	}
	b := &blobs{layer: layer}
	b.config, _ = json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": img.Entrypoint, "Cmd": img.Cmd, "Env": img.Env, "WorkingDir": img.WorkingDir},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	b.layerDesc = descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: digestOf(layer), Size: int64(len(layer))}
	b.configDesc = descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digestOf(b.config), Size: int64(len(b.config))}
	b.manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": b.configDesc, "layers": []descriptor{b.layerDesc},
	})
	b.manifestDesc = descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digestOf(b.manifest), Size: int64(len(b.manifest))}
	return b, nil
}

// WriteOCIArchive writes img as an OCI image layout in a tar stream.
func (img *Image) WriteOCIArchive(w io.Writer) error {
	b, err := img.build()
	if err != nil {
		return err
	}
	layer, config, manifest := b.layer, b.config, b.manifest
	layerDesc, configDesc, manifestDesc := b.layerDesc, b.configDesc, b.manifestDesc
	manifestDesc.Annotations = map[string]string{"io.containerd.image.name": img.Ref, "org.opencontainers.image.ref.name": img.Ref}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []descriptor{manifestDesc}})

	tw := tar.NewWriter(w)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	blob := func(d descriptor) string { return "blobs/sha256/" + d.Digest[len("sha256:"):] }
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blob(manifestDesc), manifest},
		{blob(configDesc), config},
		{blob(layerDesc), layer},
	} {
		if err := put(f.name, f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// Binary packs one static executable as an image whose entrypoint it is (/app), for test
// programs built with CGO_ENABLED=0.
func Binary(ref, path string) (*Image, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return &Image{
		Ref:        ref,
		Files:      []File{{Path: "/app", Mode: 0o755, Data: bin}, {Path: "/tmp/", Mode: 0o1777}},
		Entrypoint: []string{"/app"},
	}, nil
}

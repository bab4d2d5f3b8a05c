// Package objects maps API objects onto store records: the key a resource's objects live
// under, and the JSON they are stored as. The API server and the leader's controllers
// share it, so both write exactly what the other reads.
package objects

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"skiff/fsm"
	"skiff/master/registry"
)

// StoreResource is the name a resource's objects have in the store: the plural, qualified
// by the group for non-core groups ("pods", "deployments.apps").
func StoreResource(r *registry.Resource) string {
	if r.Group == "" {
		return r.Resource
	}
	return r.Resource + "." + r.Group
}

// Key is where the object namespace/name of r is stored.
func Key(r *registry.Resource, namespace, name string) fsm.Key {
	if !r.Namespaced {
		namespace = ""
	}
	return fsm.Key{Resource: StoreResource(r), Namespace: namespace, Name: name}
}

// Decode turns a stored record into its typed object, with resourceVersion set to
// the record's revision (which is not stored: it is only known once the entry commits).
func Decode(r *registry.Resource, rec *fsm.Record) (runtime.Object, error) {
	obj := r.New()
	if err := json.Unmarshal(rec.Value, obj); err != nil {
		return nil, fmt.Errorf("stored %s is corrupt: %w", rec.Key, err)
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	acc.SetResourceVersion(strconv.FormatUint(rec.ModRevision, 10))
	obj.GetObjectKind().SetGroupVersionKind(r.GroupVersionKind())
	return obj, nil
}

// Encode serialises obj without its resourceVersion and returns what the store
// indexes about it.
func Encode(r *registry.Resource, obj runtime.Object) ([]byte, fsm.Meta, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, fsm.Meta{}, err
	}
	rv := acc.GetResourceVersion()
	acc.SetResourceVersion("")
	obj.GetObjectKind().SetGroupVersionKind(r.GroupVersionKind())
	b, err := json.Marshal(obj)
	acc.SetResourceVersion(rv)
	if err != nil {
		return nil, fsm.Meta{}, err
	}
	m := fsm.Meta{Labels: acc.GetLabels()}
	for _, o := range acc.GetOwnerReferences() {
		m.Owners = append(m.Owners, string(o.UID))
	}
	if len(r.IndexedFields) > 0 && r.Fields != nil {
		all := r.Fields(obj)
		m.Fields = map[string]string{}
		for _, f := range r.IndexedFields {
			m.Fields[f] = all[f]
		}
	}
	return b, m, nil
}

// ParseRV parses a resourceVersion; empty is zero.
func ParseRV(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid resourceVersion %q", s)
	}
	return v, nil
}

// Accessor returns obj's metadata; every registered type has it.
func Accessor(obj runtime.Object) metav1.Object {
	acc, err := meta.Accessor(obj)
	if err != nil {
		panic(fmt.Sprintf("api: %T has no object metadata", obj))
	}
	return acc
}

// ByStoreName finds the resource whose objects are stored under name.
func ByStoreName(name string) *registry.Resource {
	for _, r := range registry.All() {
		if StoreResource(r) == name {
			return r
		}
	}
	return nil
}

var metadataOpen = []byte(`"metadata":{`)

// RawWithRV returns a stored object's JSON with metadata.resourceVersion set to rev, without
// decoding it: lists and watches send thousands of objects, and decoding each one only to
// add a field dominated their cost. Stored JSON is written by Encode, which puts
// kind and apiVersion first and never stores a resourceVersion, so the first
// "metadata":{ is the object's own. It returns nil if the shape is not as expected.
func RawWithRV(value []byte, rev uint64) []byte {
	i := bytes.Index(value, metadataOpen)
	if i < 0 || i+len(metadataOpen) >= len(value) {
		return nil
	}
	j := i + len(metadataOpen)
	out := make([]byte, 0, len(value)+32)
	out = append(out, value[:j]...)
	out = append(out, `"resourceVersion":"`...)
	out = strconv.AppendUint(out, rev, 10)
	out = append(out, '"')
	if value[j] != '}' {
		out = append(out, ',')
	}
	return append(out, value[j:]...)
}

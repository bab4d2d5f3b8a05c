package fsm

import (
	"sort"
	"strings"
)

// Key names one object. Namespace is empty for cluster-scoped resources.
type Key struct {
	Resource  string
	Namespace string
	Name      string
}

func (k Key) String() string {
	if k.Namespace == "" {
		return k.Resource + "/" + k.Name
	}
	return k.Resource + "/" + k.Namespace + "/" + k.Name
}

// Meta is what the store needs to know about an object beyond its bytes. The layer above
// derives it from the object before proposing, so Apply never parses object bodies.
type Meta struct {
	// Labels are matched by list and watch predicates.
	Labels map[string]string
	// Owners are the UIDs of the object's owner references; the store indexes them so the
	// garbage collector finds dependents without a scan.
	Owners []string
	// Fields are indexed values (for example a pod's "spec.nodeName"); List can select on
	// one of them without scanning the resource.
	Fields map[string]string
}

// Record is one stored object. Records are immutable once stored: readers may keep them.
type Record struct {
	Key   Key
	Value []byte
	Meta  Meta
	// CreateRevision is the log index of the entry that created the object.
	CreateRevision uint64
	// ModRevision is the log index of the entry that last changed the object; the API
	// calls it resourceVersion.
	ModRevision uint64
}

// sortedKeys returns a map's keys in order, so every encoding of a map is deterministic.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// The tree keys below use NUL as a separator: Kubernetes names, namespaces, label values and
// resource names cannot contain it, so prefixes never collide.
const sep = "\x00"

func objectKey(k Key) []byte {
	return []byte(k.Resource + sep + k.Namespace + sep + k.Name)
}

func objectPrefix(resource, namespace string) []byte {
	if namespace == "" {
		return []byte(resource + sep)
	}
	return []byte(resource + sep + namespace + sep)
}

func fieldKey(field, value string, k Key) []byte {
	return []byte(k.Resource + sep + field + sep + value + sep + k.Namespace + sep + k.Name)
}

func fieldPrefix(resource, field, value, namespace string) []byte {
	p := resource + sep + field + sep + value + sep
	if namespace != "" {
		p += namespace + sep
	}
	return []byte(p)
}

func ownerKey(owner string, k Key) []byte {
	return []byte(owner + sep + k.Resource + sep + k.Namespace + sep + k.Name)
}

func validKeyPart(s string) bool { return !strings.Contains(s, sep) }

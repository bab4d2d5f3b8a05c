package daemonset

import (
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
)

// templateHash names a template revision: the FNV-32a of the template's JSON (and of the
// collision count, when there is one), encoded as Kubernetes' ComputeHash encodes it. The
// stored template is already defaulted, so the hash is stable across masters and restarts.
func templateHash(t *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	b, _ := json.Marshal(t)
	h.Write(b)
	if collisionCount != nil {
		var c [8]byte
		binary.LittleEndian.PutUint32(c[:], uint32(*collisionCount))
		h.Write(c[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// isUpdated reports whether p runs the template revision hash names.
func isUpdated(p *corev1.Pod, hash string) bool {
	return p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash
}

package objects

import (
	"crypto/rand"
	"encoding/json"
	"math/big"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// GenerateNameSuffix is what Kubernetes appends to generateName: five characters from an
// alphabet without vowels or look-alikes.
func GenerateNameSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	for i := range b {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b[i] = alphabet[n.Int64()]
	}
	return string(b)
}

// StampNew decides everything non-deterministic about a new object before it is proposed
// (Raft replicas must all store the same bytes): its name from generateName, uid, creation
// time and first generation. It clears what a client may not set on create.
func StampNew(acc metav1.Object, now time.Time) {
	if acc.GetName() == "" && acc.GetGenerateName() != "" {
		acc.SetName(acc.GetGenerateName() + GenerateNameSuffix())
	}
	acc.SetUID(types.UID(uuid.NewString()))
	acc.SetCreationTimestamp(metav1.NewTime(now.Truncate(time.Second)))
	acc.SetGeneration(1)
	acc.SetResourceVersion("")
	acc.SetDeletionTimestamp(nil)
	acc.SetDeletionGracePeriodSeconds(nil)
	acc.SetManagedFields(nil)
}

// SpecChanged compares the objects without metadata and status, as metadata.generation
// tracks.
func SpecChanged(a, b runtime.Object) bool {
	strip := func(o runtime.Object) []byte {
		m := map[string]json.RawMessage{}
		raw, _ := json.Marshal(o)
		_ = json.Unmarshal(raw, &m)
		delete(m, "metadata")
		delete(m, "status")
		delete(m, "apiVersion")
		delete(m, "kind")
		out, _ := json.Marshal(m)
		return out
	}
	return string(strip(a)) != string(strip(b))
}

// PodGracePeriod is how long a pod bound to a node gets to stop when deleted (requested,
// from its spec, or Kubernetes' 30 s default); an unbound or finished pod goes at once.
func PodGracePeriod(pod *corev1.Pod, requested *int64) int64 {
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0
	}
	if requested != nil {
		return max(0, *requested)
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return 30
}

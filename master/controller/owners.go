package controller

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/registry"
)

// recordMeta decodes only the metadata of a stored object: mapping an event to the keys it
// concerns must not pay for decoding a whole pod.
func recordMeta(rec *fsm.Record) metav1.ObjectMeta {
	var obj struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if rec != nil {
		_ = json.Unmarshal(rec.Value, &obj)
	}
	return obj.Metadata
}

// ControllerKeys maps a change of a dependent (a pod, a ReplicaSet) to the key of its
// controlling owner of resource owner, before and after the change (an adoption or a
// release concerns both owners).
func ControllerKeys(ev fsm.Event, owner *registry.Resource) []fsm.Key {
	var keys []fsm.Key
	for _, rec := range []*fsm.Record{ev.Record, ev.Prev} {
		if rec == nil || len(rec.Meta.Owners) == 0 {
			continue
		}
		m := recordMeta(rec)
		if ref := metav1.GetControllerOfNoCopy(&m); ref != nil && ref.Kind == owner.Kind && groupOf(ref.APIVersion) == owner.Group {
			k := objects.Key(owner, rec.Key.Namespace, ref.Name)
			if len(keys) == 0 || keys[0] != k {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

func groupOf(apiVersion string) string {
	for i := 0; i < len(apiVersion); i++ {
		if apiVersion[i] == '/' {
			return apiVersion[:i]
		}
	}
	return ""
}

// SelfKey maps a change of a primary object to its own key.
func SelfKey(ev fsm.Event) []fsm.Key { return []fsm.Key{ev.Record.Key} }

// AllKeys lists every key of resource r in st.
func AllKeys(st *fsm.State, r *registry.Resource) []fsm.Key {
	recs, _ := st.List(fsm.ListOptions{Resource: objects.StoreResource(r)})
	keys := make([]fsm.Key, len(recs))
	for i, rec := range recs {
		keys[i] = rec.Key
	}
	return keys
}

// OwnerReference returns a controller reference to owner, which must carry its kind.
func OwnerReference(owner metav1.Object, r *registry.Resource) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{
		APIVersion: r.GroupVersion().String(), Kind: r.Kind, Name: owner.GetName(), UID: owner.GetUID(),
		Controller: &t, BlockOwnerDeletion: &t,
	}
}

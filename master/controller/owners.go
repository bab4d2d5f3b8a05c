package controller

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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

// ControllerOf returns the controller reference of a stored object, nil when it has none.
// Only the metadata is decoded: event mapping runs for every change of every pod.
func ControllerOf(rec *fsm.Record) *metav1.OwnerReference {
	if rec == nil || len(rec.Meta.Owners) == 0 {
		return nil
	}
	m := recordMeta(rec)
	return metav1.GetControllerOfNoCopy(&m)
}

// AdopterKeys lists the objects of resource owner in rec's namespace whose spec.selector
// matches rec's labels: the controllers that may adopt rec, an orphan. Only their selectors
// are decoded, since this runs for changes of orphans, which are many where nothing adopts
// them.
func AdopterKeys(st *fsm.State, owner *registry.Resource, rec *fsm.Record) []fsm.Key {
	recs, _ := st.List(fsm.ListOptions{Resource: objects.StoreResource(owner), Namespace: rec.Key.Namespace})
	var keys []fsm.Key
	for _, o := range recs {
		var obj struct {
			Spec struct {
				Selector *metav1.LabelSelector `json:"selector"`
			} `json:"spec"`
		}
		if json.Unmarshal(o.Value, &obj) != nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(obj.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(rec.Meta.Labels)) {
			keys = append(keys, o.Key)
		}
	}
	return keys
}

// OwnerKeys maps a change of a dependent (a pod, a ReplicaSet) to the controllers of
// resource owner it concerns, as Kubernetes' controllers map their informers' events: its
// controller before and after the change (an adoption or a release concerns both) and,
// for an orphan that appeared, lost its controller or changed its labels, every owner
// whose selector matches it, since one of them may adopt it. Other changes of an orphan
// are left to the periodic resync, so that status writes of unowned pods do not decode
// every owner of their namespace.
func OwnerKeys(st *fsm.State, ev fsm.Event, owner *registry.Resource) []fsm.Key {
	cur, prev := ControllerOf(ev.Record), ControllerOf(ev.Prev)
	keys := controllerKeys(owner, ev.Record.Key.Namespace, cur, prev)
	if ev.Type == fsm.Deleted || cur != nil {
		return keys
	}
	if ev.Prev != nil && prev == nil && labels.Equals(ev.Prev.Meta.Labels, ev.Record.Meta.Labels) {
		return keys
	}
	return append(keys, AdopterKeys(st, owner, ev.Record)...)
}

// ControllerKeys maps a change of a dependent (a pod, a ReplicaSet) to the key of its
// controlling owner of resource owner, before and after the change (an adoption or a
// release concerns both owners).
func ControllerKeys(ev fsm.Event, owner *registry.Resource) []fsm.Key {
	return controllerKeys(owner, ev.Record.Key.Namespace, ControllerOf(ev.Record), ControllerOf(ev.Prev))
}

// controllerKeys returns the keys of the controllers refs name that are of resource owner,
// each once.
func controllerKeys(owner *registry.Resource, namespace string, refs ...*metav1.OwnerReference) []fsm.Key {
	var keys []fsm.Key
	for _, ref := range refs {
		if ref != nil && ref.Kind == owner.Kind && groupOf(ref.APIVersion) == owner.Group {
			k := objects.Key(owner, namespace, ref.Name)
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

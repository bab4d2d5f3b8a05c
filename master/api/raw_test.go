package api

import (
	"encoding/json"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/registry"
)

// The raw fast path must produce exactly what decoding and re-encoding would.
func TestRawWithRVMatchesTypedPath(t *testing.T) {
	r := registry.Lookup("", "v1", "pods")
	objs := []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "d", Labels: map[string]string{"a": "b"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "q"}},
	}
	for _, obj := range objs {
		value, _, err := objects.Encode(r, obj)
		if err != nil {
			t.Fatal(err)
		}
		rec := &fsm.Record{Key: objects.Key(r, obj.Namespace, obj.Name), Value: value, ModRevision: 42}
		typed, err := objects.Decode(r, rec)
		if err != nil {
			t.Fatal(err)
		}
		raw := objects.RawWithRV(value, 42)
		var fromRaw corev1.Pod
		if err := json.Unmarshal(raw, &fromRaw); err != nil {
			t.Fatalf("raw JSON does not parse: %v\n%s", err, raw)
		}
		if !reflect.DeepEqual(&fromRaw, typed) {
			t.Fatalf("raw path differs:\nraw   %+v\ntyped %+v", fromRaw, typed)
		}
		list := rawList(r, []*fsm.Record{rec, rec}, "43", "tok")
		var pl corev1.PodList
		if err := json.Unmarshal(list, &pl); err != nil || len(pl.Items) != 2 || pl.ResourceVersion != "43" || pl.Continue != "tok" || pl.Kind != "PodList" {
			t.Fatalf("raw list: %v %s", err, list)
		}
	}
	if objects.RawWithRV([]byte(`{"kind":"X"}`), 1) != nil {
		t.Fatal("accepted JSON without metadata")
	}
}

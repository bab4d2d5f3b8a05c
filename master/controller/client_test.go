package controller

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/registry"
)

func TestRemoveFinalizerOpsDeletesOnlyWhenNothingWaits(t *testing.T) {
	grace := func(s int64) *int64 { return &s }
	ts := metav1.NewTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	tests := []struct {
		name       string
		meta       metav1.ObjectMeta
		wantDelete bool
		wantOps    int
	}{
		{"not carried", metav1.ObjectMeta{Finalizers: []string{"other"}}, false, 0},
		{"not being deleted", metav1.ObjectMeta{Finalizers: []string{"f"}}, false, 1},
		{"last finalizer of a deleted object", metav1.ObjectMeta{Finalizers: []string{"f"}, DeletionTimestamp: &ts, DeletionGracePeriodSeconds: grace(0)}, true, 1},
		{"another finalizer remains", metav1.ObjectMeta{Finalizers: []string{"f", "g"}, DeletionTimestamp: &ts, DeletionGracePeriodSeconds: grace(0)}, false, 1},
		{"a pod within its grace period", metav1.ObjectMeta{Finalizers: []string{"f"}, DeletionTimestamp: &ts, DeletionGracePeriodSeconds: grace(30)}, false, 1},
	}
	c := &Client{}
	pods := registry.Lookup("", "v1", "pods")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: tc.meta}
			p.Name, p.Namespace, p.ResourceVersion = "p", "default", "7"
			ops, err := c.RemoveFinalizerOps(pods, p, "f")
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) != tc.wantOps {
				t.Fatalf("ops = %d, want %d", len(ops), tc.wantOps)
			}
			if tc.wantOps > 0 && (ops[0].Kind == fsm.OpDelete) != tc.wantDelete {
				t.Fatalf("op kind = %v, want delete %v", ops[0].Kind, tc.wantDelete)
			}
		})
	}
}

func TestRemoveFinalizerOpsLeavesNamespacesToTheirFinalizer(t *testing.T) {
	ts := metav1.NewTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	c := &Client{}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gone", ResourceVersion: "3", DeletionTimestamp: &ts,
		Finalizers: []string{metav1.FinalizerDeleteDependents}}}
	ops, err := c.RemoveFinalizerOps(registry.Lookup("", "v1", "namespaces"), ns, metav1.FinalizerDeleteDependents)
	if err != nil || len(ops) != 1 || ops[0].Kind != fsm.OpUpdate {
		t.Fatalf("ops %+v, err %v: want one update", ops, err)
	}
}

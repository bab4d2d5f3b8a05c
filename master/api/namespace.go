package api

import (
	"context"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/registry"
	"skiff/raft"
)

// finalizeBatch bounds the deletions one Raft entry carries when a namespace is emptied.
const finalizeBatch = 128

// FinalizeNamespace deletes everything in a terminating namespace, then the namespace
// itself. It is idempotent: run again after a crash, it continues where it stopped.
func FinalizeNamespace(ctx context.Context, node *raft.Node, name string) error {
	st := node.FSM().State()
	for _, r := range registry.All() {
		if !r.Namespaced {
			continue
		}
		for {
			recs, _ := st.List(fsm.ListOptions{Resource: objects.StoreResource(r), Namespace: name, Limit: finalizeBatch})
			if len(recs) == 0 {
				break
			}
			ops := make([]fsm.Op, 0, len(recs))
			for _, rec := range recs {
				ops = append(ops, fsm.DeleteIfExists(rec.Key))
			}
			if _, err := node.Propose(ctx, &fsm.Txn{Ops: ops}); err != nil {
				return err
			}
			if err := node.FSM().WaitApplied(ctx, node.FSM().Revision()); err != nil {
				return err
			}
			st = node.FSM().State()
		}
	}
	nsKey := fsm.Key{Resource: "namespaces", Name: name}
	rec := st.Get(nsKey)
	if rec == nil {
		return nil
	}
	_, err := node.Propose(ctx, &fsm.Txn{Ops: []fsm.Op{fsm.Delete(nsKey, rec.ModRevision)}})
	return err
}

// terminating lists namespaces marked for deletion.
func terminating(st *fsm.State) []string {
	recs, _ := st.List(fsm.ListOptions{Resource: "namespaces"})
	var out []string
	for _, rec := range recs {
		var obj struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if json.Unmarshal(rec.Value, &obj) == nil && obj.Metadata.DeletionTimestamp != nil && len(obj.Metadata.Finalizers) == 0 {
			out = append(out, rec.Key.Name)
		}
	}
	return out
}

// NamespaceFinalizer is a leader routine that finishes namespace deletions the API started
// but could not complete (a master died mid-way).
func NamespaceFinalizer(ctx context.Context, node *raft.Node) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		for _, ns := range terminating(node.FSM().State()) {
			_ = FinalizeNamespace(ctx, node, ns)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

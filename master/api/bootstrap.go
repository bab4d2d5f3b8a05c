package api

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/pki"
	"skiff/master/registry"
	"skiff/raft"
)

// SystemNamespaces exist from the start, as in every Kubernetes cluster.
var SystemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// EnsureClusterObjects creates, once per cluster, what every master needs: the CA, the
// admin token and the system namespaces. It runs on the leader and retries until done or
// ctx ends; values are made here, before proposing, and a create that finds the object
// already there keeps the existing one.
func EnsureClusterObjects(ctx context.Context, node *raft.Node, clusterName string) error {
	for {
		err := ensureOnce(ctx, node, clusterName)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func ensureOnce(ctx context.Context, node *raft.Node, clusterName string) error {
	st := node.FSM().State()
	create := func(k fsm.Key, value []byte, m fsm.Meta) error {
		if st.Get(k) != nil {
			return nil
		}
		res, err := node.Propose(ctx, &fsm.Txn{Ops: []fsm.Op{fsm.Create(k, value, m)}})
		if err != nil {
			return err
		}
		if res.Err != nil && res.Err != fsm.ErrAlreadyExists {
			return res.Err
		}
		return nil
	}
	if st.Get(fsm.Key{Resource: InternalResource, Name: CAKey}) == nil {
		ca, err := pki.NewCA(clusterName)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(ca)
		if err := create(fsm.Key{Resource: InternalResource, Name: CAKey}, b, fsm.Meta{}); err != nil {
			return err
		}
	}
	token, err := pki.NewToken()
	if err != nil {
		return err
	}
	if err := create(fsm.Key{Resource: InternalResource, Name: AdminTokenKey}, []byte(token), fsm.Meta{}); err != nil {
		return err
	}
	nsRes := registry.Lookup("", "v1", "namespaces")
	for _, name := range SystemNamespaces {
		ns := &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, UID: types.UID(uuid.NewString()),
				CreationTimestamp: metav1.NewTime(time.Now().Truncate(time.Second)),
				Labels:            map[string]string{"kubernetes.io/metadata.name": name},
			},
		}
		nsRes.Default(ns)
		value, m, err := objects.Encode(nsRes, ns)
		if err != nil {
			return err
		}
		if err := create(objects.Key(nsRes, "", name), value, m); err != nil {
			return fmt.Errorf("creating namespace %s: %w", name, err)
		}
	}
	return nil
}

// ClusterCA returns the replicated CA, or nil before the leader made it.
func ClusterCA(st *fsm.State) (*pki.CA, error) {
	rec := st.Get(fsm.Key{Resource: InternalResource, Name: CAKey})
	if rec == nil {
		return nil, nil
	}
	var ca pki.CA
	if err := json.Unmarshal(rec.Value, &ca); err != nil {
		return nil, fmt.Errorf("stored CA is corrupt: %w", err)
	}
	return &ca, nil
}

// AdminToken returns the replicated admin token, or "" before the leader made it.
func AdminToken(st *fsm.State) string {
	rec := st.Get(fsm.Key{Resource: InternalResource, Name: AdminTokenKey})
	if rec == nil {
		return ""
	}
	return string(rec.Value)
}

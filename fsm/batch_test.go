package fsm

import (
	"testing"

	"github.com/hashicorp/raft"
)

func TestBatchAppliesEachTxnOnItsOwn(t *testing.T) {
	f := New(Options{})
	a, b, c := Key{Resource: "kv", Name: "a"}, Key{Resource: "kv", Name: "b"}, Key{Resource: "kv", Name: "c"}
	mustApply(t, f, 1, Create(a, []byte("a1"), Meta{}))
	w, err := f.Watch(WatchOptions{Resource: "kv", From: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	entry := EncodeBatch([][]byte{
		EncodeTxn(&Txn{Ops: []Op{Update(a, 1, []byte("a2"), Meta{})}}),
		EncodeTxn(&Txn{Ops: []Op{Create(b, []byte("b1"), Meta{}), Update(c, 0, []byte("x"), Meta{})}}), // fails: c absent
		EncodeTxn(&Txn{Ops: []Op{Create(c, []byte("c1"), Meta{})}}),
	})
	out, ok := f.Apply(&raft.Log{Index: 5, Data: entry}).(*BatchResult)
	if !ok || len(out.Results) != 3 {
		t.Fatalf("batch result: %#v", out)
	}
	if out.Results[0].Err != nil || out.Results[0].Ops[0].Revision != 5 {
		t.Fatalf("txn 0: %+v", out.Results[0])
	}
	if out.Results[1].Err != ErrNotFound || out.Results[1].Failed != 1 {
		t.Fatalf("txn 1 should fail alone with not found: %+v", out.Results[1])
	}
	if out.Results[2].Err != nil {
		t.Fatalf("txn 2: %+v", out.Results[2])
	}
	st := f.State()
	if st.Revision() != 5 || string(st.Get(a).Value) != "a2" || st.Get(b) != nil || string(st.Get(c).Value) != "c1" {
		t.Fatalf("state after batch: rev=%d a=%v b=%v c=%v", st.Revision(), st.Get(a), st.Get(b), st.Get(c))
	}
	evs := recvN(t, w, 2)
	if evs[0].Type != Modified || evs[0].Record.Key != a || evs[1].Type != Added || evs[1].Record.Key != c {
		t.Fatalf("events: %v", describeEvents(evs))
	}
	// A replica fed the same entries agrees.
	g := New(Options{})
	mustApply(t, g, 1, Create(a, []byte("a1"), Meta{}))
	g.Apply(&raft.Log{Index: 5, Data: entry})
	if g.State().Hash() != st.Hash() {
		t.Fatal("replicas disagree after a batch")
	}
}

func TestBatchRoundTripAndCorruption(t *testing.T) {
	t1 := EncodeTxn(&Txn{Ops: []Op{Create(Key{Resource: "r", Name: "x"}, []byte("v"), Meta{Labels: map[string]string{"l": "1"}})}})
	t2 := EncodeTxn(&Txn{Ops: []Op{DeleteIfExists(Key{Resource: "r", Namespace: "n", Name: "y"})}})
	entry := EncodeBatch([][]byte{t1, t2})
	txns, err := DecodeBatch(entry[1:])
	if err != nil || len(txns) != 2 || txns[0].Ops[0].Meta.Labels["l"] != "1" || txns[1].Ops[0].Kind != OpDeleteIfExists {
		t.Fatalf("round trip: %v %+v", err, txns)
	}
	for cut := 1; cut < len(entry); cut++ {
		if _, err := DecodeBatch(entry[1:cut]); err == nil {
			t.Fatalf("truncated batch at %d decoded", cut)
		}
		f := New(Options{})
		if _, panicked := panics(func() { f.Apply(&raft.Log{Index: 1, Data: entry[:cut]}) }); !panicked {
			t.Fatalf("Apply accepted a batch truncated at %d", cut)
		}
	}
	if _, panicked := panics(func() { EncodeBatch([][]byte{EncodeNoop()}) }); !panicked {
		t.Fatal("EncodeBatch accepted a non-txn entry")
	}
}

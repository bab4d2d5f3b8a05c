package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// seeded returns an FSM holding pods a/x (created at 1, updated at 2) and a/y (created at 3).
func seeded(t *testing.T) *FSM {
	t.Helper()
	f := New(Options{})
	mustApply(t, f, 1, Create(pod("a", "x"), val("x1"), labels("app", "web")))
	mustApply(t, f, 2, Update(pod("a", "x"), 1, val("x2"), labels("app", "web")))
	mustApply(t, f, 3, Create(pod("a", "y"), val("y1"), Meta{}))
	return f
}

func TestApplyOps(t *testing.T) {
	const idx = 10
	x, y, z := pod("a", "x"), pod("a", "y"), pod("a", "z")
	type want struct {
		err     error
		failed  int
		current uint64
		// present maps keys to the value they must hold after the entry (nil: absent).
		present map[Key][]byte
		// prev is the Prev each op result must carry ("" for none).
		prev []string
	}
	cases := []struct {
		name string
		ops  []Op
		want want
	}{
		{"create new", []Op{Create(z, val("z"), Meta{})},
			want{failed: -1, present: map[Key][]byte{z: val("z"), x: val("x2")}, prev: []string{""}}},
		{"create existing", []Op{Create(x, val("again"), Meta{})},
			want{err: ErrAlreadyExists, failed: 0, current: 2, present: map[Key][]byte{x: val("x2")}}},
		{"update at current revision", []Op{Update(x, 2, val("x3"), Meta{})},
			want{failed: -1, present: map[Key][]byte{x: val("x3")}, prev: []string{""}}},
		{"update unconditional", []Op{Update(x, 0, val("x3"), Meta{})},
			want{failed: -1, present: map[Key][]byte{x: val("x3")}, prev: []string{""}}},
		{"update stale revision", []Op{Update(x, 1, val("x3"), Meta{})},
			want{err: ErrConflict, failed: 0, current: 2, present: map[Key][]byte{x: val("x2")}}},
		{"update future revision", []Op{Update(x, 99, val("x3"), Meta{})},
			want{err: ErrConflict, failed: 0, current: 2, present: map[Key][]byte{x: val("x2")}}},
		{"update absent", []Op{Update(z, 0, val("z"), Meta{})},
			want{err: ErrNotFound, failed: 0, current: 0, present: map[Key][]byte{z: nil}}},
		{"update absent with revision", []Op{Update(z, 5, val("z"), Meta{})},
			want{err: ErrNotFound, failed: 0, current: 0, present: map[Key][]byte{z: nil}}},
		{"delete at current revision", []Op{Delete(x, 2)},
			want{failed: -1, present: map[Key][]byte{x: nil, y: val("y1")}, prev: []string{"x2"}}},
		{"delete unconditional", []Op{Delete(y, 0)},
			want{failed: -1, present: map[Key][]byte{y: nil, x: val("x2")}, prev: []string{"y1"}}},
		{"delete stale revision", []Op{Delete(x, 1)},
			want{err: ErrConflict, failed: 0, current: 2, present: map[Key][]byte{x: val("x2")}}},
		{"delete absent", []Op{Delete(z, 0)},
			want{err: ErrNotFound, failed: 0, present: map[Key][]byte{z: nil}}},
		{"delete-if-exists present", []Op{DeleteIfExists(x)},
			want{failed: -1, present: map[Key][]byte{x: nil}, prev: []string{"x2"}}},
		{"delete-if-exists absent", []Op{DeleteIfExists(z)},
			want{failed: -1, present: map[Key][]byte{z: nil, x: val("x2")}, prev: []string{""}}},
		{"multi-op success", []Op{Create(z, val("z"), Meta{}), Update(x, 2, val("x3"), Meta{}), Delete(y, 3)},
			want{failed: -1, present: map[Key][]byte{z: val("z"), x: val("x3"), y: nil}, prev: []string{"", "", "y1"}}},
		{"ops see earlier ops of the same txn", []Op{Create(z, val("z1"), Meta{}), Update(z, idx, val("z2"), Meta{}), Delete(x, 2), Create(x, val("new"), Meta{})},
			want{failed: -1, present: map[Key][]byte{z: val("z2"), x: val("new")}, prev: []string{"", "", "x2", ""}}},
		{"second op fails", []Op{Create(z, val("z"), Meta{}), Update(x, 1, val("x3"), Meta{}), Delete(y, 0)},
			want{err: ErrConflict, failed: 1, current: 2, present: map[Key][]byte{z: nil, x: val("x2"), y: val("y1")}}},
		{"third op fails on a key changed by the first", []Op{Update(x, 2, val("x3"), Meta{}), Delete(y, 3), Update(x, 2, val("x4"), Meta{})},
			want{err: ErrConflict, failed: 2, current: idx, present: map[Key][]byte{x: val("x2"), y: val("y1")}}},
		{"create after delete fails when re-created", []Op{DeleteIfExists(z), Create(x, val("dup"), Meta{})},
			want{err: ErrAlreadyExists, failed: 1, current: 2, present: map[Key][]byte{x: val("x2")}}},
		{"delete then update in one txn", []Op{Delete(y, 3), Update(y, 0, val("y2"), Meta{})},
			want{err: ErrNotFound, failed: 1, current: 0, present: map[Key][]byte{y: val("y1")}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := seeded(t)
			before := f.State()
			res := apply(t, f, idx, tc.ops...)
			if res.Err != tc.want.err {
				t.Fatalf("Err = %v, want %v", res.Err, tc.want.err)
			}
			if res.Failed != tc.want.failed || res.Current != tc.want.current {
				t.Fatalf("Failed, Current = %d, %d; want %d, %d", res.Failed, res.Current, tc.want.failed, tc.want.current)
			}
			if res.Revision != idx || f.Revision() != idx || f.State().Revision() != idx {
				t.Fatalf("revision: result %d, FSM %d, state %d; want %d everywhere", res.Revision, f.Revision(), f.State().Revision(), idx)
			}
			st := f.State()
			for k, v := range tc.want.present {
				r := st.Get(k)
				switch {
				case v == nil && r != nil:
					t.Errorf("%s present with %q, want absent", k, r.Value)
				case v != nil && r == nil:
					t.Errorf("%s absent, want %q", k, v)
				case v != nil && !bytes.Equal(r.Value, v):
					t.Errorf("%s = %q, want %q", k, r.Value, v)
				}
			}
			if tc.want.err != nil {
				if res.Ops != nil {
					t.Errorf("failed txn has op results %+v", res.Ops)
				}
				if st.Hash() != before.Hash() || st.Len() != before.Len() {
					t.Errorf("failed txn changed the state")
				}
				return
			}
			if len(res.Ops) != len(tc.ops) {
				t.Fatalf("%d op results for %d ops", len(res.Ops), len(tc.ops))
			}
			for i, op := range res.Ops {
				wantPrev := tc.want.prev[i]
				switch {
				case wantPrev == "" && op.Prev != nil:
					t.Errorf("op %d: Prev = %q, want none", i, op.Prev.Value)
				case wantPrev != "" && (op.Prev == nil || string(op.Prev.Value) != wantPrev):
					t.Errorf("op %d: Prev = %+v, want value %q", i, op.Prev, wantPrev)
				}
				wantRev := uint64(idx)
				if tc.ops[i].Kind == OpDeleteIfExists && wantPrev == "" {
					wantRev = 0
				}
				if op.Revision != wantRev {
					t.Errorf("op %d: Revision = %d, want %d", i, op.Revision, wantRev)
				}
			}
			// The old view is untouched: states are immutable.
			if before.Revision() != 3 || string(before.Get(x).Value) != "x2" {
				t.Errorf("applying changed an earlier State")
			}
		})
	}
}

func TestFailedTxnMovesRevisionButChangesNothing(t *testing.T) {
	f := seeded(t)
	w, err := f.Watch(WatchOptions{Resource: "pods", From: f.Revision()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	before := f.State()
	res := apply(t, f, 7,
		Create(pod("b", "new"), val("n"), onNode("n1")),
		Create(pod("a", "x"), val("dup"), Meta{}), // fails
		Delete(pod("a", "y"), 0),
	)
	if res.Err != ErrAlreadyExists || res.Failed != 1 || res.Current != 2 {
		t.Fatalf("result = %+v", res)
	}
	st := f.State()
	if st.Revision() != 7 || f.Revision() != 7 {
		t.Fatalf("revision = %d, want 7", st.Revision())
	}
	if st.Hash() != before.Hash() || st.Len() != 2 {
		t.Fatalf("state changed by a failed txn")
	}
	if rs, _ := st.List(ListOptions{Resource: "pods", Field: "spec.nodeName", FieldValue: "n1"}); len(rs) != 0 {
		t.Fatalf("field index changed by a failed txn: %v", keysOf(rs))
	}
	// A failed transaction publishes nothing: the next event is the marker's.
	mustApply(t, f, 8, Create(pod("a", "marker"), nil, Meta{}))
	expectNoEventBefore(t, w, pod("a", "marker"))
	if err := f.WaitApplied(t.Context(), 7); err != nil {
		t.Fatal(err)
	}
}

func TestResourceVersionIsLogIndex(t *testing.T) {
	f := New(Options{})
	k := pod("ns", "p")
	// Raft indexes need not be contiguous at the FSM (configuration entries never reach it).
	mustApply(t, f, 5, Create(k, val("v1"), Meta{}))
	r := f.State().Get(k)
	if r.CreateRevision != 5 || r.ModRevision != 5 {
		t.Fatalf("after create: create %d mod %d, want 5 5", r.CreateRevision, r.ModRevision)
	}
	res := mustApply(t, f, 9, Update(k, 5, val("v2"), Meta{}))
	if res.Ops[0].Revision != 9 || res.Revision != 9 {
		t.Fatalf("update result %+v", res)
	}
	mustApply(t, f, 17, Update(k, 0, val("v3"), Meta{}))
	r = f.State().Get(k)
	if r.CreateRevision != 5 || r.ModRevision != 17 || string(r.Value) != "v3" {
		t.Fatalf("after updates: %+v", r)
	}
	// Re-creating after a delete starts a new object.
	mustApply(t, f, 20, Delete(k, 17))
	mustApply(t, f, 21, Create(k, val("v4"), Meta{}))
	r = f.State().Get(k)
	if r.CreateRevision != 21 || r.ModRevision != 21 {
		t.Fatalf("after re-create: create %d mod %d, want 21 21", r.CreateRevision, r.ModRevision)
	}
}

func TestApplyNoopAndFlaggedUnknownTypes(t *testing.T) {
	f := seeded(t)
	h := f.State().Hash()
	w, err := f.Watch(WatchOptions{Resource: "pods", From: f.Revision()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i, data := range [][]byte{
		EncodeNoop(),
		{byte(IgnoreUnknownFlag | 0x33)},
		{byte(IgnoreUnknownFlag | 0x33), 1, 2, 3, 0xff},
		{0xff},
	} {
		idx := uint64(10 + i)
		if got := f.Apply(&raft.Log{Index: idx, Data: data}); got != nil {
			t.Fatalf("entry %x: Apply returned %v, want nil", data, got)
		}
		if f.Revision() != idx {
			t.Fatalf("entry %x: revision %d, want %d", data, f.Revision(), idx)
		}
		if f.State().Hash() != h {
			t.Fatalf("entry %x changed the state", data)
		}
	}
	mustApply(t, f, 20, Create(pod("a", "marker"), nil, Meta{}))
	expectNoEventBefore(t, w, pod("a", "marker"))
}

func TestApplyPanicsOnUndecodableEntries(t *testing.T) {
	valid := EncodeTxn(&Txn{Ops: []Op{Create(pod("a", "b"), val("value"), labels("k", "v"))}})
	withTrailing := append(append([]byte{}, valid...), 0)
	// An op kind no replica knows must stop the replica rather than be skipped.
	unknownKind := EncodeTxn(&Txn{Ops: []Op{{Kind: 9, Key: pod("a", "b")}}})
	zeroKind := EncodeTxn(&Txn{Ops: []Op{{Kind: 0, Key: pod("a", "b")}}})
	cases := map[string][]byte{
		"nil entry":              nil,
		"empty entry":            {},
		"unknown type":           {0x33},
		"unknown type zero":      {0},
		"unknown type with data": {0x7f, 1, 2, 3},
		"txn without payload":    {byte(TxnType)},
		"txn truncated":          valid[:len(valid)-1],
		"txn trailing bytes":     withTrailing,
		"txn huge op count":      append([]byte{byte(TxnType)}, binary.AppendUvarint(nil, 1<<40)...),
		"txn bad varint":         {byte(TxnType), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"txn unknown op kind":    unknownKind,
		"txn zero op kind":       zeroKind,
	}
	for i := 2; i < len(valid)-1; i++ {
		cases[fmt.Sprintf("txn cut at %d", i)] = valid[:i]
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			f := seeded(t)
			h, rev := f.State().Hash(), f.Revision()
			v, ok := panics(func() { f.Apply(&raft.Log{Index: 10, Data: data}) })
			if !ok {
				t.Fatalf("Apply(%x) did not panic", data)
			}
			if s, _ := v.(string); !strings.Contains(s, "index 10") {
				t.Errorf("panic %v does not name the index", v)
			}
			if f.Revision() != rev || f.State().Hash() != h {
				t.Errorf("a panicking Apply changed the state")
			}
		})
	}
}

func TestTxnValidate(t *testing.T) {
	ok := pod("ns", "n")
	cases := []struct {
		name    string
		txn     Txn
		wantErr string
	}{
		{"create", Txn{Ops: []Op{Create(ok, nil, Meta{})}}, ""},
		{"all kinds", Txn{Ops: []Op{Create(ok, nil, Meta{}), Update(ok, 1, nil, Meta{}), Delete(ok, 0), DeleteIfExists(ok)}}, ""},
		{"cluster-scoped", Txn{Ops: []Op{Create(node("n"), nil, Meta{})}}, ""},
		{"full meta", Txn{Ops: []Op{Create(ok, nil, Meta{Labels: map[string]string{"a": "b"}, Owners: []string{"u"}, Fields: map[string]string{"f": ""}})}}, ""},
		{"empty", Txn{}, "empty"},
		{"kind zero", Txn{Ops: []Op{{Kind: 0, Key: ok}}}, "unknown kind"},
		{"kind too big", Txn{Ops: []Op{Create(ok, nil, Meta{}), {Kind: OpDeleteIfExists + 1, Key: ok}}}, "op 1: unknown kind"},
		{"no resource", Txn{Ops: []Op{Create(Key{Namespace: "ns", Name: "n"}, nil, Meta{})}}, "resource and a name"},
		{"no name", Txn{Ops: []Op{Delete(Key{Resource: "pods", Namespace: "ns"}, 0)}}, "resource and a name"},
		{"NUL in resource", Txn{Ops: []Op{Create(Key{Resource: "po\x00ds", Name: "n"}, nil, Meta{})}}, "NUL"},
		{"NUL in namespace", Txn{Ops: []Op{Create(Key{Resource: "pods", Namespace: "n\x00s", Name: "n"}, nil, Meta{})}}, "NUL"},
		{"NUL in name", Txn{Ops: []Op{DeleteIfExists(Key{Resource: "pods", Name: "\x00"})}}, "NUL"},
		{"NUL in field name", Txn{Ops: []Op{Create(ok, nil, Meta{Fields: map[string]string{"spec\x00x": "v"}})}}, "NUL"},
		{"NUL in field value", Txn{Ops: []Op{Update(ok, 0, nil, Meta{Fields: map[string]string{"spec.nodeName": "n1\x00ns"}})}}, "NUL"},
		{"NUL in owner", Txn{Ops: []Op{Create(ok, nil, Meta{Owners: []string{"uid\x00pods"}})}}, "NUL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.txn.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Validate accepted %+v", tc.txn)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Validate: %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestOpKindString(t *testing.T) {
	for k, want := range map[OpKind]string{OpCreate: "create", OpUpdate: "update", OpDelete: "delete", OpDeleteIfExists: "delete-if-exists", 0: "op(0)", 77: "op(77)"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint8(k), got, want)
		}
	}
}

// normMeta maps empty collections to nil, as decoding does.
func normMeta(m Meta) Meta {
	if len(m.Labels) == 0 {
		m.Labels = nil
	}
	if len(m.Owners) == 0 {
		m.Owners = nil
	}
	if len(m.Fields) == 0 {
		m.Fields = nil
	}
	return m
}

func normOp(op Op) Op {
	if len(op.Value) == 0 {
		op.Value = nil
	}
	op.Meta = normMeta(op.Meta)
	return op
}

func normRecord(r *Record) *Record {
	if r == nil {
		return nil
	}
	c := *r
	if len(c.Value) == 0 {
		c.Value = nil
	}
	c.Meta = normMeta(c.Meta)
	return &c
}

func TestTxnRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0, 1, 0xff}, 5000)
	txns := []Txn{
		{Ops: nil},
		{Ops: []Op{Create(pod("a", "b"), nil, Meta{})}},
		{Ops: []Op{Create(pod("a", "b"), []byte{}, Meta{Labels: map[string]string{}, Owners: []string{}, Fields: map[string]string{}})}},
		{Ops: []Op{
			Create(pod("ns", "p"), val(`{"kind":"Pod"}`), Meta{
				Labels: map[string]string{"app": "web", "tier": "", "ünïcode": "✓"},
				Owners: []string{"uid-1", "uid-2", "uid-1"},
				Fields: map[string]string{"spec.nodeName": "n1", "status.phase": "Running"},
			}),
			Update(node("n1"), 1<<63, big, labels("zone", "z")),
			Delete(Key{Resource: "r", Namespace: "n", Name: "x"}, ^uint64(0)),
			DeleteIfExists(Key{Resource: "r", Name: "y"}),
			{Kind: OpUpdate, Key: pod("", "p"), Revision: 300},
		}},
	}
	for i, txn := range txns {
		enc := EncodeTxn(&txn)
		if MessageType(enc[0]) != TxnType {
			t.Fatalf("txn %d: type byte %d", i, enc[0])
		}
		if again := EncodeTxn(&txn); !bytes.Equal(enc, again) {
			t.Fatalf("txn %d: encoding is not deterministic", i)
		}
		got, err := DecodeTxn(enc[1:])
		if err != nil {
			t.Fatalf("txn %d: DecodeTxn: %v", i, err)
		}
		if len(got.Ops) != len(txn.Ops) {
			t.Fatalf("txn %d: %d ops decoded, want %d", i, len(got.Ops), len(txn.Ops))
		}
		for j := range txn.Ops {
			if want := normOp(txn.Ops[j]); !reflect.DeepEqual(normOp(got.Ops[j]), want) {
				t.Errorf("txn %d op %d: got %+v, want %+v", i, j, got.Ops[j], want)
			}
		}
		if !bytes.Equal(EncodeTxn(got), enc) {
			t.Errorf("txn %d: re-encoding differs", i)
		}
		// Every strict prefix is rejected, and so is any trailing byte.
		for n := 0; n < len(enc)-1; n++ {
			if _, err := DecodeTxn(enc[1 : 1+n]); err == nil {
				t.Fatalf("txn %d: DecodeTxn accepted a %d-byte prefix of %d", i, n, len(enc)-1)
			}
			if n > 64 {
				n += len(enc) / 50 // keep the big case quick
			}
		}
		if _, err := DecodeTxn(append(append([]byte{}, enc[1:]...), 7)); err == nil {
			t.Errorf("txn %d: DecodeTxn accepted trailing bytes", i)
		}
	}
	// Map order does not leak into the encoding.
	m1 := map[string]string{}
	m2 := map[string]string{}
	for i := 0; i < 50; i++ {
		m1[string(rune('a'+i))] = "v"
	}
	for i := 49; i >= 0; i-- {
		m2[string(rune('a'+i))] = "v"
	}
	a := EncodeTxn(&Txn{Ops: []Op{Create(pod("a", "b"), nil, Meta{Labels: m1, Fields: m2})}})
	b := EncodeTxn(&Txn{Ops: []Op{Create(pod("a", "b"), nil, Meta{Labels: m2, Fields: m1})}})
	if !bytes.Equal(a, b) {
		t.Errorf("equal maps encode differently")
	}
}

func TestTxnResultRoundTrip(t *testing.T) {
	prev := &Record{
		Key:            pod("ns", "p"),
		Value:          val("old"),
		Meta:           Meta{Labels: map[string]string{"a": "b"}, Owners: []string{"o"}, Fields: map[string]string{"f": "v"}},
		CreateRevision: 3,
		ModRevision:    1 << 40,
	}
	cluster := &Record{Key: node("n"), CreateRevision: 1, ModRevision: 1}
	results := []TxnResult{
		{Revision: 1, Failed: -1, Ops: []OpResult{{Revision: 1}}},
		{Revision: 7, Failed: -1, Ops: []OpResult{{Revision: 7}, {Revision: 7, Prev: prev}, {}, {Revision: 7, Prev: cluster}}},
		{Revision: 9, Failed: -1},
		{Revision: 9, Err: ErrAlreadyExists, Failed: 0, Current: 4},
		{Revision: 9, Err: ErrNotFound, Failed: 2},
		{Revision: 1 << 62, Err: ErrConflict, Failed: 5, Current: 1<<62 - 1},
	}
	for i, r := range results {
		enc := EncodeTxnResult(&r)
		got, err := DecodeTxnResult(enc)
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		if got.Revision != r.Revision || got.Err != r.Err || got.Failed != r.Failed || got.Current != r.Current || len(got.Ops) != len(r.Ops) {
			t.Fatalf("result %d: got %+v, want %+v", i, got, r)
		}
		for j := range r.Ops {
			if got.Ops[j].Revision != r.Ops[j].Revision {
				t.Errorf("result %d op %d: revision %d, want %d", i, j, got.Ops[j].Revision, r.Ops[j].Revision)
			}
			if !reflect.DeepEqual(normRecord(got.Ops[j].Prev), normRecord(r.Ops[j].Prev)) {
				t.Errorf("result %d op %d: prev %+v, want %+v", i, j, got.Ops[j].Prev, r.Ops[j].Prev)
			}
		}
		for n := 0; n < len(enc); n++ {
			if _, err := DecodeTxnResult(enc[:n]); err == nil {
				t.Fatalf("result %d: accepted a %d-byte prefix of %d", i, n, len(enc))
			}
		}
		if _, err := DecodeTxnResult(append(append([]byte{}, enc...), 0)); err == nil {
			t.Errorf("result %d: accepted trailing bytes", i)
		}
	}

	// A result straight from Apply survives the trip, errors included.
	f := seeded(t)
	for i, ops := range [][]Op{
		{Delete(pod("a", "x"), 2), Create(pod("a", "z"), val("z"), labels("q", "r"))},
		{Create(pod("a", "y"), nil, Meta{})},
		{Update(pod("a", "y"), 1, nil, Meta{})},
		{Delete(pod("a", "nope"), 0)},
	} {
		res := apply(t, f, uint64(10+i), ops...)
		got, err := DecodeTxnResult(EncodeTxnResult(res))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(EncodeTxnResult(got), EncodeTxnResult(res)) || got.Err != res.Err {
			t.Errorf("apply result %d does not round-trip: %+v vs %+v", i, got, res)
		}
	}

	// An unknown error code is rejected, not mapped to success.
	var e encoder
	e.uvarint(1)
	e.uvarint(uint64(len(errorCodes)))
	e.uvarint(0)
	e.uvarint(0)
	e.uvarint(0)
	if _, err := DecodeTxnResult(e.buf); err == nil {
		t.Errorf("unknown error code accepted")
	}
	// Only the store's own errors can be encoded.
	if _, ok := panics(func() { EncodeTxnResult(&TxnResult{Err: errors.New("other")}) }); !ok {
		t.Errorf("encoding a foreign error did not panic")
	}
	if _, ok := panics(func() { errorOf(99) }); !ok {
		t.Errorf("errorOf(99) did not panic")
	}
	for code, want := range errorCodes {
		if codeOf(want) != uint64(code) || errorOf(uint64(code)) != want {
			t.Errorf("code %d does not map to %v and back", code, want)
		}
	}
}

func TestSnapshotFormat(t *testing.T) {
	f := listFixture(t)
	mustApply(t, f, 100, Update(pod("a", "p0"), 0, nil, Meta{Owners: []string{"o1", "o2"}, Labels: map[string]string{"x": ""}}))
	st := f.State()
	var buf bytes.Buffer
	if err := WriteSnapshot(&buf, st); err != nil {
		t.Fatal(err)
	}
	enc := buf.Bytes()

	// Decode by hand: magic, revision, count, then length-prefixed records in key order.
	if !bytes.HasPrefix(enc, []byte("SKIFFSN\x01")) {
		t.Fatalf("snapshot starts with %q", enc[:8])
	}
	d := decoder{buf: enc[8:]}
	if rev := d.uvarint(); rev != 100 {
		t.Fatalf("revision %d, want 100", rev)
	}
	if n := d.uvarint(); n != uint64(st.Len()) {
		t.Fatalf("count %d, want %d", n, st.Len())
	}
	var want []*Record
	st.Walk(func(r *Record) bool { want = append(want, r); return true })
	for i, r := range want {
		n := d.uvarint()
		if d.err != nil || n > uint64(len(d.buf)) {
			t.Fatalf("record %d: bad length %d", i, n)
		}
		rd := decoder{buf: d.buf[:n]}
		got := rd.record()
		if err := rd.done(); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(normRecord(got), normRecord(r)) {
			t.Fatalf("record %d = %+v, want %+v", i, got, r)
		}
		d.buf = d.buf[n:]
	}
	if err := d.done(); err != nil {
		t.Fatalf("after the records: %v", err)
	}

	// ReadSnapshot rebuilds the state with its indexes.
	back, err := ReadSnapshot(bytes.NewReader(enc))
	if err != nil {
		t.Fatal(err)
	}
	if back.Hash() != st.Hash() || back.Revision() != 100 || back.Len() != st.Len() {
		t.Fatalf("read back %s@%d (%d objects), want %s@100 (%d)", back.Hash(), back.Revision(), back.Len(), st.Hash(), st.Len())
	}
	for _, o := range []ListOptions{
		{Resource: "pods", Field: "spec.nodeName", FieldValue: "n1"},
		{Resource: "services", Namespace: "b", Field: "spec.nodeName", FieldValue: "n0"},
		{Resource: "nodes"},
	} {
		a, _ := st.List(o)
		b, _ := back.List(o)
		if !sameRecords(a, b) || len(a) == 0 {
			t.Fatalf("List(%+v) after read: %v, want %v", o, keysOf(b), keysOf(a))
		}
	}
	if got := keysOf(back.Dependents("o2")); !reflect.DeepEqual(got, []string{"pods/a/p0"}) {
		t.Fatalf("Dependents after read: %v", got)
	}
	var again bytes.Buffer
	if err := WriteSnapshot(&again, back); err != nil || !bytes.Equal(again.Bytes(), enc) {
		t.Fatalf("re-written snapshot differs (err %v)", err)
	}

	// An empty state.
	var empty bytes.Buffer
	if err := WriteSnapshot(&empty, emptyState()); err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("SKIFFSN\x01"), 0, 0); !bytes.Equal(empty.Bytes(), want) {
		t.Fatalf("empty snapshot = %x, want %x", empty.Bytes(), want)
	}
	if st, err := ReadSnapshot(bytes.NewReader(empty.Bytes())); err != nil || st.Len() != 0 || st.Revision() != 0 {
		t.Fatalf("empty snapshot read as %v, %v", st, err)
	}

	// Corruption is reported, never half-applied.
	bad := map[string][]byte{
		"empty":          nil,
		"bad magic":      append([]byte("SKIFFSX\x01"), enc[8:]...),
		"newer version":  append([]byte("SKIFFSN\x03"), enc[8:]...),
		"trailing byte":  append(append([]byte{}, enc...), 0),
		"huge record":    append(append([]byte("SKIFFSN\x01"), 1, 1), binary.AppendUvarint(nil, 1<<31)...),
		"record too big": append(append([]byte("SKIFFSN\x01"), 1, 1, 20), bytes.Repeat([]byte{0}, 20)...),
	}
	for n := 0; n < len(enc); n += 1 + n/40 {
		bad[fmt.Sprintf("truncated at %d", n)] = enc[:n]
	}
	for name, b := range bad {
		if _, err := ReadSnapshot(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: ReadSnapshot accepted it", name)
		}
		g := seeded(t)
		h := g.State().Hash()
		if err := g.Restore(&readCloser{Reader: bytes.NewReader(b)}); err == nil {
			t.Errorf("%s: Restore accepted it", name)
		}
		if g.State().Hash() != h || g.Revision() != 3 {
			t.Errorf("%s: a failed Restore changed the state", name)
		}
	}
}

package verify

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

func op(client int, call, ret int64, in KVInput, out KVOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
}

func TestKVModelAcceptsAndRejects(t *testing.T) {
	create := KVInput{Op: KVCreate, Key: "k", Value: "v1"}
	cas := KVInput{Op: KVCAS, Key: "k", Prev: "v1", Value: "v2"}
	get := KVInput{Op: KVGet, Key: "k"}
	cases := []struct {
		name    string
		history []porcupine.Operation
		want    bool
	}{
		{"sequential", []porcupine.Operation{
			op(0, 0, 1, create, KVOutput{OK: true}),
			op(0, 2, 3, cas, KVOutput{OK: true}),
			op(1, 4, 5, get, KVOutput{OK: true, Value: "v2"}),
		}, true},
		{"stale read after acknowledged cas", []porcupine.Operation{
			op(0, 0, 1, create, KVOutput{OK: true}),
			op(0, 2, 3, cas, KVOutput{OK: true}),
			op(1, 4, 5, get, KVOutput{OK: true, Value: "v1"}),
		}, false},
		{"concurrent read may see either", []porcupine.Operation{
			op(0, 0, 1, create, KVOutput{OK: true}),
			op(0, 2, 6, cas, KVOutput{OK: true}),
			op(1, 3, 4, get, KVOutput{OK: true, Value: "v1"}),
		}, true},
		{"lost acknowledged create", []porcupine.Operation{
			op(0, 0, 1, create, KVOutput{OK: true}),
			op(1, 2, 3, get, KVOutput{OK: false}),
		}, false},
		{"unknown write may have happened", []porcupine.Operation{
			op(0, 0, 1, create, KVOutput{OK: true}),
			op(0, 2, math.MaxInt64, cas, KVOutput{Unknown: true}),
			op(1, 4, 5, get, KVOutput{OK: true, Value: "v2"}),
		}, true},
		{"unknown write may not have happened", []porcupine.Operation{
			op(0, 0, 1, create, KVOutput{OK: true}),
			op(0, 2, math.MaxInt64, cas, KVOutput{Unknown: true}),
			op(1, 4, 5, get, KVOutput{OK: true, Value: "v1"}),
		}, true},
		{"unknown write cannot flip back", []porcupine.Operation{
			op(0, 0, 1, create, KVOutput{OK: true}),
			op(0, 2, math.MaxInt64, cas, KVOutput{Unknown: true}),
			op(1, 4, 5, get, KVOutput{OK: true, Value: "v2"}),
			op(1, 6, 7, get, KVOutput{OK: true, Value: "v1"}),
		}, false},
		{"double create both succeed", []porcupine.Operation{
			op(0, 0, 1, create, KVOutput{OK: true}),
			op(1, 2, 3, KVInput{Op: KVCreate, Key: "k", Value: "x"}, KVOutput{OK: true}),
		}, false},
		{"delete then absent", []porcupine.Operation{
			op(0, 0, 1, create, KVOutput{OK: true}),
			op(0, 2, 3, KVInput{Op: KVDelete, Key: "k"}, KVOutput{OK: true}),
			op(1, 4, 5, get, KVOutput{OK: false}),
		}, true},
		{"keys are independent", []porcupine.Operation{
			op(0, 0, 1, create, KVOutput{OK: true}),
			op(1, 2, 3, KVInput{Op: KVGet, Key: "other"}, KVOutput{OK: false}),
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(KVModel, tc.history); got != tc.want {
				t.Fatalf("linearizable=%v, want %v", got, tc.want)
			}
		})
	}
}

func TestOneLeaderPerTermDetectsTwoLeaders(t *testing.T) {
	ft := &fakeT{}
	OneLeaderPerTerm(ft, []TermLeader{{1, "a"}, {2, "b"}, {2, "b"}})
	if ft.failed {
		t.Fatal("flagged a valid history")
	}
	OneLeaderPerTerm(ft, []TermLeader{{1, "a"}, {1, "b"}})
	if !ft.failed {
		t.Fatal("did not flag two leaders in one term")
	}
}

func TestSameHashAndAckedWrites(t *testing.T) {
	ft := &fakeT{}
	SameHash(ft, map[string]string{"a": "x", "b": "x"})
	if ft.failed {
		t.Fatal("flagged equal hashes")
	}
	SameHash(ft, map[string]string{"a": "x", "b": "y"})
	if !ft.failed {
		t.Fatal("did not flag different hashes")
	}
	state := map[string]string{"k1": "v1", "k2": "v9"}
	read := func(k string) (string, bool) { v, ok := state[k]; return v, ok }
	ft = &fakeT{}
	AckedWritesPresent(ft, map[string]string{"k1": "v1", "k2": "v2"}, map[string][]string{"k2": {"v9"}}, read)
	if ft.failed {
		t.Fatal("flagged a key holding an allowed later value")
	}
	AckedWritesPresent(ft, map[string]string{"k3": "v3"}, nil, read)
	if !ft.failed {
		t.Fatal("did not flag a lost write")
	}
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) Name() string          { return "fake" }
func (f *fakeT) Logf(string, ...any)   {}
func (f *fakeT) Failed() bool          { return f.failed }

package verify

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// KV operations for the linearizability model. Values are unique per write, so a
// compare-and-set on a value is equivalent to one on the store's revision.
const (
	KVGet    = "get"
	KVCreate = "create"
	KVCAS    = "cas"
	KVDelete = "delete"
)

// KVInput is one request on one key.
type KVInput struct {
	Op    string
	Key   string
	Value string // create/cas: the new value
	Prev  string // cas: the value expected now
}

// KVOutput is what the client saw. Unknown marks an operation whose outcome the client
// could not learn (timeout, lost leadership): it may have taken effect at any point after
// its call, or never.
type KVOutput struct {
	OK      bool   // create: created; cas: swapped; delete: deleted; get: found
	Value   string // get: the value read
	Unknown bool
}

type kvState struct {
	present bool
	value   string
}

// KVModel is the porcupine model of skiff's store, one key at a time. An operation with an
// unknown outcome has two successor states (it happened, or it did not); give it a Return
// time after every other operation so it may take effect at any point after its call.
var KVModel = (&porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(KVInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []interface{} { return []interface{}{kvState{}} },
	Step: func(state, input, output interface{}) []interface{} {
		s := state.(kvState)
		in := input.(KVInput)
		out := output.(KVOutput)
		next, ok := kvApply(s, in)
		switch {
		case out.Unknown:
			return []interface{}{s, next}
		case in.Op == KVGet:
			if out.OK == s.present && (!out.OK || out.Value == s.value) {
				return []interface{}{s}
			}
		case out.OK == ok:
			return []interface{}{next}
		}
		return nil
	},
	Equal: func(a, b interface{}) bool { return a.(kvState) == b.(kvState) },
	DescribeOperation: func(input, output interface{}) string {
		in := input.(KVInput)
		out := output.(KVOutput)
		res := fmt.Sprintf("ok=%v", out.OK)
		if out.Unknown {
			res = "unknown"
		}
		switch in.Op {
		case KVGet:
			return fmt.Sprintf("get(%s) → %v %q", in.Key, out.OK, out.Value)
		case KVCAS:
			return fmt.Sprintf("cas(%s, %q→%q) → %s", in.Key, in.Prev, in.Value, res)
		case KVCreate:
			return fmt.Sprintf("create(%s, %q) → %s", in.Key, in.Value, res)
		}
		return fmt.Sprintf("%s(%s) → %s", in.Op, in.Key, res)
	},
	DescribeState: func(state interface{}) string {
		s := state.(kvState)
		if !s.present {
			return "absent"
		}
		return fmt.Sprintf("%q", s.value)
	},
}).ToModel()

// kvApply returns the state after in and whether in succeeded.
func kvApply(s kvState, in KVInput) (kvState, bool) {
	switch in.Op {
	case KVCreate:
		if s.present {
			return s, false
		}
		return kvState{present: true, value: in.Value}, true
	case KVCAS:
		if !s.present || s.value != in.Prev {
			return s, false
		}
		return kvState{present: true, value: in.Value}, true
	case KVDelete:
		if !s.present {
			return s, false
		}
		return kvState{}, true
	}
	return s, s.present
}

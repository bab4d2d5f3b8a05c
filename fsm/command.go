package fsm

import (
	"encoding/binary"
	"fmt"
)

// MessageType is the first byte of every Raft entry. Numbers are never reused: a retired
// type keeps its number reserved forever so old logs still replay.
type MessageType uint8

// IgnoreUnknownFlag marks a message type that replicas too old to know it may skip. Without
// it an unknown type stops the replica, because skipping a state change would diverge it.
const IgnoreUnknownFlag MessageType = 0x80

const (
	// TxnType carries a Txn.
	TxnType MessageType = 1
	// NoopType changes nothing; it is used to commit an entry in the current term.
	NoopType MessageType = 2 | IgnoreUnknownFlag
	// BatchType carries several independent Txns that touch disjoint keys, so one log
	// entry (one replication round, one fsync) carries many writers' transactions.
	BatchType MessageType = 3
	// RestoreType carries one chunk of a snapshot that replaces the whole state; the last
	// chunk of a restore swaps the state in atomically (restore.go).
	RestoreType MessageType = 4
)

// OpKind is what one operation of a transaction does.
type OpKind uint8

const (
	// OpCreate stores a new object; it fails with ErrAlreadyExists if the key is present.
	OpCreate OpKind = 1
	// OpUpdate replaces an object; it fails with ErrNotFound if absent and with ErrConflict
	// if Revision is non-zero and not the object's current revision.
	OpUpdate OpKind = 2
	// OpDelete removes an object; it fails with ErrNotFound if absent and with ErrConflict
	// if Revision is non-zero and not the object's current revision.
	OpDelete OpKind = 3
	// OpDeleteIfExists removes an object if present and never fails.
	OpDeleteIfExists OpKind = 4
)

func (k OpKind) String() string {
	switch k {
	case OpCreate:
		return "create"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpDeleteIfExists:
		return "delete-if-exists"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op is one operation of a transaction.
type Op struct {
	Kind OpKind
	Key  Key
	// Revision is the expected current revision for update and delete; zero means any.
	Revision uint64
	// Value and Meta are the new object for create and update.
	Value []byte
	Meta  Meta
}

// Txn is a list of operations applied all-or-nothing in one Raft entry.
type Txn struct {
	Ops []Op
}

// Create, Update, Delete and DeleteIfExists build single operations.
func Create(k Key, value []byte, meta Meta) Op {
	return Op{Kind: OpCreate, Key: k, Value: value, Meta: meta}
}

// Update builds an update of k expected at revision rev (zero: unconditional).
func Update(k Key, rev uint64, value []byte, meta Meta) Op {
	return Op{Kind: OpUpdate, Key: k, Revision: rev, Value: value, Meta: meta}
}

// Delete builds a delete of k expected at revision rev (zero: unconditional).
func Delete(k Key, rev uint64) Op { return Op{Kind: OpDelete, Key: k, Revision: rev} }

// DeleteIfExists builds a delete that succeeds whether or not k exists.
func DeleteIfExists(k Key) Op { return Op{Kind: OpDeleteIfExists, Key: k} }

// Validate rejects transactions the store could never apply, before they reach the log.
func (t *Txn) Validate() error {
	if len(t.Ops) == 0 {
		return fmt.Errorf("fsm: empty transaction")
	}
	for i, op := range t.Ops {
		if op.Kind < OpCreate || op.Kind > OpDeleteIfExists {
			return fmt.Errorf("fsm: op %d: unknown kind %d", i, op.Kind)
		}
		if op.Key.Resource == "" || op.Key.Name == "" {
			return fmt.Errorf("fsm: op %d: key %q needs a resource and a name", i, op.Key)
		}
		for _, part := range []string{op.Key.Resource, op.Key.Namespace, op.Key.Name} {
			if !validKeyPart(part) {
				return fmt.Errorf("fsm: op %d: key %q contains NUL", i, op.Key)
			}
		}
		// Field names and values and owner UIDs are parts of index keys too: a NUL in
		// them would make one index entry match another's prefix.
		for f, v := range op.Meta.Fields {
			if !validKeyPart(f) || !validKeyPart(v) {
				return fmt.Errorf("fsm: op %d: field %q=%q contains NUL", i, f, v)
			}
		}
		for _, o := range op.Meta.Owners {
			if !validKeyPart(o) {
				return fmt.Errorf("fsm: op %d: owner %q contains NUL", i, o)
			}
		}
	}
	return nil
}

// EncodeTxn returns the Raft entry for t: the TxnType byte followed by the operations.
func EncodeTxn(t *Txn) []byte {
	e := encoder{buf: make([]byte, 0, 64+txnSizeHint(t))}
	e.byte(byte(TxnType))
	e.uvarint(uint64(len(t.Ops)))
	for i := range t.Ops {
		op := &t.Ops[i]
		e.byte(byte(op.Kind))
		e.key(op.Key)
		e.uvarint(op.Revision)
		e.bytes(op.Value)
		e.meta(op.Meta)
	}
	return e.buf
}

func txnSizeHint(t *Txn) int {
	n := 0
	for i := range t.Ops {
		n += len(t.Ops[i].Value) + 64
	}
	return n
}

// DecodeTxn parses the payload of a TxnType entry (without the type byte).
func DecodeTxn(payload []byte) (*Txn, error) {
	d := decoder{buf: payload}
	n := d.count()
	t := &Txn{Ops: make([]Op, 0, n)}
	for i := 0; i < n && d.err == nil; i++ {
		var op Op
		op.Kind = OpKind(d.byte())
		if d.err == nil && (op.Kind < OpCreate || op.Kind > OpDeleteIfExists) {
			// Apply would skip an op it does not know and silently diverge from replicas
			// that do: refuse the entry instead, as for an unknown message type.
			return nil, fmt.Errorf("fsm: op %d: unknown kind %d", i, op.Kind)
		}
		op.Key = d.key()
		op.Revision = d.uvarint()
		op.Value = d.bytes()
		op.Meta = d.meta()
		t.Ops = append(t.Ops, op)
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return t, nil
}

// EncodeBatch packs entries made by EncodeTxn into one BatchType entry. The transactions
// must touch disjoint keys: they share the entry's index as their revision.
func EncodeBatch(txnEntries [][]byte) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, e := range txnEntries {
		size += len(e) + binary.MaxVarintLen64
	}
	e := encoder{buf: make([]byte, 0, size)}
	e.byte(byte(BatchType))
	e.uvarint(uint64(len(txnEntries)))
	for _, t := range txnEntries {
		if len(t) == 0 || MessageType(t[0]) != TxnType {
			panic("fsm: EncodeBatch given something other than a txn entry")
		}
		e.bytes(t[1:])
	}
	return e.buf
}

// DecodeBatch parses the payload of a BatchType entry (without the type byte).
func DecodeBatch(payload []byte) ([]*Txn, error) {
	d := decoder{buf: payload}
	n := d.count()
	txns := make([]*Txn, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		t, err := DecodeTxn(d.bytes())
		if err != nil {
			return nil, fmt.Errorf("batch txn %d: %w", i, err)
		}
		txns = append(txns, t)
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return txns, nil
}

// BatchResult is the outcome of a BatchType entry: one TxnResult per transaction, in order.
type BatchResult struct {
	Results []*TxnResult
}

// Keys lists the keys a transaction touches.
func (t *Txn) Keys() []Key {
	keys := make([]Key, len(t.Ops))
	for i := range t.Ops {
		keys[i] = t.Ops[i].Key
	}
	return keys
}

// EncodeNoop returns a Raft entry that changes nothing.
func EncodeNoop() []byte { return []byte{byte(NoopType)} }

// OpResult is the outcome of one operation.
type OpResult struct {
	// Revision is the object's new revision (for deletes: the revision of the deletion).
	Revision uint64
	// Prev is the object as it was before a delete, or nil.
	Prev *Record
}

// TxnResult is the outcome of a transaction. When Err is set, nothing was applied, Failed is
// the index of the first operation that failed and Current its key's current revision
// (zero if absent).
type TxnResult struct {
	Revision uint64
	Ops      []OpResult
	Err      error
	Failed   int
	Current  uint64
}

// EncodeTxnResult serialises a result so a follower can return what the leader applied.
func EncodeTxnResult(r *TxnResult) []byte {
	var e encoder
	e.uvarint(r.Revision)
	e.uvarint(codeOf(r.Err))
	e.uvarint(uint64(r.Failed + 1))
	e.uvarint(r.Current)
	e.uvarint(uint64(len(r.Ops)))
	for _, op := range r.Ops {
		e.uvarint(op.Revision)
		if op.Prev == nil {
			e.byte(0)
		} else {
			e.byte(1)
			e.record(op.Prev)
		}
	}
	return e.buf
}

// DecodeTxnResult parses what EncodeTxnResult wrote.
func DecodeTxnResult(b []byte) (*TxnResult, error) {
	d := decoder{buf: b}
	r := &TxnResult{}
	r.Revision = d.uvarint()
	code := d.uvarint()
	r.Failed = int(d.uvarint()) - 1
	r.Current = d.uvarint()
	n := d.count()
	for i := 0; i < n && d.err == nil; i++ {
		op := OpResult{Revision: d.uvarint()}
		if d.byte() == 1 {
			op.Prev = d.record()
		}
		r.Ops = append(r.Ops, op)
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if code >= uint64(len(errorCodes)) {
		return nil, fmt.Errorf("fsm: unknown error code %d", code)
	}
	r.Err = errorOf(code)
	return r, nil
}

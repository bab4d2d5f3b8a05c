package fsm

import (
	"bytes"

	iradix "github.com/hashicorp/go-immutable-radix"
)

// State is an immutable view of the whole store at one revision. Apply builds a new State
// for every entry and swaps it in, so a State handed out is never modified: it is safe to
// read from any number of goroutines, and a snapshot is just a pointer to one.
type State struct {
	objects *iradix.Tree // objectKey → *Record
	fields  *iradix.Tree // fieldKey → *Record
	owners  *iradix.Tree // ownerKey → *Record
	// revision is the log index of the last command applied.
	revision uint64
	// restore holds the chunks of a snapshot restore in progress (restore.go), nil when
	// none is. It is replicated state like the objects, so it travels in snapshots.
	restore *pendingRestore
}

func emptyState() *State {
	return &State{objects: iradix.New(), fields: iradix.New(), owners: iradix.New()}
}

// at is the same objects at a later revision (an entry that changed nothing).
func (s *State) at(revision uint64) *State {
	return &State{objects: s.objects, fields: s.fields, owners: s.owners, revision: revision, restore: s.restore}
}

// Revision is the log index of the last command this view includes.
func (s *State) Revision() uint64 { return s.revision }

// Len is the number of objects.
func (s *State) Len() int { return s.objects.Len() }

// Get returns the object at k, or nil.
func (s *State) Get(k Key) *Record {
	v, ok := s.objects.Get(objectKey(k))
	if !ok {
		return nil
	}
	return v.(*Record)
}

// ListOptions selects objects of one resource.
type ListOptions struct {
	Resource string
	// Namespace limits the list to one namespace; empty means all.
	Namespace string
	// Field and FieldValue select through a Meta.Fields index instead of a scan.
	Field, FieldValue string
	// Predicate, when set, keeps only the records it accepts.
	Predicate func(*Record) bool
	// After resumes a paged list after this key (exclusive), in key order.
	After *Key
	// Limit stops the list after this many records; zero means no limit.
	Limit int
}

// List returns the matching records in key order, and whether more remain past Limit.
func (s *State) List(o ListOptions) (records []*Record, more bool) {
	var it *iradix.Iterator
	var prefix []byte
	if o.Field != "" {
		it = s.fields.Root().Iterator()
		prefix = fieldPrefix(o.Resource, o.Field, o.FieldValue, o.Namespace)
	} else {
		it = s.objects.Root().Iterator()
		prefix = objectPrefix(o.Resource, o.Namespace)
	}
	if o.After != nil {
		seek := objectKey(*o.After)
		if o.Field != "" {
			seek = fieldKey(o.Field, o.FieldValue, *o.After)
		}
		// Seeking to the key plus a NUL lands just past it. A key sorting before the
		// selection must not start the scan outside it, or the prefix check ends it at once.
		seek = append(seek, 0)
		if bytes.Compare(seek, prefix) < 0 {
			seek = prefix
		}
		it.SeekLowerBound(seek)
	} else {
		it.SeekLowerBound(prefix)
	}
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		if !bytes.HasPrefix(k, prefix) {
			break
		}
		r := v.(*Record)
		if o.Predicate != nil && !o.Predicate(r) {
			continue
		}
		if o.Limit > 0 && len(records) == o.Limit {
			return records, true
		}
		records = append(records, r)
	}
	return records, false
}

// Dependents returns every object whose Meta.Owners holds owner, in key order.
func (s *State) Dependents(owner string) []*Record {
	var out []*Record
	s.owners.Root().WalkPrefix([]byte(owner+sep), func(_ []byte, v interface{}) bool {
		out = append(out, v.(*Record))
		return false
	})
	return out
}

// Walk calls fn for every object in key order until fn returns false.
func (s *State) Walk(fn func(*Record) bool) {
	s.objects.Root().Walk(func(_ []byte, v interface{}) bool { return !fn(v.(*Record)) })
}

// stateTxn accumulates the changes of one log entry against a State.
type stateTxn struct {
	objects, fields, owners *iradix.Txn
	restore                 *pendingRestore
}

func (s *State) txn() *stateTxn {
	return &stateTxn{objects: s.objects.Txn(), fields: s.fields.Txn(), owners: s.owners.Txn(), restore: s.restore}
}

func (t *stateTxn) get(k Key) *Record {
	v, ok := t.objects.Get(objectKey(k))
	if !ok {
		return nil
	}
	return v.(*Record)
}

func (t *stateTxn) put(r *Record) {
	prev, _ := t.objects.Insert(objectKey(r.Key), r)
	if prev != nil {
		t.unindex(prev.(*Record))
	}
	for f, v := range r.Meta.Fields {
		t.fields.Insert(fieldKey(f, v, r.Key), r)
	}
	for _, o := range r.Meta.Owners {
		t.owners.Insert(ownerKey(o, r.Key), r)
	}
}

func (t *stateTxn) delete(k Key) {
	if prev, ok := t.objects.Delete(objectKey(k)); ok {
		t.unindex(prev.(*Record))
	}
}

func (t *stateTxn) unindex(r *Record) {
	for f, v := range r.Meta.Fields {
		t.fields.Delete(fieldKey(f, v, r.Key))
	}
	for _, o := range r.Meta.Owners {
		t.owners.Delete(ownerKey(o, r.Key))
	}
}

func (t *stateTxn) commit(revision uint64) *State {
	return &State{
		objects:  t.objects.CommitOnly(),
		fields:   t.fields.CommitOnly(),
		owners:   t.owners.CommitOnly(),
		revision: revision,
		restore:  t.restore,
	}
}

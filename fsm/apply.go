package fsm

// applyTxn runs t against s at log index index. It returns the new state (nil when the
// transaction failed and nothing changed), the result, and the events it produced.
// It is pure: the same inputs always give the same outputs on every replica.
func applyTxn(s *State, t *Txn, index uint64) (*State, *TxnResult, []Event) {
	res := &TxnResult{Revision: index, Failed: -1, Ops: make([]OpResult, len(t.Ops))}
	tx := s.txn()
	events := make([]Event, 0, len(t.Ops))
	for i := range t.Ops {
		op := &t.Ops[i]
		cur := tx.get(op.Key)
		if err := precondition(op, cur); err != nil {
			res.Err, res.Failed, res.Ops = err, i, nil
			if cur != nil {
				res.Current = cur.ModRevision
			}
			return nil, res, nil
		}
		switch op.Kind {
		case OpCreate, OpUpdate:
			r := &Record{Key: op.Key, Value: op.Value, Meta: op.Meta, CreateRevision: index, ModRevision: index}
			ev := Event{Type: Added, Record: r, Revision: index}
			if cur != nil {
				r.CreateRevision = cur.CreateRevision
				ev.Type, ev.Prev = Modified, cur
			}
			tx.put(r)
			events = append(events, ev)
			res.Ops[i].Revision = index
		case OpDelete, OpDeleteIfExists:
			if cur == nil {
				continue
			}
			tx.delete(op.Key)
			events = append(events, Event{Type: Deleted, Record: cur, Prev: cur, Revision: index})
			res.Ops[i] = OpResult{Revision: index, Prev: cur}
		}
	}
	return tx.commit(index), res, events
}

// precondition reports why op cannot apply to the current record cur (nil if absent).
func precondition(op *Op, cur *Record) error {
	switch op.Kind {
	case OpCreate:
		if cur != nil {
			return ErrAlreadyExists
		}
	case OpUpdate, OpDelete:
		if cur == nil {
			return ErrNotFound
		}
		if op.Revision != 0 && op.Revision != cur.ModRevision {
			return ErrConflict
		}
	}
	return nil
}

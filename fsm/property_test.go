package fsm

import (
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The property tests drive the FSM with random logs over a small key space, so that creates
// collide, expected revisions are sometimes stale, and indexes churn, and compare it with a
// simple reference model.

var (
	pResources  = []string{"pods", "svcs", "nodes"} // nodes are cluster-scoped
	pNamespaces = []string{"a", "b", "c"}
	pNames      = []string{"n0", "n1", "n2", "n3"}
	pOwners     = []string{"u0", "u1", "u2", "u3"}
	pNodes      = []string{"n0", "n1", "n2"}
	propSeeds   = []int64{1, 2, 3, 42}
)

const propEntries = 3000

// model is the reference: a plain map from key to the record the FSM should hold.
type model struct {
	objs map[Key]*Record
	rev  uint64
}

func (m *model) clone() *model { return &model{objs: maps.Clone(m.objs), rev: m.rev} }

// expectation is what Apply must return for one entry.
type expectation struct {
	noop    bool
	err     error
	failed  int
	current uint64
	ops     []OpResult
}

// apply runs txn against the model at idx, independently of applyTxn.
func (m *model) apply(txn *Txn, idx uint64) (expectation, []Event) {
	m.rev = idx
	next := maps.Clone(m.objs)
	exp := expectation{failed: -1, ops: make([]OpResult, len(txn.Ops))}
	var evs []Event
	for i, op := range txn.Ops {
		cur := next[op.Key]
		var err error
		switch {
		case op.Kind == OpCreate && cur != nil:
			err = ErrAlreadyExists
		case (op.Kind == OpUpdate || op.Kind == OpDelete) && cur == nil:
			err = ErrNotFound
		case (op.Kind == OpUpdate || op.Kind == OpDelete) && op.Revision != 0 && op.Revision != cur.ModRevision:
			err = ErrConflict
		}
		if err != nil {
			exp = expectation{err: err, failed: i}
			if cur != nil {
				exp.current = cur.ModRevision
			}
			return exp, nil
		}
		switch op.Kind {
		case OpCreate, OpUpdate:
			r := &Record{Key: op.Key, Value: op.Value, Meta: op.Meta, CreateRevision: idx, ModRevision: idx}
			typ := Added
			if cur != nil {
				r.CreateRevision, typ = cur.CreateRevision, Modified
			}
			next[op.Key] = r
			evs = append(evs, Event{Type: typ, Record: r, Prev: cur, Revision: idx})
			exp.ops[i] = OpResult{Revision: idx}
		case OpDelete, OpDeleteIfExists:
			if cur != nil {
				delete(next, op.Key)
				evs = append(evs, Event{Type: Deleted, Record: cur, Prev: cur, Revision: idx})
				exp.ops[i] = OpResult{Revision: idx, Prev: cur}
			}
		}
	}
	m.objs = next
	return exp, evs
}

func lessKey(a, b Key) bool {
	if a.Resource != b.Resource {
		return a.Resource < b.Resource
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

func (m *model) list(o ListOptions) []*Record {
	var out []*Record
	for k, r := range m.objs {
		if k.Resource != o.Resource || (o.Namespace != "" && k.Namespace != o.Namespace) {
			continue
		}
		if o.Field != "" {
			if v, ok := r.Meta.Fields[o.Field]; !ok || v != o.FieldValue {
				continue
			}
		}
		if o.Predicate != nil && !o.Predicate(r) {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return lessKey(out[i].Key, out[j].Key) })
	return out
}

func (m *model) dependents(owner string) []*Record {
	var out []*Record
	for _, r := range m.objs {
		if slices.Contains(r.Meta.Owners, owner) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return lessKey(out[i].Key, out[j].Key) })
	return out
}

// propLog is a generated log with everything the model says about it.
type propLog struct {
	entries []raft.Log
	expect  []expectation
	events  []Event // every event of the log, in order
	// checkpoints holds the model after entry i, for a few i.
	checkpoints map[int]*model
	final       *model
}

type generator struct {
	rng *rand.Rand
	m   *model
	idx uint64
}

func (g *generator) pick(xs []string) string { return xs[g.rng.Intn(len(xs))] }

func (g *generator) key() Key {
	k := Key{Resource: g.pick(pResources), Name: g.pick(pNames)}
	if k.Resource != "nodes" {
		k.Namespace = g.pick(pNamespaces)
	}
	return k
}

func (g *generator) meta() Meta {
	var m Meta
	if g.rng.Intn(3) > 0 {
		m.Labels = map[string]string{"app": g.pick([]string{"web", "db"})}
		if g.rng.Intn(2) == 0 {
			m.Labels["tier"] = g.pick([]string{"1", "2"})
		}
	}
	if g.rng.Intn(4) > 0 {
		m.Fields = map[string]string{"spec.nodeName": g.pick(pNodes)}
		if g.rng.Intn(3) == 0 {
			m.Fields["status.phase"] = g.pick([]string{"Running", "Pending"})
		}
	}
	for n := g.rng.Intn(3); n > 0; n-- {
		m.Owners = append(m.Owners, g.pick(pOwners)) // duplicates on purpose
	}
	return m
}

// revision picks an expected revision for k: often right, sometimes any, sometimes stale.
func (g *generator) revision(k Key) uint64 {
	cur := g.m.objs[k]
	switch g.rng.Intn(6) {
	case 0, 1:
		return 0
	case 2, 3, 4:
		if cur != nil {
			return cur.ModRevision
		}
		return uint64(g.rng.Intn(int(g.idx) + 1))
	default:
		return uint64(g.rng.Intn(int(g.idx) + 2))
	}
}

func (g *generator) op() Op {
	k := g.key()
	value := []byte(fmt.Sprintf("v%d-%d", g.idx, g.rng.Intn(1000)))
	if g.rng.Intn(10) == 0 {
		value = nil
	}
	switch g.rng.Intn(10) {
	case 0, 1, 2, 3:
		return Create(k, value, g.meta())
	case 4, 5, 6:
		return Update(k, g.revision(k), value, g.meta())
	case 7, 8:
		return Delete(k, g.revision(k))
	default:
		return DeleteIfExists(k)
	}
}

func generate(seed int64, n int) *propLog {
	g := &generator{rng: rand.New(rand.NewSource(seed)), m: &model{objs: map[Key]*Record{}}}
	lg := &propLog{checkpoints: map[int]*model{}}
	for i := 0; i < n; i++ {
		g.idx++
		if g.rng.Intn(10) == 0 { // not every Raft index reaches the FSM
			g.idx += uint64(1 + g.rng.Intn(2))
		}
		var data []byte
		var exp expectation
		switch r := g.rng.Intn(100); {
		case r < 3:
			data, exp = EncodeNoop(), expectation{noop: true}
			g.m.rev = g.idx
		case r < 5:
			data, exp = []byte{byte(IgnoreUnknownFlag | 0x40), byte(r), 0xff}, expectation{noop: true}
			g.m.rev = g.idx
		default:
			txn := &Txn{}
			for k := 1 + g.rng.Intn(3)/2 + g.rng.Intn(2)*g.rng.Intn(3); k > 0; k-- {
				txn.Ops = append(txn.Ops, g.op())
			}
			data = EncodeTxn(txn)
			var evs []Event
			exp, evs = g.m.apply(txn, g.idx)
			lg.events = append(lg.events, evs...)
		}
		lg.entries = append(lg.entries, raft.Log{Index: g.idx, Term: 1, Type: raft.LogCommand, Data: data})
		lg.expect = append(lg.expect, exp)
		if i%(n/6) == n/12 {
			lg.checkpoints[i] = g.m.clone()
		}
	}
	lg.final = g.m
	return lg
}

// applyChecked applies entry i of lg to f and checks the result against the model.
func applyChecked(t *testing.T, f *FSM, lg *propLog, i int) {
	t.Helper()
	e := lg.entries[i]
	got := f.Apply(&e)
	exp := lg.expect[i]
	if exp.noop {
		if got != nil {
			t.Fatalf("entry %d: noop returned %v", i, got)
		}
	} else {
		res := got.(*TxnResult)
		if res.Revision != e.Index || res.Err != exp.err || res.Failed != exp.failed || res.Current != exp.current || len(res.Ops) != len(exp.ops) {
			t.Fatalf("entry %d (index %d): result %+v, model %+v", i, e.Index, res, exp)
		}
		for j := range exp.ops {
			if res.Ops[j].Revision != exp.ops[j].Revision || !sameRecord(res.Ops[j].Prev, exp.ops[j].Prev) {
				t.Fatalf("entry %d op %d: %+v, model %+v", i, j, res.Ops[j], exp.ops[j])
			}
		}
	}
	if f.Revision() != e.Index {
		t.Fatalf("entry %d: revision %d, want %d", i, f.Revision(), e.Index)
	}
}

var propPredicates = map[string]func(*Record) bool{
	"none":  nil,
	"web":   func(r *Record) bool { return r.Meta.Labels["app"] == "web" },
	"owned": func(r *Record) bool { return slices.Contains(r.Meta.Owners, "u0") },
	"onN0":  func(r *Record) bool { return r.Meta.Fields["spec.nodeName"] == "n0" },
}

// listOptionSet is every selection the key space allows.
func listOptionSet() []ListOptions {
	var out []ListOptions
	for _, res := range append(slices.Clone(pResources), "absent") {
		nss := append([]string{""}, pNamespaces...)
		if res == "nodes" {
			nss = []string{""}
		}
		for _, ns := range nss {
			for _, field := range []string{"", "spec.nodeName", "status.phase"} {
				values := []string{""}
				if field == "spec.nodeName" {
					values = pNodes
				} else if field == "status.phase" {
					values = []string{"Running", "Pending"}
				}
				for _, v := range values {
					for _, name := range []string{"none", "web", "owned"} {
						out = append(out, ListOptions{Resource: res, Namespace: ns, Field: field, FieldValue: v, Predicate: propPredicates[name]})
					}
				}
			}
		}
	}
	return out
}

// checkModel compares a State with the model: every object, every list, every index.
func checkModel(t *testing.T, what string, st *State, m *model) {
	t.Helper()
	if st.Revision() != m.rev {
		t.Fatalf("%s: revision %d, model %d", what, st.Revision(), m.rev)
	}
	if st.Len() != len(m.objs) {
		t.Fatalf("%s: Len %d, model %d", what, st.Len(), len(m.objs))
	}
	for k, r := range m.objs {
		if !sameRecord(st.Get(k), r) {
			t.Fatalf("%s: %s = %+v, model %+v", what, k, st.Get(k), r)
		}
	}
	for _, o := range listOptionSet() {
		want := m.list(o)
		got, more := st.List(o)
		if more || !sameRecords(got, want) {
			t.Fatalf("%s: List(%+v) = %v (more %v), model %v", what, o, keysOf(got), more, keysOf(want))
		}
		if len(want) > 2 {
			if paged := listAll(t, st, o, 2); !sameRecords(paged, want) {
				t.Fatalf("%s: paged List(%+v) = %v, model %v", what, o, keysOf(paged), keysOf(want))
			}
		}
	}
	for _, u := range append(slices.Clone(pOwners), "u") {
		if got, want := st.Dependents(u), m.dependents(u); !sameRecords(got, want) {
			t.Fatalf("%s: Dependents(%s) = %v, model %v", what, u, keysOf(got), keysOf(want))
		}
	}
}

// sameView compares two States through their public read API.
func sameView(t *testing.T, what string, a, b *State) {
	t.Helper()
	if a.Hash() != b.Hash() || a.Revision() != b.Revision() || a.Len() != b.Len() {
		t.Fatalf("%s: hash/revision/len %s/%d/%d vs %s/%d/%d", what, a.Hash(), a.Revision(), a.Len(), b.Hash(), b.Revision(), b.Len())
	}
	for _, o := range listOptionSet() {
		ga, _ := a.List(o)
		gb, _ := b.List(o)
		if !sameRecords(ga, gb) {
			t.Fatalf("%s: List(%+v) = %v vs %v", what, o, keysOf(ga), keysOf(gb))
		}
	}
	for _, u := range pOwners {
		if !sameRecords(a.Dependents(u), b.Dependents(u)) {
			t.Fatalf("%s: Dependents(%s) differ", what, u)
		}
	}
}

func TestPropertyReplicasAgree(t *testing.T) {
	for _, seed := range propSeeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			lg := generate(seed, propEntries)
			a, b := New(Options{HistorySize: 50}), New(Options{})
			for i := range lg.entries {
				applyChecked(t, a, lg, i)
				applyChecked(t, b, lg, i)
				if m, ok := lg.checkpoints[i]; ok {
					checkModel(t, fmt.Sprintf("a after entry %d", i), a.State(), m)
					if a.State().Hash() != b.State().Hash() {
						t.Fatalf("after entry %d: hashes differ", i)
					}
				}
			}
			if a.State().Hash() != b.State().Hash() || a.Revision() != b.Revision() {
				t.Fatalf("replicas diverged: %s@%d vs %s@%d", a.State().Hash(), a.Revision(), b.State().Hash(), b.Revision())
			}
			checkModel(t, "final", a.State(), lg.final)
			// Sanity: the hash does see a difference.
			mustApply(t, b, b.Revision()+1, Create(pod("z", "z"), nil, Meta{}))
			if a.State().Hash() == b.State().Hash() {
				t.Fatalf("hash ignores a new object")
			}
		})
	}
}

func TestPropertySnapshotRestore(t *testing.T) {
	for _, seed := range propSeeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			lg := generate(seed, propEntries)
			f := New(Options{})
			// A replica that restores at each checkpoint and then keeps applying the log.
			var replicas []*FSM
			applyAll := func(i int) {
				applyChecked(t, f, lg, i)
				for _, r := range replicas {
					applyChecked(t, r, lg, i)
				}
			}
			for i := 0; i < len(lg.entries); i++ {
				applyAll(i)
				m, ok := lg.checkpoints[i]
				if !ok {
					continue
				}
				// Capture now, persist later: the snapshot must not see later entries.
				snap, err := f.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				if i+1 < len(lg.entries) {
					applyAll(i + 1)
				}
				sink := &memSink{}
				if err := snap.Persist(sink); err != nil {
					t.Fatal(err)
				}
				snap.Release()
				fresh := New(Options{})
				restore(t, fresh, sink.Bytes())
				checkModel(t, fmt.Sprintf("restored at entry %d", i), fresh.State(), m)
				// Restoring over a non-empty FSM gives the same thing.
				used := New(Options{})
				mustApply(t, used, 1, Create(pod("a", "stale"), nil, onNode("n0")), Create(node("stale"), nil, Meta{Owners: []string{"u0"}}))
				restore(t, used, sink.Bytes())
				sameView(t, fmt.Sprintf("restored over data at entry %d", i), used.State(), fresh.State())
				if i+1 < len(lg.entries) {
					applyChecked(t, fresh, lg, i+1)
					i++ // every FSM has applied entry i+1 now
				}
				replicas = append(replicas, fresh)
			}
			for n, r := range replicas {
				sameView(t, fmt.Sprintf("replica %d at the end", n), r.State(), f.State())
			}
			checkModel(t, "final", f.State(), lg.final)
		})
	}
}

// expectedEvents is the reference for what a watch with o sees of evs.
func expectedEvents(o WatchOptions, evs []Event) []Event {
	var out []Event
	for _, ev := range evs {
		k := ev.Record.Key
		if ev.Revision <= o.From || k.Resource != o.Resource || (o.Namespace != "" && k.Namespace != o.Namespace) {
			continue
		}
		if o.Predicate != nil {
			now := ev.Type != Deleted && o.Predicate(ev.Record)
			before := ev.Prev != nil && o.Predicate(ev.Prev)
			switch {
			case now && before:
			case now:
				ev.Type = Added
			case before:
				ev.Type = Deleted
			default:
				continue
			}
		}
		out = append(out, ev)
	}
	return out
}

func sameEvent(a, b Event) bool {
	return a.Type == b.Type && a.Revision == b.Revision && sameRecord(a.Record, b.Record) && sameRecord(a.Prev, b.Prev)
}

type subscriber struct {
	name string
	opts WatchOptions
	w    *Watch
	want []Event
	got  chan []Event
	err  chan error
}

// consume reads exactly n events in the background.
func consume(s *subscriber) {
	go func() {
		var got []Event
		deadline := time.After(waitTimeout)
		for len(got) < len(s.want) {
			select {
			case ev, ok := <-s.w.Events():
				if !ok {
					s.err <- fmt.Errorf("ended after %d of %d events: %v", len(got), len(s.want), s.w.Err())
					return
				}
				got = append(got, ev)
			case <-deadline:
				s.err <- fmt.Errorf("only %d of %d events in %v", len(got), len(s.want), waitTimeout)
				return
			}
		}
		s.got <- got
	}()
}

func TestPropertyWatchesSeeEveryEventOnce(t *testing.T) {
	for _, seed := range propSeeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			lg := generate(seed, propEntries)
			rng := rand.New(rand.NewSource(seed * 7))
			f := New(Options{HistorySize: len(lg.events) + 10, WatchQueueLimit: len(lg.events) + 10})
			names := []string{"none", "web", "owned", "onN0"}
			randomOpts := func(from uint64) WatchOptions {
				o := WatchOptions{Resource: pResources[rng.Intn(len(pResources))], From: from}
				if o.Resource != "nodes" && rng.Intn(2) == 0 {
					o.Namespace = pNamespaces[rng.Intn(len(pNamespaces))]
				}
				o.Predicate = propPredicates[names[rng.Intn(len(names))]]
				return o
			}
			var subs []*subscriber
			open := func(name string, o WatchOptions) {
				w, err := f.Watch(o)
				if err != nil {
					t.Fatalf("%s: Watch(%+v): %v", name, o, err)
				}
				t.Cleanup(w.Stop)
				s := &subscriber{name: name, opts: o, w: w, want: expectedEvents(o, lg.events), got: make(chan []Event, 1), err: make(chan error, 1)}
				subs = append(subs, s)
				consume(s)
			}
			// From the start, one watch per resource and a few filtered ones.
			for _, res := range pResources {
				open("start "+res, WatchOptions{Resource: res})
			}
			for i := 0; i < 4; i++ {
				open(fmt.Sprint("start random ", i), randomOpts(0))
			}
			// While applying: list-then-watch at the current revision, and resumes.
			for i := range lg.entries {
				if i%400 == 200 {
					open(fmt.Sprintf("at current after entry %d", i), randomOpts(f.Revision()))
					open(fmt.Sprintf("resume during entry %d", i), randomOpts(uint64(rng.Int63n(int64(f.Revision())+1))))
				}
				applyChecked(t, f, lg, i)
			}
			// After: resumes from random past revisions, including the very last.
			last := f.Revision()
			for i := 0; i < 8; i++ {
				open(fmt.Sprint("resume after ", i), randomOpts(uint64(rng.Int63n(int64(last)+1))))
			}
			open("resume at last", randomOpts(last))
			for _, s := range subs {
				var got []Event
				select {
				case got = <-s.got:
				case err := <-s.err:
					t.Fatalf("%s (%+v): %v", s.name, s.opts, err)
				}
				for j := range s.want {
					if !sameEvent(got[j], s.want[j]) {
						t.Fatalf("%s (From %d): event %d = %s, want %s", s.name, s.opts.From, j,
							describeEvents(got[j:j+1]), describeEvents(s.want[j:j+1]))
					}
				}
			}
			// Nothing extra is queued: the next event each watch sees is the marker's.
			marker := last + 1
			var ops []Op
			for _, res := range pResources {
				nss := pNamespaces
				if res == "nodes" {
					nss = []string{""}
				}
				for _, ns := range nss {
					k := Key{Resource: res, Namespace: ns, Name: "zz-marker-" + ns}
					ops = append(ops, Create(k, nil, Meta{Labels: map[string]string{"app": "web"}, Owners: []string{"u0"}, Fields: map[string]string{"spec.nodeName": "n0"}}))
				}
			}
			mustApply(t, f, marker, ops...)
			for _, s := range subs {
				if ev := recv(t, s.w); ev.Revision != marker || !strings.HasPrefix(ev.Record.Key.Name, "zz-marker") {
					t.Fatalf("%s: after the expected events got %s", s.name, describeEvents([]Event{ev}))
				}
			}
		})
	}
}

func TestPersistCancelsSinkOnWriteError(t *testing.T) {
	f := listFixture(t)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	sink := &memSink{failWrites: boom}
	err = snap.Persist(sink)
	if !errors.Is(err, boom) {
		t.Fatalf("Persist = %v, want it to wrap %v", err, boom)
	}
	if sink.cancelled != 1 || sink.closed != 0 {
		t.Fatalf("sink cancelled %d times, closed %d times; want 1 and 0", sink.cancelled, sink.closed)
	}
	// A large state fails in the middle of the stream rather than at the final flush.
	big := New(Options{})
	for i := uint64(1); i <= 200; i++ {
		mustApply(t, big, i, Create(pod("a", fmt.Sprint(i)), make([]byte, 4096), Meta{}))
	}
	snap, _ = big.Snapshot()
	sink = &memSink{failWrites: boom}
	if err := snap.Persist(sink); !errors.Is(err, boom) || sink.cancelled != 1 || sink.closed != 0 {
		t.Fatalf("big Persist = %v, cancelled %d, closed %d", err, sink.cancelled, sink.closed)
	}
}

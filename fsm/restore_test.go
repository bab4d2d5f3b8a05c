package fsm

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// applyRestoreEntry feeds one RestoreType entry at index to f.
func applyRestoreEntry(t testing.TB, f *FSM, index uint64, entry []byte) *RestoreResult {
	t.Helper()
	res, ok := f.Apply(&raft.Log{Index: index, Data: entry}).(*RestoreResult)
	if !ok {
		t.Fatalf("Apply at %d did not return a *RestoreResult", index)
	}
	return res
}

// snapshotOf is the WriteSnapshot stream of f's state.
func snapshotOf(t testing.TB, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteSnapshot(&buf, f.State()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// restoreSource is a state worth restoring: indexed fields, owners, labels, several
// resources, objects updated after creation (so create and mod revisions differ).
func restoreSource(t *testing.T) *FSM {
	t.Helper()
	f := listFixture(t)
	rev := f.Revision()
	mustApply(t, f, rev+1, Update(pod("a", "p0"), 0, val("p0 again"), Meta{Owners: []string{"o1"}, Fields: map[string]string{"spec.nodeName": "n9"}}))
	mustApply(t, f, rev+2, Create(Key{Resource: "configmaps", Namespace: "a", Name: "cm"}, val("cm"), Meta{Owners: []string{"o1"}}))
	return f
}

func TestRestoreEntryReplacesStateKeepingRevisions(t *testing.T) {
	src := restoreSource(t)
	want := src.State()
	f := seeded(t)
	const index = 100
	entries := EncodeRestore(7, snapshotOf(t, src), nil, 0)
	if len(entries) != 1 || MessageType(entries[0][0]) != RestoreType {
		t.Fatalf("a small snapshot should be one RestoreType entry, got %d", len(entries))
	}
	res := applyRestoreEntry(t, f, index, entries[0])
	if res.Err != nil || !res.Done || res.Objects != want.Len() || res.Revision != index || res.Staged != 1 || res.Total != 1 {
		t.Fatalf("result %+v", res)
	}
	got := f.State()
	if got.Hash() != want.Hash() || got.Len() != want.Len() {
		t.Fatalf("restored state differs from the source: %d objects %s, want %d %s", got.Len(), got.Hash(), want.Len(), want.Hash())
	}
	if got.Revision() != index || f.Revision() != index {
		t.Fatalf("revision %d, want the entry's index %d", got.Revision(), index)
	}
	// Every record keeps its revisions; the target's own objects are gone.
	want.Walk(func(r *Record) bool {
		if g := got.Get(r.Key); !sameRecord(g, r) {
			t.Fatalf("%s restored as %+v, want %+v", r.Key, g, r)
		}
		return true
	})
	if got.Get(pod("a", "x")) != nil {
		t.Fatal("the replaced state's objects survived the restore")
	}
	// The indexes were rebuilt.
	for _, o := range []ListOptions{
		{Resource: "pods", Field: "spec.nodeName", FieldValue: "n9"},
		{Resource: "pods", Namespace: "b", Field: "spec.nodeName", FieldValue: "n1"},
		{Resource: "nodes"},
	} {
		a, _ := want.List(o)
		b, _ := got.List(o)
		if !sameRecords(a, b) || len(a) == 0 {
			t.Fatalf("List(%+v) after restore: %v, want %v", o, keysOf(b), keysOf(a))
		}
	}
	if a, b := keysOf(want.Dependents("o1")), keysOf(got.Dependents("o1")); strings.Join(a, ",") != strings.Join(b, ",") || len(a) != 2 {
		t.Fatalf("Dependents after restore: %v, want %v", b, a)
	}
	// The next write gets the next index, above every restored revision.
	res2 := mustApply(t, f, index+1, Update(pod("a", "p1"), 0, val("later"), Meta{}))
	if res2.Revision != index+1 || MaxRevision(f.State()) != index+1 {
		t.Fatalf("write after the restore at revision %d (max %d)", res2.Revision, MaxRevision(f.State()))
	}
}

func TestRestoreEndsWatchesAndRevisionMovesForward(t *testing.T) {
	src := restoreSource(t)
	f := New(Options{})
	singleEventLog(t, f, 1, 40)
	before := f.Revision()
	w1 := mustWatch(t, f, WatchOptions{Resource: "pods"})
	w2 := mustWatch(t, f, WatchOptions{Resource: "nodes", From: before})
	recv(t, w1)

	index := before + 1
	if index <= MaxRevision(src.State()) {
		t.Fatalf("fixture: index %d must be above the source's revisions (%d)", index, MaxRevision(src.State()))
	}
	res := applyRestoreEntry(t, f, index, EncodeRestore(1, snapshotOf(t, src), nil, 0)[0])
	if !res.Done || res.Err != nil {
		t.Fatalf("result %+v", res)
	}
	for i, w := range []*Watch{w1, w2} {
		drainUntilClosed(t, w)
		if w.Err() != ErrTooOld {
			t.Fatalf("watch %d: Err = %v, want ErrTooOld", i, w.Err())
		}
	}
	if f.Revision() != index || f.OldestWatchRevision() != index || f.Revision() <= before {
		t.Fatalf("after restore: revision %d, oldest watch %d; want %d (> %d)", f.Revision(), f.OldestWatchRevision(), index, before)
	}
	// Resuming from anything a client saw before the restore is refused: it relists.
	for _, from := range []uint64{0, 1, before, index - 1} {
		if _, err := f.Watch(WatchOptions{Resource: "pods", From: from}); err != ErrTooOld {
			t.Fatalf("From %d after restore: err = %v, want ErrTooOld", from, err)
		}
	}
	w := mustWatch(t, f, WatchOptions{Resource: "pods", From: index})
	mustApply(t, f, index+1, Create(pod("after", "restore"), val("x"), Meta{}))
	checkEvents(t, recvN(t, w, 1), []wantEvent{{Added, pod("after", "restore"), index + 1, "x"}})
}

func TestRestoreRefusesToMoveRevisionsBackwards(t *testing.T) {
	src := restoreSource(t)
	top := MaxRevision(src.State())
	f := seeded(t)
	h := f.State().Hash()
	w := mustWatch(t, f, WatchOptions{Resource: "pods", From: f.Revision()})
	for _, index := range []uint64{top - 1, top} {
		res := applyRestoreEntry(t, f, index, EncodeRestore(3, snapshotOf(t, src), nil, 0)[0])
		wantErr(t, fmt.Sprintf("restore at %d with revisions up to %d", index, top), res.Err, ErrRestoreBehind)
		if res.Done || f.State().Hash() != h || f.Revision() != index {
			t.Fatalf("a refused restore changed the objects (done %v) or did not move the revision to %d (%d)", res.Done, index, f.Revision())
		}
		if id, _, _ := f.State().PendingRestore(); id != 0 {
			t.Fatalf("a refused restore stays staged (%d)", id)
		}
	}
	// Watches go on: nothing was replaced.
	mustApply(t, f, top+1, Create(pod("a", "z"), val("z"), Meta{}))
	checkEvents(t, recvN(t, w, 1), []wantEvent{{Added, pod("a", "z"), top + 1, "z"}})
}

func TestRestoreInChunksInterleavedWithWritesAndSnapshots(t *testing.T) {
	src := restoreSource(t)
	body := snapshotOf(t, src)
	entries := EncodeRestore(42, body, nil, 64)
	if len(entries) < 5 {
		t.Fatalf("want many chunks, got %d", len(entries))
	}
	for _, e := range entries {
		if len(e) > 64+128 {
			t.Fatalf("a chunk entry of %d bytes for 64-byte chunks", len(e))
		}
	}
	f := seeded(t)
	index := uint64(1000)
	var g *FSM // joins half way from a snapshot, as a replica installing one would
	for i, e := range entries {
		for _, m := range []*FSM{f, g} {
			if m == nil {
				continue
			}
			res := applyRestoreEntry(t, m, index, e)
			if res.Err != nil || res.Staged != i+1 || res.Total != len(entries) || res.Done != (i == len(entries)-1) {
				t.Fatalf("chunk %d: result %+v", i, res)
			}
		}
		index++
		if i == len(entries)-1 {
			break
		}
		// Ordinary writes go on between chunks and are visible until the restore completes.
		for _, m := range []*FSM{f, g} {
			if m != nil {
				mustApply(t, m, index, Create(pod("between", fmt.Sprint(i)), val("w"), Meta{}))
			}
		}
		index++
		if id, staged, total := f.State().PendingRestore(); id != 42 || staged != i+1 || total != len(entries) {
			t.Fatalf("after chunk %d: pending %d %d/%d", i, id, staged, total)
		}
		if f.State().Get(pod("a", "x")) == nil || f.State().Get(pod("between", fmt.Sprint(i))) == nil {
			t.Fatalf("after chunk %d the staged restore already changed the objects", i)
		}
		if i == 2 {
			snap := snapshotBytes(t, f)
			if !bytes.HasPrefix(snap, []byte("SKIFFSN\x02")) {
				t.Fatalf("a snapshot taken mid-restore starts %q", snap[:8])
			}
			g = New(Options{})
			restore(t, g, snap)
			if g.State().Hash() != f.State().Hash() {
				t.Fatal("the staged restore did not survive a snapshot")
			}
		}
	}
	for name, m := range map[string]*FSM{"f": f, "g": g} {
		if m.State().Hash() != src.State().Hash() || m.Revision() != index-1 {
			t.Fatalf("%s: restored to %s@%d, want %s@%d", name, m.State().Hash(), m.Revision(), src.State().Hash(), index-1)
		}
		if id, _, _ := m.State().PendingRestore(); id != 0 {
			t.Fatalf("%s: a completed restore stays staged", name)
		}
		if m.State().Get(pod("between", "0")) != nil {
			t.Fatalf("%s: a write made during the restore survived it", name)
		}
	}
	// With nothing staged, snapshots keep the version 1 format.
	if snap := snapshotBytes(t, f); !bytes.HasPrefix(snap, []byte("SKIFFSN\x01")) {
		t.Fatalf("a snapshot without a staged restore starts %q", snap[:8])
	}
}

func TestRestoreKeepsSelectedRecords(t *testing.T) {
	internal := func(name string) Key { return Key{Resource: "skiff.internal", Name: name} }
	src := New(Options{})
	mustApply(t, src, 1, Create(internal("ca"), val("old ca"), Meta{}))
	mustApply(t, src, 2, Create(internal("cab"), val("snapshot cab"), Meta{}))
	mustApply(t, src, 3, Create(internal("master-api.m1"), val("old m1"), Meta{}))
	mustApply(t, src, 4, Create(internal("master-api.m9"), val("old m9"), Meta{}))
	mustApply(t, src, 5, Create(internal("serviceip.10.96.0.9"), val("a/svc"), Meta{}))
	mustApply(t, src, 6, Create(pod("a", "p"), val("p"), Meta{}))

	f := New(Options{})
	mustApply(t, f, 1, Create(internal("ca"), val("new ca"), Meta{}))
	mustApply(t, f, 2, Create(internal("master-api.m1"), val("new m1"), Meta{}))
	mustApply(t, f, 3, Create(internal("master-api.m2"), val("new m2"), Meta{}))
	mustApply(t, f, 4, Create(internal("cab"), val("current cab"), Meta{}))
	mustApply(t, f, 9, Create(Key{Resource: "skiff.internal", Namespace: "ns", Name: "master-api.x"}, val("namespaced"), Meta{}))
	keep := []KeySelector{
		{Resource: "skiff.internal", Name: "ca"},
		{Resource: "skiff.internal", Name: "master-api.", Prefix: true},
		{Resource: "skiff.internal", Name: "admin-token"}, // in neither state
	}
	res := applyRestoreEntry(t, f, 10, EncodeRestore(5, snapshotOf(t, src), keep, 0)[0])
	if !res.Done || res.Err != nil {
		t.Fatalf("result %+v", res)
	}
	st := f.State()
	want := map[Key]string{
		internal("ca"):                  "new ca",
		internal("cab"):                 "snapshot cab",
		internal("master-api.m1"):       "new m1",
		internal("master-api.m2"):       "new m2",
		internal("serviceip.10.96.0.9"): "a/svc",
		pod("a", "p"):                   "p",
	}
	if st.Len() != len(want) {
		var keys []string
		st.Walk(func(r *Record) bool { keys = append(keys, r.Key.String()); return true })
		t.Fatalf("restored %d objects %v, want %d", st.Len(), keys, len(want))
	}
	for k, v := range want {
		if r := st.Get(k); r == nil || string(r.Value) != v {
			t.Fatalf("%s = %v, want %q", k, r, v)
		}
	}
	if r := st.Get(internal("ca")); r.ModRevision != 1 {
		t.Fatalf("a kept record changed revision: %d", r.ModRevision)
	}
	if !(KeySelector{Resource: "r", Name: "ab", Prefix: true}).Matches(Key{Resource: "r", Name: "abc"}) ||
		(KeySelector{Resource: "r", Name: "ab"}).Matches(Key{Resource: "r", Name: "abc"}) ||
		(KeySelector{Resource: "r", Name: "ab", Prefix: true}).Matches(Key{Resource: "r", Namespace: "n", Name: "abc"}) {
		t.Fatal("KeySelector.Matches")
	}
}

func TestRestoreChunksOutOfOrderAbortAndChecksum(t *testing.T) {
	src := restoreSource(t)
	body := snapshotOf(t, src)
	a := EncodeRestore(1, body, nil, 100)
	b := EncodeRestore(2, body, nil, 100)
	f := seeded(t)
	h := f.State().Hash()
	index := uint64(1000)
	step := func(entry []byte) *RestoreResult {
		index++
		return applyRestoreEntry(t, f, index, entry)
	}
	pending := func() uint64 { id, _, _ := f.State().PendingRestore(); return id }

	// A chunk of a restore that never started.
	wantErr(t, "chunk 1 alone", step(a[1]).Err, ErrRestoreOutOfOrder)
	// A lost chunk ends its restore.
	step(a[0])
	wantErr(t, "chunk 2 after 0", step(a[2]).Err, ErrRestoreOutOfOrder)
	if pending() != 0 {
		t.Fatal("a restore that lost a chunk stays staged")
	}
	// A newer restore replaces the staged one; the old one's chunks are refused without
	// disturbing it.
	step(a[0])
	step(b[0])
	wantErr(t, "old restore's chunk", step(a[1]).Err, ErrRestoreOutOfOrder)
	if pending() != 2 {
		t.Fatalf("staged restore %d, want 2", pending())
	}
	// Aborts: of another restore (ignored), of this one, of whichever.
	if res := step(EncodeRestoreAbort(1)); !res.Aborted || pending() != 2 {
		t.Fatalf("abort of another restore: %+v, staged %d", res, pending())
	}
	step(EncodeRestoreAbort(2))
	if pending() != 0 {
		t.Fatal("abort left the restore staged")
	}
	wantErr(t, "chunk after abort", step(b[1]).Err, ErrRestoreOutOfOrder)
	step(b[0])
	step(EncodeRestoreAbort(0))
	if pending() != 0 {
		t.Fatal("abort 0 left the restore staged")
	}
	if f.State().Hash() != h {
		t.Fatal("refused and aborted chunks changed the objects")
	}

	// Chunks that do not add up to the announced checksum.
	c := EncodeRestore(3, body, nil, 100)
	forged, err := decodeRestoreChunk(c[len(c)-1][1:])
	if err != nil {
		t.Fatal(err)
	}
	forged.Data = bytes.Repeat([]byte{'x'}, len(forged.Data))
	c[len(c)-1] = encodeRestoreChunk(forged)
	var last *RestoreResult
	for _, e := range c {
		last = step(e)
	}
	wantErr(t, "forged chunk", last.Err, ErrRestoreChecksum)
	if last.Done || f.State().Hash() != h || pending() != 0 || f.Revision() != index {
		t.Fatalf("a restore failing its checksum changed the state (done %v, staged %d, revision %d)", last.Done, pending(), f.Revision())
	}

	// Completing b from the start still works after all that.
	for _, e := range b {
		last = step(e)
	}
	if !last.Done || f.State().Hash() != src.State().Hash() {
		t.Fatalf("restore after refusals: %+v", last)
	}
}

func TestRestoreDecodeFailuresPanic(t *testing.T) {
	good := EncodeRestore(9, snapshotOf(t, restoreSource(t)), nil, 0)[0]
	chunk := func(mutate func(c *restoreChunk)) []byte {
		c, err := decodeRestoreChunk(good[1:])
		if err != nil {
			t.Fatal(err)
		}
		mutate(c)
		return encodeRestoreChunk(c)
	}
	cases := map[string][]byte{
		"truncated":         good[:len(good)-3],
		"trailing byte":     append(append([]byte{}, good...), 0),
		"type byte only":    {byte(RestoreType)},
		"seq past total":    chunk(func(c *restoreChunk) { c.Seq = c.Total }),
		"short checksum":    chunk(func(c *restoreChunk) { c.Sum = c.Sum[:16] }),
		"no id":             chunk(func(c *restoreChunk) { c.ID = 0 }),
		"chunk beyond size": chunk(func(c *restoreChunk) { c.Size = 3 }),
		"abort with data":   encodeRestoreChunk(&restoreChunk{Data: []byte("x")}),
		// The checksum matches, so every replica got these bytes, yet they are no snapshot.
		"checksummed garbage": EncodeRestore(9, []byte("not a snapshot at all"), nil, 0)[0],
	}
	for name, entry := range cases {
		f := seeded(t)
		h := f.State().Hash()
		v, ok := panics(func() { f.Apply(&raft.Log{Index: 100, Data: entry}) })
		if !ok {
			t.Errorf("%s: Apply did not panic", name)
			continue
		}
		if !strings.Contains(fmt.Sprint(v), "index 100") {
			t.Errorf("%s: panic %q does not name the entry", name, v)
		}
		if f.State().Hash() != h || f.Revision() != 3 {
			t.Errorf("%s: a panicking entry changed the state", name)
		}
	}
	if _, ok := panics(func() { EncodeRestore(0, nil, nil, 0) }); !ok {
		t.Error("EncodeRestore with id 0 did not panic")
	}
}

func TestSnapshotFormatWithStagedRestore(t *testing.T) {
	f := seeded(t)
	entries := EncodeRestore(11, snapshotOf(t, restoreSource(t)), []KeySelector{{Resource: "r", Name: "n", Prefix: true}}, 50)
	applyRestoreEntry(t, f, 10, entries[0])
	applyRestoreEntry(t, f, 11, entries[1])
	snap := snapshotBytes(t, f)
	back, err := ReadSnapshot(bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	if back.Hash() != f.State().Hash() {
		t.Fatal("staged restore did not round-trip")
	}
	if id, staged, total := back.PendingRestore(); id != 11 || staged != 2 || total != len(entries) {
		t.Fatalf("read back pending %d %d/%d", id, staged, total)
	}
	if !bytes.Equal(back.restore.header.Sum, f.State().restore.header.Sum) || len(back.restore.header.Keep) != 1 {
		t.Fatal("staged restore header did not round-trip")
	}
	// The public form (backups, restores) never carries the staged restore.
	if b := snapshotOf(t, f); !bytes.HasPrefix(b, []byte("SKIFFSN\x01")) {
		t.Fatalf("WriteSnapshot starts %q", b[:8])
	}
	// Damage in the staged part is refused.
	for n := len(snap) - 1; n > len(snap)-40; n-- {
		if _, err := ReadSnapshot(bytes.NewReader(snap[:n])); err == nil {
			t.Fatalf("truncated at %d: accepted", n)
		}
	}
	for name, p := range map[string]*pendingRestore{
		"no chunks":      {header: restoreHeader{ID: 1, Total: 2}},
		"complete":       {header: restoreHeader{ID: 1, Total: 1, Size: 1}, chunks: [][]byte{{1}}, staged: 1},
		"no id":          {header: restoreHeader{Total: 2, Size: 1}, chunks: [][]byte{{1}}, staged: 1},
		"more than size": {header: restoreHeader{ID: 1, Total: 3, Size: 1}, chunks: [][]byte{{1, 2}}, staged: 2},
	} {
		if _, err := decodePending(encodePending(p)); err == nil {
			t.Errorf("%s: decodePending accepted it", name)
		}
	}
	// WriteSnapshotAt claims another revision and nothing else.
	var at bytes.Buffer
	if err := WriteSnapshotAt(&at, f.State(), 5000); err != nil {
		t.Fatal(err)
	}
	st, err := ReadSnapshot(&at)
	if err != nil || st.Revision() != 5000 || st.Len() != f.State().Len() {
		t.Fatalf("WriteSnapshotAt read back as %v, %v", st, err)
	}
	if id, _, _ := st.PendingRestore(); id != 0 {
		t.Fatal("WriteSnapshotAt carried the staged restore")
	}
}

// TestRestoreIsDeterministic applies the same entries to two replicas that differ only in
// when they took snapshots, and checks they agree after every entry.
func TestRestoreIsDeterministic(t *testing.T) {
	entries := EncodeRestore(77, snapshotOf(t, restoreSource(t)), nil, 80)
	a, b := seeded(t), seeded(t)
	for i, e := range entries {
		ra := applyRestoreEntry(t, a, uint64(100+i), e)
		rb := applyRestoreEntry(t, b, uint64(100+i), e)
		if fmt.Sprint(ra) != fmt.Sprint(rb) || a.State().Hash() != b.State().Hash() {
			t.Fatalf("entry %d: replicas disagree: %+v vs %+v", i, ra, rb)
		}
		if i%2 == 0 {
			restore(t, b, snapshotBytes(t, b))
		}
	}
	if a.State().Hash() != b.State().Hash() || a.State().restore != nil {
		t.Fatal("replicas disagree at the end")
	}
}

// FuzzDecodeRestore feeds arbitrary payloads to the restore decoders: they return an
// error, never panic, and a chunk that decodes re-encodes to the same bytes.
func FuzzDecodeRestore(f *testing.F) {
	for _, e := range EncodeRestore(3, []byte("SKIFFSN\x01\x05\x00"), []KeySelector{{Resource: "r", Name: "n", Prefix: true}}, 4) {
		f.Add(e[1:])
	}
	f.Add(EncodeRestoreAbort(0)[1:])
	f.Add(encodePending(&pendingRestore{header: restoreHeader{ID: 1, Total: 2, Size: 3, Sum: make([]byte, 32)}, chunks: [][]byte{{1}}, staged: 1}))
	f.Fuzz(func(t *testing.T, payload []byte) {
		if c, err := decodeRestoreChunk(payload); err == nil {
			if again := encodeRestoreChunk(c)[1:]; !bytes.Equal(again, payload) {
				t.Fatalf("re-encoded chunk differs")
			}
		}
		_, _ = decodePending(payload)
	})
}

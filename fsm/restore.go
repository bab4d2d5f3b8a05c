package fsm

// A restore replaces the whole state with a snapshot through the log while the cluster
// runs. The snapshot (a WriteSnapshot stream) is cut into chunks, one RestoreType entry
// each, so no entry grows past a few MiB however large the state is:
//
//   - the first chunk (seq 0) starts a restore: it names it (a random id chosen by the
//     proposer), and gives the number of chunks, the stream's size and SHA-256, and the keys
//     whose current records survive the restore. It replaces any restore still staged (an
//     abandoned one);
//   - every chunk is staged in State.restore, which is replicated state like the objects:
//     snapshots carry it, so a replica that installs a snapshot mid-restore, or restarts from
//     one, still holds the chunks staged before it and agrees with the others at the end;
//   - the last chunk checks size and checksum, decodes the stream and swaps the new state in
//     at once. Objects keep their revisions; the state's revision becomes the entry's index,
//     which must be above every revision in the snapshot so that resourceVersions never go
//     backwards. Every watch ends with ErrTooOld and resuming from before the restore is
//     refused, so clients relist.
//
// Ordinary writes may interleave with the chunks; they change the state being replaced.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
)

// DefaultRestoreChunkSize is how many snapshot bytes one RestoreType entry carries: small
// enough that replicating an entry never holds up heartbeats or the log for long, large
// enough that a big state needs few entries.
const DefaultRestoreChunkSize = 4 << 20

// ErrRestoreOutOfOrder is returned when a restore chunk does not continue the restore being
// staged (that restore was aborted, replaced by a newer one, or never started here).
var ErrRestoreOutOfOrder = errors.New("restore chunk does not continue the restore in progress")

// ErrRestoreChecksum is returned when a restore's chunks do not add up to the size and
// SHA-256 its first chunk announced.
var ErrRestoreChecksum = errors.New("restored snapshot does not match its announced size and checksum")

// ErrRestoreBehind is returned when the entry completing a restore has an index not above
// every revision in the snapshot: applying it would move resourceVersions backwards.
var ErrRestoreBehind = errors.New("restore entry's index is not above the snapshot's revisions")

// KeySelector matches the keys of one resource and namespace (empty: cluster-scoped) by
// exact name or, with Prefix, by name prefix. A restore keeps the current state's records
// that its selectors match and drops the snapshot's.
type KeySelector struct {
	Resource  string
	Namespace string
	Name      string
	Prefix    bool
}

// Matches reports whether k is selected.
func (s KeySelector) Matches(k Key) bool {
	if k.Resource != s.Resource || k.Namespace != s.Namespace {
		return false
	}
	if s.Prefix {
		return len(k.Name) >= len(s.Name) && k.Name[:len(s.Name)] == s.Name
	}
	return k.Name == s.Name
}

// RestoreResult is the outcome of one RestoreType entry.
type RestoreResult struct {
	// Revision is the entry's index; when Done, the restored state's revision.
	Revision uint64
	// ID names the restore the entry belongs to.
	ID uint64
	// Staged and Total count the chunks received so far and expected.
	Staged, Total int
	// Done is set by the last chunk when the state was replaced; Objects is then its size.
	Done    bool
	Objects int
	// Aborted is set by an abort entry.
	Aborted bool
	// Err is a business failure (ErrRestoreOutOfOrder, ErrRestoreChecksum,
	// ErrRestoreBehind); the state's objects are then unchanged.
	Err error
}

// restoreHeader is what every chunk says about its restore.
type restoreHeader struct {
	ID    uint64
	Total uint64 // chunks; zero marks an abort entry
	Size  uint64 // bytes of the whole snapshot stream
	Sum   []byte // its SHA-256
	Keep  []KeySelector
}

func (h *restoreHeader) sameRestore(o *restoreHeader) bool {
	return h.ID == o.ID && h.Total == o.Total && h.Size == o.Size && bytes.Equal(h.Sum, o.Sum)
}

type restoreChunk struct {
	restoreHeader
	Seq  uint64
	Data []byte
}

// pendingRestore is a restore being staged. It is immutable: each chunk makes a new one
// sharing the earlier chunks, so a State holding it stays immutable too.
type pendingRestore struct {
	header restoreHeader
	chunks [][]byte
	staged uint64 // bytes
}

func (p *pendingRestore) add(data []byte) *pendingRestore {
	chunks := append(p.chunks[:len(p.chunks):len(p.chunks)], data)
	return &pendingRestore{header: p.header, chunks: chunks, staged: p.staged + uint64(len(data))}
}

// EncodeRestore cuts a snapshot stream (as WriteSnapshot writes it) into the RestoreType
// entries of restore id, chunkSize bytes each (0: DefaultRestoreChunkSize). The records
// that keep selects are taken from the state the restore replaces, not from the snapshot.
// id must not be zero; the proposer picks it at random.
func EncodeRestore(id uint64, snapshot []byte, keep []KeySelector, chunkSize int) [][]byte {
	if id == 0 {
		panic("fsm: restore id 0 is reserved")
	}
	if chunkSize <= 0 {
		chunkSize = DefaultRestoreChunkSize
	}
	sum := sha256.Sum256(snapshot)
	total := (len(snapshot) + chunkSize - 1) / chunkSize
	if total == 0 {
		total = 1
	}
	entries := make([][]byte, 0, total)
	for seq := 0; seq < total; seq++ {
		data := snapshot[min(seq*chunkSize, len(snapshot)):min((seq+1)*chunkSize, len(snapshot))]
		c := restoreChunk{restoreHeader: restoreHeader{ID: id, Total: uint64(total), Size: uint64(len(snapshot)), Sum: sum[:]}, Seq: uint64(seq), Data: data}
		if seq == 0 {
			c.Keep = keep
		}
		entries = append(entries, encodeRestoreChunk(&c))
	}
	return entries
}

// EncodeRestoreAbort returns the entry that drops restore id while it is staged (id 0:
// whichever restore is staged), for a proposer that gives up half way.
func EncodeRestoreAbort(id uint64) []byte {
	return encodeRestoreChunk(&restoreChunk{restoreHeader: restoreHeader{ID: id}})
}

func encodeRestoreChunk(c *restoreChunk) []byte {
	e := encoder{buf: make([]byte, 0, 128+len(c.Data))}
	e.byte(byte(RestoreType))
	e.uvarint(c.ID)
	e.uvarint(c.Seq)
	e.uvarint(c.Total)
	e.uvarint(c.Size)
	e.bytes(c.Sum)
	e.keep(c.Keep)
	e.bytes(c.Data)
	return e.buf
}

func (e *encoder) keep(sels []KeySelector) {
	e.uvarint(uint64(len(sels)))
	for _, s := range sels {
		e.str(s.Resource)
		e.str(s.Namespace)
		e.str(s.Name)
		if s.Prefix {
			e.byte(1)
		} else {
			e.byte(0)
		}
	}
}

func (d *decoder) keep() []KeySelector {
	n := d.count()
	var out []KeySelector
	for i := 0; i < n && d.err == nil; i++ {
		s := KeySelector{Resource: d.str(), Namespace: d.str(), Name: d.str()}
		switch d.byte() {
		case 0:
		case 1:
			s.Prefix = true
		default:
			d.fail()
		}
		out = append(out, s)
	}
	return out
}

// decodeRestoreChunk parses the payload of a RestoreType entry (without the type byte).
func decodeRestoreChunk(payload []byte) (*restoreChunk, error) {
	d := decoder{buf: payload}
	c := &restoreChunk{}
	c.ID = d.uvarint()
	c.Seq = d.uvarint()
	c.Total = d.uvarint()
	c.Size = d.uvarint()
	c.Sum = d.bytes()
	c.Keep = d.keep()
	c.Data = d.bytes()
	if err := d.done(); err != nil {
		return nil, err
	}
	if c.Total == 0 {
		if c.Seq != 0 || c.Size != 0 || len(c.Sum) != 0 || len(c.Data) != 0 {
			return nil, errors.New("fsm: malformed restore abort")
		}
		return c, nil
	}
	switch {
	case c.ID == 0:
		return nil, errors.New("fsm: restore chunk without an id")
	case c.Seq >= c.Total:
		return nil, fmt.Errorf("fsm: restore chunk %d of %d", c.Seq, c.Total)
	case len(c.Sum) != sha256.Size:
		return nil, fmt.Errorf("fsm: restore checksum of %d bytes", len(c.Sum))
	case uint64(len(c.Data)) > c.Size:
		return nil, fmt.Errorf("fsm: restore chunk of %d bytes for a %d-byte snapshot", len(c.Data), c.Size)
	}
	return c, nil
}

// applyRestore stages one chunk of a restore, or completes it. An undecodable entry panics,
// as every undecodable entry does; so does a completed restore whose stream passes its
// checksum and still does not decode (the proposer decoded it before proposing).
func (f *FSM) applyRestore(index uint64, payload []byte) *RestoreResult {
	c, err := decodeRestoreChunk(payload)
	if err != nil {
		panic(fmt.Sprintf("fsm: decoding restore chunk at index %d: %v", index, err))
	}
	cur := f.state.Load()
	res := &RestoreResult{Revision: index, ID: c.ID}
	p := cur.restore
	switch {
	case c.Total == 0:
		if p != nil && (c.ID == 0 || c.ID == p.header.ID) {
			p = nil
		}
		res.Aborted = true
	case c.Seq == 0:
		p = (&pendingRestore{header: c.restoreHeader}).add(c.Data)
	case p == nil || p.header.ID != c.ID:
		// Another restore (or none) is staged: leave it alone.
		res.Err = ErrRestoreOutOfOrder
	case uint64(len(p.chunks)) != c.Seq || !p.header.sameRestore(&c.restoreHeader):
		// This restore lost a chunk: it can never complete.
		res.Err = ErrRestoreOutOfOrder
		p = nil
	default:
		p = p.add(c.Data)
	}
	if p != nil {
		res.Staged, res.Total = len(p.chunks), int(p.header.Total)
	}
	if p == nil || uint64(len(p.chunks)) < p.header.Total {
		f.setState(cur.withRestore(p, index))
		return res
	}
	next, err := finishRestore(cur, p, index)
	if err != nil {
		res.Err = err
		f.setState(cur.withRestore(nil, index))
		return res
	}
	f.setState(next)
	f.hub.reset(index)
	res.Done, res.Objects = true, next.Len()
	return res
}

// finishRestore builds the state a complete restore leaves at index: the snapshot's
// records, except that the records the restore keeps come from cur.
func finishRestore(cur *State, p *pendingRestore, index uint64) (*State, error) {
	body := make([]byte, 0, p.staged)
	for _, c := range p.chunks {
		body = append(body, c...)
	}
	if sum := sha256.Sum256(body); uint64(len(body)) != p.header.Size || !bytes.Equal(sum[:], p.header.Sum) {
		return nil, ErrRestoreChecksum
	}
	st, err := ReadSnapshot(bytes.NewReader(body))
	if err != nil {
		panic(fmt.Sprintf("fsm: restore completed at index %d passes its checksum but does not decode: %v", index, err))
	}
	if top := MaxRevision(st); top >= index {
		return nil, fmt.Errorf("%w: entry %d, snapshot revision %d", ErrRestoreBehind, index, top)
	}
	tx := st.txn()
	tx.restore = nil
	for _, sel := range p.header.Keep {
		for _, r := range st.selected(sel) {
			tx.delete(r.Key)
		}
		for _, r := range cur.selected(sel) {
			tx.put(r)
		}
	}
	return tx.commit(index), nil
}

// selected lists the records sel matches, in key order.
func (s *State) selected(sel KeySelector) []*Record {
	k := Key{Resource: sel.Resource, Namespace: sel.Namespace, Name: sel.Name}
	if !sel.Prefix {
		if r := s.Get(k); r != nil {
			return []*Record{r}
		}
		return nil
	}
	var out []*Record
	s.objects.Root().WalkPrefix(objectKey(k), func(_ []byte, v interface{}) bool {
		r := v.(*Record)
		if sel.Matches(r.Key) {
			out = append(out, r)
		}
		return false
	})
	return out
}

// withRestore is s at revision with p as its staged restore.
func (s *State) withRestore(p *pendingRestore, revision uint64) *State {
	n := s.at(revision)
	n.restore = p
	return n
}

// PendingRestore describes the restore being staged: its id and how many of its chunks have
// arrived. id is zero when none is.
func (s *State) PendingRestore() (id uint64, staged, total int) {
	if s.restore == nil {
		return 0, 0, 0
	}
	return s.restore.header.ID, len(s.restore.chunks), int(s.restore.header.Total)
}

// MaxRevision is the highest revision st mentions: its own and any object's. A restore of
// st must complete at a higher index.
func MaxRevision(st *State) uint64 {
	top := st.revision
	st.Walk(func(r *Record) bool {
		top = max(top, r.ModRevision, r.CreateRevision)
		return true
	})
	return top
}

// encodePending is the snapshot form of a staged restore.
func encodePending(p *pendingRestore) []byte {
	e := encoder{buf: make([]byte, 0, 128+p.staged)}
	e.uvarint(p.header.ID)
	e.uvarint(p.header.Total)
	e.uvarint(p.header.Size)
	e.bytes(p.header.Sum)
	e.keep(p.header.Keep)
	e.uvarint(uint64(len(p.chunks)))
	for _, c := range p.chunks {
		e.bytes(c)
	}
	return e.buf
}

func decodePending(b []byte) (*pendingRestore, error) {
	d := decoder{buf: b}
	p := &pendingRestore{}
	p.header.ID = d.uvarint()
	p.header.Total = d.uvarint()
	p.header.Size = d.uvarint()
	p.header.Sum = d.bytes()
	p.header.Keep = d.keep()
	n := d.count()
	for i := 0; i < n && d.err == nil; i++ {
		c := d.bytes()
		p.chunks = append(p.chunks, c)
		p.staged += uint64(len(c))
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if p.header.ID == 0 || len(p.chunks) == 0 || uint64(len(p.chunks)) >= p.header.Total || p.staged > p.header.Size {
		return nil, errors.New("fsm: malformed staged restore")
	}
	return p, nil
}

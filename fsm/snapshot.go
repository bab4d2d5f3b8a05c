package fsm

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// snapshotMagic starts every snapshot stream; the last byte is the format version.
var snapshotMagic = []byte("SKIFFSN\x01")

// Snapshot captures the current state. It is O(1): the state is immutable.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{state: f.state.Load()}, nil
}

type snapshot struct{ state *State }

// Persist streams the captured state to sink and cancels the sink on any error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := WriteSnapshot(sink, s.state); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persisting snapshot at revision %d: %w", s.state.revision, err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// WriteSnapshot writes st in the snapshot format: magic, revision, object count, then one
// length-prefixed record per object in key order.
func WriteSnapshot(w io.Writer, st *State) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	var e encoder
	e.buf = append(e.buf, snapshotMagic...)
	e.uvarint(st.revision)
	e.uvarint(uint64(st.Len()))
	if _, err := bw.Write(e.buf); err != nil {
		return err
	}
	var werr error
	st.Walk(func(r *Record) bool {
		e.buf = e.buf[:0]
		e.record(r)
		var lenBuf [binary.MaxVarintLen64]byte
		n := binary.PutUvarint(lenBuf[:], uint64(len(e.buf)))
		if _, werr = bw.Write(lenBuf[:n]); werr != nil {
			return false
		}
		_, werr = bw.Write(e.buf)
		return werr == nil
	})
	if werr != nil {
		return werr
	}
	return bw.Flush()
}

// ReadSnapshot parses a snapshot stream into a new State.
func ReadSnapshot(r io.Reader) (*State, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("reading snapshot header: %w", err)
	}
	if string(magic) != string(snapshotMagic) {
		return nil, errors.New("not a skiff snapshot (bad magic or unsupported version)")
	}
	revision, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("reading snapshot revision: %w", err)
	}
	count, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("reading snapshot count: %w", err)
	}
	tx := emptyState().txn()
	var buf []byte
	for i := uint64(0); i < count; i++ {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("reading record %d: %w", i, err)
		}
		if n > 1<<30 {
			return nil, fmt.Errorf("record %d claims %d bytes", i, n)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, fmt.Errorf("reading record %d: %w", i, err)
		}
		d := decoder{buf: buf}
		rec := d.record()
		if err := d.done(); err != nil {
			return nil, fmt.Errorf("decoding record %d: %w", i, err)
		}
		tx.put(rec)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, errors.New("trailing data after the last snapshot record")
	}
	return tx.commit(revision), nil
}

// Restore replaces the whole state with the snapshot in rc. The new state is built aside and
// swapped in at once; every open watch ends with ErrTooOld so its client relists.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := ReadSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restoring snapshot: %w", err)
	}
	f.setState(st)
	f.hub.reset(st.revision)
	return nil
}

// Hash is a digest of every object (key, revisions, value, metadata) in key order. Two
// replicas that applied the same log have the same hash.
func (s *State) Hash() string {
	h := sha256.New()
	var e encoder
	s.Walk(func(r *Record) bool {
		e.buf = e.buf[:0]
		e.record(r)
		h.Write(e.buf)
		return true
	})
	return hex.EncodeToString(h.Sum(nil))
}

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
// Version 2 is version 1 followed by a staged restore (restore.go); it is written only while
// one is staged, so every other snapshot stays readable by older versions.
var (
	snapshotMagic        = []byte("SKIFFSN\x01")
	snapshotMagicPending = []byte("SKIFFSN\x02")
)

// maxPendingRestore bounds the staged restore a snapshot may claim to carry.
const maxPendingRestore = 4 << 30

// Snapshot captures the current state. It is O(1): the state is immutable.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{state: f.state.Load()}, nil
}

type snapshot struct{ state *State }

// Persist streams the captured state, with any restore being staged, to sink and cancels
// the sink on any error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.state, true); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persisting snapshot at revision %d: %w", s.state.revision, err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// WriteSnapshot writes st's objects in the snapshot format: magic, revision, object count,
// then one length-prefixed record per object in key order. A restore being staged is left
// out: this is the form backups and restores carry.
func WriteSnapshot(w io.Writer, st *State) error {
	return writeSnapshot(w, st, false)
}

// WriteSnapshotAt is WriteSnapshot with the stream claiming revision instead of st's own.
// It exists for one purpose: moving the Raft index past a snapshot about to be restored
// into a cluster whose log is shorter (see raft.Node.Restore).
func WriteSnapshotAt(w io.Writer, st *State, revision uint64) error {
	return writeSnapshot(w, st.withRestore(nil, revision), false)
}

// writeSnapshot writes st, with its staged restore when withPending is set and there is one
// (format version 2: a length-prefixed staged restore after the records).
func writeSnapshot(w io.Writer, st *State, withPending bool) error {
	pending := withPending && st.restore != nil
	bw := bufio.NewWriterSize(w, 256<<10)
	var e encoder
	if pending {
		e.buf = append(e.buf, snapshotMagicPending...)
	} else {
		e.buf = append(e.buf, snapshotMagic...)
	}
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
	if pending {
		e.buf = e.buf[:0]
		e.bytes(encodePending(st.restore))
		if _, err := bw.Write(e.buf); err != nil {
			return err
		}
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
	pending := string(magic) == string(snapshotMagicPending)
	if string(magic) != string(snapshotMagic) && !pending {
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
	if pending {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("reading the staged restore: %w", err)
		}
		if n > maxPendingRestore {
			return nil, fmt.Errorf("staged restore claims %d bytes", n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fmt.Errorf("reading the staged restore: %w", err)
		}
		if tx.restore, err = decodePending(b); err != nil {
			return nil, fmt.Errorf("decoding the staged restore: %w", err)
		}
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

// Hash is a digest of every object (key, revisions, value, metadata) in key order, and of
// the restore being staged if there is one. Two replicas that applied the same log have
// the same hash.
func (s *State) Hash() string {
	h := sha256.New()
	var e encoder
	s.Walk(func(r *Record) bool {
		e.buf = e.buf[:0]
		e.record(r)
		h.Write(e.buf)
		return true
	})
	if s.restore != nil {
		// No record starts with a zero byte: it starts with its non-empty resource's length.
		h.Write([]byte{0})
		h.Write(encodePending(s.restore))
	}
	return hex.EncodeToString(h.Sum(nil))
}

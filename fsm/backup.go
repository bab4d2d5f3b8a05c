package fsm

// A backup file is a snapshot stream wrapped for life outside the cluster:
//
//	"SKIFFBAK"              8 bytes of magic
//	format version          uvarint (1)
//	header                  uvarint length, then JSON (BackupInfo)
//	snapshot                the WriteSnapshot stream of the state
//	"SKIFFSUM" + SHA-256    of every byte before the trailer
//
// The trailer comes last so that a backup can be streamed while it is taken; a file cut
// short has no valid trailer, and one changed anywhere fails the checksum. ReadBackup
// verifies both and, besides, that the decoded state matches the header's revision, object
// count and state hash.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// BackupFormatVersion is the backup file format this package writes.
const BackupFormatVersion = 1

var (
	backupMagic   = []byte("SKIFFBAK")
	backupTrailer = []byte("SKIFFSUM")
)

const (
	backupTrailerLen = 8 + sha256.Size
	maxBackupHeader  = 1 << 20
)

// ErrBackupCorrupt is returned when a backup file is truncated, fails its checksum, is not
// a skiff backup at all, or does not decode.
var ErrBackupCorrupt = errors.New("snapshot file is corrupt")

// BackupInfo is the header of a backup file: where and when the snapshot was taken and
// what it holds.
type BackupInfo struct {
	FormatVersion int `json:"formatVersion"`
	// Revision is the store revision of the state (the Raft index of the last entry it
	// includes).
	Revision uint64 `json:"revision"`
	// Term and Index are the Raft term and applied index of the master that took it.
	Term  uint64 `json:"term"`
	Index uint64 `json:"index"`
	// Objects is the number of objects; Hash is State.Hash of the state.
	Objects int    `json:"objects"`
	Hash    string `json:"hash"`
	// Node is the master that took it, Version its skiff version.
	Node      string    `json:"node,omitempty"`
	Version   string    `json:"version,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Backup is a verified, decoded backup file.
type Backup struct {
	Info  BackupInfo
	State *State
	// Size is the file's length in bytes, Checksum the SHA-256 its trailer holds.
	Size     int64
	Checksum [sha256.Size]byte
}

// WriteBackup writes st as a backup file to w. Revision, Objects, Hash and FormatVersion of
// info are filled in from st; the caller supplies the rest. It returns the bytes written.
func WriteBackup(w io.Writer, st *State, info BackupInfo) (int64, error) {
	info.FormatVersion = BackupFormatVersion
	info.Revision, info.Objects, info.Hash = st.Revision(), st.Len(), st.Hash()
	header, err := json.Marshal(info)
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, h)}
	var e encoder
	e.buf = append(e.buf, backupMagic...)
	e.uvarint(BackupFormatVersion)
	e.bytes(header)
	if _, err := cw.Write(e.buf); err != nil {
		return cw.n, err
	}
	if err := WriteSnapshot(cw, st); err != nil {
		return cw.n, err
	}
	trailer := h.Sum(append([]byte(nil), backupTrailer...))
	n, err := w.Write(trailer)
	return cw.n + int64(n), err
}

// ReadBackup reads and verifies a backup file. Every failure to verify is ErrBackupCorrupt,
// wrapped with what was wrong. Checksum and truncation are judged before anything that
// depends on the content, so a damaged file is reported as damaged rather than as whatever
// its damaged bytes happen to look like.
func ReadBackup(r io.Reader) (*Backup, error) {
	hb := &holdback{r: r, h: sha256.New(), keep: backupTrailerLen}
	b, parseErr := readBackupBody(hb)
	if parseErr != nil {
		if _, err := io.Copy(io.Discard, hb); err != nil {
			return nil, fmt.Errorf("reading snapshot file: %w", err)
		}
	}
	if err := hb.verify(); err != nil {
		return nil, err
	}
	tail := hb.tail()
	size := hb.n + int64(len(tail))
	if parseErr != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackupCorrupt, parseErr)
	}
	b.Size = size
	copy(b.Checksum[:], tail[8:])
	if got := b.State.Revision(); got != b.Info.Revision {
		return nil, fmt.Errorf("%w: header says revision %d, snapshot holds %d", ErrBackupCorrupt, b.Info.Revision, got)
	}
	if got := b.State.Len(); got != b.Info.Objects {
		return nil, fmt.Errorf("%w: header says %d objects, snapshot holds %d", ErrBackupCorrupt, b.Info.Objects, got)
	}
	if got := b.State.Hash(); got != b.Info.Hash {
		return nil, fmt.Errorf("%w: header says state hash %s, snapshot hashes to %s", ErrBackupCorrupt, b.Info.Hash, got)
	}
	return b, nil
}

// readBackupBody parses everything before the trailer.
func readBackupBody(r io.Reader) (*Backup, error) {
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		return nil, fmt.Errorf("reading the magic: %w", err)
	}
	if !bytes.Equal(magic, backupMagic) {
		return nil, errors.New("not a skiff snapshot file")
	}
	br := &byteReader{r: r}
	version, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("reading the format version: %w", err)
	}
	if version != BackupFormatVersion {
		return nil, fmt.Errorf("format version %d is not one this skiff reads (%d)", version, BackupFormatVersion)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	if n > maxBackupHeader {
		return nil, fmt.Errorf("header claims %d bytes", n)
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	b := &Backup{}
	if err := json.Unmarshal(header, &b.Info); err != nil {
		return nil, fmt.Errorf("decoding the header: %w", err)
	}
	if b.State, err = ReadSnapshot(r); err != nil {
		return nil, err
	}
	return b, nil
}

// holdback passes its reader's bytes through, hashing them, except the last keep bytes,
// which it holds back: at EOF they are the trailer (tail).
type holdback struct {
	r    io.Reader
	h    hash.Hash
	keep int
	buf  []byte // read, not yet passed on
	eof  bool
	err  error
	n    int64  // bytes passed on
	head []byte // the first bytes read, to recognise foreign files
}

func (hb *holdback) Read(p []byte) (int, error) {
	for {
		if avail := len(hb.buf) - hb.keep; avail > 0 && len(p) > 0 {
			k := copy(p, hb.buf[:avail])
			hb.h.Write(p[:k])
			hb.n += int64(k)
			hb.buf = append(hb.buf[:0], hb.buf[k:]...)
			return k, nil
		}
		if hb.eof || hb.err != nil {
			return 0, io.EOF
		}
		var chunk [64 << 10]byte
		n, err := hb.r.Read(chunk[:])
		hb.buf = append(hb.buf, chunk[:n]...)
		if len(hb.head) < len(backupMagic) {
			hb.head = append(hb.head, chunk[:min(n, len(backupMagic)-len(hb.head))]...)
		}
		if err == io.EOF {
			hb.eof = true
		} else if err != nil {
			hb.err = err
		}
	}
}

// VerifyBackup reads r to its end and checks that it is a whole, unchanged backup file
// (magic, trailer, SHA-256) without decoding anything, in constant memory. Call it before
// ReadBackup on input that may be damaged: ReadBackup decodes as it reads, and a damaged
// length field could make it allocate far more than the file holds before the checksum
// at the end tells it the file is damaged.
func VerifyBackup(r io.Reader) error {
	hb := &holdback{r: r, h: sha256.New(), keep: backupTrailerLen}
	if _, err := io.Copy(io.Discard, hb); err != nil {
		return fmt.Errorf("reading snapshot file: %w", err)
	}
	return hb.verify()
}

// verify judges what hb read, once it is at EOF: read errors, the magic, the trailer and
// the checksum, in that order.
func (hb *holdback) verify() error {
	if hb.err != nil {
		return fmt.Errorf("reading snapshot file: %w", hb.err)
	}
	tail := hb.tail()
	size := hb.n + int64(len(tail))
	if !bytes.HasPrefix(hb.head, backupMagic) && !(len(hb.head) < len(backupMagic) && bytes.HasPrefix(backupMagic, hb.head)) {
		return fmt.Errorf("%w: not a skiff snapshot file", ErrBackupCorrupt)
	}
	if len(tail) < backupTrailerLen || !bytes.Equal(tail[:8], backupTrailer) {
		return fmt.Errorf("%w: it ends after %d bytes without its checksum trailer (truncated?)", ErrBackupCorrupt, size)
	}
	if !bytes.Equal(tail[8:], hb.h.Sum(nil)) {
		return fmt.Errorf("%w: checksum mismatch (the file was changed or damaged)", ErrBackupCorrupt)
	}
	return nil
}

// tail is what was held back: the trailer, once the reader is at EOF.
func (hb *holdback) tail() []byte { return hb.buf }

// byteReader reads single bytes from r without reading ahead.
type byteReader struct{ r io.Reader }

func (b *byteReader) ReadByte() (byte, error) {
	var one [1]byte
	_, err := io.ReadFull(b.r, one[:])
	return one[0], err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func backupBytes(t *testing.T, st *State, info BackupInfo) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := WriteBackup(&buf, st, info)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteBackup reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func TestBackupRoundTrip(t *testing.T) {
	st := restoreSource(t).State()
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	file := backupBytes(t, st, BackupInfo{Term: 4, Index: st.Revision() + 2, Node: "m2", Version: "v1.2.3", CreatedAt: created, Revision: 999})
	if !bytes.HasPrefix(file, []byte("SKIFFBAK\x01")) {
		t.Fatalf("file starts %q", file[:9])
	}
	sum := sha256.Sum256(file[:len(file)-40])
	if !bytes.Equal(file[len(file)-40:], append([]byte("SKIFFSUM"), sum[:]...)) {
		t.Fatal("the trailer is not SKIFFSUM and the SHA-256 of what precedes it")
	}
	for name, r := range map[string]func() *bytes.Reader{
		"whole": func() *bytes.Reader { return bytes.NewReader(file) },
	} {
		for _, wrap := range []string{"plain", "one byte at a time"} {
			var b *Backup
			var err error
			if wrap == "plain" {
				b, err = ReadBackup(r())
			} else {
				b, err = ReadBackup(iotest.OneByteReader(r()))
			}
			if err != nil {
				t.Fatalf("%s, %s: %v", name, wrap, err)
			}
			want := BackupInfo{FormatVersion: 1, Revision: st.Revision(), Term: 4, Index: st.Revision() + 2, Objects: st.Len(), Hash: st.Hash(), Node: "m2", Version: "v1.2.3", CreatedAt: created}
			if b.Info != want {
				t.Fatalf("%s: info %+v, want %+v", wrap, b.Info, want)
			}
			if b.State.Hash() != st.Hash() || b.State.Revision() != st.Revision() || b.Size != int64(len(file)) || !bytes.Equal(b.Checksum[:], sum[:]) {
				t.Fatalf("%s: read back %s@%d, %d bytes", wrap, b.State.Hash(), b.State.Revision(), b.Size)
			}
		}
	}
	// An empty state is a valid backup too.
	if b, err := ReadBackup(bytes.NewReader(backupBytes(t, emptyState(), BackupInfo{}))); err != nil || b.State.Len() != 0 {
		t.Fatalf("empty backup: %v", err)
	}
}

func TestBackupRefusesDamage(t *testing.T) {
	st := restoreSource(t).State()
	file := backupBytes(t, st, BackupInfo{Node: "m1"})
	bad := map[string][]byte{
		"empty":          nil,
		"not a backup":   []byte("hello, this is a text file and nothing like a snapshot at all......"),
		"a raw snapshot": snapshotOf(t, restoreSource(t)),
		"appended byte":  append(append([]byte{}, file...), 0),
	}
	for n := 0; n < len(file); n += 1 + n/30 {
		bad[fmt.Sprintf("truncated at %d", n)] = file[:n]
	}
	for i := 0; i < len(file); i += 1 + i/20 {
		b := append([]byte{}, file...)
		b[i] ^= 0x40
		bad[fmt.Sprintf("byte %d flipped", i)] = b
	}
	// A well-formed, correctly checksummed file whose header lies about its content.
	for field, lie := range map[string]func(*BackupInfo){
		"revision": func(i *BackupInfo) { i.Revision++ },
		"objects":  func(i *BackupInfo) { i.Objects-- },
		"hash":     func(i *BackupInfo) { i.Hash = strings.Repeat("0", 64) },
	} {
		bad["header lies about "+field] = rewriteHeader(t, file, lie)
	}
	bad["newer format"] = rewriteVersion(file, 2)
	for name, b := range bad {
		_, err := ReadBackup(bytes.NewReader(b))
		if !errors.Is(err, ErrBackupCorrupt) {
			t.Errorf("%s: err = %v, want ErrBackupCorrupt", name, err)
			continue
		}
		msg := err.Error()
		switch {
		case strings.HasPrefix(name, "truncated") && !strings.Contains(msg, "truncated") && !strings.Contains(msg, "not a skiff"):
			t.Errorf("%s: %v does not say truncated", name, err)
		case strings.HasPrefix(name, "byte") && !strings.Contains(msg, "checksum") && !strings.Contains(msg, "not a skiff") && !strings.Contains(msg, "trailer"):
			t.Errorf("%s: %v does not say checksum", name, err)
		case name == "not a backup" && !strings.Contains(msg, "not a skiff snapshot file"):
			t.Errorf("%s: %v", name, err)
		case strings.HasPrefix(name, "header lies") && !strings.Contains(msg, "header says"):
			t.Errorf("%s: %v", name, err)
		case name == "newer format" && !strings.Contains(msg, "format version 2"):
			t.Errorf("%s: %v", name, err)
		}
	}
	// A failing reader is an I/O error, not a corrupt file.
	if _, err := ReadBackup(iotest.TimeoutReader(bytes.NewReader(file))); err == nil || errors.Is(err, ErrBackupCorrupt) {
		t.Errorf("failing reader: err = %v", err)
	}
	// VerifyBackup, which decodes nothing, refuses every damaged file; a sealed file that
	// lies in its header is left to ReadBackup.
	if err := VerifyBackup(bytes.NewReader(file)); err != nil {
		t.Errorf("VerifyBackup of a good file: %v", err)
	}
	for name, b := range bad {
		err := VerifyBackup(bytes.NewReader(b))
		sealed := strings.HasPrefix(name, "header lies") || name == "newer format"
		if sealed && err != nil || !sealed && !errors.Is(err, ErrBackupCorrupt) {
			t.Errorf("VerifyBackup, %s: err = %v", name, err)
		}
	}
}

// rewriteHeader changes the JSON header of a backup file and re-seals it.
func rewriteHeader(t *testing.T, file []byte, change func(*BackupInfo)) []byte {
	t.Helper()
	d := decoder{buf: file[9:]}
	header := d.bytes()
	rest := d.buf
	var info BackupInfo
	if err := json.Unmarshal(header, &info); err != nil {
		t.Fatal(err)
	}
	change(&info)
	nh, _ := json.Marshal(info)
	var e encoder
	e.buf = append(e.buf, file[:9]...)
	e.bytes(nh)
	e.buf = append(e.buf, rest[:len(rest)-40]...)
	return reseal(e.buf)
}

func rewriteVersion(file []byte, v uint64) []byte {
	out := append([]byte("SKIFFBAK"), binary.AppendUvarint(nil, v)...)
	out = append(out, file[9:len(file)-40]...)
	return reseal(out)
}

func reseal(body []byte) []byte {
	sum := sha256.Sum256(body)
	return append(append(body, "SKIFFSUM"...), sum[:]...)
}

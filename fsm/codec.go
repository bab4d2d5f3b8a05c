package fsm

import (
	"encoding/binary"
	"errors"
)

// errShortBuffer is returned when a decoder runs past the end of its input.
var errShortBuffer = errors.New("fsm: truncated encoding")

// encoder appends the compact, deterministic binary form used for Raft entries, forwarded
// results and snapshot records. Maps are written in key order so equal values encode equally.
type encoder struct{ buf []byte }

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) byte(b byte)      { e.buf = append(e.buf, b) }
func (e *encoder) bytes(b []byte)   { e.uvarint(uint64(len(b))); e.buf = append(e.buf, b...) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.buf = append(e.buf, s...) }

func (e *encoder) strMap(m map[string]string) {
	e.uvarint(uint64(len(m)))
	for _, k := range sortedKeys(m) {
		e.str(k)
		e.str(m[k])
	}
}

func (e *encoder) key(k Key) {
	e.str(k.Resource)
	e.str(k.Namespace)
	e.str(k.Name)
}

func (e *encoder) meta(m Meta) {
	e.strMap(m.Labels)
	e.uvarint(uint64(len(m.Owners)))
	for _, o := range m.Owners {
		e.str(o)
	}
	e.strMap(m.Fields)
}

func (e *encoder) record(r *Record) {
	e.key(r.Key)
	e.uvarint(r.CreateRevision)
	e.uvarint(r.ModRevision)
	e.bytes(r.Value)
	e.meta(r.Meta)
}

// decoder reads what encoder wrote. The first failure sticks in err and every later read
// returns zero values, so callers check err once at the end.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail() { d.err = errShortBuffer; d.buf = nil }

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.buf) < 1 {
		d.fail()
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

// count reads a length and rejects one that could not fit in the rest of the input, so a
// corrupt length cannot make the decoder allocate without bound.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.count()
	if d.err != nil {
		return nil
	}
	b := make([]byte, n)
	copy(b, d.buf[:n])
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) str() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := string(d.buf[:n])
	d.buf = d.buf[n:]
	return s
}

func (d *decoder) strMap() map[string]string {
	n := d.count()
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

func (d *decoder) key() Key {
	return Key{Resource: d.str(), Namespace: d.str(), Name: d.str()}
}

func (d *decoder) meta() Meta {
	var m Meta
	m.Labels = d.strMap()
	if n := d.count(); n > 0 {
		m.Owners = make([]string, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			m.Owners = append(m.Owners, d.str())
		}
	}
	m.Fields = d.strMap()
	return m
}

func (d *decoder) record() *Record {
	r := &Record{}
	r.Key = d.key()
	r.CreateRevision = d.uvarint()
	r.ModRevision = d.uvarint()
	r.Value = d.bytes()
	r.Meta = d.meta()
	return r
}

// done reports the sticky error, or an error if input is left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.buf) != 0 {
		return errors.New("fsm: trailing bytes after encoding")
	}
	return d.err
}

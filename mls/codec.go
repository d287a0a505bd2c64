package mls

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The TLS presentation language of RFC 9420 §2.1: fixed-width big-endian
// integers, and vectors prefixed by a variable-length integer giving their
// size in bytes. Writer appends to a byte slice and never fails; Reader keeps
// the first error it meets (a "sticky" error) so that a decoder can read a
// whole struct and check once at the end.

// Decoding errors. Every failure to decode wraps one of these.
var (
	ErrTruncated    = errors.New("mls: input truncated")
	ErrVarint       = errors.New("mls: invalid variable-length integer")
	ErrTrailingData = errors.New("mls: trailing data after value")
	ErrInvalidValue = errors.New("mls: invalid value")
)

// maxVarint is the largest length a variable-length integer can carry.
const maxVarint = 1<<30 - 1

// Writer builds the wire encoding of MLS structures.
type Writer struct {
	buf []byte
}

// NewWriter returns a Writer with room for size bytes.
func NewWriter(size int) *Writer { return &Writer{buf: make([]byte, 0, size)} }

// Bytes returns the bytes written so far.
func (w *Writer) Bytes() []byte { return w.buf }

// Len returns the number of bytes written so far.
func (w *Writer) Len() int { return len(w.buf) }

func (w *Writer) U8(v uint8)   { w.buf = append(w.buf, v) }
func (w *Writer) U16(v uint16) { w.buf = binary.BigEndian.AppendUint16(w.buf, v) }
func (w *Writer) U32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }
func (w *Writer) U64(v uint64) { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }

// Bool writes a boolean as one byte, 0 or 1.
func (w *Writer) Bool(v bool) {
	if v {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// Raw appends b with no length prefix (fixed-size fields).
func (w *Writer) Raw(b []byte) { w.buf = append(w.buf, b...) }

// Varint writes n as a minimal-length MLS variable-length integer.
// It panics if n does not fit in 30 bits: that is a programming error, since
// no MLS structure built by this package can be a gigabyte long.
func (w *Writer) Varint(n int) {
	switch {
	case n < 0 || n > maxVarint:
		panic(fmt.Sprintf("mls: vector length %d out of range", n))
	case n < 1<<6:
		w.U8(uint8(n))
	case n < 1<<14:
		w.U16(uint16(n) | 0x4000)
	default:
		w.U32(uint32(n) | 0x80000000)
	}
}

// Opaque writes opaque<V>: a length-prefixed byte string.
func (w *Writer) Opaque(b []byte) {
	w.Varint(len(b))
	w.Raw(b)
}

// Vector writes a length-prefixed vector whose contents body appends.
func (w *Writer) Vector(body func(w *Writer)) {
	start := len(w.buf)
	w.buf = append(w.buf, 0, 0, 0, 0) // room for the longest prefix
	body(w)
	n := len(w.buf) - start - 4
	var hdr Writer
	hdr.buf = w.buf[start:start]
	hdr.Varint(n)
	h := len(hdr.buf)
	if h < 4 {
		copy(w.buf[start+h:], w.buf[start+4:])
		w.buf = w.buf[:start+h+n]
	}
}

// Optional writes optional<T>: a presence byte, then the value if present.
func (w *Writer) Optional(present bool, body func(w *Writer)) {
	w.Bool(present)
	if present {
		body(w)
	}
}

// Reader decodes the wire encoding of MLS structures. After the first error
// every read returns a zero value; Err reports that first error.
type Reader struct {
	b   []byte
	err *error
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader {
	var err error
	return &Reader{b: b, err: &err}
}

// Err returns the first error met by this reader or any sub-reader.
func (r *Reader) Err() error { return *r.err }

// Fail records err (if no error is recorded yet) and stops further reads.
func (r *Reader) Fail(err error) {
	if *r.err == nil {
		*r.err = err
	}
	r.b = nil
}

// Failf records a formatted ErrInvalidValue error.
func (r *Reader) Failf(format string, args ...any) {
	r.Fail(fmt.Errorf("%w: "+format, append([]any{ErrInvalidValue}, args...)...))
}

// Empty reports whether all input has been read (or an error occurred).
func (r *Reader) Empty() bool { return len(r.b) == 0 }

// Remaining returns the number of unread bytes.
func (r *Reader) Remaining() int { return len(r.b) }

// Finish returns the first error, or ErrTrailingData if input is left over.
func (r *Reader) Finish() error {
	if err := r.Err(); err != nil {
		return err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes", ErrTrailingData, len(r.b))
	}
	return nil
}

func (r *Reader) take(n int) []byte {
	if *r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.Fail(fmt.Errorf("%w: need %d bytes, have %d", ErrTruncated, n, len(r.b)))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *Reader) U8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *Reader) U16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return uint16(b[0])<<8 | uint16(b[1])
}

func (r *Reader) U32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (r *Reader) U64() uint64 {
	hi := r.U32()
	return uint64(hi)<<32 | uint64(r.U32())
}

// Bool reads a one-byte boolean; any value other than 0 or 1 is an error.
func (r *Reader) Bool() bool {
	v := r.U8()
	if v > 1 {
		r.Failf("boolean byte %d", v)
		return false
	}
	return v == 1
}

// Raw reads n bytes with no length prefix. The result aliases the input.
func (r *Reader) Raw(n int) []byte { return r.take(n) }

// Varint reads a variable-length integer and insists on its minimal encoding.
func (r *Reader) Varint() int {
	first := r.U8()
	if *r.err != nil {
		return 0
	}
	switch first >> 6 {
	case 0:
		return int(first)
	case 1:
		v := int(first&0x3f)<<8 | int(r.U8())
		if *r.err == nil && v < 1<<6 {
			r.Fail(fmt.Errorf("%w: %d not minimally encoded", ErrVarint, v))
			return 0
		}
		return v
	case 2:
		rest := r.take(3)
		if rest == nil {
			return 0
		}
		v := int(first&0x3f)<<24 | int(rest[0])<<16 | int(rest[1])<<8 | int(rest[2])
		if v < 1<<14 {
			r.Fail(fmt.Errorf("%w: %d not minimally encoded", ErrVarint, v))
			return 0
		}
		return v
	default:
		r.Fail(fmt.Errorf("%w: 8-byte length prefix", ErrVarint))
		return 0
	}
}

// Opaque reads opaque<V>. The result aliases the input; copy it to keep it.
func (r *Reader) Opaque() []byte {
	n := r.Varint()
	return r.take(n)
}

// OpaqueCopy reads opaque<V> into a fresh slice.
func (r *Reader) OpaqueCopy() []byte {
	b := r.Opaque()
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// Vector reads a length prefix and returns a sub-reader over the vector's
// contents. Errors in the sub-reader are errors of r.
func (r *Reader) Vector() *Reader {
	n := r.Varint()
	body := r.take(n)
	return &Reader{b: body, err: r.err}
}

// Optional reads the presence byte of optional<T>.
func (r *Reader) Optional() bool { return r.Bool() }

// Each reads a vector and calls item until its contents are used up.
// item must consume at least one byte or set an error.
func (r *Reader) Each(item func(r *Reader)) {
	sub := r.Vector()
	for !sub.Empty() && r.Err() == nil {
		before := sub.Remaining()
		item(sub)
		if sub.Remaining() == before && r.Err() == nil {
			r.Failf("vector item consumed no bytes")
		}
	}
}

// Marshaler is implemented by every MLS wire structure.
type Marshaler interface {
	MarshalMLS(w *Writer)
}

// Marshal returns the wire encoding of v.
func Marshal(v Marshaler) []byte {
	w := NewWriter(64)
	v.MarshalMLS(w)
	return w.Bytes()
}

// Unmarshaler is implemented by every decodable MLS wire structure.
type Unmarshaler interface {
	UnmarshalMLS(r *Reader)
}

// Unmarshal decodes b into v and requires that all of b is used.
func Unmarshal(b []byte, v Unmarshaler) error {
	r := NewReader(b)
	v.UnmarshalMLS(r)
	return r.Finish()
}

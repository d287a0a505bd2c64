package content

import (
	"fmt"
	"unicode/utf8"
)

// reader walks a message that decMode has already found well-formed and
// within its limits, checking the shape the draft gives each field.
type reader struct {
	b     []byte
	off   int
	parts int
}

func (r *reader) fail(field, format string, args ...any) error {
	return newError(ErrMalformed, nil, "%s: %s", field, fmt.Sprintf(format, args...))
}

// head reads the head of the next item and checks its major type.
func (r *reader) head(field string, want byte) (uint64, error) {
	major, _, arg, n, err := readHead(r.b[r.off:])
	if err != nil {
		return 0, newError(ErrMalformed, err, "%s", field)
	}
	if major != want {
		return 0, r.fail(field, "expected %s, found %s", majorNames[want], majorNames[major])
	}
	r.off += n
	return arg, nil
}

var majorNames = [8]string{"unsigned integer", "negative integer", "byte string", "text string", "array", "map", "tag", "simple value or float"}

func (r *reader) array(field string, want int) error {
	n, err := r.head(field, majArray)
	if err != nil {
		return err
	}
	if n != uint64(want) { // #nosec G115 -- want is a small positive field count
		return r.fail(field, "array of %d items, not %d", n, want)
	}
	return nil
}

func (r *reader) uint(field string, max uint64) (uint64, error) {
	v, err := r.head(field, majUint)
	if err != nil {
		return 0, err
	}
	if v > max {
		return 0, r.fail(field, "%d exceeds %d", v, max)
	}
	return v, nil
}

func (r *reader) bytes(field string) ([]byte, error) {
	n, err := r.head(field, majBytes)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)-r.off) { // #nosec G115 -- r.off is at most len(r.b)
		return nil, r.fail(field, "truncated")
	}
	v := make([]byte, n)
	copy(v, r.b[r.off:])
	r.off += int(n) // #nosec G115 -- n fits: checked against the bytes left
	return v, nil
}

func (r *reader) text(field string) (string, error) {
	n, err := r.head(field, majText)
	if err != nil {
		return "", err
	}
	if n > uint64(len(r.b)-r.off) { // #nosec G115 -- r.off is at most len(r.b)
		return "", r.fail(field, "truncated")
	}
	v := r.b[r.off : r.off+int(n)] // #nosec G115 -- n fits: checked against the bytes left
	if !utf8.Valid(v) {
		return "", r.fail(field, "not valid UTF-8")
	}
	r.off += int(n) // #nosec G115 -- n fits: checked against the bytes left
	return string(v), nil
}

// null consumes a null if one is next.
func (r *reader) null() bool {
	if r.off < len(r.b) && r.b[r.off] == 0xf6 {
		r.off++
		return true
	}
	return false
}

func (r *reader) id(field string) (*ID, error) {
	if r.null() {
		return nil, nil
	}
	b, err := r.bytes(field)
	if err != nil {
		return nil, err
	}
	var id ID
	if len(b) != len(id) {
		return nil, r.fail(field, "message ID of %d octets, not %d", len(b), len(id))
	}
	copy(id[:], b)
	if id.HashAlg() != HashSHA256 {
		return nil, newError(ErrUnsupported, nil, "%s: message ID hash algorithm %d", field, id.HashAlg())
	}
	return &id, nil
}

func (r *reader) message() (*Message, error) {
	m := new(Message)
	if err := r.array("message", 7); err != nil {
		return nil, err
	}
	salt, err := r.bytes("salt")
	if err != nil {
		return nil, err
	}
	if len(salt) != SaltSize {
		return nil, r.fail("salt", "%d octets, not %d", len(salt), SaltSize)
	}
	copy(m.Salt[:], salt)
	if m.Replaces, err = r.id("replaces"); err != nil {
		return nil, err
	}
	if m.TopicID, err = r.bytes("topicId"); err != nil {
		return nil, err
	}
	if len(m.TopicID) > MaxTopicIDSize {
		return nil, newError(ErrTooLarge, nil, "topicId of %d octets exceeds %d", len(m.TopicID), MaxTopicIDSize)
	}
	if !r.null() {
		if err := r.array("expires", 2); err != nil {
			return nil, err
		}
		var e Expiration
		switch {
		case r.off < len(r.b) && r.b[r.off] == 0xf4:
		case r.off < len(r.b) && r.b[r.off] == 0xf5:
			e.Relative = true
		default:
			return nil, r.fail("expires", "relative is not a boolean")
		}
		r.off++
		t, err := r.uint("expires", 1<<32-1)
		if err != nil {
			return nil, err
		}
		e.Time = uint32(t) // #nosec G115 -- r.uint checked it is below 2^32
		m.Expires = &e
	}
	if m.InReplyTo, err = r.id("inReplyTo"); err != nil {
		return nil, err
	}
	start := r.off
	if _, err := r.head("extensions", majMap); err != nil {
		return nil, err
	}
	r.off = start
	n, err := checkItem(r.b[r.off:], 1)
	if err != nil {
		return nil, newError(ErrMalformed, err, "extensions")
	}
	if m.Extensions, err = decodeExtensions(r.b[r.off : r.off+n]); err != nil {
		return nil, err
	}
	r.off += n
	if err := r.part(&m.Body, 1); err != nil {
		return nil, err
	}
	if r.off != len(r.b) { // Wellformed already refused trailing data
		return nil, r.fail("message", "trailing data")
	}
	return m, nil
}

// partLen is the array length of a NestedPart of each cardinality.
var partLen = [...]uint64{NullPart: 3, SinglePart: 5, ExternalPart: 15, MultiPart: 5}

// part reads a NestedPart at level depth (the body is 1).
func (r *reader) part(p *Part, depth int) error {
	index := r.parts
	r.parts++
	where := fmt.Sprintf("part %d", index)
	if depth > MaxPartDepth {
		return newError(ErrTooLarge, nil, "%s: parts nested more than %d levels deep", where, MaxPartDepth)
	}
	if r.parts > MaxParts {
		return newError(ErrTooLarge, nil, "more than %d parts", MaxParts)
	}
	n, err := r.head(where, majArray)
	if err != nil {
		return err
	}
	if n < 3 {
		return r.fail(where, "array of %d items, fewer than 3", n)
	}
	d, err := r.uint(where+": disposition", 255)
	if err != nil {
		return err
	}
	p.Disposition = Disposition(d) // #nosec G115 -- r.uint checked it is below 256
	if p.Language, err = r.text(where + ": language"); err != nil {
		return err
	}
	c, err := r.head(where+": cardinality", majUint)
	if err != nil {
		return err
	}
	if c >= uint64(len(partLen)) {
		return newError(ErrUnsupported, nil, "%s: cardinality %d", where, c)
	}
	want := partLen[c]
	if n != want {
		return r.fail(where, "%s part of %d items, not %d", Cardinality(c), n, want)
	}
	p.Cardinality = Cardinality(c)
	switch p.Cardinality {
	case SinglePart:
		if p.ContentType, err = r.text(where + ": contentType"); err != nil {
			return err
		}
		p.Content, err = r.bytes(where + ": content")
		return err
	case ExternalPart:
		return r.external(p, where)
	case MultiPart:
		s, err := r.head(where+": partSemantics", majUint)
		if err != nil {
			return err
		}
		if s > uint64(ProcessAll) {
			return newError(ErrUnsupported, nil, "%s: part semantics %d", where, s)
		}
		p.Semantics = Semantics(s)
		k, err := r.head(where+": parts", majArray)
		if err != nil {
			return err
		}
		if k < 2 {
			return r.fail(where, "a multipart with %d parts, not at least 2", k)
		}
		if k > MaxParts {
			return newError(ErrTooLarge, nil, "more than %d parts", MaxParts)
		}
		p.Parts = make([]Part, k)
		for i := range p.Parts {
			if err := r.part(&p.Parts[i], depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *reader) external(p *Part, where string) error {
	e := &p.External
	var err error
	if p.ContentType, err = r.text(where + ": contentType"); err != nil {
		return err
	}
	if e.URL, err = r.text(where + ": url"); err != nil {
		return err
	}
	v, err := r.uint(where+": expires", 1<<32-1)
	if err != nil {
		return err
	}
	e.Expires = uint32(v) // #nosec G115 -- r.uint checked it is below 2^32
	if e.Size, err = r.uint(where+": size", 1<<64-1); err != nil {
		return err
	}
	if v, err = r.uint(where+": encAlg", 1<<16-1); err != nil {
		return err
	}
	e.EncAlg = uint16(v) // #nosec G115 -- r.uint checked it is below 2^16
	if e.Key, err = r.bytes(where + ": key"); err != nil {
		return err
	}
	if e.Nonce, err = r.bytes(where + ": nonce"); err != nil {
		return err
	}
	if e.AAD, err = r.bytes(where + ": aad"); err != nil {
		return err
	}
	if v, err = r.uint(where+": hashAlg", 255); err != nil {
		return err
	}
	e.HashAlg = uint8(v) // #nosec G115 -- r.uint checked it is below 256
	if e.ContentHash, err = r.bytes(where + ": contentHash"); err != nil {
		return err
	}
	if e.Description, err = r.text(where + ": description"); err != nil {
		return err
	}
	e.Filename, err = r.text(where + ": filename")
	return err
}

package content

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Limits applied by Decode and Encode. The draft's security considerations
// name the part count, part depth and topic length; the encoded size is ours.
const (
	// MaxEncodedSize is the largest encoded message Decode reads: large
	// media belongs in an external part.
	MaxEncodedSize = 1 << 20
	// MaxParts is the most parts a body may have, counting every nested
	// part and the body itself.
	MaxParts = 1024
	// MaxPartDepth is how deep parts may nest; the body is level 1.
	MaxPartDepth = 4
	// MaxTopicIDSize is the longest topicId.
	MaxTopicIDSize = 4096
)

var (
	decMode cbor.DecMode
	encMode cbor.EncMode
)

func init() {
	var err error
	decMode, err = cbor.DecOptions{
		DupMapKey:   cbor.DupMapKeyEnforcedAPF,
		IndefLength: cbor.IndefLengthForbidden,
		// The body nests to level 8 (array, body, parts, part, ... four
		// part levels) and extensions to level 5 (array, map, three
		// levels of value); 10 leaves room for the precise checks of
		// depth below to report what is too deep.
		MaxNestedLevels:  10,
		MaxArrayElements: 4096,
		MaxMapPairs:      4096,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	opts := cbor.CoreDetEncOptions() // RFC 8949 §4.2.1, as the draft requires
	opts.NilContainers = cbor.NilContainerAsEmpty
	encMode, err = opts.EncMode()
	if err != nil {
		panic(err)
	}
}

// classify turns an error of the CBOR library into an *Error.
func classify(err error, where string) error {
	var (
		nest  *cbor.MaxNestedLevelError
		arr   *cbor.MaxArrayElementsError
		pairs *cbor.MaxMapPairsError
	)
	if errors.As(err, &nest) || errors.As(err, &arr) || errors.As(err, &pairs) {
		return newError(ErrTooLarge, err, "%s", where)
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return newError(ErrMalformed, err, "%s", where)
}

// Decode reads one MIMI content message. It accepts exactly one
// well-formed CBOR item of the draft's shape and refuses, with an *Error,
// anything else: indefinite lengths, duplicate map keys, invalid UTF-8,
// fields of the wrong type or size, unknown cardinalities or part
// semantics, message IDs with an unknown hash algorithm, and input beyond
// the limits. Unknown dispositions, content types and extensions are kept.
//
// Decode does not insist on deterministic encoding (IsCanonical does);
// Encode(Decode(b)) == b for every canonical b.
func Decode(b []byte) (*Message, error) {
	if len(b) > MaxEncodedSize {
		return nil, newError(ErrTooLarge, nil, "message of %d octets exceeds %d", len(b), MaxEncodedSize)
	}
	if err := decMode.Wellformed(b); err != nil {
		return nil, classify(err, "message")
	}
	r := reader{b: b}
	m, err := r.message()
	if err != nil {
		return nil, err
	}
	// Well-formed is not valid: an extension value can hold an item the
	// encoder refuses (a bignum tag around an integer, say). What cannot
	// be sent on unchanged is refused here, not found later.
	if _, err := m.Encode(); err != nil {
		return nil, newError(ErrMalformed, err, "message does not re-encode")
	}
	return m, nil
}

// IsCanonical reports whether b is a MIMI content message in
// deterministic CBOR (RFC 8949 §4.2.1), as the draft requires senders to
// encode it: exactly what Encode makes of it, with extension values in
// deterministic encoding too (Encode passes those on as they are).
func IsCanonical(b []byte) bool {
	m, err := Decode(b)
	if err != nil {
		return false
	}
	e, err := m.Encode()
	if err != nil || string(e) != string(b) {
		return false
	}
	for _, v := range m.Extensions {
		if n, ok := deterministic(v); !ok || n != len(v) {
			return false
		}
	}
	return true
}

// Encode encodes the message in deterministic CBOR. It refuses, with an
// *Error, a message that Decode would not accept back.
func (m *Message) Encode() ([]byte, error) {
	if len(m.TopicID) > MaxTopicIDSize {
		return nil, newError(ErrTooLarge, nil, "topicId of %d octets exceeds %d", len(m.TopicID), MaxTopicIDSize)
	}
	replaces, err := idWire(m.Replaces, "replaces")
	if err != nil {
		return nil, err
	}
	inReplyTo, err := idWire(m.InReplyTo, "inReplyTo")
	if err != nil {
		return nil, err
	}
	var expires any
	if m.Expires != nil {
		expires = []any{m.Expires.Relative, m.Expires.Time}
	}
	ext, err := m.Extensions.wire()
	if err != nil {
		return nil, err
	}
	count := 0
	body, err := m.Body.wire(1, &count)
	if err != nil {
		return nil, err
	}
	topic := m.TopicID
	if topic == nil {
		topic = []byte{}
	}
	b, err := encMode.Marshal([]any{m.Salt[:], replaces, topic, expires, inReplyTo, ext, body})
	if err != nil {
		return nil, newError(ErrMalformed, err, "encoding message")
	}
	if len(b) > MaxEncodedSize {
		return nil, newError(ErrTooLarge, nil, "message of %d octets exceeds %d", len(b), MaxEncodedSize)
	}
	return b, nil
}

func idWire(id *ID, field string) (any, error) {
	if id == nil {
		return nil, nil
	}
	if id.HashAlg() != HashSHA256 {
		return nil, newError(ErrUnsupported, nil, "%s: message ID hash algorithm %d", field, id.HashAlg())
	}
	return id[:], nil
}

// wire is the part as the encoder takes it; depth is its level (the body
// is 1) and count counts parts.
func (p *Part) wire(depth int, count *int) ([]any, error) {
	*count++
	where := fmt.Sprintf("part %d", *count-1)
	if depth > MaxPartDepth {
		return nil, newError(ErrTooLarge, nil, "%s: parts nested more than %d levels deep", where, MaxPartDepth)
	}
	if *count > MaxParts {
		return nil, newError(ErrTooLarge, nil, "more than %d parts", MaxParts)
	}
	if !utf8.ValidString(p.Language) {
		return nil, newError(ErrMalformed, nil, "%s: language is not valid UTF-8", where)
	}
	w := []any{uint8(p.Disposition), p.Language, uint8(p.Cardinality)}
	stray := func(ok bool, what string) error {
		if ok {
			return nil
		}
		return newError(ErrMalformed, nil, "%s: a %s part with %s set", where, p.Cardinality, what)
	}
	var err error
	switch p.Cardinality {
	case NullPart:
		err = firstErr(stray(p.ContentType == "" && len(p.Content) == 0, "content"),
			stray(p.External.isZero(), "external fields"), stray(p.Semantics == 0 && len(p.Parts) == 0, "parts"))
	case SinglePart:
		err = firstErr(stray(p.External.isZero(), "external fields"), stray(p.Semantics == 0 && len(p.Parts) == 0, "parts"))
		if err == nil && !utf8.ValidString(p.ContentType) {
			return nil, newError(ErrMalformed, nil, "%s: contentType is not valid UTF-8", where)
		}
		w = append(w, p.ContentType, nonNil(p.Content))
	case ExternalPart:
		err = firstErr(stray(len(p.Content) == 0, "content"), stray(p.Semantics == 0 && len(p.Parts) == 0, "parts"))
		e := &p.External
		for _, s := range []string{p.ContentType, e.URL, e.Description, e.Filename} {
			if !utf8.ValidString(s) {
				return nil, newError(ErrMalformed, nil, "%s: a text field is not valid UTF-8", where)
			}
		}
		w = append(w, p.ContentType, e.URL, e.Expires, e.Size, e.EncAlg, nonNil(e.Key), nonNil(e.Nonce),
			nonNil(e.AAD), e.HashAlg, nonNil(e.ContentHash), e.Description, e.Filename)
	case MultiPart:
		err = firstErr(stray(p.ContentType == "" && len(p.Content) == 0, "content"), stray(p.External.isZero(), "external fields"))
		if err != nil {
			break
		}
		if p.Semantics > ProcessAll {
			return nil, newError(ErrUnsupported, nil, "%s: part semantics %d", where, p.Semantics)
		}
		if len(p.Parts) < 2 {
			return nil, newError(ErrMalformed, nil, "%s: a multipart with %d parts, not at least 2", where, len(p.Parts))
		}
		parts := make([]any, len(p.Parts))
		for i := range p.Parts {
			if parts[i], err = p.Parts[i].wire(depth+1, count); err != nil {
				return nil, err
			}
		}
		w = append(w, uint8(p.Semantics), parts)
	default:
		return nil, newError(ErrUnsupported, nil, "%s: cardinality %d", where, p.Cardinality)
	}
	if err != nil {
		return nil, err
	}
	return w, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

package content

import (
	"fmt"
	"strconv"

	"github.com/fxamacker/cbor/v2"
)

// ExtKey is a key of the extensions map: an integer or a text string of 1
// to 255 octets. Positive integers are assigned by IANA; negative integers
// and text strings are for private use.
type ExtKey struct {
	text   string
	num    int64
	isText bool
}

// IntKey is the integer key n.
func IntKey(n int64) ExtKey { return ExtKey{num: n} }

// TextKey is the text string key s.
func TextKey(s string) ExtKey { return ExtKey{text: s, isText: true} }

// The registered extension keys.
var (
	SenderURIKey = IntKey(1) // senderUri: the sender as a MIMI participant
	RoomURIKey   = IntKey(2) // roomUri: the MIMI room
)

// IsText reports whether the key is a text string.
func (k ExtKey) IsText() bool { return k.isText }

// Int is the key's integer value (0 for a text key).
func (k ExtKey) Int() int64 { return k.num }

// Text is the key's text (empty for an integer key).
func (k ExtKey) Text() string { return k.text }

func (k ExtKey) String() string {
	if k.isText {
		return strconv.Quote(k.text)
	}
	return strconv.FormatInt(k.num, 10)
}

func (k ExtKey) check() error {
	if k.isText {
		if n := len(k.text); n < 1 || n > 255 {
			return newError(ErrMalformed, nil, "extension key is a text string of %d octets, not 1 to 255", n)
		}
		return nil
	}
	if k.num > maxSafeInt || k.num < -maxSafeInt {
		return newError(ErrMalformed, nil, "extension key %d is beyond ±(2^53-1)", k.num)
	}
	return nil
}

// Extensions is the extensions map: each value is one encoded CBOR data
// item, kept exactly as received, so unknown extensions pass through
// unchanged. Use Message.SetExtension and Message.Extension to go between
// values and Go types.
type Extensions map[ExtKey][]byte

// checkExtension checks one entry against the draft's rules.
func checkExtension(k ExtKey, v []byte) error {
	if err := k.check(); err != nil {
		return err
	}
	if len(v) == 0 {
		return newError(ErrMalformed, nil, "extension %s has no value", k)
	}
	n, err := checkItem(v, 2)
	if err != nil {
		return newError(ErrMalformed, err, "extension %s", k)
	}
	if n != len(v) {
		return newError(ErrMalformed, nil, "extension %s holds more than one CBOR item", k)
	}
	if (k == SenderURIKey || k == RoomURIKey) && v[0]>>5 != majText {
		return newError(ErrMalformed, nil, "extension %s is not a text string", k)
	}
	return nil
}

// decodeExtensions reads the extensions map from its encoding.
func decodeExtensions(raw []byte) (Extensions, error) {
	var m map[any]cbor.RawMessage
	if err := decMode.Unmarshal(raw, &m); err != nil {
		return nil, classify(err, "extensions")
	}
	if len(m) == 0 {
		return nil, nil
	}
	ext := make(Extensions, len(m))
	for key, v := range m {
		var k ExtKey
		switch key := key.(type) {
		case uint64:
			if key > maxSafeInt {
				return nil, newError(ErrMalformed, nil, "extension key %d is beyond 2^53-1", key)
			}
			k = IntKey(int64(key))
		case int64:
			k = IntKey(key)
		case string:
			k = TextKey(key)
		default:
			return nil, newError(ErrMalformed, nil, "extension key of type %T is not an integer or text string", key)
		}
		if err := checkExtension(k, v); err != nil {
			return nil, err
		}
		ext[k] = []byte(v)
	}
	return ext, nil
}

// wire is the map as the encoder takes it.
func (e Extensions) wire() (map[any]cbor.RawMessage, error) {
	m := make(map[any]cbor.RawMessage, len(e))
	for k, v := range e {
		if err := checkExtension(k, v); err != nil {
			return nil, err
		}
		if k.isText {
			m[k.text] = v
		} else {
			m[k.num] = v
		}
	}
	return m, nil
}

// SetExtension sets the extension key to v encoded in deterministic CBOR
// (v may also be a cbor.RawMessage, used as it is).
func (m *Message) SetExtension(key ExtKey, v any) error {
	b, err := encMode.Marshal(v)
	if err != nil {
		return newError(ErrMalformed, err, "extension %s", key)
	}
	if err := checkExtension(key, b); err != nil {
		return err
	}
	if m.Extensions == nil {
		m.Extensions = make(Extensions)
	}
	m.Extensions[key] = b
	return nil
}

// Extension decodes the extension key into v, a pointer. It reports false
// if the message has no such extension.
func (m *Message) Extension(key ExtKey, v any) (bool, error) {
	raw, ok := m.Extensions[key]
	if !ok {
		return false, nil
	}
	if err := decMode.Unmarshal(raw, v); err != nil {
		return true, classify(err, fmt.Sprintf("extension %s", key))
	}
	return true, nil
}

// SenderURI is the senderUri extension, if present.
func (m *Message) SenderURI() (string, bool) { return m.textExtension(SenderURIKey) }

// RoomURI is the roomUri extension, if present.
func (m *Message) RoomURI() (string, bool) { return m.textExtension(RoomURIKey) }

func (m *Message) textExtension(k ExtKey) (string, bool) {
	var s string
	ok, err := m.Extension(k, &s)
	return s, ok && err == nil
}

// rawItem is an encoded CBOR item to embed as it is.
type rawItem = cbor.RawMessage

package content

import (
	"errors"
	"fmt"
)

// The kinds of error this package returns. Every error from Decode, Encode,
// MessageID and the attachment functions is an *Error whose Kind is one of
// these, so callers test with errors.Is and report Code to their own callers.
// New kinds are only ever appended.
var (
	// ErrMalformed: bytes that are not well-formed CBOR, or CBOR that does
	// not have the shape of MIMI content (a wrong type, a wrong number of
	// fields, a duplicate map key, an indefinite length, invalid UTF-8), or
	// a Message that cannot be encoded as MIMI content.
	ErrMalformed = errors.New("malformed MIMI content")
	// ErrTooLarge: input or a message beyond one of the limits: the encoded
	// size, nesting depth, number of parts, array or map size, topic length.
	ErrTooLarge = errors.New("MIMI content exceeds a limit")
	// ErrUnsupported: well-formed content that uses something this package
	// does not know how to read: a cardinality or part semantics value the
	// draft does not define, a message ID hash algorithm other than
	// SHA-256, an attachment encryption or hash algorithm we do not have.
	ErrUnsupported = errors.New("unsupported MIMI content")
	// ErrIntegrity: downloaded attachment bytes whose hash does not match
	// the message, or that do not decrypt with its key.
	ErrIntegrity = errors.New("attachment integrity check failed")
)

// codes are the stable, client-safe codes of the kinds above.
var codes = map[error]string{
	ErrMalformed:   "content_malformed",
	ErrTooLarge:    "content_too_large",
	ErrUnsupported: "content_unsupported",
	ErrIntegrity:   "content_integrity",
}

// Error is the error type of this package.
type Error struct {
	Kind error  // one of the Err variables above
	Msg  string // what is wrong and where (safe to show: it never quotes content)
	Err  error  // the underlying cause, such as a CBOR library error, or nil
}

func newError(kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// Code is the stable code of the error's kind, such as "content_malformed".
func (e *Error) Code() string {
	if c, ok := codes[e.Kind]; ok {
		return c
	}
	return "content_error"
}

// Error returns "content: " and the message, then the cause if any.
func (e *Error) Error() string {
	s := "content: " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap lets errors.Is and errors.As see both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// Code returns the stable code of err if it is (or wraps) an *Error of this
// package, and "" otherwise.
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return ""
}

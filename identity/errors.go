package identity

import (
	"errors"
	"fmt"
)

// The kinds of error this package returns. Every error it returns is an
// *Error whose Kind is one of these, so callers test with errors.Is and map
// them to stable API codes; the message says which credential and what is
// wrong with it. New kinds are only ever appended.
var (
	// ErrInvalidURI: text or a URI value that breaks the MIMI URI rules.
	ErrInvalidURI = errors.New("invalid MIMI URI")
	// ErrNotX509: a credential of another type, such as basic.
	ErrNotX509 = errors.New("not an X.509 credential")
	// ErrMalformed: a credential, certificate or key that does not decode,
	// or a certificate without the shape a device certificate must have.
	ErrMalformed = errors.New("malformed credential")
	// ErrNames: a device certificate whose URIs are missing, extra or
	// disagree with each other.
	ErrNames = errors.New("certificate names are wrong")
	// ErrUnknownProvider: no trust anchor for the provider that signed it.
	ErrUnknownProvider = errors.New("unknown provider")
	// ErrWrongProvider: signed by a known provider other than the one its
	// URIs name.
	ErrWrongProvider = errors.New("signed by another provider")
	// ErrUntrusted: the chain does not verify to the named provider's CA.
	ErrUntrusted = errors.New("certificate chain does not verify")
	// ErrExpired: a certificate in the chain is not valid at the time given.
	ErrExpired = errors.New("certificate expired or not yet valid")
	// ErrKeyMismatch: the certificate's key is not the member's MLS
	// signature key.
	ErrKeyMismatch = errors.New("certificate key does not match the MLS signature key")
	// ErrBadKey: a signature key that is not a valid key for the suite.
	ErrBadKey = errors.New("invalid signature key")
	// ErrDuplicateDevice: two members of one group with the same device URI.
	ErrDuplicateDevice = errors.New("device appears twice")
	// ErrNotSuccessor: a replacement credential for a different device.
	ErrNotSuccessor = errors.New("credential is not a valid successor")
	// ErrCA: a CA that cannot be made, loaded or used as asked.
	ErrCA = errors.New("CA error")
)

// Error is the error type of this package.
type Error struct {
	Kind error  // one of the Err variables above
	Msg  string // what went wrong, naming the credential where known
	Err  error  // the underlying cause (for example from crypto/x509), or nil
}

func newError(kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// Error returns "identity: " and the message, then the cause if any.
func (e *Error) Error() string {
	s := "identity: " + e.Msg
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

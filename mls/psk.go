package mls

import (
	"errors"
	"fmt"
)

// Pre-shared keys (RFC 9420 §8.4): identifiers that name a PSK on the wire,
// and the chain of Extract calls that folds any number of PSKs into the
// single psk_secret the key schedule takes.

// PSKType says where a pre-shared key came from.
type PSKType uint8

// The PSK types of §8.4. Zero is reserved, so a zero PreSharedKeyID is
// invalid rather than silently "external".
const (
	PSKExternal   PSKType = 1 // provisioned by the application
	PSKResumption PSKType = 2 // a resumption_psk of an earlier epoch
)

// String names the type as the RFC does, for error messages and logs.
func (t PSKType) String() string {
	switch t {
	case PSKExternal:
		return "external"
	case PSKResumption:
		return "resumption"
	}
	return fmt.Sprintf("PSKType(%d)", uint8(t))
}

// ResumptionPSKUsage says why a resumption PSK is injected; reinit and branch
// PSKs are only valid inside those operations (§12.1.4), so the usage must
// survive the wire.
type ResumptionPSKUsage uint8

// The resumption PSK usages of §8.4.
const (
	ResumptionApplication ResumptionPSKUsage = 1
	ResumptionReinit      ResumptionPSKUsage = 2
	ResumptionBranch      ResumptionPSKUsage = 3
)

// String names the usage as the RFC does, for error messages and logs.
func (u ResumptionPSKUsage) String() string {
	switch u {
	case ResumptionApplication:
		return "application"
	case ResumptionReinit:
		return "reinit"
	case ResumptionBranch:
		return "branch"
	}
	return fmt.Sprintf("ResumptionPSKUsage(%d)", uint8(u))
}

// PreSharedKeyID names a PSK in PreSharedKey proposals and in GroupSecrets.
// Which fields are meaningful depends on Type: ID for external PSKs; Usage,
// GroupID and Epoch for resumption PSKs. Nonce is always present and makes
// every injection of the same PSK give a different key-schedule input.
type PreSharedKeyID struct {
	Type PSKType

	ID []byte // external: psk_id

	Usage   ResumptionPSKUsage // resumption: usage
	GroupID []byte             // resumption: psk_group_id
	Epoch   uint64             // resumption: psk_epoch

	Nonce []byte // psk_nonce
}

// MarshalMLS writes the PreSharedKeyID. A value with an unknown Type is
// written without a type-specific body, so it will not decode; call Validate
// before sending.
func (p *PreSharedKeyID) MarshalMLS(w *Writer) {
	w.U8(uint8(p.Type))
	switch p.Type {
	case PSKExternal:
		w.Opaque(p.ID)
	case PSKResumption:
		w.U8(uint8(p.Usage))
		w.Opaque(p.GroupID)
		w.U64(p.Epoch)
	}
	w.Opaque(p.Nonce)
}

// UnmarshalMLS reads a PreSharedKeyID, rejecting reserved and unknown types
// and usages: the select has no arm for them, so the rest of the input could
// not be parsed reliably anyway.
func (p *PreSharedKeyID) UnmarshalMLS(r *Reader) {
	*p = PreSharedKeyID{Type: PSKType(r.U8())}
	if r.Err() != nil {
		return
	}
	switch p.Type {
	case PSKExternal:
		p.ID = r.OpaqueCopy()
	case PSKResumption:
		p.Usage = ResumptionPSKUsage(r.U8())
		if r.Err() == nil && (p.Usage < ResumptionApplication || p.Usage > ResumptionBranch) {
			r.Failf("resumption PSK usage %d", uint8(p.Usage))
			return
		}
		p.GroupID = r.OpaqueCopy()
		p.Epoch = r.U64()
	default:
		r.Failf("PSK type %d", uint8(p.Type))
		return
	}
	p.Nonce = r.OpaqueCopy()
}

// ErrInvalidPSK reports a PreSharedKeyID or PSK list the key schedule cannot use.
var ErrInvalidPSK = errors.New("mls: invalid pre-shared key")

// Validate checks what every receiver must check of a PreSharedKeyID
// regardless of context: a known type and usage, and a psk_nonce of Nh
// bytes (§12.1.4). Whether a reinit or branch usage is allowed depends on the
// operation and is left to the caller.
func (p *PreSharedKeyID) Validate(s *Suite) error {
	switch p.Type {
	case PSKExternal:
	case PSKResumption:
		if p.Usage < ResumptionApplication || p.Usage > ResumptionBranch {
			return fmt.Errorf("%w: resumption usage %d", ErrInvalidPSK, uint8(p.Usage))
		}
	default:
		return fmt.Errorf("%w: type %d", ErrInvalidPSK, uint8(p.Type))
	}
	if len(p.Nonce) != s.HashSize() {
		return fmt.Errorf("%w: psk_nonce of %d bytes, want %d", ErrInvalidPSK, len(p.Nonce), s.HashSize())
	}
	return nil
}

// NewExternalPSKID names an external PSK with a fresh random nonce, as every
// injection must have (§8.4).
func NewExternalPSKID(s *Suite, id []byte) PreSharedKeyID {
	return PreSharedKeyID{Type: PSKExternal, ID: append([]byte{}, id...), Nonce: RandomBytes(s.HashSize())}
}

// NewResumptionPSKID names the resumption_psk of a group's epoch with a fresh
// random nonce.
func NewResumptionPSKID(s *Suite, usage ResumptionPSKUsage, groupID []byte, epoch uint64) PreSharedKeyID {
	return PreSharedKeyID{Type: PSKResumption, Usage: usage, GroupID: append([]byte{}, groupID...),
		Epoch: epoch, Nonce: RandomBytes(s.HashSize())}
}

// PSKLabel binds each PSK to its identifier and its position in the list,
// so that reordering or dropping PSKs changes psk_secret.
type PSKLabel struct {
	ID    PreSharedKeyID
	Index uint16
	Count uint16
}

// MarshalMLS writes the PSKLabel.
func (l *PSKLabel) MarshalMLS(w *Writer) {
	l.ID.MarshalMLS(w)
	w.U16(l.Index)
	w.U16(l.Count)
}

// UnmarshalMLS reads a PSKLabel.
func (l *PSKLabel) UnmarshalMLS(r *Reader) {
	l.ID.UnmarshalMLS(r)
	l.Index = r.U16()
	l.Count = r.U16()
}

// PSKInput is one PSK to inject: its identifier as sent on the wire and the
// secret it names (the application's external PSK, or the resumption_psk of
// the named epoch).
type PSKInput struct {
	ID  PreSharedKeyID
	PSK []byte
}

// maxPSKs is the most PSKs a PSKLabel can count.
const maxPSKs = 1<<16 - 1

// PSKSecret computes psk_secret from PSKs in the order of the Commit's
// PreSharedKey proposals (or of GroupSecrets.psks). With no PSKs it is Nh
// zero bytes, the value the key schedule uses when nothing is injected.
func PSKSecret(s *Suite, psks []PSKInput) ([]byte, error) {
	if len(psks) > maxPSKs {
		return nil, fmt.Errorf("%w: %d PSKs, at most %d fit in a PSKLabel", ErrInvalidPSK, len(psks), maxPSKs)
	}
	zero := make([]byte, s.HashSize())
	secret := make([]byte, s.HashSize())
	for i := range psks {
		label := PSKLabel{ID: psks[i].ID, Index: uint16(i), Count: uint16(len(psks))} // #nosec G115 -- len(psks) is at most maxPSKs, checked above
		extracted := s.Extract(zero, psks[i].PSK)
		input := s.ExpandWithLabel(extracted, "derived psk", Marshal(&label), s.HashSize())
		next := s.Extract(input, secret)
		clear(extracted)
		clear(input)
		clear(secret)
		secret = next
	}
	return secret, nil
}

package mls

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// timeNow is the clock; tests may replace it.
var timeNow = time.Now

// KeyPackage is a client's signed offer of keys with which others can add it
// to a group (RFC 9420 §10).
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuite
	InitKey     []byte // HPKEPublicKey
	LeafNode    LeafNode
	Extensions  Extensions
	Signature   []byte
}

func (k *KeyPackage) marshalTBS(w *Writer) {
	w.U16(uint16(k.Version))
	w.U16(uint16(k.CipherSuite))
	w.Opaque(k.InitKey)
	k.LeafNode.MarshalMLS(w)
	k.Extensions.MarshalMLS(w)
}

func (k *KeyPackage) MarshalMLS(w *Writer) {
	k.marshalTBS(w)
	w.Opaque(k.Signature)
}

func (k *KeyPackage) UnmarshalMLS(r *Reader) {
	k.Version = ProtocolVersion(r.U16())
	k.CipherSuite = CipherSuite(r.U16())
	k.InitKey = r.OpaqueCopy()
	k.LeafNode.UnmarshalMLS(r)
	k.Extensions.UnmarshalMLS(r)
	k.Signature = r.OpaqueCopy()
}

// Sign sets the KeyPackage's signature, made with the leaf's signature key.
func (k *KeyPackage) Sign(s *Suite, key *SignaturePrivateKey) error {
	w := NewWriter(512)
	k.marshalTBS(w)
	sig, err := s.SignWithLabel(key, "KeyPackageTBS", w.Bytes())
	if err != nil {
		return err
	}
	k.Signature = sig
	return nil
}

// VerifySignature checks the KeyPackage's signature.
func (k *KeyPackage) VerifySignature(s *Suite) error {
	w := NewWriter(512)
	k.marshalTBS(w)
	if err := s.VerifyWithLabel(k.LeafNode.SignatureKey, "KeyPackageTBS", w.Bytes(), k.Signature); err != nil {
		return fmt.Errorf("key package signature: %w", err)
	}
	return nil
}

// Ref returns the KeyPackageRef that names this KeyPackage (§5.2).
func (k *KeyPackage) Ref(s *Suite) []byte {
	return s.RefHash("MLS 1.0 KeyPackage Reference", Marshal(k))
}

// KeyPackagePrivate is a KeyPackage with the private keys its owner keeps:
// the init key (used once, to open a Welcome), the leaf's encryption key, and
// the signing key.
type KeyPackagePrivate struct {
	KeyPackage    *KeyPackage
	InitKey       HPKEPrivateKey
	EncryptionKey HPKEPrivateKey
	SignatureKey  *SignaturePrivateKey
}

// KeyPackageOptions are the choices a client makes for a new KeyPackage.
// Zero values get sensible defaults.
type KeyPackageOptions struct {
	// Lifetime defaults to 90 days from one hour ago (to absorb clock skew).
	Lifetime *Lifetime
	// Capabilities default to DefaultCapabilities.
	Capabilities *Capabilities
	// LeafExtensions go into the leaf node; Extensions into the KeyPackage.
	LeafExtensions Extensions
	Extensions     Extensions
	// LastResort marks the KeyPackage as one that may be used more than once
	// when a directory runs out of fresh ones.
	LastResort bool
}

// ExtLastResort is the last_resort KeyPackage extension (RFC 9420 §17.3
// registry, from the MLS extensions document) that providers use to mark a
// KeyPackage that may be handed out more than once.
const ExtLastResort ExtensionType = 0x000a

// GREASE values (RFC 9420 §13.5): clients list one of them among their
// capabilities so that peers that choke on unknown values fail early.
var greaseValues = []uint16{0x0A0A, 0x1A1A, 0x2A2A, 0x3A3A, 0x4A4A, 0x5A5A, 0x6A6A, 0x7A7A,
	0x8A8A, 0x9A9A, 0xAAAA, 0xBABA, 0xCACA, 0xDADA, 0xEAEA}

// IsGREASE reports whether v is one of the reserved GREASE values.
func IsGREASE(v uint16) bool { return v&0x0F0F == 0x0A0A && v>>12 == (v>>4)&0xF && v < 0xF000 }

func randomGREASE() uint16 { return greaseValues[int(RandomBytes(1)[0])%len(greaseValues)] }

// DefaultCapabilities lists what this package implements, with GREASE.
func DefaultCapabilities() Capabilities {
	suites := append([]CipherSuite{}, SupportedSuites...)
	return Capabilities{
		Versions:     []ProtocolVersion{MLS10},
		CipherSuites: append(suites, CipherSuite(randomGREASE())),
		Extensions:   []ExtensionType{ExtLastResort, ExtensionType(randomGREASE())},
		Proposals:    []ProposalType{ProposalType(randomGREASE())},
		Credentials:  []CredentialType{CredentialBasic, CredentialX509, CredentialType(randomGREASE())},
	}
}

// DefaultLifetime is a new KeyPackage's lifetime made at now: 90 days from
// one hour before now, so that a verifier whose clock is up to an hour
// behind the maker's still accepts it.
func DefaultLifetime(now time.Time) Lifetime {
	return Lifetime{NotBefore: uint64(now.Unix()) - 3600, NotAfter: uint64(now.Unix()) + 90*24*3600} // #nosec G115 -- the clock is after 1970
}

// NewKeyPackage makes fresh init and encryption keys and a signed KeyPackage
// for credential, signed with sig.
func NewKeyPackage(s *Suite, sig *SignaturePrivateKey, credential Credential, o KeyPackageOptions) (*KeyPackagePrivate, error) {
	initKey, initPub, err := s.GenerateHPKEKey()
	if err != nil {
		return nil, err
	}
	encKey, encPub, err := s.GenerateHPKEKey()
	if err != nil {
		return nil, err
	}
	caps := DefaultCapabilities()
	if o.Capabilities != nil {
		caps = *o.Capabilities
	}
	life := DefaultLifetime(timeNow())
	if o.Lifetime != nil {
		life = *o.Lifetime
	}
	exts := append(Extensions{}, o.Extensions...)
	if o.LastResort {
		exts = append(exts, Extension{Type: ExtLastResort})
	}
	kp := &KeyPackage{
		Version:     MLS10,
		CipherSuite: s.ID,
		InitKey:     initPub,
		LeafNode: LeafNode{
			EncryptionKey: encPub,
			SignatureKey:  sig.PublicKey(),
			Credential:    credential,
			Capabilities:  caps,
			Source:        SourceKeyPackage,
			Lifetime:      life,
			Extensions:    o.LeafExtensions,
		},
		Extensions: exts,
	}
	if err := kp.LeafNode.Sign(s, sig, nil, 0); err != nil {
		return nil, err
	}
	if err := kp.Sign(s, sig); err != nil {
		return nil, err
	}
	return &KeyPackagePrivate{KeyPackage: kp, InitKey: initKey, EncryptionKey: encKey, SignatureKey: sig}, nil
}

// ErrInvalidKeyPackage wraps every reason a KeyPackage is refused.
var ErrInvalidKeyPackage = errors.New("mls: invalid key package")

// ValidateKeyPackage checks a KeyPackage received for use in a group of
// suite s (§10.1): version and suite, both signatures, a key_package leaf
// whose lifetime contains now (if now is not zero), and an init key distinct
// from the leaf's encryption key.
func ValidateKeyPackage(s *Suite, kp *KeyPackage, now uint64) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidKeyPackage}, args...)...)
	}
	if kp.Version != MLS10 {
		return fail("protocol version %d", kp.Version)
	}
	if kp.CipherSuite != s.ID {
		return fail("cipher suite %v in a group of suite %v", kp.CipherSuite, s.ID)
	}
	if kp.LeafNode.Source != SourceKeyPackage {
		return fail("leaf node source %d, want key_package", kp.LeafNode.Source)
	}
	if err := s.CheckHPKEPublicKey(kp.InitKey); err != nil {
		return fail("init key: %v", err)
	}
	if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
		return fail("init key equals the leaf's encryption key")
	}
	if now != 0 && (now < kp.LeafNode.Lifetime.NotBefore || now > kp.LeafNode.Lifetime.NotAfter) {
		return fail("lifetime %d..%d does not contain now (%d)", kp.LeafNode.Lifetime.NotBefore, kp.LeafNode.Lifetime.NotAfter, now)
	}
	if err := kp.VerifySignature(s); err != nil {
		return fail("%v", err)
	}
	if err := kp.LeafNode.VerifySignature(s, nil, 0); err != nil {
		return fail("%v", err)
	}
	return nil
}

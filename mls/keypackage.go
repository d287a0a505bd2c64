package mls

import (
	"fmt"
)

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

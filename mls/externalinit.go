package mls

import (
	"crypto/hpke"
	"fmt"
)

// The external init secret of RFC 9420 §8.3: a joiner who is not yet a
// member picks the new epoch's init_secret by an HPKE export to the group's
// external public key; members recover it with the external private key.

const externalInitLabel = "MLS 1.0 external init secret"

// ExternalInitSecretSeal returns the kem_output for an ExternalInit proposal
// and the init_secret it conveys.
func (s *Suite) ExternalInitSecretSeal(externalPub []byte) (kemOutput, initSecret []byte, err error) {
	pk, err := s.kem.NewPublicKey(externalPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: external public key: %v", ErrCrypto, err)
	}
	enc, sender, err := hpke.NewSender(pk, s.hpkeKDF, s.hpkeAEAD, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE setup: %v", ErrCrypto, err)
	}
	secret, err := sender.Export(externalInitLabel, s.hashSize)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE export: %v", ErrCrypto, err)
	}
	return enc, secret, nil
}

// ExternalInitSecretOpen recovers the init_secret from an ExternalInit's
// kem_output with the external private key.
func (s *Suite) ExternalInitSecretOpen(externalPriv HPKEPrivateKey, kemOutput []byte) ([]byte, error) {
	r, err := hpke.NewRecipient(kemOutput, externalPriv, s.hpkeKDF, s.hpkeAEAD, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: external init: %v", ErrCrypto, err)
	}
	secret, err := r.Export(externalInitLabel, s.hashSize)
	if err != nil {
		return nil, fmt.Errorf("%w: external init export: %v", ErrCrypto, err)
	}
	return secret, nil
}

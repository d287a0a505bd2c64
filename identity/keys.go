package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"fmt"
	"slices"

	"github.com/switchboard-chat/switchboard/mls"
)

// The MLS and X.509 encodings of a signature key differ only in wrapping:
// MLS carries the raw Ed25519 key or the uncompressed EC point (RFC 9420
// §5.1.1), X.509 wraps the same bytes in a SubjectPublicKeyInfo. So the
// certificate's key can be compared with the leaf's exactly, as RFC 9420
// §5.3 requires ("MUST be identical").

// signatureAlgorithm names the key type of a suite's signature scheme, for
// error messages; "" for a suite this package does not know.
func signatureAlgorithm(id mls.CipherSuite) string {
	switch id {
	case mls.X25519AES128GCMSHA256Ed25519, mls.X25519ChaCha20Poly1305SHA256Ed25519:
		return "Ed25519"
	case mls.P256AES128GCMSHA256P256:
		return "ECDSA P-256"
	case mls.P384AES256GCMSHA384P384:
		return "ECDSA P-384"
	case mls.P521AES256GCMSHA512P521:
		return "ECDSA P-521"
	}
	return ""
}

// suiteCurve returns the ECDSA curve of a suite, or nil for Ed25519 suites.
// mls.Suite keeps its signature scheme private, so this switches on the
// suite ID; a new suite in mls needs a line here (signatureAlgorithm makes
// the omission an error, not a silent mismatch).
func suiteCurve(id mls.CipherSuite) elliptic.Curve {
	switch id {
	case mls.P256AES128GCMSHA256P256:
		return elliptic.P256()
	case mls.P384AES256GCMSHA384P384:
		return elliptic.P384()
	case mls.P521AES256GCMSHA512P521:
		return elliptic.P521()
	}
	return nil
}

// publicKey converts an MLS SignaturePublicKey into the crypto.PublicKey that
// crypto/x509 puts in, or finds in, a certificate.
func publicKey(s *mls.Suite, raw []byte) (crypto.PublicKey, error) {
	alg := signatureAlgorithm(s.ID)
	if alg == "" {
		return nil, newError(ErrBadKey, mls.ErrUnsupportedSuite, "no certificate key type for suite %v", s.ID)
	}
	if err := s.CheckSignaturePublicKey(raw); err != nil {
		return nil, newError(ErrBadKey, err, "not an %s key for suite %v", alg, s.ID)
	}
	curve := suiteCurve(s.ID)
	if curve == nil {
		return ed25519.PublicKey(slices.Clone(raw)), nil
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
	if err != nil {
		return nil, newError(ErrBadKey, err, "not an %s key for suite %v", alg, s.ID)
	}
	return pub, nil
}

// keyAlgorithm describes a certificate's key for error messages.
func keyAlgorithm(k crypto.PublicKey) string {
	switch k := k.(type) {
	case ed25519.PublicKey:
		return "Ed25519"
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return fmt.Sprintf("%T", k)
}

// sameKey reports whether a certificate's key is the MLS key want. Both
// ed25519.PublicKey and *ecdsa.PublicKey compare their type, curve and value.
func sameKey(certKey, want crypto.PublicKey) bool {
	k, ok := certKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(want)
}

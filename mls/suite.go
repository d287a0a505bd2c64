package mls

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// CipherSuite is an MLS cipher suite identifier (RFC 9420 §17.1).
type CipherSuite uint16

// The cipher suites Switchboard implements. Suites 0x0004 and 0x0006 need
// X448 and Ed448, which neither the standard library nor a well-kept Go
// library offers; see docs/mls.md.
const (
	X25519AES128GCMSHA256Ed25519        CipherSuite = 0x0001
	P256AES128GCMSHA256P256             CipherSuite = 0x0002
	X25519ChaCha20Poly1305SHA256Ed25519 CipherSuite = 0x0003
	P521AES256GCMSHA512P521             CipherSuite = 0x0005
	P384AES256GCMSHA384P384             CipherSuite = 0x0007
)

// SupportedSuites lists the implemented suites in order of preference.
var SupportedSuites = []CipherSuite{
	X25519AES128GCMSHA256Ed25519,
	P256AES128GCMSHA256P256,
	X25519ChaCha20Poly1305SHA256Ed25519,
	P521AES256GCMSHA512P521,
	P384AES256GCMSHA384P384,
}

// ErrUnsupportedSuite is returned for a cipher suite this package lacks.
var ErrUnsupportedSuite = errors.New("mls: unsupported cipher suite")

// ErrCrypto wraps failures of cryptographic checks: bad signatures, failed
// decryption, malformed keys.
var ErrCrypto = errors.New("mls: cryptographic failure")

// Suite holds the algorithms of one cipher suite and the labeled operations
// of RFC 9420 §5 built on them.
type Suite struct {
	ID       CipherSuite
	hash     func() hash.Hash
	hashSize int
	kem      hpke.KEM
	hpkeKDF  hpke.KDF
	hpkeAEAD hpke.AEAD
	keySize  int // AEAD key length
	sig      signatureScheme
	newAEAD  func(key []byte) (cipher.AEAD, error)
}

type signatureScheme int

const (
	sigEd25519 signatureScheme = iota
	sigP256
	sigP384
	sigP521
)

var suites = map[CipherSuite]*Suite{}

func init() {
	gcm := func(key []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	add := func(id CipherSuite, h func() hash.Hash, curve ecdh.Curve, kdf hpke.KDF, aead hpke.AEAD, keySize int, newAEAD func([]byte) (cipher.AEAD, error), sig signatureScheme) {
		suites[id] = &Suite{ID: id, hash: h, hashSize: h().Size(), kem: hpke.DHKEM(curve), hpkeKDF: kdf,
			hpkeAEAD: aead, keySize: keySize, sig: sig, newAEAD: newAEAD}
	}
	add(X25519AES128GCMSHA256Ed25519, sha256.New, ecdh.X25519(), hpke.HKDFSHA256(), hpke.AES128GCM(), 16, gcm, sigEd25519)
	add(P256AES128GCMSHA256P256, sha256.New, ecdh.P256(), hpke.HKDFSHA256(), hpke.AES128GCM(), 16, gcm, sigP256)
	add(X25519ChaCha20Poly1305SHA256Ed25519, sha256.New, ecdh.X25519(), hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), 32, chacha20poly1305.New, sigEd25519)
	add(P521AES256GCMSHA512P521, sha512.New, ecdh.P521(), hpke.HKDFSHA512(), hpke.AES256GCM(), 32, gcm, sigP521)
	add(P384AES256GCMSHA384P384, sha512.New384, ecdh.P384(), hpke.HKDFSHA384(), hpke.AES256GCM(), 32, gcm, sigP384)
}

// SuiteFor returns the implementation of a cipher suite.
func SuiteFor(id CipherSuite) (*Suite, error) {
	s, ok := suites[id]
	if !ok {
		return nil, fmt.Errorf("%w: 0x%04x", ErrUnsupportedSuite, uint16(id))
	}
	return s, nil
}

// SignatureScheme names the suite's signature scheme: "ed25519", "p256",
// "p384" or "p521".
func (s *Suite) SignatureScheme() string {
	return [...]string{sigEd25519: "ed25519", sigP256: "p256", sigP384: "p384", sigP521: "p521"}[s.sig]
}

func (id CipherSuite) String() string { return fmt.Sprintf("0x%04x", uint16(id)) }

// HashSize is Nh, the output size of the suite's hash and KDF.
func (s *Suite) HashSize() int { return s.hashSize }

// AEADKeySize and AEADNonceSize are Nk and Nn.
func (s *Suite) AEADKeySize() int   { return s.keySize }
func (s *Suite) AEADNonceSize() int { return 12 }

// Hash returns the suite's hash of data.
func (s *Suite) Hash(data []byte) []byte {
	h := s.hash()
	h.Write(data)
	return h.Sum(nil)
}

// NewHash returns a fresh instance of the suite's hash function.
func (s *Suite) NewHash() hash.Hash { return s.hash() }

// MAC computes HMAC with the suite's hash.
func (s *Suite) MAC(key, data []byte) []byte {
	m := hmac.New(s.hash, key)
	m.Write(data)
	return m.Sum(nil)
}

// VerifyMAC checks a MAC in constant time.
func (s *Suite) VerifyMAC(key, data, tag []byte) bool {
	return subtle.ConstantTimeCompare(s.MAC(key, data), tag) == 1
}

// Extract is KDF.Extract(salt, ikm).
func (s *Suite) Extract(salt, ikm []byte) []byte {
	if salt == nil {
		salt = []byte{}
	}
	out, err := hkdf.Extract(s.hash, ikm, salt)
	if err != nil {
		panic("mls: hkdf extract: " + err.Error()) // cannot fail for HMAC hashes
	}
	return out
}

// Expand is KDF.Expand(prk, info, length).
func (s *Suite) Expand(prk, info []byte, length int) []byte {
	out, err := hkdf.Expand(s.hash, prk, string(info), length)
	if err != nil {
		panic("mls: hkdf expand: " + err.Error()) // lengths come from the suite
	}
	return out
}

const labelPrefix = "MLS 1.0 "

// ExpandWithLabel derives length bytes from secret, bound to label and context.
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) []byte {
	w := NewWriter(len(label) + len(context) + 16)
	w.U16(uint16(length)) // #nosec G115 -- a key, nonce or hash size
	w.Opaque([]byte(labelPrefix + label))
	w.Opaque(context)
	return s.Expand(secret, w.Bytes(), length)
}

// DeriveSecret is ExpandWithLabel(secret, label, "", Nh).
func (s *Suite) DeriveSecret(secret []byte, label string) []byte {
	return s.ExpandWithLabel(secret, label, nil, s.hashSize)
}

// DeriveTreeSecret derives a ratchet secret for one generation (§9.1).
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) []byte {
	var ctx [4]byte
	binary.BigEndian.PutUint32(ctx[:], generation)
	return s.ExpandWithLabel(secret, label, ctx[:], length)
}

// RefHash computes the hash references of §5.2 (KeyPackageRef, ProposalRef).
func (s *Suite) RefHash(label string, value []byte) []byte {
	w := NewWriter(len(label) + len(value) + 8)
	w.Opaque([]byte(label))
	w.Opaque(value)
	return s.Hash(w.Bytes())
}

// NewAEAD returns the suite's AEAD keyed with key.
func (s *Suite) NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != s.keySize {
		return nil, fmt.Errorf("%w: AEAD key of %d bytes, want %d", ErrCrypto, len(key), s.keySize)
	}
	return s.newAEAD(key)
}

// Seal encrypts with the suite's AEAD.
func (s *Suite) Seal(key, nonce, aad, plaintext []byte) ([]byte, error) {
	a, err := s.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(nonce) != a.NonceSize() {
		return nil, fmt.Errorf("%w: nonce of %d bytes", ErrCrypto, len(nonce))
	}
	return a.Seal(nil, nonce, plaintext, aad), nil
}

// Open decrypts with the suite's AEAD.
func (s *Suite) Open(key, nonce, aad, ciphertext []byte) ([]byte, error) {
	a, err := s.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(nonce) != a.NonceSize() {
		return nil, fmt.Errorf("%w: nonce of %d bytes", ErrCrypto, len(nonce))
	}
	pt, err := a.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: AEAD decryption failed", ErrCrypto)
	}
	return pt, nil
}

// HPKE keys.

// HPKEPrivateKey is a private key for the suite's KEM.
type HPKEPrivateKey = hpke.PrivateKey

// GenerateHPKEKey makes a fresh HPKE key pair and returns the private key and
// the encoded public key.
func (s *Suite) GenerateHPKEKey() (HPKEPrivateKey, []byte, error) {
	k, err := s.kem.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	return k, k.PublicKey().Bytes(), nil
}

// DeriveHPKEKey is KEM.DeriveKeyPair(ikm).
func (s *Suite) DeriveHPKEKey(ikm []byte) (HPKEPrivateKey, []byte, error) {
	k, err := s.kem.DeriveKeyPair(ikm)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: derive key pair: %v", ErrCrypto, err)
	}
	return k, k.PublicKey().Bytes(), nil
}

// ParseHPKEPrivateKey decodes a private key in SerializePrivateKey form.
func (s *Suite) ParseHPKEPrivateKey(raw []byte) (HPKEPrivateKey, error) {
	// NIST-curve scalars are fixed-width big-endian integers; accept them
	// from implementations that drop leading zero bytes.
	if c := s.curve(); c != nil {
		if size := (c.Params().BitSize + 7) / 8; len(raw) < size {
			raw = append(make([]byte, size-len(raw)), raw...)
		}
	}
	k, err := s.kem.NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE private key: %v", ErrCrypto, err)
	}
	return k, nil
}

// CheckHPKEPublicKey reports whether pub is a valid public key of the suite's KEM.
func (s *Suite) CheckHPKEPublicKey(pub []byte) error {
	if _, err := s.kem.NewPublicKey(pub); err != nil {
		return fmt.Errorf("%w: HPKE public key: %v", ErrCrypto, err)
	}
	return nil
}

func encryptContext(label string, context []byte) []byte {
	w := NewWriter(len(label) + len(context) + 16)
	w.Opaque([]byte(labelPrefix + label))
	w.Opaque(context)
	return w.Bytes()
}

// EncryptWithLabel is HPKE SealBase with a labeled info string (§5.1.3).
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	pk, err := s.kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE public key: %v", ErrCrypto, err)
	}
	enc, sender, err := hpke.NewSender(pk, s.hpkeKDF, s.hpkeAEAD, encryptContext(label, context))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE setup: %v", ErrCrypto, err)
	}
	ct, err := sender.Seal(nil, plaintext)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE seal: %v", ErrCrypto, err)
	}
	return enc, ct, nil
}

// DecryptWithLabel is HPKE OpenBase with a labeled info string.
func (s *Suite) DecryptWithLabel(priv HPKEPrivateKey, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	r, err := hpke.NewRecipient(kemOutput, priv, s.hpkeKDF, s.hpkeAEAD, encryptContext(label, context))
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE setup: %v", ErrCrypto, err)
	}
	pt, err := r.Open(nil, ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE decryption failed", ErrCrypto)
	}
	return pt, nil
}

// Signatures.

// SignaturePrivateKey is a member's signing key for the suite's scheme.
type SignaturePrivateKey struct {
	scheme signatureScheme
	ed     ed25519.PrivateKey
	ec     *ecdsa.PrivateKey
	public []byte
}

// PublicKey returns the encoded public key (SignaturePublicKey contents).
func (k *SignaturePrivateKey) PublicKey() []byte { return k.public }

// Bytes returns the private key in the test vectors' raw form: the Ed25519
// seed, or the ECDSA scalar as a big-endian integer.
func (k *SignaturePrivateKey) Bytes() []byte {
	if k.ed != nil {
		return append([]byte{}, k.ed.Seed()...)
	}
	b, err := k.ec.Bytes()
	if err != nil {
		panic("mls: ecdsa key bytes: " + err.Error())
	}
	return b
}

func (s *Suite) curve() elliptic.Curve {
	switch s.sig {
	case sigP256:
		return elliptic.P256()
	case sigP384:
		return elliptic.P384()
	case sigP521:
		return elliptic.P521()
	}
	return nil
}

func (s *Suite) newSignatureKey(ed ed25519.PrivateKey, ec *ecdsa.PrivateKey) (*SignaturePrivateKey, error) {
	k := &SignaturePrivateKey{scheme: s.sig, ed: ed, ec: ec}
	if ed != nil {
		k.public = append([]byte{}, ed.Public().(ed25519.PublicKey)...)
		return k, nil
	}
	pub, err := ec.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: ecdsa public key: %v", ErrCrypto, err)
	}
	k.public = pub
	return k, nil
}

// GenerateSignatureKey makes a fresh signing key.
func (s *Suite) GenerateSignatureKey() (*SignaturePrivateKey, error) {
	if s.sig == sigEd25519 {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return s.newSignatureKey(priv, nil)
	}
	priv, err := ecdsa.GenerateKey(s.curve(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return s.newSignatureKey(nil, priv)
}

// ParseSignaturePrivateKey decodes a signing key in raw form (see Bytes).
func (s *Suite) ParseSignaturePrivateKey(raw []byte) (*SignaturePrivateKey, error) {
	if s.sig == sigEd25519 {
		if len(raw) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: Ed25519 seed of %d bytes", ErrCrypto, len(raw))
		}
		return s.newSignatureKey(ed25519.NewKeyFromSeed(raw), nil)
	}
	// Some implementations drop leading zero bytes of the scalar; restore
	// the fixed width the standard library expects.
	if size := (s.curve().Params().BitSize + 7) / 8; len(raw) < size {
		raw = append(make([]byte, size-len(raw)), raw...)
	}
	priv, err := ecdsa.ParseRawPrivateKey(s.curve(), raw)
	if err != nil {
		return nil, fmt.Errorf("%w: ECDSA private key: %v", ErrCrypto, err)
	}
	return s.newSignatureKey(nil, priv)
}

// CheckSignaturePublicKey reports whether pub is a valid key for the scheme.
func (s *Suite) CheckSignaturePublicKey(pub []byte) error {
	if s.sig == sigEd25519 {
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrCrypto, len(pub))
		}
		return nil
	}
	if _, err := ecdsa.ParseUncompressedPublicKey(s.curve(), pub); err != nil {
		return fmt.Errorf("%w: ECDSA public key: %v", ErrCrypto, err)
	}
	return nil
}

func signContent(label string, content []byte) []byte {
	w := NewWriter(len(label) + len(content) + 16)
	w.Opaque([]byte(labelPrefix + label))
	w.Opaque(content)
	return w.Bytes()
}

func (s *Suite) sigHash() crypto.Hash {
	switch s.sig {
	case sigP256:
		return crypto.SHA256
	case sigP384:
		return crypto.SHA384
	case sigP521:
		return crypto.SHA512
	}
	return 0
}

func (s *Suite) digest(msg []byte) []byte {
	h := s.sigHash().New()
	h.Write(msg)
	return h.Sum(nil)
}

// SignWithLabel signs content under a label (§5.1.2). ECDSA signatures are
// DER-encoded, as in TLS.
func (s *Suite) SignWithLabel(k *SignaturePrivateKey, label string, content []byte) ([]byte, error) {
	msg := signContent(label, content)
	if k.ed != nil {
		return ed25519.Sign(k.ed, msg), nil
	}
	return ecdsa.SignASN1(rand.Reader, k.ec, s.digest(msg))
}

// ErrSignature reports a signature that does not verify.
var ErrSignature = fmt.Errorf("%w: invalid signature", ErrCrypto)

// VerifyWithLabel checks a signature made by SignWithLabel.
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	msg := signContent(label, content)
	if s.sig == sigEd25519 {
		if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, msg, signature) {
			return ErrSignature
		}
		return nil
	}
	pk, err := ecdsa.ParseUncompressedPublicKey(s.curve(), pub)
	if err != nil {
		return fmt.Errorf("%w: ECDSA public key: %v", ErrCrypto, err)
	}
	if !ecdsa.VerifyASN1(pk, s.digest(msg), signature) {
		return ErrSignature
	}
	return nil
}

// RandomBytes returns n bytes from the system's secure random source.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("mls: random source failed: " + err.Error())
	}
	return b
}

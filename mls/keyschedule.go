package mls

import (
	"errors"
	"fmt"
)

// The epoch key schedule of RFC 9420 §8:
//
//	init_secret[n-1] ─salt─┐
//	commit_secret ──ikm──Extract ─ExpandWithLabel("joiner", GroupContext)→ joiner_secret
//	joiner_secret ─salt─┐
//	psk_secret ───ikm──Extract → member ─DeriveSecret("welcome")→ welcome_secret
//	member ─ExpandWithLabel("epoch", GroupContext)→ epoch_secret ─DeriveSecret(label)→ …
//
// Members who process a Commit enter at the top; new members enter at
// joiner_secret, which the Welcome carries. Both reach the same EpochSecrets.

// ErrKeySchedule reports key-schedule inputs of the wrong shape, such as a
// secret whose length is not the suite's Nh.
var ErrKeySchedule = errors.New("mls: key schedule")

// EpochSecrets holds the secrets of one epoch. A nil or empty field is one
// that has been forgotten (see ForgetConsumed).
type EpochSecrets struct {
	suite *Suite

	JoinerSecret  []byte // the entry point of new members; sent in GroupSecrets
	WelcomeSecret []byte // keys the encryption of GroupInfo in a Welcome
	EpochSecret   []byte // the root of every secret below

	SenderDataSecret   []byte // "sender data": keys the SenderData of PrivateMessages
	EncryptionSecret   []byte // "encryption": root of the secret tree (§9)
	ExporterSecret     []byte // "exporter": for MLS-Exporter
	ExternalSecret     []byte // "external": seeds the external HPKE key pair
	ConfirmationKey    []byte // "confirm": keys confirmation_tag
	MembershipKey      []byte // "membership": keys membership_tag of PublicMessages
	ResumptionPSK      []byte // "resumption": a PSK that proves membership in this epoch later
	EpochAuthenticator []byte // "authentication": compared out of band to detect impersonation
	InitSecret         []byte // "init": init_secret feeding the next epoch's key schedule
}

// checkKeyScheduleSecret insists that a secret input is exactly Nh bytes; a wrong length
// always means the caller passed the wrong value, and HKDF would hide that.
func (s *Suite) checkKeyScheduleSecret(name string, b []byte) error {
	if len(b) != s.HashSize() {
		return fmt.Errorf("%w: %s of %d bytes, want %d", ErrKeySchedule, name, len(b), s.HashSize())
	}
	return nil
}

// keyScheduleDefault returns b, or Nh zero bytes if b is empty, the RFC's
// "0" for an absent commit_secret or psk_secret.
func (s *Suite) keyScheduleDefault(name string, b []byte) ([]byte, error) {
	if len(b) == 0 {
		return make([]byte, s.HashSize()), nil
	}
	if err := s.checkKeyScheduleSecret(name, b); err != nil {
		return nil, err
	}
	return b, nil
}

func checkGroupContextBytes(gc []byte) error {
	if len(gc) == 0 || len(gc) > maxVarint {
		return fmt.Errorf("%w: serialized GroupContext of %d bytes", ErrKeySchedule, len(gc))
	}
	return nil
}

// NewEpochSecrets runs the key schedule as an existing member does on
// processing a Commit (or the creator on creating the group): from the
// previous epoch's init_secret, the Commit's commit_secret, the psk_secret
// of the Commit's PSKs and the new epoch's serialized GroupContext. An empty
// commitSecret or pskSecret stands for Nh zero bytes.
//
// The caller still owns initSecret and commitSecret and should clear them
// once the new epoch is accepted: §9.2 counts them as consumed.
func NewEpochSecrets(s *Suite, initSecret, commitSecret, pskSecret, groupContext []byte) (*EpochSecrets, error) {
	if err := s.checkKeyScheduleSecret("init_secret", initSecret); err != nil {
		return nil, err
	}
	commit, err := s.keyScheduleDefault("commit_secret", commitSecret)
	if err != nil {
		return nil, err
	}
	if err := checkGroupContextBytes(groupContext); err != nil {
		return nil, err
	}
	prk := s.Extract(initSecret, commit)
	joiner := s.ExpandWithLabel(prk, "joiner", groupContext, s.HashSize())
	clear(prk)
	e, err := EpochSecretsFromJoiner(s, joiner, pskSecret, groupContext)
	clear(joiner) // EpochSecretsFromJoiner keeps its own copy
	return e, err
}

// EpochSecretsFromJoiner runs the key schedule from joiner_secret, as a new
// member does after decrypting a Welcome's GroupSecrets and GroupInfo. It
// yields exactly what NewEpochSecrets yields for the same epoch.
func EpochSecretsFromJoiner(s *Suite, joinerSecret, pskSecret, groupContext []byte) (*EpochSecrets, error) {
	if err := s.checkKeyScheduleSecret("joiner_secret", joinerSecret); err != nil {
		return nil, err
	}
	psk, err := s.keyScheduleDefault("psk_secret", pskSecret)
	if err != nil {
		return nil, err
	}
	if err := checkGroupContextBytes(groupContext); err != nil {
		return nil, err
	}
	member := s.Extract(joinerSecret, psk)
	defer clear(member)
	e := &EpochSecrets{
		suite:         s,
		JoinerSecret:  append([]byte{}, joinerSecret...),
		WelcomeSecret: s.DeriveSecret(member, "welcome"),
		EpochSecret:   s.ExpandWithLabel(member, "epoch", groupContext, s.HashSize()),
	}
	ep := e.EpochSecret
	e.SenderDataSecret = s.DeriveSecret(ep, "sender data")
	e.EncryptionSecret = s.DeriveSecret(ep, "encryption")
	e.ExporterSecret = s.DeriveSecret(ep, "exporter")
	e.ExternalSecret = s.DeriveSecret(ep, "external")
	e.ConfirmationKey = s.DeriveSecret(ep, "confirm")
	e.MembershipKey = s.DeriveSecret(ep, "membership")
	e.ResumptionPSK = s.DeriveSecret(ep, "resumption")
	e.EpochAuthenticator = s.DeriveSecret(ep, "authentication")
	e.InitSecret = s.DeriveSecret(ep, "init")
	return e, nil
}

// DeriveWelcomeSecret computes welcome_secret from joiner_secret and
// psk_secret alone. A new member needs it before it has the GroupContext:
// the GroupContext is inside the GroupInfo that welcome_secret decrypts.
func DeriveWelcomeSecret(s *Suite, joinerSecret, pskSecret []byte) ([]byte, error) {
	if err := s.checkKeyScheduleSecret("joiner_secret", joinerSecret); err != nil {
		return nil, err
	}
	psk, err := s.keyScheduleDefault("psk_secret", pskSecret)
	if err != nil {
		return nil, err
	}
	member := s.Extract(joinerSecret, psk)
	defer clear(member)
	return s.DeriveSecret(member, "welcome"), nil
}

// WelcomeKeyNonce derives the AEAD key and nonce that protect a Welcome's
// encrypted GroupInfo (§12.4.3.1).
func WelcomeKeyNonce(s *Suite, welcomeSecret []byte) (key, nonce []byte) {
	return s.ExpandWithLabel(welcomeSecret, "key", nil, s.AEADKeySize()),
		s.ExpandWithLabel(welcomeSecret, "nonce", nil, s.AEADNonceSize())
}

// Suite returns the cipher suite the secrets were derived with.
func (e *EpochSecrets) Suite() *Suite { return e.suite }

// Export is MLS-Exporter(label, context, length) (§8.5): a secret for use
// outside MLS, bound to this epoch and to the label, so that distinct uses
// never share keys.
func (e *EpochSecrets) Export(label string, context []byte, length int) ([]byte, error) {
	s := e.suite
	if len(e.ExporterSecret) == 0 {
		return nil, fmt.Errorf("%w: exporter_secret has been deleted", ErrKeySchedule)
	}
	// ExpandWithLabel encodes the length in 16 bits and HKDF-Expand stops at
	// 255 blocks; beyond either the result would be wrong or a panic.
	if limit := min(1<<16-1, 255*s.HashSize()); length < 0 || length > limit {
		return nil, fmt.Errorf("%w: exporter length %d outside 0..%d", ErrKeySchedule, length, limit)
	}
	if len(label) > maxVarint-len(labelPrefix) {
		return nil, fmt.Errorf("%w: exporter label of %d bytes", ErrKeySchedule, len(label))
	}
	derived := s.DeriveSecret(e.ExporterSecret, label)
	defer clear(derived)
	return s.ExpandWithLabel(derived, "exported", s.Hash(context), length), nil
}

// ExternalKeyPair derives the group's external HPKE key pair from
// external_secret; the public key goes in the GroupInfo's external_pub
// extension so that non-members can join by external Commit.
func (e *EpochSecrets) ExternalKeyPair() (HPKEPrivateKey, []byte, error) {
	if len(e.ExternalSecret) == 0 {
		return nil, nil, fmt.Errorf("%w: external_secret has been deleted", ErrKeySchedule)
	}
	return e.suite.DeriveHPKEKey(e.ExternalSecret)
}

// SenderDataKeyNonce derives the SenderData key and nonce of a
// PrivateMessage with this epoch's sender_data_secret.
func (e *EpochSecrets) SenderDataKeyNonce(ciphertext []byte) (key, nonce []byte) {
	return SenderDataKeyNonce(e.suite, e.SenderDataSecret, ciphertext)
}

// ForgetConsumed clears joiner_secret, welcome_secret, epoch_secret and
// encryption_secret. §9.2 requires deleting them once consumed: call it after
// the secret tree has been built from EncryptionSecret and, for a committer,
// after the Welcome has been encrypted.
func (e *EpochSecrets) ForgetConsumed() {
	for _, p := range []*[]byte{&e.JoinerSecret, &e.WelcomeSecret, &e.EpochSecret, &e.EncryptionSecret} {
		clear(*p)
		*p = nil
	}
}

// Clone returns a deep copy, so that a tentative next group state can be
// built without sharing mutable buffers with the current one.
func (e *EpochSecrets) Clone() *EpochSecrets {
	c := &EpochSecrets{suite: e.suite}
	src, dst := e.fields(), c.fields()
	for i := range src {
		if *src[i] != nil {
			*dst[i] = append([]byte{}, *src[i]...)
		}
	}
	return c
}

// fields lists the secrets in their serialization order.
func (e *EpochSecrets) fields() []*[]byte {
	return []*[]byte{
		&e.JoinerSecret, &e.WelcomeSecret, &e.EpochSecret,
		&e.SenderDataSecret, &e.EncryptionSecret, &e.ExporterSecret, &e.ExternalSecret,
		&e.ConfirmationKey, &e.MembershipKey, &e.ResumptionPSK, &e.EpochAuthenticator,
		&e.InitSecret,
	}
}

// epochSecretsFormat versions the storage encoding below, which is
// Switchboard's own, not part of the MLS wire protocol.
const epochSecretsFormat = 1

// MarshalMLS writes the secrets for local storage of group state:
//
//	uint8 format = 1; uint16 cipher_suite;
//	opaque joiner, welcome, epoch, sender_data, encryption, exporter,
//	       external, confirmation, membership, resumption,
//	       authenticator, init <V> (each empty if forgotten)
func (e *EpochSecrets) MarshalMLS(w *Writer) {
	w.U8(epochSecretsFormat)
	var id CipherSuite
	if e.suite != nil {
		id = e.suite.ID
	}
	w.U16(uint16(id))
	for _, f := range e.fields() {
		w.Opaque(*f)
	}
}

// UnmarshalMLS reads what MarshalMLS wrote, checking the suite is supported
// and every secret is empty or Nh bytes long.
func (e *EpochSecrets) UnmarshalMLS(r *Reader) {
	*e = EpochSecrets{}
	if v := r.U8(); r.Err() == nil && v != epochSecretsFormat {
		r.Failf("epoch secrets format %d", v)
		return
	}
	id := CipherSuite(r.U16())
	if r.Err() != nil {
		return
	}
	s, err := SuiteFor(id)
	if err != nil {
		r.Fail(err)
		return
	}
	e.suite = s
	for i, f := range e.fields() {
		b := r.OpaqueCopy()
		if r.Err() != nil {
			return
		}
		if len(b) != 0 && len(b) != s.HashSize() {
			r.Failf("epoch secret %d of %d bytes, want %d", i, len(b), s.HashSize())
			return
		}
		if len(b) != 0 {
			*f = b
		}
	}
}

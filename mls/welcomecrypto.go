package mls

import (
	"bytes"
	"errors"
	"fmt"
)

// Encryption of Welcome messages (RFC 9420 §12.4.3.1): the GroupInfo is
// encrypted once, under a key derived from welcome_secret, so one Welcome
// can serve many new members; each new member gets its own HPKE encryption
// of the GroupSecrets (which carry joiner_secret) to its KeyPackage's init
// key, bound to the encrypted GroupInfo as context.

// ErrNotInWelcome reports a Welcome that has no entry for our KeyPackage:
// it was meant for other new members.
var ErrNotInWelcome = errors.New("mls: welcome has no entry for this key package")

// ErrWelcome reports a Welcome that is malformed or inconsistent.
var ErrWelcome = errors.New("mls: welcome")

// NewMemberSecrets is what a committer sends one new member: the secrets,
// encrypted to the init key of the KeyPackage it was added with.
type NewMemberSecrets struct {
	KeyPackage *KeyPackage
	Secrets    GroupSecrets
}

// SealWelcome builds a Welcome for the new epoch whose welcome_secret is
// given: info (already signed by the committer) encrypted with the welcome
// key and nonce and an empty AAD, and each member's GroupSecrets encrypted
// with EncryptWithLabel(init_key, "Welcome", encrypted_group_info, ·) and
// named by its KeyPackageRef.
func SealWelcome(s *Suite, welcomeSecret []byte, info *GroupInfo, members []NewMemberSecrets) (*Welcome, error) {
	if len(welcomeSecret) != s.HashSize() {
		return nil, fmt.Errorf("%w: welcome_secret of %d bytes, want %d", ErrWelcome, len(welcomeSecret), s.HashSize())
	}
	if len(info.Signature) == 0 {
		return nil, fmt.Errorf("%w: group info is not signed", ErrWelcome)
	}
	if info.GroupContext.CipherSuite != s.ID {
		return nil, fmt.Errorf("%w: group info of cipher suite %v in a Welcome of %v", ErrWelcome, info.GroupContext.CipherSuite, s.ID)
	}
	key, nonce := WelcomeKeyNonce(s, welcomeSecret)
	egi, err := s.Seal(key, nonce, nil, Marshal(info))
	clear(key)
	if err != nil {
		return nil, err
	}
	w := &Welcome{CipherSuite: s.ID, EncryptedGroupInfo: egi, Secrets: make([]EncryptedGroupSecrets, 0, len(members))}
	for i := range members {
		kp := members[i].KeyPackage
		if kp == nil {
			return nil, fmt.Errorf("%w: new member %d has no KeyPackage", ErrWelcome, i)
		}
		if kp.CipherSuite != s.ID {
			// §12.4.3.1: the joiner would refuse it anyway.
			return nil, fmt.Errorf("%w: KeyPackage of new member %d is for cipher suite %v, not %v", ErrWelcome, i, kp.CipherSuite, s.ID)
		}
		enc, ct, err := s.EncryptWithLabel(kp.InitKey, "Welcome", egi, Marshal(&members[i].Secrets))
		if err != nil {
			return nil, fmt.Errorf("group secrets for new member %d: %w", i, err)
		}
		w.Secrets = append(w.Secrets, EncryptedGroupSecrets{
			NewMember:             kp.Ref(s),
			EncryptedGroupSecrets: HPKECiphertext{KEMOutput: enc, Ciphertext: ct},
		})
	}
	return w, nil
}

func checkWelcomeSuite(s *Suite, w *Welcome) error {
	if w.CipherSuite != s.ID {
		return fmt.Errorf("%w: Welcome for cipher suite %v, expected %v", ErrWelcome, w.CipherSuite, s.ID)
	}
	return nil
}

// FindWelcomeSecrets finds the entry of a Welcome meant for the KeyPackage
// whose reference is keyPackageRef and decrypts it with that KeyPackage's
// private init key. ErrNotInWelcome means there is no such entry. The caller
// still checks the PSKs the secrets name and derives welcome_secret.
func FindWelcomeSecrets(s *Suite, w *Welcome, keyPackageRef []byte, initKey HPKEPrivateKey) (*GroupSecrets, error) {
	if err := checkWelcomeSuite(s, w); err != nil {
		return nil, err
	}
	for i := range w.Secrets {
		e := &w.Secrets[i]
		if !bytes.Equal(e.NewMember, keyPackageRef) {
			continue
		}
		pt, err := s.DecryptWithLabel(initKey, "Welcome", w.EncryptedGroupInfo,
			e.EncryptedGroupSecrets.KEMOutput, e.EncryptedGroupSecrets.Ciphertext)
		if err != nil {
			return nil, fmt.Errorf("group secrets of Welcome entry %d: %w", i, err)
		}
		gs := new(GroupSecrets)
		err = Unmarshal(pt, gs)
		clear(pt)
		if err != nil {
			return nil, fmt.Errorf("%w: group secrets: %w", ErrWelcome, err)
		}
		if len(gs.JoinerSecret) != s.HashSize() {
			return nil, fmt.Errorf("%w: joiner_secret of %d bytes, want %d", ErrWelcome, len(gs.JoinerSecret), s.HashSize())
		}
		return gs, nil
	}
	return nil, fmt.Errorf("%w: KeyPackageRef %x is not among its %d entries", ErrNotInWelcome, keyPackageRef, len(w.Secrets))
}

// OpenGroupInfo decrypts and decodes a Welcome's GroupInfo with the key and
// nonce derived from welcomeSecret. The signature is not verified here: the
// signer's key is in the ratchet tree, which the caller must obtain and
// check first (GroupInfo.VerifySignature).
func OpenGroupInfo(s *Suite, w *Welcome, welcomeSecret []byte) (*GroupInfo, error) {
	if err := checkWelcomeSuite(s, w); err != nil {
		return nil, err
	}
	if len(welcomeSecret) != s.HashSize() {
		return nil, fmt.Errorf("%w: welcome_secret of %d bytes, want %d", ErrWelcome, len(welcomeSecret), s.HashSize())
	}
	key, nonce := WelcomeKeyNonce(s, welcomeSecret)
	pt, err := s.Open(key, nonce, nil, w.EncryptedGroupInfo)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("welcome group info: %w", err)
	}
	gi := new(GroupInfo)
	if err := Unmarshal(pt, gi); err != nil {
		return nil, fmt.Errorf("%w: group info: %w", ErrWelcome, err)
	}
	if gi.GroupContext.CipherSuite != w.CipherSuite {
		return nil, fmt.Errorf("%w: group info of cipher suite %v in a Welcome of %v", ErrWelcome, gi.GroupContext.CipherSuite, w.CipherSuite)
	}
	return gi, nil
}

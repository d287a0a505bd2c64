package mlstest

import (
	"bytes"
	"fmt"

	"github.com/switchboard-chat/switchboard/mls"
)

func init() {
	register("passive-client", has("initial_epoch_authenticator", "welcome", "epochs"), runPassive)
}

type passiveCase struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID Hex `json:"psk_id"`
		PSK   Hex `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                Hex `json:"key_package"`
	SignaturePriv             Hex `json:"signature_priv"`
	EncryptionPriv            Hex `json:"encryption_priv"`
	InitPriv                  Hex `json:"init_priv"`
	Welcome                   Hex `json:"welcome"`
	RatchetTree               Hex `json:"ratchet_tree"`
	InitialEpochAuthenticator Hex `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []Hex `json:"proposals"`
		Commit             Hex   `json:"commit"`
		EpochAuthenticator Hex   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

func runPassive(data []byte) (Result, error) {
	return runCases(data, func(c *passiveCase) uint16 { return c.CipherSuite }, checkPassive)
}

// checkPassive joins a group by Welcome as a passive member and follows
// every commit, comparing epoch authenticators.
func checkPassive(c *passiveCase) error {
	s, err := mls.SuiteFor(mls.CipherSuite(c.CipherSuite))
	if err != nil {
		return err
	}
	kpMsg, err := mls.ParseMLSMessage(c.KeyPackage)
	if err != nil {
		return fmt.Errorf("key_package: %w", err)
	}
	if kpMsg.KeyPackage == nil {
		return fmt.Errorf("key_package: not a KeyPackage message")
	}
	kp := kpMsg.KeyPackage
	sig, err := s.ParseSignaturePrivateKey(c.SignaturePriv)
	if err != nil {
		return fmt.Errorf("signature_priv: %w", err)
	}
	if !bytes.Equal(sig.PublicKey(), kp.LeafNode.SignatureKey) {
		return fmt.Errorf("signature_priv does not match the KeyPackage's signature key")
	}
	enc, err := s.ParseHPKEPrivateKey(c.EncryptionPriv)
	if err != nil {
		return fmt.Errorf("encryption_priv: %w", err)
	}
	if !bytes.Equal(enc.PublicKey().Bytes(), kp.LeafNode.EncryptionKey) {
		return fmt.Errorf("encryption_priv does not match the leaf's encryption key")
	}
	initKey, err := s.ParseHPKEPrivateKey(c.InitPriv)
	if err != nil {
		return fmt.Errorf("init_priv: %w", err)
	}
	if !bytes.Equal(initKey.PublicKey().Bytes(), kp.InitKey) {
		return fmt.Errorf("init_priv does not match the KeyPackage's init key")
	}
	psks := &mls.PSKMap{}
	for _, p := range c.ExternalPSKs {
		psks.AddExternal(p.PSKID, p.PSK)
	}
	wMsg, err := mls.ParseMLSMessage(c.Welcome)
	if err != nil {
		return fmt.Errorf("welcome: %w", err)
	}
	if wMsg.Welcome == nil {
		return fmt.Errorf("welcome: not a Welcome message")
	}
	var tree mls.TreeNodes
	if c.RatchetTree != nil {
		if err := mls.Unmarshal(c.RatchetTree, &tree); err != nil {
			return fmt.Errorf("ratchet_tree: %w", err)
		}
	}
	private := &mls.KeyPackagePrivate{KeyPackage: kp, InitKey: initKey, EncryptionKey: enc, SignatureKey: sig}
	g, err := mls.JoinFromWelcome(wMsg.Welcome, private, tree, mls.GroupConfig{PSKs: psks})
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if got := g.EpochAuthenticator(); !bytes.Equal(got, c.InitialEpochAuthenticator) {
		return mismatch("initial epoch authenticator", got, c.InitialEpochAuthenticator)
	}
	for i, e := range c.Epochs {
		for j, p := range e.Proposals {
			m, err := mls.ParseMLSMessage(p)
			if err != nil {
				return fmt.Errorf("epoch %d proposal %d: %w", i, j, err)
			}
			if _, err := g.ProcessMessage(m); err != nil {
				return fmt.Errorf("epoch %d proposal %d: %w", i, j, err)
			}
		}
		m, err := mls.ParseMLSMessage(e.Commit)
		if err != nil {
			return fmt.Errorf("epoch %d commit: %w", i, err)
		}
		r, err := g.ProcessMessage(m)
		if err != nil {
			return fmt.Errorf("epoch %d commit: %w", i, err)
		}
		if r.Commit == nil {
			return fmt.Errorf("epoch %d: the commit message holds a %v", i, r.ContentType)
		}
		if got := g.EpochAuthenticator(); !bytes.Equal(got, e.EpochAuthenticator) {
			return mismatch(fmt.Sprintf("epoch %d authenticator", i), got, e.EpochAuthenticator)
		}
	}
	return nil
}

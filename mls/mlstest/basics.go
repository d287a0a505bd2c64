package mlstest

import (
	"fmt"

	"github.com/switchboard-chat/switchboard/mls"
)

func init() {
	register("tree-math", has("n_leaves", "n_nodes"), runTreeMath)
	register("crypto-basics", has("ref_hash", "expand_with_label"), runCryptoBasics)
	register("deserialization", has("vlbytes_header", "length"), runDeserialization)
}

type treeMathCase struct {
	NLeaves uint32    `json:"n_leaves"`
	NNodes  uint32    `json:"n_nodes"`
	Root    uint32    `json:"root"`
	Left    []*uint32 `json:"left"`
	Right   []*uint32 `json:"right"`
	Parent  []*uint32 `json:"parent"`
	Sibling []*uint32 `json:"sibling"`
}

func runTreeMath(data []byte) (Result, error) {
	return runCases(data, noSuite[treeMathCase], func(c *treeMathCase) error {
		if w := mls.TreeWidth(c.NLeaves); w != c.NNodes {
			return fmt.Errorf("n_nodes: got %d, want %d", w, c.NNodes)
		}
		if r := mls.TreeRoot(c.NLeaves); uint32(r) != c.Root {
			return fmt.Errorf("root: got %d, want %d", r, c.Root)
		}
		checks := []struct {
			name string
			want []*uint32
			f    func(mls.NodeIndex) (mls.NodeIndex, bool)
		}{
			{"left", c.Left, mls.TreeLeft},
			{"right", c.Right, mls.TreeRight},
			{"parent", c.Parent, func(x mls.NodeIndex) (mls.NodeIndex, bool) { return mls.TreeParent(x, c.NLeaves) }},
			{"sibling", c.Sibling, func(x mls.NodeIndex) (mls.NodeIndex, bool) { return mls.TreeSibling(x, c.NLeaves) }},
		}
		for _, ch := range checks {
			if len(ch.want) != int(c.NNodes) {
				return fmt.Errorf("%s: vector has %d entries for %d nodes", ch.name, len(ch.want), c.NNodes)
			}
			for i, w := range ch.want {
				got, ok := ch.f(mls.NodeIndex(i))
				switch {
				case w == nil && ok:
					return fmt.Errorf("%s(%d): got %d, want none", ch.name, i, got)
				case w != nil && !ok:
					return fmt.Errorf("%s(%d): got none, want %d", ch.name, i, *w)
				case w != nil && uint32(got) != *w:
					return fmt.Errorf("%s(%d): got %d, want %d", ch.name, i, got, *w)
				}
			}
		}
		return nil
	})
}

type cryptoBasicsCase struct {
	CipherSuite uint16 `json:"cipher_suite"`
	RefHash     struct {
		Label string `json:"label"`
		Value Hex    `json:"value"`
		Out   Hex    `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  Hex    `json:"secret"`
		Label   string `json:"label"`
		Context Hex    `json:"context"`
		Length  int    `json:"length"`
		Out     Hex    `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret Hex    `json:"secret"`
		Label  string `json:"label"`
		Out    Hex    `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     Hex    `json:"secret"`
		Label      string `json:"label"`
		Generation uint32 `json:"generation"`
		Length     int    `json:"length"`
		Out        Hex    `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      Hex    `json:"priv"`
		Pub       Hex    `json:"pub"`
		Content   Hex    `json:"content"`
		Label     string `json:"label"`
		Signature Hex    `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       Hex    `json:"priv"`
		Pub        Hex    `json:"pub"`
		Label      string `json:"label"`
		Context    Hex    `json:"context"`
		Plaintext  Hex    `json:"plaintext"`
		KEMOutput  Hex    `json:"kem_output"`
		Ciphertext Hex    `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

func runCryptoBasics(data []byte) (Result, error) {
	return runCases(data, func(c *cryptoBasicsCase) uint16 { return c.CipherSuite }, checkCryptoBasics)
}

func checkCryptoBasics(c *cryptoBasicsCase) error {
	s, err := mls.SuiteFor(mls.CipherSuite(c.CipherSuite))
	if err != nil {
		return err
	}
	if got := s.RefHash(c.RefHash.Label, c.RefHash.Value); !equal(got, c.RefHash.Out) {
		return mismatch("ref_hash", got, c.RefHash.Out)
	}
	e := c.ExpandWithLabel
	if got := s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length); !equal(got, e.Out) {
		return mismatch("expand_with_label", got, e.Out)
	}
	if got := s.DeriveSecret(c.DeriveSecret.Secret, c.DeriveSecret.Label); !equal(got, c.DeriveSecret.Out) {
		return mismatch("derive_secret", got, c.DeriveSecret.Out)
	}
	t := c.DeriveTreeSecret
	if got := s.DeriveTreeSecret(t.Secret, t.Label, t.Generation, t.Length); !equal(got, t.Out) {
		return mismatch("derive_tree_secret", got, t.Out)
	}

	sg := c.SignWithLabel
	if err := s.VerifyWithLabel(sg.Pub, sg.Label, sg.Content, sg.Signature); err != nil {
		return fmt.Errorf("sign_with_label: vector signature: %w", err)
	}
	key, err := s.ParseSignaturePrivateKey(sg.Priv)
	if err != nil {
		return fmt.Errorf("sign_with_label: %w", err)
	}
	if !equal(key.PublicKey(), sg.Pub) {
		return mismatch("sign_with_label public key", key.PublicKey(), sg.Pub)
	}
	sig, err := s.SignWithLabel(key, sg.Label, sg.Content)
	if err != nil {
		return fmt.Errorf("sign_with_label: %w", err)
	}
	if err := s.VerifyWithLabel(sg.Pub, sg.Label, sg.Content, sig); err != nil {
		return fmt.Errorf("sign_with_label: own signature: %w", err)
	}
	if err := s.VerifyWithLabel(sg.Pub, sg.Label+"x", sg.Content, sig); err == nil {
		return fmt.Errorf("sign_with_label: signature verified under another label")
	}

	en := c.EncryptWithLabel
	priv, err := s.ParseHPKEPrivateKey(en.Priv)
	if err != nil {
		return fmt.Errorf("encrypt_with_label: %w", err)
	}
	pt, err := s.DecryptWithLabel(priv, en.Label, en.Context, en.KEMOutput, en.Ciphertext)
	if err != nil {
		return fmt.Errorf("encrypt_with_label: vector ciphertext: %w", err)
	}
	if !equal(pt, en.Plaintext) {
		return mismatch("encrypt_with_label plaintext", pt, en.Plaintext)
	}
	kem, ct, err := s.EncryptWithLabel(en.Pub, en.Label, en.Context, en.Plaintext)
	if err != nil {
		return fmt.Errorf("encrypt_with_label: %w", err)
	}
	pt, err = s.DecryptWithLabel(priv, en.Label, en.Context, kem, ct)
	if err != nil {
		return fmt.Errorf("encrypt_with_label: own ciphertext: %w", err)
	}
	if !equal(pt, en.Plaintext) {
		return mismatch("encrypt_with_label round trip", pt, en.Plaintext)
	}
	return nil
}

type deserializationCase struct {
	Header Hex `json:"vlbytes_header"`
	Length int `json:"length"`
}

func runDeserialization(data []byte) (Result, error) {
	return runCases(data, noSuite[deserializationCase], func(c *deserializationCase) error {
		r := mls.NewReader(c.Header)
		n := r.Varint()
		if err := r.Finish(); err != nil {
			return fmt.Errorf("header %x: %w", []byte(c.Header), err)
		}
		if n != c.Length {
			return fmt.Errorf("header %x: length %d, want %d", []byte(c.Header), n, c.Length)
		}
		w := mls.NewWriter(4)
		w.Varint(n)
		if !equal(w.Bytes(), c.Header) {
			return mismatch("re-encoded header", w.Bytes(), c.Header)
		}
		return nil
	})
}

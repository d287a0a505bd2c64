package mls_test

import (
	"testing"

	"github.com/switchboard-chat/switchboard/mls"
)

// structures are the wire structures met inside others (extensions' and
// proposals' contents, the framing's inner parts) that the message-level
// targets reach only through their parents: each gets its own round trip.
var structures = []struct {
	name string
	make func() wireValue
}{
	{"GroupContext", func() wireValue { return new(mls.GroupContext) }},
	{"Extensions", func() wireValue { return new(mls.Extensions) }},
	{"ExternalSenders", func() wireValue { return new(mls.ExternalSenders) }},
	{"RequiredCapabilities", func() wireValue { return new(mls.RequiredCapabilities) }},
	{"Capabilities", func() wireValue { return new(mls.Capabilities) }},
	{"Credential", func() wireValue { return new(mls.Credential) }},
	{"LeafNode", func() wireValue { return new(mls.LeafNode) }},
	{"UpdatePath", func() wireValue { return new(mls.UpdatePath) }},
	{"HPKECiphertext", func() wireValue { return new(mls.HPKECiphertext) }},
	{"Proposal", func() wireValue { return new(mls.Proposal) }},
	{"AuthenticatedContent", func() wireValue { return new(mls.AuthenticatedContent) }},
	{"PSKLabel", func() wireValue { return new(mls.PSKLabel) }},
	{"GroupSecrets", func() wireValue { return new(mls.GroupSecrets) }},
}

// FuzzStructures: each inner structure, chosen by the first byte, refuses
// malformed input with an error, never a panic, and re-encodes what it
// accepts to exactly the bytes it read.
func FuzzStructures(f *testing.F) {
	s, err := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	if err != nil {
		f.Fatal(err)
	}
	sig, err := s.GenerateSignatureKey()
	if err != nil {
		f.Fatal(err)
	}
	cred := mls.Credential{Type: mls.CredentialBasic, Identity: []byte("alice")}
	kp, err := mls.NewKeyPackage(s, sig, cred, mls.KeyPackageOptions{LastResort: true})
	if err != nil {
		f.Fatal(err)
	}
	g, err := mls.CreateGroup(s, []byte("structures"), mls.Identity{Signer: sig, Credential: cred}, nil, mls.GroupConfig{})
	if err != nil {
		f.Fatal(err)
	}
	ctx := g.Context()
	senders := mls.ExternalSenders{{SignatureKey: sig.PublicKey(), Credential: cred}}
	req := mls.RequiredCapabilities{Extensions: []mls.ExtensionType{mls.ExtLastResort}}
	add := &mls.Proposal{Type: mls.ProposalAdd, Add: kp.KeyPackage}
	seeds := map[string][]byte{
		"GroupContext":         mls.Marshal(&ctx),
		"Extensions":           mls.Marshal(kp.KeyPackage.Extensions),
		"ExternalSenders":      mls.Marshal(senders),
		"RequiredCapabilities": mls.Marshal(&req),
		"Capabilities":         mls.Marshal(&kp.KeyPackage.LeafNode.Capabilities),
		"Credential":           mls.Marshal(&cred),
		"LeafNode":             mls.Marshal(&kp.KeyPackage.LeafNode),
		"Proposal":             mls.Marshal(add),
	}
	for i, st := range structures {
		f.Add(uint8(i), []byte{})
		f.Add(uint8(i), []byte{0, 1, 0, 0})
		if b, ok := seeds[st.name]; ok {
			f.Add(uint8(i), b)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		fuzzRoundTrip(t, data, structures[int(which)%len(structures)].make())
	})
}

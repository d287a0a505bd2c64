package mls

import "fmt"

// GroupInfo describes a group to a joiner (RFC 9420 §12.4.3), signed by the
// member at leaf Signer.
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      Extensions
	ConfirmationTag []byte
	Signer          LeafIndex
	Signature       []byte
}

func (g *GroupInfo) marshalTBS(w *Writer) {
	g.GroupContext.MarshalMLS(w)
	g.Extensions.MarshalMLS(w)
	w.Opaque(g.ConfirmationTag)
	w.U32(uint32(g.Signer))
}

func (g *GroupInfo) MarshalMLS(w *Writer) {
	g.marshalTBS(w)
	w.Opaque(g.Signature)
}

func (g *GroupInfo) UnmarshalMLS(r *Reader) {
	g.GroupContext.UnmarshalMLS(r)
	g.Extensions.UnmarshalMLS(r)
	g.ConfirmationTag = r.OpaqueCopy()
	g.Signer = LeafIndex(r.U32())
	g.Signature = r.OpaqueCopy()
}

// Sign sets the GroupInfo's signature.
func (g *GroupInfo) Sign(s *Suite, key *SignaturePrivateKey) error {
	w := NewWriter(512)
	g.marshalTBS(w)
	sig, err := s.SignWithLabel(key, "GroupInfoTBS", w.Bytes())
	if err != nil {
		return err
	}
	g.Signature = sig
	return nil
}

// VerifySignature checks the signature with the signer's public key.
func (g *GroupInfo) VerifySignature(s *Suite, signerKey []byte) error {
	w := NewWriter(512)
	g.marshalTBS(w)
	if err := s.VerifyWithLabel(signerKey, "GroupInfoTBS", w.Bytes(), g.Signature); err != nil {
		return fmt.Errorf("group info signature of leaf %d: %w", g.Signer, err)
	}
	return nil
}

// GroupSecrets are the secrets a Welcome gives each new member.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   []byte // nil when absent
	PSKs         []PreSharedKeyID
}

func (g *GroupSecrets) MarshalMLS(w *Writer) {
	w.Opaque(g.JoinerSecret)
	w.Optional(g.PathSecret != nil, func(w *Writer) { w.Opaque(g.PathSecret) })
	w.Vector(func(w *Writer) {
		for i := range g.PSKs {
			g.PSKs[i].MarshalMLS(w)
		}
	})
}

func (g *GroupSecrets) UnmarshalMLS(r *Reader) {
	g.JoinerSecret = r.OpaqueCopy()
	g.PathSecret = nil
	if r.Optional() {
		g.PathSecret = append([]byte{}, r.Opaque()...)
	}
	g.PSKs = nil
	r.Each(func(r *Reader) {
		var p PreSharedKeyID
		p.UnmarshalMLS(r)
		g.PSKs = append(g.PSKs, p)
	})
}

// EncryptedGroupSecrets is one new member's share of a Welcome.
type EncryptedGroupSecrets struct {
	NewMember             []byte // KeyPackageRef
	EncryptedGroupSecrets HPKECiphertext
}

// Welcome invites new members into a group (§12.4.3).
type Welcome struct {
	CipherSuite        CipherSuite
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

func (m *Welcome) MarshalMLS(w *Writer) {
	w.U16(uint16(m.CipherSuite))
	w.Vector(func(w *Writer) {
		for i := range m.Secrets {
			w.Opaque(m.Secrets[i].NewMember)
			m.Secrets[i].EncryptedGroupSecrets.MarshalMLS(w)
		}
	})
	w.Opaque(m.EncryptedGroupInfo)
}

func (m *Welcome) UnmarshalMLS(r *Reader) {
	m.CipherSuite = CipherSuite(r.U16())
	m.Secrets = nil
	r.Each(func(r *Reader) {
		var s EncryptedGroupSecrets
		s.NewMember = r.OpaqueCopy()
		s.EncryptedGroupSecrets.UnmarshalMLS(r)
		m.Secrets = append(m.Secrets, s)
	})
	m.EncryptedGroupInfo = r.OpaqueCopy()
}

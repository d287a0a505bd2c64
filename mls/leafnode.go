package mls

import "fmt"

// CredentialType identifies the kind of a Credential (RFC 9420 §5.3).
type CredentialType uint16

const (
	CredentialBasic CredentialType = 0x0001
	CredentialX509  CredentialType = 0x0002
)

// Credential binds a member's identity to its signature key. A basic
// credential carries an opaque identity; an X.509 credential a certificate
// chain, leaf first.
type Credential struct {
	Type         CredentialType
	Identity     []byte   // basic
	Certificates [][]byte // x509
}

func (c *Credential) MarshalMLS(w *Writer) {
	w.U16(uint16(c.Type))
	switch c.Type {
	case CredentialBasic:
		w.Opaque(c.Identity)
	case CredentialX509:
		w.Vector(func(w *Writer) {
			for _, cert := range c.Certificates {
				w.Opaque(cert)
			}
		})
	}
}

func (c *Credential) UnmarshalMLS(r *Reader) {
	c.Type = CredentialType(r.U16())
	switch c.Type {
	case CredentialBasic:
		c.Identity = r.OpaqueCopy()
	case CredentialX509:
		c.Certificates = nil
		r.Each(func(r *Reader) { c.Certificates = append(c.Certificates, r.OpaqueCopy()) })
	default:
		if r.Err() == nil {
			r.Failf("unknown credential type 0x%04x", uint16(c.Type))
		}
	}
}

// ProposalType identifies a proposal (RFC 9420 §17.4).
type ProposalType uint16

const (
	ProposalAdd                    ProposalType = 0x0001
	ProposalUpdate                 ProposalType = 0x0002
	ProposalRemove                 ProposalType = 0x0003
	ProposalPSK                    ProposalType = 0x0004
	ProposalReInit                 ProposalType = 0x0005
	ProposalExternalInit           ProposalType = 0x0006
	ProposalGroupContextExtensions ProposalType = 0x0007
)

// Capabilities advertises what a client supports (RFC 9420 §7.2).
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuite
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

func writeU16s[T ~uint16](w *Writer, v []T) {
	w.Vector(func(w *Writer) {
		for _, x := range v {
			w.U16(uint16(x))
		}
	})
}

func readU16s[T ~uint16](r *Reader) []T {
	var out []T
	r.Each(func(r *Reader) { out = append(out, T(r.U16())) })
	return out
}

func (c *Capabilities) MarshalMLS(w *Writer) {
	writeU16s(w, c.Versions)
	writeU16s(w, c.CipherSuites)
	writeU16s(w, c.Extensions)
	writeU16s(w, c.Proposals)
	writeU16s(w, c.Credentials)
}

func (c *Capabilities) UnmarshalMLS(r *Reader) {
	c.Versions = readU16s[ProtocolVersion](r)
	c.CipherSuites = readU16s[CipherSuite](r)
	c.Extensions = readU16s[ExtensionType](r)
	c.Proposals = readU16s[ProposalType](r)
	c.Credentials = readU16s[CredentialType](r)
}

// Lifetime bounds the validity of a KeyPackage's leaf, in seconds since the
// Unix epoch.
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

// LeafNodeSource says how a leaf node came to be in the tree.
type LeafNodeSource uint8

const (
	SourceKeyPackage LeafNodeSource = 1
	SourceUpdate     LeafNodeSource = 2
	SourceCommit     LeafNodeSource = 3
)

// LeafNode is a member's leaf in the ratchet tree (RFC 9420 §7.2).
type LeafNode struct {
	EncryptionKey []byte // HPKEPublicKey
	SignatureKey  []byte // SignaturePublicKey
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	Lifetime      Lifetime // SourceKeyPackage only
	ParentHash    []byte   // SourceCommit only
	Extensions    Extensions
	Signature     []byte
}

func (l *LeafNode) marshalContent(w *Writer) {
	w.Opaque(l.EncryptionKey)
	w.Opaque(l.SignatureKey)
	l.Credential.MarshalMLS(w)
	l.Capabilities.MarshalMLS(w)
	w.U8(uint8(l.Source))
	switch l.Source {
	case SourceKeyPackage:
		w.U64(l.Lifetime.NotBefore)
		w.U64(l.Lifetime.NotAfter)
	case SourceCommit:
		w.Opaque(l.ParentHash)
	}
	l.Extensions.MarshalMLS(w)
}

func (l *LeafNode) MarshalMLS(w *Writer) {
	l.marshalContent(w)
	w.Opaque(l.Signature)
}

func (l *LeafNode) UnmarshalMLS(r *Reader) {
	l.EncryptionKey = r.OpaqueCopy()
	l.SignatureKey = r.OpaqueCopy()
	l.Credential.UnmarshalMLS(r)
	l.Capabilities.UnmarshalMLS(r)
	l.Source = LeafNodeSource(r.U8())
	switch l.Source {
	case SourceKeyPackage:
		l.Lifetime.NotBefore = r.U64()
		l.Lifetime.NotAfter = r.U64()
	case SourceUpdate:
	case SourceCommit:
		l.ParentHash = r.OpaqueCopy()
	default:
		if r.Err() == nil {
			r.Failf("unknown leaf node source %d", l.Source)
		}
	}
	l.Extensions.UnmarshalMLS(r)
	l.Signature = r.OpaqueCopy()
}

// tbs returns LeafNodeTBS: the signed content, which for update and commit
// leaves also binds the group and the leaf's position.
func (l *LeafNode) tbs(groupID []byte, leaf LeafIndex) []byte {
	w := NewWriter(256)
	l.marshalContent(w)
	if l.Source == SourceUpdate || l.Source == SourceCommit {
		w.Opaque(groupID)
		w.U32(uint32(leaf))
	}
	return w.Bytes()
}

// Sign sets the leaf's signature. groupID and leaf are ignored for leaves
// from a KeyPackage.
func (l *LeafNode) Sign(s *Suite, key *SignaturePrivateKey, groupID []byte, leaf LeafIndex) error {
	sig, err := s.SignWithLabel(key, "LeafNodeTBS", l.tbs(groupID, leaf))
	if err != nil {
		return err
	}
	l.Signature = sig
	return nil
}

// VerifySignature checks the leaf's signature with its own signature key.
func (l *LeafNode) VerifySignature(s *Suite, groupID []byte, leaf LeafIndex) error {
	if err := s.VerifyWithLabel(l.SignatureKey, "LeafNodeTBS", l.tbs(groupID, leaf), l.Signature); err != nil {
		return fmt.Errorf("leaf node signature at leaf %d: %w", leaf, err)
	}
	return nil
}

// Clone returns a deep copy of the leaf.
func (l *LeafNode) Clone() *LeafNode {
	var c LeafNode
	if err := Unmarshal(Marshal(l), &c); err != nil {
		panic("mls: leaf node does not round-trip: " + err.Error())
	}
	return &c
}

// HPKECiphertext is an HPKE encryption: the KEM output and the ciphertext.
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

func (c *HPKECiphertext) MarshalMLS(w *Writer) {
	w.Opaque(c.KEMOutput)
	w.Opaque(c.Ciphertext)
}

func (c *HPKECiphertext) UnmarshalMLS(r *Reader) {
	c.KEMOutput = r.OpaqueCopy()
	c.Ciphertext = r.OpaqueCopy()
}

// ParentNode is an interior node of the ratchet tree (RFC 9420 §7.1).
type ParentNode struct {
	EncryptionKey  []byte
	ParentHash     []byte
	UnmergedLeaves []LeafIndex
}

func (p *ParentNode) MarshalMLS(w *Writer) {
	w.Opaque(p.EncryptionKey)
	w.Opaque(p.ParentHash)
	w.Vector(func(w *Writer) {
		for _, l := range p.UnmergedLeaves {
			w.U32(uint32(l))
		}
	})
}

func (p *ParentNode) UnmarshalMLS(r *Reader) {
	p.EncryptionKey = r.OpaqueCopy()
	p.ParentHash = r.OpaqueCopy()
	p.UnmergedLeaves = nil
	r.Each(func(r *Reader) { p.UnmergedLeaves = append(p.UnmergedLeaves, LeafIndex(r.U32())) })
}

// Clone returns a deep copy of the parent node.
func (p *ParentNode) Clone() *ParentNode {
	return &ParentNode{
		EncryptionKey:  append([]byte{}, p.EncryptionKey...),
		ParentHash:     append([]byte{}, p.ParentHash...),
		UnmergedLeaves: append([]LeafIndex{}, p.UnmergedLeaves...),
	}
}

// NodeType tells a leaf from a parent in a serialized tree.
type NodeType uint8

const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// Node is one non-blank node of the ratchet tree: exactly one of Leaf and
// Parent is set.
type Node struct {
	Leaf   *LeafNode
	Parent *ParentNode
}

func (n *Node) MarshalMLS(w *Writer) {
	if n.Leaf != nil {
		w.U8(uint8(NodeTypeLeaf))
		n.Leaf.MarshalMLS(w)
		return
	}
	w.U8(uint8(NodeTypeParent))
	n.Parent.MarshalMLS(w)
}

func (n *Node) UnmarshalMLS(r *Reader) {
	switch t := NodeType(r.U8()); t {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		n.Leaf.UnmarshalMLS(r)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		n.Parent.UnmarshalMLS(r)
	default:
		if r.Err() == nil {
			r.Failf("unknown node type %d", t)
		}
	}
}

// TreeNodes is the wire form of a ratchet tree, optional<Node> ratchet_tree<V>
// (RFC 9420 §12.4.3.3): the nodes in array order, nil for a blank node.
type TreeNodes []*Node

func (t TreeNodes) MarshalMLS(w *Writer) {
	w.Vector(func(w *Writer) {
		for _, n := range t {
			w.Optional(n != nil, func(w *Writer) { n.MarshalMLS(w) })
		}
	})
}

func (t *TreeNodes) UnmarshalMLS(r *Reader) {
	*t = nil
	r.Each(func(r *Reader) {
		if !r.Optional() {
			*t = append(*t, nil)
			return
		}
		n := new(Node)
		n.UnmarshalMLS(r)
		*t = append(*t, n)
	})
}

// UpdatePathNode carries a new public key for one node of the sender's
// filtered direct path and the path secret encrypted to its copath resolution.
type UpdatePathNode struct {
	EncryptionKey       []byte
	EncryptedPathSecret []HPKECiphertext
}

// UpdatePath is the sender's new leaf and direct path in a commit (§7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

func (u *UpdatePath) MarshalMLS(w *Writer) {
	u.LeafNode.MarshalMLS(w)
	w.Vector(func(w *Writer) {
		for i := range u.Nodes {
			n := &u.Nodes[i]
			w.Opaque(n.EncryptionKey)
			w.Vector(func(w *Writer) {
				for j := range n.EncryptedPathSecret {
					n.EncryptedPathSecret[j].MarshalMLS(w)
				}
			})
		}
	})
}

func (u *UpdatePath) UnmarshalMLS(r *Reader) {
	u.LeafNode.UnmarshalMLS(r)
	u.Nodes = nil
	r.Each(func(r *Reader) {
		var n UpdatePathNode
		n.EncryptionKey = r.OpaqueCopy()
		r.Each(func(r *Reader) {
			var c HPKECiphertext
			c.UnmarshalMLS(r)
			n.EncryptedPathSecret = append(n.EncryptedPathSecret, c)
		})
		u.Nodes = append(u.Nodes, n)
	})
}

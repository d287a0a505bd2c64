package mls

import "fmt"

// Message framing (RFC 9420 §6): the content of a message, how it is
// authenticated, and the envelopes it travels in.

// WireFormat says which kind of message an MLSMessage carries.
type WireFormat uint16

const (
	WireFormatPublicMessage  WireFormat = 1
	WireFormatPrivateMessage WireFormat = 2
	WireFormatWelcome        WireFormat = 3
	WireFormatGroupInfo      WireFormat = 4
	WireFormatKeyPackage     WireFormat = 5
)

// ContentType says what a FramedContent carries.
type ContentType uint8

const (
	ContentApplication ContentType = 1
	ContentProposal    ContentType = 2
	ContentCommit      ContentType = 3
)

func (c ContentType) String() string {
	switch c {
	case ContentApplication:
		return "application"
	case ContentProposal:
		return "proposal"
	case ContentCommit:
		return "commit"
	}
	return fmt.Sprintf("ContentType(%d)", uint8(c))
}

// SenderType says who sent a message.
type SenderType uint8

const (
	SenderMember            SenderType = 1
	SenderExternal          SenderType = 2
	SenderNewMemberProposal SenderType = 3
	SenderNewMemberCommit   SenderType = 4
)

// Sender identifies a message's sender: a member by leaf index, or an
// external sender by its index in the external_senders extension.
type Sender struct {
	Type  SenderType
	Leaf  LeafIndex // SenderMember
	Index uint32    // SenderExternal
}

func (s *Sender) MarshalMLS(w *Writer) {
	w.U8(uint8(s.Type))
	switch s.Type {
	case SenderMember:
		w.U32(uint32(s.Leaf))
	case SenderExternal:
		w.U32(s.Index)
	}
}

func (s *Sender) UnmarshalMLS(r *Reader) {
	s.Type = SenderType(r.U8())
	switch s.Type {
	case SenderMember:
		s.Leaf = LeafIndex(r.U32())
	case SenderExternal:
		s.Index = r.U32()
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		if r.Err() == nil {
			r.Failf("unknown sender type %d", s.Type)
		}
	}
}

// FramedContent is the signed content of a handshake or application message.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte    // ContentApplication
	Proposal          *Proposal // ContentProposal
	Commit            *Commit   // ContentCommit
}

func (c *FramedContent) MarshalMLS(w *Writer) {
	w.Opaque(c.GroupID)
	w.U64(c.Epoch)
	c.Sender.MarshalMLS(w)
	w.Opaque(c.AuthenticatedData)
	w.U8(uint8(c.ContentType))
	c.marshalBody(w)
}

// marshalBody writes the content-type-specific part.
func (c *FramedContent) marshalBody(w *Writer) {
	switch c.ContentType {
	case ContentApplication:
		w.Opaque(c.ApplicationData)
	case ContentProposal:
		c.Proposal.MarshalMLS(w)
	case ContentCommit:
		c.Commit.MarshalMLS(w)
	}
}

func (c *FramedContent) UnmarshalMLS(r *Reader) {
	c.GroupID = r.OpaqueCopy()
	c.Epoch = r.U64()
	c.Sender.UnmarshalMLS(r)
	c.AuthenticatedData = r.OpaqueCopy()
	c.ContentType = ContentType(r.U8())
	c.unmarshalBody(r)
}

func (c *FramedContent) unmarshalBody(r *Reader) {
	if r.Err() != nil {
		return
	}
	switch c.ContentType {
	case ContentApplication:
		c.ApplicationData = r.OpaqueCopy()
	case ContentProposal:
		c.Proposal = new(Proposal)
		c.Proposal.UnmarshalMLS(r)
	case ContentCommit:
		c.Commit = new(Commit)
		c.Commit.UnmarshalMLS(r)
	default:
		r.Failf("unknown content type %d", c.ContentType)
	}
}

// FramedContentAuthData is the signature over a FramedContent and, for a
// commit, the confirmation tag.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte // commits only
}

// MarshalMLS writes the auth data of content of type ct.
func (a *FramedContentAuthData) marshal(w *Writer, ct ContentType) {
	w.Opaque(a.Signature)
	if ct == ContentCommit {
		w.Opaque(a.ConfirmationTag)
	}
}

func (a *FramedContentAuthData) unmarshal(r *Reader, ct ContentType) {
	a.Signature = r.OpaqueCopy()
	if ct == ContentCommit {
		a.ConfirmationTag = r.OpaqueCopy()
	}
}

// AuthenticatedContent is a FramedContent with its authentication, as used
// for transcript hashes and proposal references.
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

func (a *AuthenticatedContent) MarshalMLS(w *Writer) {
	w.U16(uint16(a.WireFormat))
	a.Content.MarshalMLS(w)
	a.Auth.marshal(w, a.Content.ContentType)
}

func (a *AuthenticatedContent) UnmarshalMLS(r *Reader) {
	a.WireFormat = WireFormat(r.U16())
	a.Content.UnmarshalMLS(r)
	a.Auth.unmarshal(r, a.Content.ContentType)
}

// PublicMessage is a signed, unencrypted message (§6.2). Members' messages
// carry a membership tag.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte // SenderMember only
}

func (m *PublicMessage) MarshalMLS(w *Writer) {
	m.Content.MarshalMLS(w)
	m.Auth.marshal(w, m.Content.ContentType)
	if m.Content.Sender.Type == SenderMember {
		w.Opaque(m.MembershipTag)
	}
}

func (m *PublicMessage) UnmarshalMLS(r *Reader) {
	m.Content.UnmarshalMLS(r)
	m.Auth.unmarshal(r, m.Content.ContentType)
	if m.Content.Sender.Type == SenderMember {
		m.MembershipTag = r.OpaqueCopy()
	}
}

// PrivateMessage is an encrypted message (§6.3).
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

func (m *PrivateMessage) MarshalMLS(w *Writer) {
	w.Opaque(m.GroupID)
	w.U64(m.Epoch)
	w.U8(uint8(m.ContentType))
	w.Opaque(m.AuthenticatedData)
	w.Opaque(m.EncryptedSenderData)
	w.Opaque(m.Ciphertext)
}

func (m *PrivateMessage) UnmarshalMLS(r *Reader) {
	m.GroupID = r.OpaqueCopy()
	m.Epoch = r.U64()
	m.ContentType = ContentType(r.U8())
	m.AuthenticatedData = r.OpaqueCopy()
	m.EncryptedSenderData = r.OpaqueCopy()
	m.Ciphertext = r.OpaqueCopy()
	if r.Err() == nil && (m.ContentType < ContentApplication || m.ContentType > ContentCommit) {
		r.Failf("unknown content type %d", m.ContentType)
	}
}

// MLSMessage is the envelope of every MLS message (§6). Exactly one of the
// pointer fields is set, as WireFormat says.
type MLSMessage struct {
	Version    ProtocolVersion
	WireFormat WireFormat
	Public     *PublicMessage
	Private    *PrivateMessage
	Welcome    *Welcome
	GroupInfo  *GroupInfo
	KeyPackage *KeyPackage
}

func (m *MLSMessage) MarshalMLS(w *Writer) {
	w.U16(uint16(m.Version))
	w.U16(uint16(m.WireFormat))
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.Public.MarshalMLS(w)
	case WireFormatPrivateMessage:
		m.Private.MarshalMLS(w)
	case WireFormatWelcome:
		m.Welcome.MarshalMLS(w)
	case WireFormatGroupInfo:
		m.GroupInfo.MarshalMLS(w)
	case WireFormatKeyPackage:
		m.KeyPackage.MarshalMLS(w)
	}
}

func (m *MLSMessage) UnmarshalMLS(r *Reader) {
	m.Version = ProtocolVersion(r.U16())
	m.WireFormat = WireFormat(r.U16())
	if r.Err() != nil {
		return
	}
	if m.Version != MLS10 {
		r.Failf("protocol version %d", m.Version)
		return
	}
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.Public = new(PublicMessage)
		m.Public.UnmarshalMLS(r)
	case WireFormatPrivateMessage:
		m.Private = new(PrivateMessage)
		m.Private.UnmarshalMLS(r)
	case WireFormatWelcome:
		m.Welcome = new(Welcome)
		m.Welcome.UnmarshalMLS(r)
	case WireFormatGroupInfo:
		m.GroupInfo = new(GroupInfo)
		m.GroupInfo.UnmarshalMLS(r)
	case WireFormatKeyPackage:
		m.KeyPackage = new(KeyPackage)
		m.KeyPackage.UnmarshalMLS(r)
	default:
		r.Failf("unknown wire format %d", m.WireFormat)
	}
}

// ParseMLSMessage decodes a complete MLSMessage.
func ParseMLSMessage(b []byte) (*MLSMessage, error) {
	m := new(MLSMessage)
	if err := Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("MLSMessage: %w", err)
	}
	return m, nil
}

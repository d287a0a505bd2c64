package mls

// Proposals and commits (RFC 9420 §12).

// ReInit proposes to restart the group with new parameters (§12.1.5).
type ReInit struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuite
	Extensions  Extensions
}

// Proposal is one proposed change to a group. Type selects which of the
// other fields is meaningful.
type Proposal struct {
	Type       ProposalType
	Add        *KeyPackage     // ProposalAdd: the new member's KeyPackage
	Update     *LeafNode       // ProposalUpdate: the sender's new leaf
	Remove     LeafIndex       // ProposalRemove: the leaf to remove
	PSK        *PreSharedKeyID // ProposalPSK
	ReInit     *ReInit         // ProposalReInit
	KEMOutput  []byte          // ProposalExternalInit
	Extensions Extensions      // ProposalGroupContextExtensions
}

func (p *Proposal) MarshalMLS(w *Writer) {
	w.U16(uint16(p.Type))
	p.MarshalBody(w)
}

// MarshalBody writes the proposal without its type (the Add, Update, … struct).
func (p *Proposal) MarshalBody(w *Writer) {
	switch p.Type {
	case ProposalAdd:
		p.Add.MarshalMLS(w)
	case ProposalUpdate:
		p.Update.MarshalMLS(w)
	case ProposalRemove:
		w.U32(uint32(p.Remove))
	case ProposalPSK:
		p.PSK.MarshalMLS(w)
	case ProposalReInit:
		w.Opaque(p.ReInit.GroupID)
		w.U16(uint16(p.ReInit.Version))
		w.U16(uint16(p.ReInit.CipherSuite))
		p.ReInit.Extensions.MarshalMLS(w)
	case ProposalExternalInit:
		w.Opaque(p.KEMOutput)
	case ProposalGroupContextExtensions:
		p.Extensions.MarshalMLS(w)
	}
}

func (p *Proposal) UnmarshalMLS(r *Reader) {
	p.Type = ProposalType(r.U16())
	p.UnmarshalBody(r)
}

// UnmarshalBody reads the proposal's body; p.Type must already be set.
// Proposal types this package does not know cannot be decoded, because the
// wire format gives their bodies no length.
func (p *Proposal) UnmarshalBody(r *Reader) {
	if r.Err() != nil {
		return
	}
	switch p.Type {
	case ProposalAdd:
		p.Add = new(KeyPackage)
		p.Add.UnmarshalMLS(r)
	case ProposalUpdate:
		p.Update = new(LeafNode)
		p.Update.UnmarshalMLS(r)
	case ProposalRemove:
		p.Remove = LeafIndex(r.U32())
	case ProposalPSK:
		p.PSK = new(PreSharedKeyID)
		p.PSK.UnmarshalMLS(r)
	case ProposalReInit:
		p.ReInit = &ReInit{GroupID: r.OpaqueCopy(), Version: ProtocolVersion(r.U16()), CipherSuite: CipherSuite(r.U16())}
		p.ReInit.Extensions.UnmarshalMLS(r)
	case ProposalExternalInit:
		p.KEMOutput = r.OpaqueCopy()
	case ProposalGroupContextExtensions:
		p.Extensions.UnmarshalMLS(r)
	default:
		r.Failf("unknown proposal type 0x%04x", uint16(p.Type))
	}
}

// ProposalRef returns the reference to a proposal sent as the given
// AuthenticatedContent encoding (§5.2): refs hash the whole message content.
func ProposalRef(s *Suite, authenticatedContent []byte) []byte {
	return s.RefHash("MLS 1.0 Proposal Reference", authenticatedContent)
}

// ProposalOrRef is a proposal carried in a commit, by value or by reference.
type ProposalOrRef struct {
	Proposal  *Proposal // set when by value
	Reference []byte    // set when by reference (a ProposalRef)
}

const (
	proposalOrRefProposal  = 1
	proposalOrRefReference = 2
)

func (p *ProposalOrRef) MarshalMLS(w *Writer) {
	if p.Proposal != nil {
		w.U8(proposalOrRefProposal)
		p.Proposal.MarshalMLS(w)
		return
	}
	w.U8(proposalOrRefReference)
	w.Opaque(p.Reference)
}

func (p *ProposalOrRef) UnmarshalMLS(r *Reader) {
	switch t := r.U8(); t {
	case proposalOrRefProposal:
		p.Proposal = new(Proposal)
		p.Proposal.UnmarshalMLS(r)
	case proposalOrRefReference:
		p.Reference = r.OpaqueCopy()
	default:
		if r.Err() == nil {
			r.Failf("unknown ProposalOrRef type %d", t)
		}
	}
}

// Commit applies proposals and optionally refreshes the sender's path.
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

func (c *Commit) MarshalMLS(w *Writer) {
	w.Vector(func(w *Writer) {
		for i := range c.Proposals {
			c.Proposals[i].MarshalMLS(w)
		}
	})
	w.Optional(c.Path != nil, func(w *Writer) { c.Path.MarshalMLS(w) })
}

func (c *Commit) UnmarshalMLS(r *Reader) {
	c.Proposals = nil
	r.Each(func(r *Reader) {
		var p ProposalOrRef
		p.UnmarshalMLS(r)
		c.Proposals = append(c.Proposals, p)
	})
	c.Path = nil
	if r.Optional() {
		c.Path = new(UpdatePath)
		c.Path.UnmarshalMLS(r)
	}
}

// ExternalSender is an entry of the external_senders extension (§12.1.8.1):
// a party outside the group, such as a MIMI hub, allowed to send proposals.
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

// ExternalSenders is the external_senders extension's content.
type ExternalSenders []ExternalSender

func (e ExternalSenders) MarshalMLS(w *Writer) {
	w.Vector(func(w *Writer) {
		for i := range e {
			w.Opaque(e[i].SignatureKey)
			e[i].Credential.MarshalMLS(w)
		}
	})
}

func (e *ExternalSenders) UnmarshalMLS(r *Reader) {
	*e = nil
	r.Each(func(r *Reader) {
		var s ExternalSender
		s.SignatureKey = r.OpaqueCopy()
		s.Credential.UnmarshalMLS(r)
		*e = append(*e, s)
	})
}

// RequiredCapabilities is the required_capabilities extension's content.
type RequiredCapabilities struct {
	Extensions  []ExtensionType
	Proposals   []ProposalType
	Credentials []CredentialType
}

func (c *RequiredCapabilities) MarshalMLS(w *Writer) {
	writeU16s(w, c.Extensions)
	writeU16s(w, c.Proposals)
	writeU16s(w, c.Credentials)
}

func (c *RequiredCapabilities) UnmarshalMLS(r *Reader) {
	c.Extensions = readU16s[ExtensionType](r)
	c.Proposals = readU16s[ProposalType](r)
	c.Credentials = readU16s[CredentialType](r)
}

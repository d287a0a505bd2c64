package mls

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
)

// A group followed from outside (RFC 9420 §16.4, draft-ietf-mimi-arch): the
// delivery service, or a MIMI hub, is not a member and holds no group
// secrets, but it sees every handshake message when members send them as
// PublicMessages. From them it can keep the group's public state, the
// ratchet tree and GroupContext, exactly as the members do, and so check
// each proposal and commit before it forwards it: who sends it, whether its
// signature verifies, whether the proposal list is valid, and what it does
// to the membership (for room policy), accepting one commit per epoch.
//
// Two checks are beyond a non-member, and stay with the members:
//
//   - the membership tag of a member's PublicMessage is a MAC under the
//     epoch's membership_key, a group secret. The signature, which the
//     PublicGroup does verify, already proves which member sent the message;
//     the tag only adds that the sender holds this epoch's secrets.
//   - the confirmation tag of a commit is a MAC under the new epoch's
//     confirmation_key. A commit whose path encrypts garbage, or whose
//     ExternalInit or PSKs lead elsewhere, passes the PublicGroup and is
//     then refused by every member, who would be stuck in the old epoch
//     while the hub moved on. A committer gains nothing by it (it is
//     identified by its signature, and such a commit is visibly bad to every
//     member); the hub takes the tag as given into the interim transcript
//     hash, so its transcript stays equal to the members' for every commit
//     that the members accept.
//
// For the same reason the PublicGroup cannot check that PSKs named in
// proposals exist, nor that an external joiner's kem_output is valid.

// ErrNotPublic reports a message a PublicGroup cannot read: a PrivateMessage
// (its content is encrypted to the members) or something that is not a
// group message at all. Use MessageEpoch to route PrivateMessages.
var ErrNotPublic = errors.New("mls: not a PublicMessage")

// PublicGroup is the public state of a group as a non-member follows it:
// the ratchet tree, the GroupContext, the interim transcript hash, and the
// proposals accepted in the current epoch. It holds no secrets. Check
// validates a handshake message against it without changing it; Apply then
// makes the change. A PublicGroup is not safe for concurrent use: even
// Check fills the tree's hash caches.
type PublicGroup struct {
	suite *Suite
	ctx   GroupContext
	tree  *RatchetTree
	// confirmationTag is that of the commit that began this epoch (or of
	// the GroupInfo the PublicGroup started from). interimHash follows from
	// it and ctx.
	confirmationTag []byte
	interimHash     []byte
	proposals       []cachedProposal
	// reinit is set once a commit with a ReInit proposal was applied: the
	// group is finished and accepts no further handshake messages.
	reinit *ReInit
	now    func() uint64
}

// NewPublicGroup starts following a group from a GroupInfo and its ratchet
// tree (tree may be nil when the GroupInfo carries a ratchet_tree
// extension), as a room's creator uploads them when it registers the room.
// Both are checked as a joiner checks them (§12.4.3.1): the tree hash
// against the GroupContext, the GroupInfo's signature by its signer leaf,
// every parent hash and every leaf. The GroupInfo's confirmation tag cannot
// be checked without the group's secrets; it seeds the interim transcript
// hash, so a wrong one makes this PublicGroup's transcript hashes (not its
// tree) differ from the members'.
func NewPublicGroup(info *GroupInfo, tree TreeNodes) (*PublicGroup, error) {
	if info == nil {
		return nil, fmt.Errorf("%w: no GroupInfo", ErrInvalidWelcome)
	}
	s, err := SuiteFor(info.GroupContext.CipherSuite)
	if err != nil {
		return nil, err
	}
	if len(info.ConfirmationTag) != s.HashSize() {
		return nil, fmt.Errorf("%w: confirmation tag of %d bytes, want %d", ErrInvalidWelcome, len(info.ConfirmationTag), s.HashSize())
	}
	rt, err := treeFromGroupInfo(s, info, tree)
	if err != nil {
		return nil, err
	}
	p := &PublicGroup{
		suite: s,
		// A deep copy: the caller's GroupInfo and nodes stay the caller's.
		tree:            rt.Clone(),
		confirmationTag: slices.Clone(info.ConfirmationTag),
	}
	if err := Unmarshal(Marshal(&info.GroupContext), &p.ctx); err != nil {
		return nil, fmt.Errorf("%w: group context: %w", ErrInvalidWelcome, err)
	}
	p.interimHash = InterimTranscriptHash(s, p.ctx.ConfirmedTranscriptHash, p.confirmationTag)
	// Build the tree's member index now: every Check copies the tree, and
	// a copy made after the index exists copies it (a block copy of its
	// maps) instead of rebuilding it from every leaf.
	p.tree.index()
	return p, nil
}

// SetNow sets the clock used to check the lifetimes of KeyPackages in Add
// proposals (seconds since the Unix epoch); nil, the default, skips the
// check. The clock is not part of the saved state.
func (p *PublicGroup) SetNow(now func() uint64) { p.now = now }

// view returns the state the shared validation of proposals and commits
// (proposals.go, process.go) runs against.
func (p *PublicGroup) view() groupView {
	v := groupView{suite: p.suite, ctx: &p.ctx, tree: p.tree}
	if p.now != nil {
		v.now = p.now()
	}
	return v
}

// Suite returns the group's cipher suite.
func (p *PublicGroup) Suite() *Suite { return p.suite }

// Context returns a copy of the current GroupContext.
func (p *PublicGroup) Context() GroupContext {
	var c GroupContext
	if err := Unmarshal(Marshal(&p.ctx), &c); err != nil {
		panic("mls: group context does not round-trip: " + err.Error())
	}
	return c
}

// Epoch returns the current epoch number.
func (p *PublicGroup) Epoch() uint64 { return p.ctx.Epoch }

// GroupID returns the group's identifier. It must not be modified.
func (p *PublicGroup) GroupID() []byte { return p.ctx.GroupID }

// Tree returns the current ratchet tree. Callers must not modify it.
func (p *PublicGroup) Tree() *RatchetTree { return p.tree }

// Members returns the leaf index and leaf node of every member. The leaf
// nodes (with their credentials) must not be modified.
func (p *PublicGroup) Members() map[LeafIndex]*LeafNode {
	out := map[LeafIndex]*LeafNode{}
	for _, l := range p.tree.Members() {
		out[l] = p.tree.Leaf(l)
	}
	return out
}

// ProposalCount is how many proposals the group holds for the next commit.
func (p *PublicGroup) ProposalCount() int { return len(p.proposals) }

// PendingReInit returns the ReInit proposal of the last applied commit, if
// any: the group is then finished, and Check refuses every handshake
// message with ErrGroupClosed.
func (p *PublicGroup) PendingReInit() *ReInit { return p.reinit }

// PublicUpdate describes what a checked handshake message does, for the
// caller's policy, and carries the state Apply moves to. The slices and
// nodes it holds are shared with the message and the group's trees and must
// not be modified.
type PublicUpdate struct {
	ContentType ContentType
	Sender      Sender
	// SenderLeaf is a member sender's leaf node in the epoch the message
	// was checked in (nil for other senders).
	SenderLeaf *LeafNode
	// Epoch is the epoch the message belongs to.
	Epoch             uint64
	AuthenticatedData []byte

	// Proposal and ProposalRef describe a proposal.
	Proposal    *Proposal
	ProposalRef []byte

	// The rest describes a commit. Proposals is its proposal list resolved,
	// in commit order.
	Proposals []CommittedProposal
	// Added, Removed and Updated list the leaves the commit changes, in the
	// order it applies them: Added with the new member's KeyPackage and
	// leaf, Removed with the leaf node that was there, Updated with the
	// new leaf node.
	Added   []MemberChange
	Removed []MemberChange
	Updated []MemberChange
	// Joined is the leaf an external joiner took, with its leaf node.
	Joined *MemberChange
	// CommitterLeaf is the committer's new leaf node when the commit has a
	// path (nil otherwise). For an external commit it is Joined.LeafNode.
	CommitterLeaf *LeafNode
	// ReInit is set when the commit reinitializes the group.
	ReInit *ReInit
	// NewEpoch is the epoch the commit starts.
	NewEpoch uint64

	// What Apply needs: the state the update was checked against, named by
	// its group, epoch and interim transcript hash (which chains every
	// commit so far), and for a commit the state it leads to.
	checked         bool
	groupID         []byte
	interimBefore   []byte
	tree            *RatchetTree
	ctx             GroupContext
	confirmationTag []byte
	interimAfter    []byte
}

// CommittedProposal is one entry of a commit's proposal list.
type CommittedProposal struct {
	Proposal *Proposal
	// Sender proposed it: for a proposal by value, the committer.
	Sender Sender
	// Ref is the ProposalRef of a proposal included by reference (nil for
	// one included by value).
	Ref []byte
}

// MemberChange is one leaf a commit adds, removes, updates, or gives to an
// external joiner.
type MemberChange struct {
	Leaf     LeafIndex
	LeafNode *LeafNode
	// KeyPackage is the added member's KeyPackage (Added only).
	KeyPackage *KeyPackage
	// Proposer sent the proposal behind the change: the committer for a
	// proposal by value, an external sender, a member by reference; for
	// Joined, the new member's own commit.
	Proposer Sender
}

// MessageEpoch reads the group, epoch and content type from the header of a
// PublicMessage or PrivateMessage, for routing; ok is false for other
// messages. Nothing is verified: a PrivateMessage's header is authenticated
// only to the members, who can decrypt it.
func MessageEpoch(m *MLSMessage) (groupID []byte, epoch uint64, ct ContentType, ok bool) {
	switch {
	case m == nil:
	case m.WireFormat == WireFormatPublicMessage && m.Public != nil:
		c := &m.Public.Content
		return c.GroupID, c.Epoch, c.ContentType, true
	case m.WireFormat == WireFormatPrivateMessage && m.Private != nil:
		return m.Private.GroupID, m.Private.Epoch, m.Private.ContentType, true
	}
	return nil, 0, 0, false
}

// Check validates a handshake message, a PublicMessage carrying a proposal
// or commit, against the current state without changing it, and says what
// it does. It checks the group and epoch (ErrWrongGroup, ErrWrongEpoch), the
// sender (a non-blank member leaf, an entry of external_senders, a new
// member adding itself, a new member's external commit; ErrInvalidSender)
// and its signature (ErrSignature). For a proposal it checks the proposal on
// its own (ErrInvalidProposal), and refuses one already accepted in this
// epoch: the hub orders messages, and a replay would only be dropped by
// the members. For a commit it checks the proposal list (references must
// name proposals accepted in this epoch; ErrInvalidProposal,
// ErrInvalidCommit), whether a path is required, an external joiner's
// placement, the path's leaf node and parent hashes (ErrInvalidLeafNode,
// ErrParentHash, ErrInvalidUpdatePath), and computes the next epoch's
// GroupContext and interim transcript hash.
//
// Membership tags and confirmation tags cannot be verified without the
// group's secrets: the members verify them (see the top of this file).
// A PrivateMessage, or anything else that is not a PublicMessage, is
// refused with ErrNotPublic; application data must not come as a
// PublicMessage (ErrInvalidSender).
func (p *PublicGroup) Check(m *MLSMessage) (*PublicUpdate, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: no message", ErrNotPublic)
	}
	if m.Version != MLS10 {
		return nil, fmt.Errorf("%w: protocol version %d", ErrInvalidValue, m.Version)
	}
	switch {
	case m.WireFormat == WireFormatPrivateMessage:
		return nil, fmt.Errorf("%w: a PrivateMessage (its content is encrypted to the members)", ErrNotPublic)
	case m.WireFormat != WireFormatPublicMessage || m.Public == nil:
		return nil, fmt.Errorf("%w: wire format %d", ErrNotPublic, m.WireFormat)
	}
	if p.reinit != nil {
		return nil, fmt.Errorf("%w: the group was reinitialized in epoch %d", ErrGroupClosed, p.ctx.Epoch)
	}
	pm := m.Public
	c := &pm.Content
	// checkContent first: the sender checks below read the body.
	if err := checkContent(c); err != nil {
		return nil, err
	}
	v := p.view()
	if err := v.checkHeader(c.GroupID, c.Epoch, c.ContentType); err != nil {
		return nil, err
	}
	if c.ContentType == ContentApplication {
		return nil, fmt.Errorf("%w: application data sent as a PublicMessage", ErrInvalidSender)
	}
	pub, err := v.senderKey(c)
	if err != nil {
		return nil, err
	}
	a := pm.Authenticated()
	if err := a.VerifySignature(p.suite, pub, &p.ctx); err != nil {
		return nil, err
	}
	u := &PublicUpdate{
		ContentType:       c.ContentType,
		Sender:            c.Sender,
		Epoch:             c.Epoch,
		AuthenticatedData: c.AuthenticatedData,
		checked:           true,
		groupID:           p.ctx.GroupID,
		interimBefore:     p.interimHash,
	}
	if c.Sender.Type == SenderMember {
		u.SenderLeaf = p.tree.Leaf(c.Sender.Leaf)
	}
	if c.ContentType == ContentProposal {
		if err := v.checkProposal(c.Proposal, c.Sender); err != nil {
			return nil, err
		}
		u.Proposal, u.ProposalRef = c.Proposal, ProposalRef(p.suite, Marshal(a))
		if p.cached(u.ProposalRef) {
			return nil, fmt.Errorf("%w: proposal %x was already accepted in epoch %d", ErrInvalidProposal, u.ProposalRef, p.ctx.Epoch)
		}
		return u, nil
	}
	if err := p.checkCommit(v, a, u); err != nil {
		return nil, err
	}
	return u, nil
}

func (p *PublicGroup) cached(ref []byte) bool {
	return slices.ContainsFunc(p.proposals, func(c cachedProposal) bool { return bytes.Equal(c.ref, ref) })
}

// checkCommit runs the members' public commit checks (applyCommit) and
// describes the result in u.
func (p *PublicGroup) checkCommit(v groupView, a *AuthenticatedContent, u *PublicUpdate) error {
	commit := a.Content.Commit
	// The tag is a MAC, hash-sized; it cannot be verified here, but one of
	// another size is surely wrong, and would enter the transcript.
	if n := len(a.Auth.ConfirmationTag); n != p.suite.HashSize() {
		return fmt.Errorf("%w: confirmation tag of %d bytes, want %d", ErrInvalidCommit, n, p.suite.HashSize())
	}
	pc, err := v.applyCommit(a, p.proposals, p.interimHash)
	if err != nil {
		return err
	}
	u.Proposals = make([]CommittedProposal, len(pc.list))
	// The proposals are applied by type (updates, removes, adds), each type
	// in list order, so the i-th Add of the list made applied.added[i].
	var nAdd, nRemove, nUpdate int
	for i, cp := range pc.list {
		u.Proposals[i] = CommittedProposal{Proposal: cp.proposal, Sender: cp.sender, Ref: commit.Proposals[i].Reference}
		switch cp.proposal.Type {
		case ProposalAdd:
			kp := cp.proposal.Add
			u.Added = append(u.Added, MemberChange{Leaf: pc.applied.added[nAdd], LeafNode: &kp.LeafNode, KeyPackage: kp, Proposer: cp.sender})
			nAdd++
		case ProposalRemove:
			l := pc.applied.removed[nRemove]
			u.Removed = append(u.Removed, MemberChange{Leaf: l, LeafNode: p.tree.Leaf(l), Proposer: cp.sender})
			nRemove++
		case ProposalUpdate:
			u.Updated = append(u.Updated, MemberChange{Leaf: pc.applied.updated[nUpdate], LeafNode: cp.proposal.Update, Proposer: cp.sender})
			nUpdate++
		}
	}
	if commit.Path != nil {
		u.CommitterLeaf = pc.tree.Leaf(pc.committer)
	}
	if pc.external {
		u.Joined = &MemberChange{Leaf: pc.committer, LeafNode: u.CommitterLeaf, Proposer: a.Content.Sender}
	}
	u.ReInit = pc.applied.reinit
	u.NewEpoch = pc.next.Epoch
	u.tree = pc.tree
	u.ctx = pc.next
	u.confirmationTag = a.Auth.ConfirmationTag
	u.interimAfter = InterimTranscriptHash(p.suite, pc.next.ConfirmedTranscriptHash, a.Auth.ConfirmationTag)
	return nil
}

// Apply makes the change of an update Check returned: it caches a proposal
// for the epoch's commits (once, however often it is applied), or moves to
// the epoch a commit starts, dropping the epoch's proposals. It refuses an
// update that was checked against another state: of another group
// (ErrWrongGroup) or epoch, or another history of the epoch (ErrWrongEpoch),
// as the second commit of an epoch is after the first was applied.
func (p *PublicGroup) Apply(u *PublicUpdate) error {
	switch {
	case u == nil || !u.checked:
		return fmt.Errorf("%w: the update was not made by Check", ErrInvalidValue)
	case !bytes.Equal(u.groupID, p.ctx.GroupID):
		return fmt.Errorf("%w: update for group %x in group %x", ErrWrongGroup, u.groupID, p.ctx.GroupID)
	case u.Epoch != p.ctx.Epoch:
		return fmt.Errorf("%w: %v checked in epoch %d, the group is in epoch %d", ErrWrongEpoch, u.ContentType, u.Epoch, p.ctx.Epoch)
	case !bytes.Equal(u.interimBefore, p.interimHash):
		return fmt.Errorf("%w: %v checked against another history of epoch %d", ErrWrongEpoch, u.ContentType, p.ctx.Epoch)
	case p.reinit != nil:
		return fmt.Errorf("%w: the group was reinitialized in epoch %d", ErrGroupClosed, p.ctx.Epoch)
	}
	if u.ContentType == ContentProposal {
		if !p.cached(u.ProposalRef) {
			p.proposals = append(p.proposals, cachedProposal{ref: u.ProposalRef, proposal: u.Proposal, sender: u.Sender})
		}
		return nil
	}
	p.tree = u.tree
	p.ctx = u.ctx
	p.confirmationTag = u.confirmationTag
	p.interimHash = u.interimAfter
	p.proposals = nil
	p.reinit = u.ReInit
	return nil
}

// CheckGroupInfo checks a GroupInfo a member uploads for the current epoch
// (as a committer does with each commit, so that the hub can hand it to
// external joiners): its GroupContext and confirmation tag must be those
// this PublicGroup reached, its signer a member whose signature verifies,
// and a ratchet_tree extension, if present, this tree. The external_pub
// extension cannot be checked without the group's secrets.
func (p *PublicGroup) CheckGroupInfo(info *GroupInfo) error {
	if info == nil {
		return fmt.Errorf("%w: no GroupInfo", ErrInvalidWelcome)
	}
	if !bytes.Equal(Marshal(&info.GroupContext), Marshal(&p.ctx)) {
		return fmt.Errorf("%w: GroupInfo of epoch %d does not match the GroupContext of epoch %d", ErrInvalidWelcome, info.GroupContext.Epoch, p.ctx.Epoch)
	}
	if !bytes.Equal(info.ConfirmationTag, p.confirmationTag) {
		return fmt.Errorf("%w: GroupInfo's confirmation tag is not the epoch's", ErrInvalidWelcome)
	}
	if data, ok := info.Extensions.Find(ExtRatchetTree); ok && !bytes.Equal(data, Marshal(p.tree)) {
		return fmt.Errorf("%w: GroupInfo's ratchet_tree is not the group's tree", ErrInvalidWelcome)
	}
	signer := p.tree.Leaf(info.Signer)
	if signer == nil {
		return fmt.Errorf("%w: GroupInfo signer leaf %d is blank", ErrInvalidWelcome, info.Signer)
	}
	if err := info.VerifySignature(p.suite, signer.SignatureKey); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	return nil
}

// Saving and restoring a PublicGroup (MarshalState, RestorePublicGroup).
// Switchboard's own format, in the TLS presentation language:
//
//	uint8 format = 0x81;
//	uint16 cipher_suite;
//	GroupContext group_context;
//	optional<Node> ratchet_tree<V>;
//	opaque confirmation_tag<V>;
//	struct { opaque ref<V>; Sender sender; Proposal proposal; } proposals<V>;
//	optional<ReInit> reinit;
//	opaque checksum[32];          // SHA-256 of everything before it
//
// Format numbers of public state start at 0x81, apart from those of a
// member's state (state.go), so that neither restorer mistakes the other's
// data for its own. The interim transcript hash is not stored: it follows
// from the confirmed transcript hash and the confirmation tag. There are
// no secrets in it; the checksum catches truncation and bit rot, not
// tampering.
const publicStateFormat = 0x81

// MarshalState encodes the PublicGroup (see the layout above) for
// RestorePublicGroup. The clock of SetNow is not included.
func (p *PublicGroup) MarshalState() []byte {
	w := NewWriter(4096)
	w.U8(publicStateFormat)
	w.U16(uint16(p.suite.ID))
	p.ctx.MarshalMLS(w)
	p.tree.MarshalMLS(w)
	w.Opaque(p.confirmationTag)
	w.Vector(func(w *Writer) {
		for i := range p.proposals {
			c := &p.proposals[i]
			w.Opaque(c.ref)
			c.sender.MarshalMLS(w)
			c.proposal.MarshalMLS(w)
		}
	})
	marshalOptionalReInit(w, p.reinit)
	sum := sha256.Sum256(w.Bytes())
	w.Raw(sum[:])
	return w.Bytes()
}

// RestorePublicGroup rebuilds a PublicGroup from MarshalState's output. It
// checks the checksum and format, the suite, the tree's hash against the
// GroupContext, the confirmation tag's size, and that each cached proposal
// has a reference of the right size, once, from a sender that may send it
// (a member sender being a member). The tree's signatures and parent hashes
// were checked when the state was built and are not checked again: the
// tree hash ties the tree to the GroupContext. Any failure is a
// *StateError wrapping ErrInvalidState; no input makes it panic.
func RestorePublicGroup(data []byte) (*PublicGroup, error) {
	body, err := openState(data, publicStateFormat)
	if err != nil {
		return nil, err
	}
	d := &stateDecoder{r: NewReader(body)}
	p := d.publicGroup()
	if d.err != nil {
		return nil, d.err
	}
	if err := d.r.Finish(); err != nil {
		return nil, stateErr("public group", err)
	}
	return p, nil
}

func (d *stateDecoder) publicGroup() *PublicGroup {
	r := d.r
	id := CipherSuite(r.U16())
	if !d.check("cipher suite") {
		return nil
	}
	s, err := SuiteFor(id)
	if err != nil {
		d.fail(stateErr("cipher suite", err))
		return nil
	}
	p := &PublicGroup{suite: s}
	p.ctx.UnmarshalMLS(r)
	if !d.check("group context") {
		return nil
	}
	if p.ctx.CipherSuite != s.ID {
		d.fail(stateErrf("group context", "suite %v in a state of suite %v", p.ctx.CipherSuite, s.ID))
		return nil
	}
	if p.tree = d.tree(s, "ratchet tree", p.ctx.TreeHash); p.tree == nil {
		return nil
	}
	p.tree.index() // as in NewPublicGroup
	p.confirmationTag = r.OpaqueCopy()
	if !d.check("confirmation tag") {
		return nil
	}
	if len(p.confirmationTag) != s.HashSize() {
		d.fail(stateErrf("confirmation tag", "%d bytes, want %d", len(p.confirmationTag), s.HashSize()))
		return nil
	}
	p.interimHash = InterimTranscriptHash(s, p.ctx.ConfirmedTranscriptHash, p.confirmationTag)
	r.Each(func(r *Reader) {
		var c cachedProposal
		c.ref = r.OpaqueCopy()
		c.sender.UnmarshalMLS(r)
		c.proposal = new(Proposal)
		c.proposal.UnmarshalMLS(r)
		if r.Err() == nil {
			p.proposals = append(p.proposals, c)
		}
	})
	if !d.check("cached proposals") {
		return nil
	}
	for i := range p.proposals {
		c := &p.proposals[i]
		switch {
		case len(c.ref) != s.HashSize():
			d.fail(stateErrf("cached proposals", "proposal %d: reference of %d bytes", i, len(c.ref)))
		case slices.ContainsFunc(p.proposals[:i], func(o cachedProposal) bool { return bytes.Equal(o.ref, c.ref) }):
			d.fail(stateErrf("cached proposals", "proposal %d: reference %x repeated", i, c.ref))
		case !mayPropose(c.sender.Type, c.proposal.Type):
			d.fail(stateErrf("cached proposals", "proposal %d: sender type %d may not propose type 0x%04x", i, c.sender.Type, uint16(c.proposal.Type)))
		case c.sender.Type == SenderMember && p.tree.Leaf(c.sender.Leaf) == nil:
			d.fail(stateErrf("cached proposals", "proposal %d: sender leaf %d is not a member", i, c.sender.Leaf))
		}
		if d.err != nil {
			return nil
		}
	}
	p.reinit = d.optionalReInit()
	if !d.check("reinit") {
		return nil
	}
	return p
}

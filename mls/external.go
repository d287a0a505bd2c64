package mls

import (
	"fmt"
)

// Joining by external commit (RFC 9420 §12.4.3.2) and proposing from
// outside the group (§12.1.8).

// ExternalJoinOptions are a joiner's choices for an external commit.
type ExternalJoinOptions struct {
	// Tree is the ratchet tree when the GroupInfo does not carry it.
	Tree TreeNodes
	// Resync removes this leaf, an earlier appearance of the joiner.
	Resync *LeafIndex
	// PSKs are injected with PreSharedKey proposals.
	PSKs []PreSharedKeyID
	// AuthenticatedData travels with the commit.
	AuthenticatedData []byte
}

// JoinExternal joins a group from its GroupInfo (which must carry
// external_pub) by an external commit. It returns the group, already in the
// new epoch, and the commit to send; if the delivery service refuses the
// commit the group must be discarded.
func JoinExternal(info *GroupInfo, id Identity, o ExternalJoinOptions, config GroupConfig) (*Group, *MLSMessage, error) {
	s, err := SuiteFor(info.GroupContext.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	if id.Signer == nil {
		return nil, nil, fmt.Errorf("%w: no signing key", ErrInvalidCommit)
	}
	data, ok := info.Extensions.Find(ExtExternalPub)
	if !ok {
		return nil, nil, fmt.Errorf("%w: GroupInfo has no external_pub extension", ErrInvalidWelcome)
	}
	r := NewReader(data)
	externalPub := r.Opaque()
	if err := r.Finish(); err != nil {
		return nil, nil, fmt.Errorf("%w: external_pub extension: %w", ErrInvalidWelcome, err)
	}
	tree, err := treeFromGroupInfo(s, info, o.Tree)
	if err != nil {
		return nil, nil, err
	}
	g := &Group{
		suite:           s,
		ctx:             info.GroupContext,
		tree:            tree,
		signer:          id.Signer,
		config:          config,
		confirmationTag: info.ConfirmationTag,
		resumption:      map[uint64][]byte{},
	}
	g.interimHash = InterimTranscriptHash(s, g.ctx.ConfirmedTranscriptHash, info.ConfirmationTag)

	kemOutput, initSecret, err := s.ExternalInitSecretSeal(externalPub)
	if err != nil {
		return nil, nil, err
	}
	proposals := []*Proposal{{Type: ProposalExternalInit, KEMOutput: kemOutput}}
	if o.Resync != nil {
		proposals = append(proposals, &Proposal{Type: ProposalRemove, Remove: *o.Resync})
	}
	for i := range o.PSKs {
		proposals = append(proposals, &Proposal{Type: ProposalPSK, PSK: &o.PSKs[i]})
	}
	commit := &Commit{}
	list := make([]committedProposal, len(proposals))
	joiner := Sender{Type: SenderNewMemberCommit}
	for i, p := range proposals {
		commit.Proposals = append(commit.Proposals, ProposalOrRef{Proposal: p})
		list[i] = committedProposal{proposal: p, sender: joiner}
	}
	next := tree.CloneShared()
	applied, err := g.view().applyProposals(next, list, 0, true)
	if err != nil {
		return nil, nil, err
	}

	// The joiner's leaf: a template with its identity holds the leftmost
	// blank leaf until GeneratePath gives it keys and signs it.
	template := &LeafNode{
		SignatureKey: id.Signer.PublicKey(),
		Credential:   id.Credential,
		Capabilities: id.capabilities(),
		Source:       SourceCommit,
		Extensions:   id.LeafExtensions,
	}
	self, err := next.AddLeaf(template)
	if err != nil {
		return nil, nil, err
	}
	g.self = self
	path, err := next.GeneratePath(self, PathOptions{GroupID: g.ctx.GroupID, Signer: id.Signer, Leaf: template})
	if err != nil {
		return nil, nil, err
	}
	provisional := g.view().nextContext(next, g.ctx.ConfirmedTranscriptHash, applied.extensions)
	up, err := path.Encrypt(next, &provisional, nil)
	if err != nil {
		return nil, nil, err
	}
	commit.Path = up
	check, err := g.view().leafCheck(applied.extensions)
	if err != nil {
		return nil, nil, err
	}
	check.Leaf, check.Source, check.Tree, check.InTree = self, SourceCommit, next, true
	if err := ValidateLeafNode(s, path.LeafNode, &check); err != nil {
		return nil, nil, err
	}

	pskSecret, err := g.pskSecret(applied.psks)
	if err != nil {
		return nil, nil, err
	}
	content := &FramedContent{
		GroupID:           g.ctx.GroupID,
		Epoch:             g.ctx.Epoch,
		Sender:            joiner,
		AuthenticatedData: o.AuthenticatedData,
		ContentType:       ContentCommit,
		Commit:            commit,
	}
	a, err := SignContent(s, id.Signer, WireFormatPublicMessage, content, &g.ctx)
	if err != nil {
		return nil, nil, err
	}
	confirmed, err := ConfirmedTranscriptHash(s, g.interimHash, a)
	if err != nil {
		return nil, nil, err
	}
	nextCtx := g.view().nextContext(next, confirmed, applied.extensions)
	secrets, err := NewEpochSecrets(s, initSecret, path.CommitSecret, pskSecret, Marshal(&nextCtx))
	if err != nil {
		return nil, nil, err
	}
	a.Auth.ConfirmationTag = ConfirmationTag(s, secrets.ConfirmationKey, confirmed)
	pm, err := ProtectPublic(s, a, nil, &g.ctx)
	if err != nil {
		return nil, nil, err
	}
	g.tree = next
	g.ctx = nextCtx
	g.priv = path.State.Pruned(next)
	if err := g.enterEpoch(secrets, a.Auth.ConfirmationTag); err != nil {
		return nil, nil, err
	}
	return g, &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, Public: pm}, nil
}

// ExternalProposal makes a proposal from an external sender (§12.1.8): a
// party listed in the group's external_senders extension at index, such as
// a MIMI hub that proposes removing a member. It needs only the group's ID
// and epoch, not its secrets.
func ExternalProposal(s *Suite, groupID []byte, epoch uint64, index uint32, signer *SignaturePrivateKey, p *Proposal, authenticatedData []byte) (*MLSMessage, error) {
	if !mayPropose(SenderExternal, p.Type) {
		return nil, fmt.Errorf("%w: an external sender may not propose type 0x%04x", ErrInvalidProposal, uint16(p.Type))
	}
	return signExternal(s, groupID, epoch, Sender{Type: SenderExternal, Index: index}, signer, p, authenticatedData)
}

// NewMemberAddProposal makes a new member's proposal to add itself
// (sender type new_member_proposal), signed with its KeyPackage's key.
func NewMemberAddProposal(s *Suite, groupID []byte, epoch uint64, kp *KeyPackagePrivate, authenticatedData []byte) (*MLSMessage, error) {
	p := &Proposal{Type: ProposalAdd, Add: kp.KeyPackage}
	return signExternal(s, groupID, epoch, Sender{Type: SenderNewMemberProposal}, kp.SignatureKey, p, authenticatedData)
}

func signExternal(s *Suite, groupID []byte, epoch uint64, sender Sender, signer *SignaturePrivateKey, p *Proposal, aad []byte) (*MLSMessage, error) {
	content := &FramedContent{GroupID: groupID, Epoch: epoch, Sender: sender, AuthenticatedData: aad, ContentType: ContentProposal, Proposal: p}
	a, err := SignContent(s, signer, WireFormatPublicMessage, content, nil)
	if err != nil {
		return nil, err
	}
	pm, err := ProtectPublic(s, a, nil, nil)
	if err != nil {
		return nil, err
	}
	return &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, Public: pm}, nil
}

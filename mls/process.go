package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// Received is what ProcessMessage made of a message.
type Received struct {
	ContentType       ContentType
	Sender            Sender
	AuthenticatedData []byte
	// ApplicationData is the decrypted application message.
	ApplicationData []byte
	// Proposal and ProposalRef describe a proposal now cached for a commit.
	Proposal    *Proposal
	ProposalRef []byte
	// Commit describes the epoch change a commit made.
	Commit *CommitSummary
}

// CommitSummary tells what a commit changed.
type CommitSummary struct {
	Epoch   uint64 // the new epoch
	Added   []LeafIndex
	Removed []LeafIndex
	Updated []LeafIndex
	// Joined is the leaf of a new member who joined by external commit.
	Joined *LeafIndex
	// RemovedSelf is set when the commit removed this member.
	RemovedSelf bool
	ReInit      *ReInit
}

// ProcessMessage handles a PublicMessage or PrivateMessage sent to the group:
// it authenticates and decrypts it, caches a proposal, applies a commit, or
// returns application data. On error the group is unchanged, except that
// the key of a PrivateMessage that decrypted is used up even if the message
// is then refused: the same bytes are not accepted a second time.
func (g *Group) ProcessMessage(m *MLSMessage) (*Received, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if m.Version != MLS10 {
		return nil, fmt.Errorf("%w: protocol version %d", ErrInvalidValue, m.Version)
	}
	switch m.WireFormat {
	case WireFormatPublicMessage:
		return g.processPublic(m.Public)
	case WireFormatPrivateMessage:
		wire := Marshal(m.Private)
		if g.pending != nil && g.pending.private != nil && bytes.Equal(wire, Marshal(g.pending.private)) {
			return g.MergePendingCommit()
		}
		for _, c := range g.proposals {
			if c.sent != nil && bytes.Equal(c.sent, wire) {
				return &Received{ContentType: ContentProposal, Sender: c.sender, Proposal: c.proposal, ProposalRef: c.ref}, nil
			}
		}
		return g.processPrivate(m.Private)
	}
	return nil, fmt.Errorf("%w: a %d message cannot be processed by a group", ErrInvalidValue, m.WireFormat)
}

func (g *Group) checkHeader(groupID []byte, epoch uint64, ct ContentType) error {
	if !bytes.Equal(groupID, g.ctx.GroupID) {
		return fmt.Errorf("%w: message for group %x in group %x", ErrWrongGroup, groupID, g.ctx.GroupID)
	}
	if epoch != g.ctx.Epoch {
		return fmt.Errorf("%w: %v for epoch %d in epoch %d", ErrWrongEpoch, ct, epoch, g.ctx.Epoch)
	}
	return nil
}

func (g *Group) processPublic(pm *PublicMessage) (*Received, error) {
	c := &pm.Content
	if err := g.checkHeader(c.GroupID, c.Epoch, c.ContentType); err != nil {
		return nil, err
	}
	if c.ContentType == ContentApplication {
		return nil, fmt.Errorf("%w: application data sent as a PublicMessage", ErrInvalidSender)
	}
	a := pm.Authenticated()
	if c.Sender.Type == SenderMember && c.Sender.Leaf == g.self && g.pending != nil && c.ContentType == ContentCommit {
		if bytes.Equal(Marshal(a), Marshal(g.pending.content)) {
			return g.MergePendingCommit()
		}
	}
	var pub []byte
	switch c.Sender.Type {
	case SenderMember:
		leaf := g.tree.Leaf(c.Sender.Leaf)
		if leaf == nil {
			return nil, fmt.Errorf("%w: leaf %d is not a member", ErrInvalidSender, c.Sender.Leaf)
		}
		if err := pm.VerifyMembershipTag(g.suite, g.secrets.MembershipKey, &g.ctx); err != nil {
			return nil, err
		}
		pub = leaf.SignatureKey
	case SenderExternal:
		es, err := externalSenders(g.ctx.Extensions)
		if err != nil {
			return nil, err
		}
		if int64(c.Sender.Index) >= int64(len(es)) {
			return nil, fmt.Errorf("%w: external sender %d of %d", ErrInvalidSender, c.Sender.Index, len(es))
		}
		if c.ContentType != ContentProposal {
			return nil, fmt.Errorf("%w: an external sender sent a %v", ErrInvalidSender, c.ContentType)
		}
		pub = es[c.Sender.Index].SignatureKey
	case SenderNewMemberProposal:
		if c.ContentType != ContentProposal || c.Proposal.Type != ProposalAdd {
			return nil, fmt.Errorf("%w: a new member may only propose to add itself", ErrInvalidSender)
		}
		pub = c.Proposal.Add.LeafNode.SignatureKey
	case SenderNewMemberCommit:
		if c.ContentType != ContentCommit || c.Commit.Path == nil {
			return nil, fmt.Errorf("%w: a new member's commit must carry a path", ErrInvalidSender)
		}
		pub = c.Commit.Path.LeafNode.SignatureKey
	default:
		return nil, fmt.Errorf("%w: sender type %d", ErrInvalidSender, c.Sender.Type)
	}
	if err := a.VerifySignature(g.suite, pub, &g.ctx); err != nil {
		return nil, err
	}
	return g.handleContent(a)
}

func (g *Group) processPrivate(pm *PrivateMessage) (*Received, error) {
	if err := g.checkHeader(pm.GroupID, pm.Epoch, pm.ContentType); err != nil {
		return nil, err
	}
	a, err := UnprotectPrivate(g.suite, pm, g.keys, g.secrets.SenderDataSecret)
	if err != nil {
		return nil, err
	}
	sender := a.Content.Sender
	leaf := g.tree.Leaf(sender.Leaf)
	if sender.Type != SenderMember || leaf == nil {
		return nil, fmt.Errorf("%w: leaf %d is not a member", ErrInvalidSender, sender.Leaf)
	}
	if err := a.VerifySignature(g.suite, leaf.SignatureKey, &g.ctx); err != nil {
		return nil, err
	}
	return g.handleContent(a)
}

func (g *Group) handleContent(a *AuthenticatedContent) (*Received, error) {
	c := &a.Content
	r := &Received{ContentType: c.ContentType, Sender: c.Sender, AuthenticatedData: c.AuthenticatedData}
	switch c.ContentType {
	case ContentApplication:
		if len(g.proposals) > 0 {
			// §12.4: members commit pending proposals before sending data.
			// Receivers accept the data anyway: refusing would lose it.
		}
		r.ApplicationData = c.ApplicationData
		return r, nil
	case ContentProposal:
		if err := g.checkProposal(c.Proposal, c.Sender); err != nil {
			return nil, err
		}
		ref := ProposalRef(g.suite, Marshal(a))
		// A replayed proposal, or this member's own echoed back by the
		// delivery service, is cached once: a second copy would make the
		// next commit's proposal list invalid.
		if !slices.ContainsFunc(g.proposals, func(p cachedProposal) bool { return bytes.Equal(p.ref, ref) }) {
			g.proposals = append(g.proposals, cachedProposal{ref: ref, proposal: c.Proposal, sender: c.Sender})
		}
		r.Proposal, r.ProposalRef = c.Proposal, ref
		return r, nil
	case ContentCommit:
		sum, err := g.processCommit(a)
		if err != nil {
			return nil, err
		}
		r.Commit = sum
		return r, nil
	}
	return nil, fmt.Errorf("%w: content type %d", ErrInvalidValue, c.ContentType)
}

// resolveProposals turns a commit's ProposalOrRefs into proposals with their
// senders. References must name proposals received in this epoch.
func (g *Group) resolveProposals(commit *Commit, committer Sender) ([]committedProposal, error) {
	out := make([]committedProposal, 0, len(commit.Proposals))
	for i := range commit.Proposals {
		por := &commit.Proposals[i]
		if por.Proposal != nil {
			out = append(out, committedProposal{proposal: por.Proposal, sender: committer})
			continue
		}
		if committer.Type == SenderNewMemberCommit {
			return nil, fmt.Errorf("%w: an external commit refers to proposal %x", ErrInvalidCommit, por.Reference)
		}
		j := slices.IndexFunc(g.proposals, func(c cachedProposal) bool { return bytes.Equal(c.ref, por.Reference) })
		if j < 0 {
			return nil, fmt.Errorf("%w: unknown proposal reference %x", ErrInvalidCommit, por.Reference)
		}
		out = append(out, committedProposal{proposal: g.proposals[j].proposal, sender: g.proposals[j].sender})
	}
	return out, nil
}

// processCommit applies another member's commit (§12.4.2).
func (g *Group) processCommit(a *AuthenticatedContent) (*CommitSummary, error) {
	s := g.suite
	c := &a.Content
	commit := c.Commit
	external := c.Sender.Type == SenderNewMemberCommit
	if !external && c.Sender.Type != SenderMember {
		return nil, fmt.Errorf("%w: sender type %d cannot commit", ErrInvalidSender, c.Sender.Type)
	}
	if !external && c.Sender.Leaf == g.self {
		return nil, fmt.Errorf("%w: this member's own commit; merge it with MergePendingCommit", ErrInvalidCommit)
	}
	list, err := g.resolveProposals(commit, c.Sender)
	if err != nil {
		return nil, err
	}
	tree := g.tree.CloneShared()
	applied, err := g.applyProposals(tree, list, c.Sender.Leaf, external)
	if err != nil {
		return nil, err
	}
	if applied.pathRequired && commit.Path == nil {
		return nil, fmt.Errorf("%w: the proposals require a path and the commit has none", ErrInvalidCommit)
	}
	sum := &CommitSummary{Epoch: g.ctx.Epoch + 1, Added: applied.added, Removed: applied.removed, Updated: applied.updated, ReInit: applied.reinit}
	if slices.Contains(applied.removed, g.self) {
		// This member can follow no further: it gets no secrets of the
		// new epoch. Its state stays as it was, marked removed.
		g.removed = true
		sum.RemovedSelf = true
		return sum, nil
	}

	committer := c.Sender.Leaf
	if external {
		// The joiner takes the leftmost blank leaf (§12.4.3.2). A
		// placeholder without keys holds it while the path is checked.
		placeholder := commit.Path.LeafNode.Clone()
		placeholder.EncryptionKey = nil
		l, err := tree.AddLeaf(placeholder)
		if err != nil {
			return nil, err
		}
		committer = l
		sum.Joined = &l
	}
	priv := g.priv
	if slices.Contains(applied.updated, g.self) {
		if priv, err = g.applyOwnUpdate(tree, priv); err != nil {
			return nil, err
		}
	}
	var commitSecret []byte
	if commit.Path != nil {
		check, err := g.leafCheck(applied.extensions)
		if err != nil {
			return nil, err
		}
		if err := tree.ApplyUpdatePath(committer, commit.Path, applied.added, check); err != nil {
			return nil, err
		}
		provisional := g.nextContext(tree, g.ctx.ConfirmedTranscriptHash, applied.extensions)
		priv, _, commitSecret, err = priv.DecryptPath(tree, committer, commit.Path, &provisional, applied.added)
		if err != nil {
			return nil, err
		}
	}
	priv = priv.Pruned(tree)

	confirmed, err := ConfirmedTranscriptHash(s, g.interimHash, a)
	if err != nil {
		return nil, err
	}
	next := g.nextContext(tree, confirmed, applied.extensions)
	pskSecret, err := g.pskSecret(applied.psks)
	if err != nil {
		return nil, err
	}
	initSecret := g.secrets.InitSecret
	if external {
		initSecret, err = g.externalInitSecret(applied.externalInit)
		if err != nil {
			return nil, err
		}
	}
	secrets, err := NewEpochSecrets(s, initSecret, commitSecret, pskSecret, Marshal(&next))
	if err != nil {
		return nil, err
	}
	if err := VerifyConfirmationTag(s, secrets.ConfirmationKey, confirmed, a.Auth.ConfirmationTag); err != nil {
		return nil, fmt.Errorf("%w: commit from %s: %w", ErrInvalidCommit, c.Sender.describe(), err)
	}

	g.tree = tree
	g.ctx = next
	g.priv = priv
	if err := g.enterEpoch(secrets, a.Auth.ConfirmationTag); err != nil {
		return nil, err
	}
	g.pending = nil
	g.updateKeys = nil
	g.reinit = applied.reinit
	return sum, nil
}

// externalInitSecret recovers the init_secret an external joiner chose
// (§8.3), with the private half of this epoch's external key pair.
func (g *Group) externalInitSecret(kemOutput []byte) ([]byte, error) {
	priv, _, err := g.secrets.ExternalKeyPair()
	if err != nil {
		return nil, err
	}
	return g.suite.ExternalInitSecretOpen(priv, kemOutput)
}

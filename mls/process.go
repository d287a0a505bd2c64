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

// checkHeader checks that a message is for this group and epoch.
func (v groupView) checkHeader(groupID []byte, epoch uint64, ct ContentType) error {
	if !bytes.Equal(groupID, v.ctx.GroupID) {
		return fmt.Errorf("%w: message for group %x in group %x", ErrWrongGroup, groupID, v.ctx.GroupID)
	}
	if epoch != v.ctx.Epoch {
		return fmt.Errorf("%w: %v for epoch %d in epoch %d", ErrWrongEpoch, ct, epoch, v.ctx.Epoch)
	}
	return nil
}

func (g *Group) processPublic(pm *PublicMessage) (*Received, error) {
	c := &pm.Content
	if err := g.view().checkHeader(c.GroupID, c.Epoch, c.ContentType); err != nil {
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
	pub, err := g.view().senderKey(c)
	if err != nil {
		return nil, err
	}
	if c.Sender.Type == SenderMember {
		if err := pm.VerifyMembershipTag(g.suite, g.secrets.MembershipKey, &g.ctx); err != nil {
			return nil, err
		}
	}
	if err := a.VerifySignature(g.suite, pub, &g.ctx); err != nil {
		return nil, err
	}
	return g.handleContent(a)
}

// senderKey checks that the sender of content sent as a PublicMessage may
// send it, and returns the signature key it must be signed with (§6.1): a
// member's leaf key, an external sender's key from external_senders, or a
// new member's own key from its Add or from its commit's path.
func (v groupView) senderKey(c *FramedContent) ([]byte, error) {
	switch c.Sender.Type {
	case SenderMember:
		leaf := v.tree.Leaf(c.Sender.Leaf)
		if leaf == nil {
			return nil, fmt.Errorf("%w: leaf %d is not a member", ErrInvalidSender, c.Sender.Leaf)
		}
		return leaf.SignatureKey, nil
	case SenderExternal:
		es, err := externalSenders(v.ctx.Extensions)
		if err != nil {
			return nil, err
		}
		if int64(c.Sender.Index) >= int64(len(es)) {
			return nil, fmt.Errorf("%w: external sender %d of %d", ErrInvalidSender, c.Sender.Index, len(es))
		}
		if c.ContentType != ContentProposal {
			return nil, fmt.Errorf("%w: an external sender sent a %v", ErrInvalidSender, c.ContentType)
		}
		return es[c.Sender.Index].SignatureKey, nil
	case SenderNewMemberProposal:
		if c.ContentType != ContentProposal || c.Proposal.Type != ProposalAdd {
			return nil, fmt.Errorf("%w: a new member may only propose to add itself", ErrInvalidSender)
		}
		return c.Proposal.Add.LeafNode.SignatureKey, nil
	case SenderNewMemberCommit:
		if c.ContentType != ContentCommit || c.Commit.Path == nil {
			return nil, fmt.Errorf("%w: a new member's commit must carry a path", ErrInvalidSender)
		}
		return c.Commit.Path.LeafNode.SignatureKey, nil
	}
	return nil, fmt.Errorf("%w: sender type %d", ErrInvalidSender, c.Sender.Type)
}

func (g *Group) processPrivate(pm *PrivateMessage) (*Received, error) {
	if pm.Epoch < g.ctx.Epoch && pm.ContentType == ContentApplication && bytes.Equal(pm.GroupID, g.ctx.GroupID) {
		if p := g.pastEpoch(pm.Epoch); p != nil {
			return g.processLate(p, pm)
		}
	}
	if err := g.view().checkHeader(pm.GroupID, pm.Epoch, pm.ContentType); err != nil {
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
		// §12.4 asks senders to commit pending proposals before sending
		// data; receivers accept it anyway, since refusing would lose it.
		r.ApplicationData = c.ApplicationData
		return r, nil
	case ContentProposal:
		if err := g.view().checkProposal(c.Proposal, c.Sender); err != nil {
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
// senders. References must name proposals received in this epoch (cached).
func resolveProposals(cached []cachedProposal, commit *Commit, committer Sender) ([]committedProposal, error) {
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
		j := slices.IndexFunc(cached, func(c cachedProposal) bool { return bytes.Equal(c.ref, por.Reference) })
		if j < 0 {
			return nil, fmt.Errorf("%w: unknown proposal reference %x", ErrInvalidCommit, por.Reference)
		}
		out = append(out, committedProposal{proposal: cached[j].proposal, sender: cached[j].sender})
	}
	return out, nil
}

// publicCommit is what a commit does to the public state of a group.
type publicCommit struct {
	list    []committedProposal // the resolved proposal list, in commit order
	applied *appliedProposals
	// tree is the new epoch's tree, with the path (if any) merged.
	tree *RatchetTree
	// committer is the committer's leaf in tree: for an external commit,
	// the leaf the joiner took.
	committer LeafIndex
	external  bool
	// provisional is the new GroupContext with the old confirmed transcript
	// hash, which path secrets are encrypted under (§12.4.2).
	provisional GroupContext
	// next is the new epoch's GroupContext.
	next GroupContext
}

// applyCommit is the part of processing a commit (§12.4.2) that needs no
// secrets, shared by members and by PublicGroup: it checks the sender, the
// proposal list (references resolved in cached), the path rules and the
// path's public part (its leaf, keys and parent hashes), and computes the new
// tree and GroupContext, extending the transcript from interim, the current
// interim transcript hash. The caller has checked the signature. The
// confirmation tag is not checked here: that needs the new epoch's secrets.
// v's tree is not changed.
func (v groupView) applyCommit(a *AuthenticatedContent, cached []cachedProposal, interim []byte) (*publicCommit, error) {
	c := &a.Content
	commit := c.Commit
	external := c.Sender.Type == SenderNewMemberCommit
	if !external && c.Sender.Type != SenderMember {
		return nil, fmt.Errorf("%w: sender type %d cannot commit", ErrInvalidSender, c.Sender.Type)
	}
	list, err := resolveProposals(cached, commit, c.Sender)
	if err != nil {
		return nil, err
	}
	tree := v.tree.CloneShared()
	applied, err := v.applyProposals(tree, list, c.Sender.Leaf, external)
	if err != nil {
		return nil, err
	}
	if applied.pathRequired && commit.Path == nil {
		return nil, fmt.Errorf("%w: the proposals require a path and the commit has none", ErrInvalidCommit)
	}
	pc := &publicCommit{list: list, applied: applied, tree: tree, committer: c.Sender.Leaf, external: external}
	if external {
		// The joiner takes the leftmost blank leaf (§12.4.3.2). A
		// placeholder without keys holds it while the path is checked.
		placeholder := commit.Path.LeafNode.Clone()
		placeholder.EncryptionKey = nil
		if pc.committer, err = tree.AddLeaf(placeholder); err != nil {
			return nil, err
		}
	}
	if commit.Path != nil {
		check, err := v.leafCheck(applied.extensions)
		if err != nil {
			return nil, err
		}
		if err := tree.ApplyUpdatePath(pc.committer, commit.Path, applied.added, check); err != nil {
			return nil, err
		}
	}
	pc.provisional = v.nextContext(tree, v.ctx.ConfirmedTranscriptHash, applied.extensions)
	confirmed, err := ConfirmedTranscriptHash(v.suite, interim, a)
	if err != nil {
		return nil, err
	}
	pc.next = v.nextContext(tree, confirmed, applied.extensions)
	return pc, nil
}

// processCommit applies another member's commit (§12.4.2).
func (g *Group) processCommit(a *AuthenticatedContent) (*CommitSummary, error) {
	s := g.suite
	c := &a.Content
	commit := c.Commit
	if c.Sender.Type == SenderMember && c.Sender.Leaf == g.self {
		return nil, fmt.Errorf("%w: this member's own commit; merge it with MergePendingCommit", ErrInvalidCommit)
	}
	pc, err := g.view().applyCommit(a, g.proposals, g.interimHash)
	if err != nil {
		return nil, err
	}
	applied, tree := pc.applied, pc.tree
	sum := &CommitSummary{Epoch: g.ctx.Epoch + 1, Added: applied.added, Removed: applied.removed, Updated: applied.updated, ReInit: applied.reinit}
	if slices.Contains(applied.removed, g.self) {
		// This member can follow no further: it gets no secrets of the
		// new epoch. Its state stays as it was, marked removed.
		g.removed = true
		sum.RemovedSelf = true
		return sum, nil
	}
	if pc.external {
		l := pc.committer
		sum.Joined = &l
	}
	priv, signer := g.priv, g.signer
	if slices.Contains(applied.updated, g.self) {
		if priv, signer, err = g.applyOwnUpdate(tree, priv); err != nil {
			return nil, err
		}
	}
	var commitSecret []byte
	if commit.Path != nil {
		priv, _, commitSecret, err = priv.DecryptPath(tree, pc.committer, commit.Path, &pc.provisional, applied.added)
		if err != nil {
			return nil, err
		}
	}
	priv = priv.Pruned(tree)

	next := pc.next
	pskSecret, err := g.pskSecret(applied.psks)
	if err != nil {
		return nil, err
	}
	initSecret := g.secrets.InitSecret
	if pc.external {
		initSecret, err = g.externalInitSecret(applied.externalInit)
		if err != nil {
			return nil, err
		}
	}
	secrets, err := NewEpochSecrets(s, initSecret, commitSecret, pskSecret, Marshal(&next))
	if err != nil {
		return nil, err
	}
	if err := VerifyConfirmationTag(s, secrets.ConfirmationKey, next.ConfirmedTranscriptHash, a.Auth.ConfirmationTag); err != nil {
		return nil, fmt.Errorf("%w: commit from %s: %w", ErrInvalidCommit, c.Sender.describe(), err)
	}

	g.retire()
	g.tree = tree
	g.ctx = next
	g.priv = priv
	g.signer = signer
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

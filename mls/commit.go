package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// Creating proposals, commits and application messages (RFC 9420 §12.4.1).

// pendingCommit is this member's own commit: the state the group enters
// once the delivery service confirms the commit won its epoch.
type pendingCommit struct {
	content         *AuthenticatedContent
	private         *PrivateMessage // set when the commit was sent encrypted
	tree            *RatchetTree
	ctx             GroupContext
	priv            *TreePrivateState
	secrets         *EpochSecrets
	confirmationTag []byte
	reinit          *ReInit
	summary         *CommitSummary
}

// protect signs content as this member and wraps it for sending, as a
// PrivateMessage if private, else as a PublicMessage.
func (g *Group) protect(content *FramedContent, private bool, confirm func(*AuthenticatedContent) error) (*MLSMessage, *AuthenticatedContent, error) {
	s := g.suite
	wf := WireFormatPublicMessage
	if private {
		wf = WireFormatPrivateMessage
	}
	a, err := SignContent(s, g.signer, wf, content, &g.ctx)
	if err != nil {
		return nil, nil, err
	}
	if confirm != nil {
		if err := confirm(a); err != nil {
			return nil, nil, err
		}
	}
	msg := &MLSMessage{Version: MLS10, WireFormat: wf}
	if private {
		pm, err := ProtectPrivate(s, a, g.keys, g.secrets.SenderDataSecret, g.padding(content))
		if err != nil {
			return nil, nil, err
		}
		msg.Private = pm
	} else {
		pm, err := ProtectPublic(s, a, g.secrets.MembershipKey, &g.ctx)
		if err != nil {
			return nil, nil, err
		}
		msg.Public = pm
	}
	return msg, a, nil
}

// padding returns how many zero bytes round an application message's data
// up to the configured block size, so that lengths leak less.
func (g *Group) padding(content *FramedContent) int {
	b := g.config.PaddingBlock
	if b <= 1 || content.ContentType != ContentApplication {
		return 0
	}
	return (b - len(content.ApplicationData)%b) % b
}

func (g *Group) framed(ct ContentType, aad []byte) *FramedContent {
	return &FramedContent{
		GroupID:           g.ctx.GroupID,
		Epoch:             g.ctx.Epoch,
		Sender:            Sender{Type: SenderMember, Leaf: g.self},
		AuthenticatedData: aad,
		ContentType:       ct,
	}
}

// Encrypt makes an application message (always a PrivateMessage, §6.3).
func (g *Group) Encrypt(data, authenticatedData []byte) (*MLSMessage, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	c := g.framed(ContentApplication, authenticatedData)
	c.ApplicationData = data
	msg, _, err := g.protect(c, true, nil)
	return msg, err
}

// Propose sends a proposal of this member's and caches it, so this member's
// next commit includes it by reference. Use NewUpdateProposal for updates.
func (g *Group) Propose(p *Proposal, authenticatedData []byte) (*MLSMessage, []byte, error) {
	if err := g.usable(); err != nil {
		return nil, nil, err
	}
	self := Sender{Type: SenderMember, Leaf: g.self}
	if err := g.view().checkProposal(p, self); err != nil {
		return nil, nil, err
	}
	c := g.framed(ContentProposal, authenticatedData)
	c.Proposal = p
	msg, a, err := g.protect(c, g.config.EncryptHandshake, nil)
	if err != nil {
		return nil, nil, err
	}
	ref := ProposalRef(g.suite, Marshal(a))
	cached := cachedProposal{ref: ref, proposal: p, sender: self}
	if msg.Private != nil {
		cached.sent = Marshal(msg.Private)
	}
	g.proposals = append(g.proposals, cached)
	return msg, ref, nil
}

// NewUpdateProposal makes an Update proposal with a fresh leaf encryption
// key, remembered until a commit applies it. A new signer or credential may
// be given (nil keeps the current ones).
func (g *Group) NewUpdateProposal(signer *SignaturePrivateKey, credential *Credential) (*Proposal, error) {
	s := g.suite
	key, pub, err := s.GenerateHPKEKey()
	if err != nil {
		return nil, err
	}
	leaf := g.tree.Leaf(g.self).Clone()
	leaf.EncryptionKey = pub
	leaf.Source = SourceUpdate
	leaf.Lifetime = Lifetime{}
	leaf.ParentHash = nil
	if signer == nil {
		signer = g.signer
	}
	leaf.SignatureKey = signer.PublicKey()
	if credential != nil {
		leaf.Credential = *credential
	}
	if err := leaf.Sign(s, signer, g.ctx.GroupID, g.self); err != nil {
		return nil, err
	}
	if g.updateKeys == nil {
		g.updateKeys = map[string]updateKey{}
	}
	g.updateKeys[string(pub)] = updateKey{key: key, signer: signer}
	return &Proposal{Type: ProposalUpdate, Update: leaf}, nil
}

// updateKey is the private half of one of this member's Update proposals.
type updateKey struct {
	key    HPKEPrivateKey
	signer *SignaturePrivateKey
}

// CommitOptions are a committer's choices.
type CommitOptions struct {
	// Proposals are added to the commit by value, after every proposal of
	// the epoch that was received or sent (which go by reference).
	Proposals []*Proposal
	// OnlyByValue leaves out the cached proposals.
	OnlyByValue bool
	// ProposalRefs, if not nil, names the cached proposals to include
	// (by their ProposalRef); the others stay cached for a later commit.
	ProposalRefs [][]byte
	// ForcePath includes an UpdatePath even when no proposal requires one.
	ForcePath bool
	// InlineTree puts the ratchet tree in the Welcome's GroupInfo; without
	// it new members must get the tree another way.
	InlineTree bool
	// ExternalPub adds the external_pub extension to the GroupInfo, so it
	// can be used for external joins.
	ExternalPub bool
	// AuthenticatedData travels unencrypted but authenticated.
	AuthenticatedData []byte
}

// CommitResult is what a committer sends: the commit to the group, a Welcome
// to new members, and the GroupInfo of the new epoch.
type CommitResult struct {
	Commit    *MLSMessage
	Welcome   *MLSMessage // nil when no one was added
	GroupInfo *MLSMessage
	// RatchetTree is the new epoch's tree, for new members when the
	// Welcome does not carry it.
	RatchetTree TreeNodes
}

// Commit creates a commit of the epoch's proposals and the given ones. The
// group stays in the current epoch until MergePendingCommit (or until the
// commit is received back from the delivery service); ClearPendingCommit
// abandons it.
func (g *Group) Commit(o CommitOptions) (*CommitResult, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	s := g.suite
	self := Sender{Type: SenderMember, Leaf: g.self}
	commit := &Commit{}
	var list []committedProposal
	if !o.OnlyByValue {
		var cached []cachedProposal
		if o.ProposalRefs != nil {
			// The caller chose: commit exactly those, valid or not.
			for _, c := range g.proposals {
				if slices.ContainsFunc(o.ProposalRefs, func(r []byte) bool { return bytes.Equal(r, c.ref) }) {
					cached = append(cached, c)
				}
			}
		} else {
			cached = g.selectProposals(o.Proposals)
		}
		for _, c := range cached {
			commit.Proposals = append(commit.Proposals, ProposalOrRef{Reference: c.ref})
			list = append(list, committedProposal{proposal: c.proposal, sender: c.sender})
		}
	}
	for _, p := range o.Proposals {
		commit.Proposals = append(commit.Proposals, ProposalOrRef{Proposal: p})
		list = append(list, committedProposal{proposal: p, sender: self})
	}
	tree := g.tree.CloneShared()
	applied, err := g.view().applyProposals(tree, list, g.self, false)
	if err != nil {
		return nil, err
	}
	sum := &CommitSummary{Epoch: g.ctx.Epoch + 1, Added: applied.added, Removed: applied.removed, Updated: applied.updated, ReInit: applied.reinit}

	priv := g.priv
	var commitSecret []byte
	var path *GeneratedPath
	if applied.pathRequired || o.ForcePath {
		path, err = tree.GeneratePath(g.self, PathOptions{GroupID: g.ctx.GroupID, Signer: g.signer})
		if err != nil {
			return nil, err
		}
		provisional := g.view().nextContext(tree, g.ctx.ConfirmedTranscriptHash, applied.extensions)
		up, err := path.Encrypt(tree, &provisional, applied.added)
		if err != nil {
			return nil, err
		}
		commit.Path = up
		commitSecret = path.CommitSecret
		priv = path.State
	}
	priv = priv.Pruned(tree)

	var extra []PSKInput
	if g.successorPSK != nil {
		// The first commit of a reinitialized or branched group carries
		// the resumption PSK that ties it to its predecessor (§11.2, §11.3);
		// such PSKs are not allowed in ordinary proposals.
		extra = []PSKInput{*g.successorPSK}
		commit.Proposals = append(commit.Proposals, ProposalOrRef{Proposal: &Proposal{Type: ProposalPSK, PSK: &g.successorPSK.ID}})
		applied.psks = append(slices.Clone(applied.psks), g.successorPSK.ID)
	}
	pskSecret, err := g.pskSecret(applied.psks[:len(applied.psks)-len(extra)], extra...)
	if err != nil {
		return nil, err
	}
	content := g.framed(ContentCommit, o.AuthenticatedData)
	content.Commit = commit
	var next GroupContext
	var secrets *EpochSecrets
	msg, a, err := g.protect(content, g.config.EncryptHandshake, func(a *AuthenticatedContent) error {
		confirmed, err := ConfirmedTranscriptHash(s, g.interimHash, a)
		if err != nil {
			return err
		}
		next = g.view().nextContext(tree, confirmed, applied.extensions)
		secrets, err = NewEpochSecrets(s, g.secrets.InitSecret, commitSecret, pskSecret, Marshal(&next))
		if err != nil {
			return err
		}
		a.Auth.ConfirmationTag = ConfirmationTag(s, secrets.ConfirmationKey, confirmed)
		return nil
	})
	if err != nil {
		return nil, err
	}

	info, err := g.signGroupInfo(&next, tree, a.Auth.ConfirmationTag, secrets, o.InlineTree, o.ExternalPub)
	if err != nil {
		return nil, err
	}
	res := &CommitResult{Commit: msg, GroupInfo: &MLSMessage{Version: MLS10, WireFormat: WireFormatGroupInfo, GroupInfo: info}, RatchetTree: tree.TreeNodes()}
	if len(applied.added) > 0 {
		members := make([]NewMemberSecrets, len(applied.added))
		for i, l := range applied.added {
			members[i] = NewMemberSecrets{KeyPackage: applied.addedKPs[i], Secrets: GroupSecrets{JoinerSecret: secrets.JoinerSecret, PSKs: applied.psks}}
			if path != nil {
				if _, ps, ok := path.PathSecretFor(l); ok {
					members[i].Secrets.PathSecret = ps
				}
			}
		}
		w, err := SealWelcome(s, secrets.WelcomeSecret, info, members)
		if err != nil {
			return nil, err
		}
		res.Welcome = &MLSMessage{Version: MLS10, WireFormat: WireFormatWelcome, Welcome: w}
	}
	g.pending = &pendingCommit{
		content: a, private: msg.Private, tree: tree, ctx: next, priv: priv, secrets: secrets,
		confirmationTag: a.Auth.ConfirmationTag, reinit: applied.reinit, summary: sum,
	}
	return res, nil
}

// nextContext returns the GroupContext of the epoch a commit starts, from
// the commit's new tree, confirmed transcript hash and extensions.
func (v groupView) nextContext(tree *RatchetTree, confirmed []byte, exts Extensions) GroupContext {
	return GroupContext{
		Version:                 v.ctx.Version,
		CipherSuite:             v.ctx.CipherSuite,
		GroupID:                 v.ctx.GroupID,
		Epoch:                   v.ctx.Epoch + 1,
		TreeHash:                tree.TreeHash(),
		ConfirmedTranscriptHash: confirmed,
		Extensions:              exts,
	}
}

// signGroupInfo builds and signs the GroupInfo of an epoch.
func (g *Group) signGroupInfo(ctx *GroupContext, tree *RatchetTree, tag []byte, secrets *EpochSecrets, inlineTree, externalPub bool) (*GroupInfo, error) {
	info := &GroupInfo{GroupContext: *ctx, ConfirmationTag: tag, Signer: g.self}
	if inlineTree {
		info.Extensions = append(info.Extensions, Extension{Type: ExtRatchetTree, Data: Marshal(tree.TreeNodes())})
	}
	if externalPub {
		_, pub, err := secrets.ExternalKeyPair()
		if err != nil {
			return nil, err
		}
		w := NewWriter(len(pub) + 4)
		w.Opaque(pub)
		info.Extensions = append(info.Extensions, Extension{Type: ExtExternalPub, Data: w.Bytes()})
	}
	if err := info.Sign(g.suite, g.signer); err != nil {
		return nil, err
	}
	return info, nil
}

// GroupInfo returns a signed GroupInfo for the current epoch, for example
// to let a client join by external commit.
func (g *Group) GroupInfo(inlineTree, externalPub bool) (*MLSMessage, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	info, err := g.signGroupInfo(&g.ctx, g.tree, g.confirmationTag, g.secrets, inlineTree, externalPub)
	if err != nil {
		return nil, err
	}
	return &MLSMessage{Version: MLS10, WireFormat: WireFormatGroupInfo, GroupInfo: info}, nil
}

// HasPendingCommit reports whether this member has an unmerged commit.
func (g *Group) HasPendingCommit() bool { return g.pending != nil }

// ClearPendingCommit abandons this member's own unmerged commit, as when
// another member's commit won the epoch.
func (g *Group) ClearPendingCommit() { g.pending = nil }

// MergePendingCommit moves the group into the epoch of this member's own
// commit, once the delivery service has accepted it.
func (g *Group) MergePendingCommit() (*Received, error) {
	p := g.pending
	if p == nil {
		return nil, fmt.Errorf("%w: none to merge", ErrPendingCommit)
	}
	g.retire()
	g.tree = p.tree
	g.ctx = p.ctx
	g.priv = p.priv
	if err := g.enterEpoch(p.secrets, p.confirmationTag); err != nil {
		return nil, err
	}
	g.pending = nil
	g.reinit = p.reinit
	g.updateKeys = nil
	return &Received{ContentType: ContentCommit, Sender: p.content.Content.Sender, AuthenticatedData: p.content.Content.AuthenticatedData, Commit: p.summary}, nil
}

// applyOwnUpdate returns this member's private state and signing key after
// a commit applies its Update. The caller adopts them only once the whole
// commit has been accepted.
func (g *Group) applyOwnUpdate(tree *RatchetTree, priv *TreePrivateState) (*TreePrivateState, *SignaturePrivateKey, error) {
	leaf := tree.Leaf(g.self)
	u, ok := g.updateKeys[string(leaf.EncryptionKey)]
	if !ok {
		return nil, nil, fmt.Errorf("%w: committed update of leaf %d has no known private key", ErrInvalidCommit, g.self)
	}
	q := priv.Clone()
	q.LeafKey = u.key
	return q, u.signer, nil
}

// selectProposals picks, from the proposals received in this epoch, a set
// that makes a valid commit together with the committer's own new ones
// (§12.2). Whatever another member sends, a committer can always commit:
// per leaf it keeps a Remove over Updates and the latest Update over older
// ones; it drops proposals that no longer pass their checks, the
// committer's own Updates (its path replaces them), proposals about leaves
// it removes itself, Adds of a client already present or added twice, PSKs
// it does not hold or that repeat, all but the latest context-extensions
// change, and a ReInit when anything else is committed (the RFC prefers the
// other proposals; the ReInit can be sent again).
func (g *Group) selectProposals(byValue []*Proposal) []cachedProposal {
	v := g.view()
	leafOf := func(c cachedProposal) (LeafIndex, bool) {
		switch c.proposal.Type {
		case ProposalUpdate:
			return c.sender.Leaf, true
		case ProposalRemove:
			return c.proposal.Remove, true
		}
		return 0, false
	}
	removedByValue := map[LeafIndex]bool{}
	addKeys := map[string]bool{}
	pskIDs := map[string]bool{}
	gceByValue := false
	for _, p := range byValue {
		switch p.Type {
		case ProposalRemove:
			removedByValue[p.Remove] = true
		case ProposalAdd:
			addKeys[string(p.Add.LeafNode.SignatureKey)] = true
		case ProposalPSK:
			pskIDs[string(Marshal(p.PSK))] = true
		case ProposalGroupContextExtensions:
			gceByValue = true
		}
	}
	var keep []cachedProposal
	byLeaf := map[LeafIndex]int{} // index in keep of the proposal chosen for a leaf
	drop := map[int]bool{}
	lastGCE := -1
	var reinit *cachedProposal
	for _, c := range g.proposals {
		if c.proposal.Type == ProposalUpdate && c.sender.Type == SenderMember && c.sender.Leaf == g.self {
			continue
		}
		if v.checkProposal(c.proposal, c.sender) != nil {
			continue
		}
		if l, ok := leafOf(c); ok {
			if l == g.self || removedByValue[l] {
				continue
			}
			if i, seen := byLeaf[l]; seen {
				if keep[i].proposal.Type == ProposalRemove {
					continue // a Remove wins over everything after it
				}
				drop[i] = true // a later Update or a Remove replaces an Update
			}
			byLeaf[l] = len(keep)
			keep = append(keep, c)
			continue
		}
		switch c.proposal.Type {
		case ProposalAdd:
			key := string(c.proposal.Add.LeafNode.SignatureKey)
			if addKeys[key] || g.hasSignatureKey(c.proposal.Add.LeafNode.SignatureKey) {
				continue
			}
			addKeys[key] = true
		case ProposalPSK:
			id := string(Marshal(c.proposal.PSK))
			if pskIDs[id] {
				continue
			}
			if _, _, err := resolvePSKs(g.suite, []PreSharedKeyID{*c.proposal.PSK}, g.config.PSKs, g.ownResumptionPSK, false); err != nil {
				continue
			}
			pskIDs[id] = true
		case ProposalGroupContextExtensions:
			if gceByValue {
				continue
			}
			if lastGCE >= 0 {
				drop[lastGCE] = true
			}
			lastGCE = len(keep)
		case ProposalReInit:
			if reinit == nil {
				c := c
				reinit = &c
			}
			continue
		case ProposalExternalInit:
			continue
		}
		keep = append(keep, c)
	}
	var out []cachedProposal
	for i, c := range keep {
		if !drop[i] {
			out = append(out, c)
		}
	}
	if len(out) == 0 && len(byValue) == 0 && reinit != nil {
		out = []cachedProposal{*reinit}
	}
	return out
}

// hasSignatureKey reports whether a member's leaf carries this signature
// key, which marks the same client (§12.2) unless that member is removed.
func (g *Group) hasSignatureKey(key []byte) bool {
	for _, l := range g.tree.Members() {
		if bytes.Equal(g.tree.Leaf(l).SignatureKey, key) {
			return true
		}
	}
	return false
}

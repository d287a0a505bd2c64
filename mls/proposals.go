package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// Validating and applying proposals (RFC 9420 §12.1–12.3). The same code
// serves a committer building a commit, a member processing one, and a
// PublicGroup (a delivery service following the group without its secrets),
// so all of them reach the same tree.

// groupView is the public state of a group in its current epoch: all that
// validating proposals and commits needs. Group and PublicGroup each build
// one over their own fields, so that neither duplicates the other's checks.
type groupView struct {
	suite *Suite
	ctx   *GroupContext
	tree  *RatchetTree
	now   uint64 // for KeyPackage lifetimes; 0 skips the check
}

// view returns the member's public state, for the shared checks.
func (g *Group) view() groupView {
	return groupView{suite: g.suite, ctx: &g.ctx, tree: g.tree, now: g.config.now()}
}

// committedProposal is one entry of a commit's proposal list, resolved.
type committedProposal struct {
	proposal *Proposal
	sender   Sender
}

// appliedProposals is what applying a proposal list produced.
type appliedProposals struct {
	extensions   Extensions // the new GroupContext extensions
	added        []LeafIndex
	addedKPs     []*KeyPackage
	removed      []LeafIndex
	updated      []LeafIndex
	psks         []PreSharedKeyID
	externalInit []byte // kem_output of the ExternalInit
	reinit       *ReInit
	pathRequired bool
}

// mayPropose reports whether a sender of this type may send proposal type t
// (§12.1.8): external senders only add, remove, psk, reinit and
// group_context_extensions; a new member only proposes adding itself.
func mayPropose(st SenderType, t ProposalType) bool {
	switch st {
	case SenderMember:
		return t != ProposalExternalInit
	case SenderExternal:
		switch t {
		case ProposalAdd, ProposalRemove, ProposalPSK, ProposalReInit, ProposalGroupContextExtensions:
			return true
		}
	case SenderNewMemberProposal:
		return t == ProposalAdd
	case SenderNewMemberCommit:
		// An external commit carries its ExternalInit, at most one Remove
		// of the joiner's old leaf, and PSKs (§12.2).
		switch t {
		case ProposalExternalInit, ProposalRemove, ProposalPSK:
			return true
		}
	}
	return false
}

// checkProposal validates one proposal on its own, against the current
// group (§12.1): what can be checked before it is committed.
func (v groupView) checkProposal(p *Proposal, sender Sender) error {
	s := v.suite
	if !mayPropose(sender.Type, p.Type) {
		return fmt.Errorf("%w: sender type %d may not send proposal type 0x%04x", ErrInvalidProposal, sender.Type, uint16(p.Type))
	}
	switch p.Type {
	case ProposalAdd:
		if err := ValidateKeyPackage(s, p.Add, v.now); err != nil {
			return fmt.Errorf("%w: add: %w", ErrInvalidProposal, err)
		}
	case ProposalUpdate:
		if sender.Type != SenderMember {
			return fmt.Errorf("%w: update from a non-member", ErrInvalidProposal)
		}
		check, err := v.leafCheck(v.ctx.Extensions)
		if err != nil {
			return err
		}
		check.Leaf, check.Source, check.Tree = sender.Leaf, SourceUpdate, v.tree
		if err := ValidateLeafNode(s, p.Update, &check); err != nil {
			return fmt.Errorf("%w: update: %w", ErrInvalidProposal, err)
		}
	case ProposalRemove:
		if v.tree.Leaf(p.Remove) == nil {
			return fmt.Errorf("%w: remove of blank leaf %d", ErrInvalidProposal, p.Remove)
		}
	case ProposalPSK:
		if err := p.PSK.Validate(s); err != nil {
			return fmt.Errorf("%w: psk: %w", ErrInvalidProposal, err)
		}
		if p.PSK.Type == PSKResumption && p.PSK.Usage != ResumptionApplication {
			return fmt.Errorf("%w: psk: resumption PSK of usage %v in a proposal", ErrInvalidProposal, p.PSK.Usage)
		}
	case ProposalReInit:
		if p.ReInit.Version < v.ctx.Version {
			return fmt.Errorf("%w: reinit to version %d from %d", ErrInvalidProposal, p.ReInit.Version, v.ctx.Version)
		}
	case ProposalGroupContextExtensions:
		if _, err := requiredCapabilities(p.Extensions); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
		if _, err := externalSenders(p.Extensions); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
	case ProposalExternalInit:
		// Only valid inside an external commit, checked there.
	default:
		return fmt.Errorf("%w: unknown proposal type 0x%04x", ErrInvalidProposal, uint16(p.Type))
	}
	return nil
}

// applyProposals validates a commit's proposal list (§12.2) and applies it
// to tree, a copy of the group's tree, in the order §12.3 prescribes. For an
// external commit committer is ignored.
func (v groupView) applyProposals(tree *RatchetTree, list []committedProposal, committer LeafIndex, external bool) (*appliedProposals, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidProposal}, args...)...)
	}
	res := &appliedProposals{extensions: v.ctx.Extensions, pathRequired: len(list) == 0 || external}
	var gce, reinit, externalInit int
	touched := map[LeafIndex]bool{}
	var updates, removes, adds []committedProposal
	for i := range list {
		p, sender := list[i].proposal, list[i].sender
		if err := v.checkProposal(p, sender); err != nil {
			return nil, err
		}
		switch p.Type {
		case ProposalUpdate:
			if !external && sender.Leaf == committer {
				return nil, fail("the committer's own update")
			}
			if touched[sender.Leaf] {
				return nil, fail("more than one update or remove for leaf %d", sender.Leaf)
			}
			touched[sender.Leaf] = true
			updates = append(updates, list[i])
			res.pathRequired = true
		case ProposalRemove:
			if !external && p.Remove == committer {
				return nil, fail("a remove of the committer (leaf %d)", committer)
			}
			if touched[p.Remove] {
				return nil, fail("more than one update or remove for leaf %d", p.Remove)
			}
			touched[p.Remove] = true
			removes = append(removes, list[i])
			res.pathRequired = true
		case ProposalAdd:
			adds = append(adds, list[i])
		case ProposalPSK:
			// §12.2 forbids naming one PSK twice. resolvePSKs catches it
			// too, but only members resolve PSKs; a PublicGroup must see it
			// here.
			id := Marshal(p.PSK)
			if slices.ContainsFunc(res.psks, func(q PreSharedKeyID) bool { return bytes.Equal(Marshal(&q), id) }) {
				return nil, fail("psk %x is listed twice", p.PSK.ID)
			}
			res.psks = append(res.psks, *p.PSK)
		case ProposalReInit:
			reinit++
			res.reinit = p.ReInit
		case ProposalExternalInit:
			externalInit++
			res.externalInit = p.KEMOutput
			res.pathRequired = true
		case ProposalGroupContextExtensions:
			gce++
			res.extensions = p.Extensions
			res.pathRequired = true
		}
	}
	switch {
	case gce > 1:
		return nil, fail("more than one group_context_extensions proposal")
	case reinit > 0 && len(list) > 1:
		return nil, fail("a reinit together with other proposals")
	case external && externalInit != 1:
		return nil, fail("an external commit with %d external_init proposals, want 1", externalInit)
	case !external && externalInit > 0:
		return nil, fail("an external_init in a member's commit")
	case external && (len(removes) > 1 || len(updates) > 0 || len(adds) > 0 || gce > 0 || reinit > 0):
		return nil, fail("an external commit may hold only external_init, one remove and psks")
	}

	check, err := v.leafCheck(res.extensions)
	if err != nil {
		return nil, fail("%v", err)
	}
	for _, u := range updates {
		c := check
		c.Leaf, c.Source, c.Tree = u.sender.Leaf, SourceUpdate, tree
		if err := ValidateLeafNode(v.suite, u.proposal.Update, &c); err != nil {
			return nil, fail("update of leaf %d: %v", u.sender.Leaf, err)
		}
		if err := tree.UpdateLeaf(u.sender.Leaf, u.proposal.Update); err != nil {
			return nil, fail("%v", err)
		}
		res.updated = append(res.updated, u.sender.Leaf)
	}
	for _, r := range removes {
		if err := tree.RemoveLeaf(r.proposal.Remove); err != nil {
			return nil, fail("%v", err)
		}
		res.removed = append(res.removed, r.proposal.Remove)
	}
	for _, a := range adds {
		kp := a.proposal.Add
		c := check
		c.Leaf, c.Source, c.Tree = LeafIndex(tree.LeafCount()), SourceKeyPackage, tree
		c.GroupID = nil
		if err := ValidateLeafNode(v.suite, &kp.LeafNode, &c); err != nil {
			return nil, fail("add: %v", err)
		}
		if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
			return nil, fail("add: init key equals the leaf's encryption key")
		}
		l, err := tree.AddLeaf(&kp.LeafNode)
		if err != nil {
			return nil, fail("%v", err)
		}
		res.added = append(res.added, l)
		res.addedKPs = append(res.addedKPs, kp)
	}
	if gce > 0 || len(adds) > 0 {
		if err := checkExtensionsSupported(tree, res.extensions); err != nil {
			return nil, err
		}
	}
	return res, nil
}

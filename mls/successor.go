package mls

import "fmt"

// Groups that continue other groups (RFC 9420 §11.2, §11.3): after a
// reinitialization, a new group with the parameters of the ReInit proposal
// replaces the old one; a branch starts a subgroup of some members. Either
// way the new group's first commit and Welcome carry a resumption PSK of the
// old group's current epoch, so only its members can join.

// ReInitSuccessor creates the group that replaces this one after a commit
// with a ReInit proposal, adding the members' KeyPackages for the new
// parameters. id is this member's identity in the new cipher suite. The new
// group is returned in epoch 1, with the Welcome for the others.
func (g *Group) ReInitSuccessor(id Identity, keyPackages []*KeyPackage, o CommitOptions) (*Group, *CommitResult, error) {
	r := g.reinit
	if r == nil {
		return nil, nil, fmt.Errorf("%w: no reinit was committed", ErrInvalidCommit)
	}
	s, err := SuiteFor(r.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	return g.successor(s, r.GroupID, r.Extensions, id, ResumptionReinit, keyPackages, o)
}

// Branch starts a subgroup of this group with the given members' KeyPackages
// (of this group's suite), with this member's identity.
func (g *Group) Branch(groupID []byte, extensions Extensions, keyPackages []*KeyPackage, o CommitOptions) (*Group, *CommitResult, error) {
	if err := g.usable(); err != nil {
		return nil, nil, err
	}
	leaf := g.tree.Leaf(g.self)
	id := Identity{Signer: g.signer, Credential: leaf.Credential, Capabilities: &leaf.Capabilities, LeafExtensions: leaf.Extensions}
	return g.successor(g.suite, groupID, extensions, id, ResumptionBranch, keyPackages, o)
}

func (g *Group) successor(s *Suite, groupID []byte, exts Extensions, id Identity, usage ResumptionPSKUsage, keyPackages []*KeyPackage, o CommitOptions) (*Group, *CommitResult, error) {
	if g.removed {
		return nil, nil, fmt.Errorf("%w: this member was removed", ErrGroupClosed)
	}
	next, err := CreateGroup(s, groupID, id, exts, g.config)
	if err != nil {
		return nil, nil, err
	}
	psk := NewResumptionPSKID(s, usage, g.ctx.GroupID, g.ctx.Epoch)
	next.successorPSK = &PSKInput{ID: psk, PSK: g.secrets.ResumptionPSK}
	adds := make([]*Proposal, 0, len(keyPackages)+len(o.Proposals))
	for _, kp := range keyPackages {
		adds = append(adds, &Proposal{Type: ProposalAdd, Add: kp})
	}
	o.Proposals = append(adds, o.Proposals...)
	res, err := next.Commit(o)
	next.successorPSK = nil
	if err != nil {
		return nil, nil, err
	}
	if _, err := next.MergePendingCommit(); err != nil {
		return nil, nil, err
	}
	return next, res, nil
}

// ResumptionPSKOf returns the resumption PSK this member kept for an epoch
// of this group, to give to JoinFromWelcome (through a PSKStore) when joining
// a successor group.
func (g *Group) ResumptionPSKOf(epoch uint64) ([]byte, bool) {
	return g.ownResumptionPSK(g.ctx.GroupID, epoch)
}

package provider

import (
	"context"

	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// authorize applies the room policy (docs/api.md) to a checked handshake
// message. The sender must be the device that offers it (the calling
// device, or the partner's device its provider names). Each proposal is
// judged by the rights of whoever proposed it: adding or removing other
// users' devices, changing the group's extensions and reinitializing are
// for admins (local users: roles are this provider's policy); anyone may
// manage their own devices, update, and commit.
func (s *Server) authorize(ctx context.Context, rs *roomState, sender member, u *mls.PublicUpdate) error {
	if u.Sender.Type != mls.SenderMember {
		return errForbidden("only member devices send handshake messages here (joining by external commit is not offered)")
	}
	m, ok := rs.members[u.Sender.Leaf]
	if !ok || m.uri != sender.uri {
		return errForbidden("the message is signed by leaf %d, which is not the sending device", u.Sender.Leaf)
	}
	roles, err := s.store.RoomMembers(ctx, rs.room.ID)
	if err != nil {
		return err
	}
	admins := map[int64]bool{}
	for _, rm := range roles {
		admins[rm.UserID] = rm.Role == store.RoleAdmin
	}
	isAdmin := func(m member) bool { return m.local() && admins[m.user.ID] }
	if u.ContentType == mls.ContentProposal {
		return s.allowProposal(ctx, rs, m, isAdmin(m), u.Proposal)
	}
	for _, p := range u.Proposals {
		if p.Sender.Type != mls.SenderMember {
			return errForbidden("proposals from outside the room are not accepted here")
		}
		proposer, ok := rs.members[p.Sender.Leaf]
		if !ok {
			return errForbidden("a proposal's sender (leaf %d) is not in the room", p.Sender.Leaf)
		}
		if err := s.allowProposal(ctx, rs, proposer, isAdmin(proposer), p.Proposal); err != nil {
			return err
		}
	}
	if u.CommitterLeaf != nil {
		// A path replaces the committer's leaf: like an Update, it must
		// carry a credential that verifies, for the same device. Without
		// this check membersOf would keep another provider's unverifiable
		// credential as "unverified", and the hub would fan the room out
		// to, and list as a member, whoever it names.
		cm, err := s.leafMember(ctx, rs.group.Suite(), u.CommitterLeaf)
		if err != nil {
			return err
		}
		if cm.uri != m.uri {
			return errForbidden("a commit's path must keep the committer's own credential")
		}
	}
	return nil
}

func (s *Server) allowProposal(ctx context.Context, rs *roomState, proposer member, admin bool, p *mls.Proposal) error {
	by := proposer.uri.UserOf()
	switch p.Type {
	case mls.ProposalUpdate:
		// A new leaf must still be a credential for the same device, or
		// the next commit could not be routed.
		m, err := s.leafMember(ctx, rs.group.Suite(), p.Update)
		if err != nil {
			return err
		}
		if m.uri != proposer.uri {
			return errForbidden("an update must keep the device's own credential")
		}
		return nil
	case mls.ProposalPSK:
		// The hub cannot tell whether members hold a PSK; one they lack
		// would stop every commit that carries it.
		return errForbidden("pre-shared key proposals are not accepted in this room")
	case mls.ProposalAdd:
		m, err := s.leafMember(ctx, rs.group.Suite(), &p.Add.LeafNode)
		if err != nil {
			return err
		}
		if !m.local() {
			// A partner's user joins only while its provider is an
			// active partner: the hub must be able to reach it.
			if err := s.activePartner(m.domain()); err != nil {
				return errForbidden("%s cannot be added: %v", m.uri, err)
			}
		}
		if admin || m.uri.UserOf() == by {
			return nil
		}
		return errForbidden("only admins add other people to this room")
	case mls.ProposalRemove:
		if admin {
			return nil
		}
		if m, ok := rs.members[p.Remove]; ok && m.uri.UserOf() == by {
			return nil
		}
		return errForbidden("only admins remove other people from this room")
	case mls.ProposalGroupContextExtensions, mls.ProposalReInit:
		if admin {
			return nil
		}
		return errForbidden("only admins change the room's settings")
	}
	return errForbidden("proposal type 0x%04x is not allowed in this room", uint16(p.Type))
}

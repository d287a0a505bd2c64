package provider

import (
	"net/http"

	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// authorize applies the room policy (docs/api.md) to a checked handshake
// message: the sender must be the calling device; adding or removing other
// users' devices, changing the group's extensions and reinitializing are
// for admins; anyone may manage their own devices, update and commit.
func (s *Server) authorize(r *http.Request, rs *roomState, c *caller, u *mls.PublicUpdate) error {
	if u.Sender.Type != mls.SenderMember {
		return errForbidden("only member devices send handshake messages here (joining by external commit is not offered)")
	}
	m, ok := rs.members[u.Sender.Leaf]
	if !ok || m.device.ID != c.device.ID {
		return errForbidden("the message is signed by leaf %d, which is not the calling device", u.Sender.Leaf)
	}
	admin, err := s.isAdmin(r, rs, c.user.ID)
	if err != nil {
		return err
	}
	for _, p := range u.Proposals {
		if err := s.allowProposal(r, rs, c, admin, p.Proposal); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) isAdmin(r *http.Request, rs *roomState, user int64) (bool, error) {
	roles, err := s.store.RoomMembers(r.Context(), rs.room.ID)
	if err != nil {
		return false, err
	}
	for _, m := range roles {
		if m.UserID == user {
			return m.Role == store.RoleAdmin, nil
		}
	}
	return false, nil
}

func (s *Server) allowProposal(r *http.Request, rs *roomState, c *caller, admin bool, p *mls.Proposal) error {
	switch p.Type {
	case mls.ProposalUpdate, mls.ProposalPSK:
		return nil
	case mls.ProposalAdd:
		if admin {
			return nil
		}
		m, err := s.leafMember(r.Context(), rs.group.Suite(), &p.Add.LeafNode)
		if err != nil {
			return err
		}
		if m.user.ID != c.user.ID {
			return errForbidden("only admins add other people to this room")
		}
		return nil
	case mls.ProposalRemove:
		if admin {
			return nil
		}
		if m, ok := rs.members[p.Remove]; ok && m.user.ID == c.user.ID {
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

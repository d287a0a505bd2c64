package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// maxProposalsPerEpoch bounds the proposals a room collects before a
// commit, so one member cannot grow the room's state without limit.
const maxProposalsPerEpoch = 100

type submitRequest struct {
	ClientID string `json:"client_id"`
	Message  []byte `json:"message"`
	Welcome  []byte `json:"welcome"`
}

// submit accepts one message into a room: an application PrivateMessage
// from a member device, or a proposal or commit PublicMessage that the hub
// checks and, for a commit, lets through only if it is the first of its
// epoch. It answers only once the message is durably stored and queued.
func (s *Server) submit(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	var req submitRequest
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	if len(req.ClientID) < 8 || len(req.ClientID) > 64 {
		return errBadRequest("client_id must be 8 to 64 characters")
	}
	msg, err := mls.ParseMLSMessage(req.Message)
	if err != nil {
		return errInvalidMessage(err)
	}
	rs, unlock, err := s.memberRoom(r)
	if err != nil {
		return err
	}
	defer unlock()
	start := time.Now()

	// A retry of an accepted message gets the first answer, whatever the
	// room did since.
	if m, err := s.store.MessageByClientID(r.Context(), rs.room.ID, req.ClientID); err == nil {
		epoch := m.Epoch
		if m.Kind == store.KindCommit {
			epoch++ // the first answer named the epoch the commit began
		}
		writeJSON(w, http.StatusOK, map[string]any{"seq": m.Seq, "epoch": epoch, "duplicate": true})
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}

	sub := store.Submission{RoomID: rs.room.ID, ClientID: req.ClientID, SenderDevice: c.device.ID, Payload: req.Message}
	var next *mls.PublicGroup
	var nextMembers map[mls.LeafIndex]member
	switch msg.WireFormat {
	case mls.WireFormatPrivateMessage:
		pm := msg.Private
		if !bytes.Equal(pm.GroupID, rs.group.GroupID()) {
			return errInvalidMessage(fmt.Errorf("the message is for another group"))
		}
		if pm.ContentType != mls.ContentApplication {
			return errForbidden("handshake messages must be PublicMessages so the hub can check them")
		}
		if pm.Epoch != rs.group.Epoch() {
			return errWrongEpoch(fmt.Errorf("application message for epoch %d, the room is in epoch %d", pm.Epoch, rs.group.Epoch()))
		}
		sub.Kind, sub.Epoch = store.KindApplication, pm.Epoch
		sub.Recipients = rs.devicesExcept(c.device.ID)
	case mls.WireFormatPublicMessage:
		u, err := rs.group.Check(msg)
		if errors.Is(err, mls.ErrWrongEpoch) {
			return errWrongEpoch(err)
		} else if err != nil {
			return errInvalidMessage(err)
		}
		if err := s.authorize(r, rs, c, u); err != nil {
			return err
		}
		if u.ContentType == mls.ContentProposal && rs.group.ProposalCount() >= maxProposalsPerEpoch {
			return errForbidden("the room holds %d proposals; commit them before proposing more", maxProposalsPerEpoch)
		}
		next, err = mls.RestorePublicGroup(rs.group.MarshalState())
		if err != nil {
			return err
		}
		if err := next.Apply(u); err != nil {
			return errInvalidMessage(err)
		}
		sub.Epoch = rs.group.Epoch()
		sub.PrevVersion, sub.NewState, sub.NewEpoch = rs.room.Version, next.MarshalState(), next.Epoch()
		// Everyone in the group before the message hears of it, so a
		// removed member learns it was removed.
		sub.Recipients = rs.devicesExcept(c.device.ID)
		if u.ContentType == mls.ContentCommit {
			sub.Kind = store.KindCommit
			nextMembers, err = s.membersOf(r.Context(), next)
			if err != nil {
				return err
			}
			sub.Members, err = s.roomRoles(r, rs, nextMembers)
			if err != nil {
				return err
			}
			if len(u.Added) > 0 {
				sub.Welcome, err = s.routeWelcome(r, req, rs.group.Suite(), u.Added)
				if err != nil {
					return err
				}
			}
		} else {
			sub.Kind = store.KindProposal
		}
	default:
		return errBadRequest("a room accepts PublicMessages and PrivateMessages, not wire format %d", msg.WireFormat)
	}

	// The store is asked to finish even if the client goes away: a write
	// can land after a cancelled request, and the hub must know the truth.
	res, err := s.store.Submit(context.WithoutCancel(r.Context()), sub)
	if err != nil {
		rs.loaded = false // whatever happened, read the room again next time
		if errors.Is(err, store.ErrConflict) {
			return errWrongEpoch(fmt.Errorf("the room moved on; fetch its new messages and try again"))
		}
		return err
	}
	if next != nil {
		rs.group, rs.room.Version, rs.room.Epoch = next, rs.room.Version+1, next.Epoch()
		if nextMembers != nil {
			rs.members = nextMembers
		}
	}
	s.metrics.accepted.WithLabelValues(string(sub.Kind)).Inc()
	s.streams.notifyAll(sub.Recipients)
	if sub.Welcome != nil {
		s.metrics.accepted.WithLabelValues(string(store.KindWelcome)).Inc()
		s.streams.notifyAll(sub.Welcome.Recipients)
	}
	s.metrics.commitWait.Observe(time.Since(start).Seconds())
	writeJSON(w, http.StatusOK, map[string]any{"seq": res.Seq, "epoch": rs.group.Epoch(), "duplicate": res.Duplicate})
	return nil
}

func (rs *roomState) devicesExcept(deviceID int64) []int64 {
	var out []int64
	for _, l := range sortedLeaves(rs.members) {
		if d := rs.members[l].device.ID; d != deviceID {
			out = append(out, d)
		}
	}
	return out
}

// routeWelcome addresses a commit's Welcome to the devices whose
// KeyPackages it names. It is stored with the commit, atomically.
func (s *Server) routeWelcome(r *http.Request, req submitRequest, suite *mls.Suite, added []mls.MemberChange) (*store.Welcome, error) {
	if len(req.Welcome) == 0 {
		return nil, errBadRequest("a commit that adds members needs its welcome")
	}
	wm, err := mls.ParseMLSMessage(req.Welcome)
	if err != nil || wm.Welcome == nil {
		return nil, errBadRequest("welcome must be a Welcome MLSMessage")
	}
	// The Welcome must be for exactly the members the commit adds: the hub
	// delivers it to devices that did not ask for it.
	want := map[string]bool{}
	for _, a := range added {
		want[string(a.KeyPackage.Ref(suite))] = true
	}
	if len(wm.Welcome.Secrets) != len(want) {
		return nil, errBadRequest("the welcome is for %d new members, the commit adds %d", len(wm.Welcome.Secrets), len(want))
	}
	for _, sec := range wm.Welcome.Secrets {
		if !want[string(sec.NewMember)] {
			return nil, errBadRequest("the welcome names a KeyPackage the commit does not add")
		}
		delete(want, string(sec.NewMember))
	}
	var to []int64
	for _, sec := range wm.Welcome.Secrets {
		d, err := s.store.KeyPackageDevice(r.Context(), sec.NewMember)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errBadRequest("the welcome names a KeyPackage this provider did not hand out")
		} else if err != nil {
			return nil, err
		}
		to = append(to, d)
	}
	return &store.Welcome{Payload: req.Welcome, Recipients: to}, nil
}

// roomRoles carries the roles over to the group after a commit: users who
// stay keep theirs, new users are members, users with no device left go.
func (s *Server) roomRoles(r *http.Request, rs *roomState, next map[mls.LeafIndex]member) ([]store.RoomMember, error) {
	old, err := s.store.RoomMembers(r.Context(), rs.room.ID)
	if err != nil {
		return nil, err
	}
	role := map[int64]store.Role{}
	for _, m := range old {
		role[m.UserID] = m.Role
	}
	seen := map[int64]bool{}
	var out []store.RoomMember
	for _, l := range sortedLeaves(next) {
		u := next[l].user.ID
		if seen[u] {
			continue
		}
		seen[u] = true
		out = append(out, store.RoomMember{RoomID: rs.room.ID, UserID: u, Role: roleOr(role, u)})
	}
	return out, nil
}

package provider

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/store"
)

// The federation endpoints beyond rooms and key material: consent
// (docs/consent.md), and external joins, which are not offered (abuse
// reports are in reports.go). They are served, check who speaks for whom,
// and answer as documented in
// docs/federation.md, so a partner that calls them gets a clear answer.

// parseUserURI reads a user URI from a body or path, or says why not.
func parseUserURI(what string, raw federation.IdentifierURI) (identity.URI, error) {
	u, err := identity.ParseURI(string(raw))
	if err != nil || u.Kind != identity.KindUser {
		return identity.URI{}, errBadRequest("%s %q is not a user URI", what, raw)
	}
	return u, nil
}

// fedRequestConsent takes a partner user's request for consent to contact
// one of our users (request), or its cancellation (cancel): the request
// becomes a pending message request of our user (docs/consent.md), with
// the entry's room or none, and a cancel removes it. A requester our user
// blocked is answered as any other, 201, and the request dropped: a block
// is never revealed. So is a requester already accepted, who needs no
// request.
func (s *Server) fedRequestConsent(w http.ResponseWriter, r *http.Request) error {
	e, speaker, ours, err := s.consent(w, r, "requestConsent", "targetUser", federation.ConsentRequest, federation.ConsentCancel,
		func(e *federation.ConsentEntry) (speaker, ours federation.IdentifierURI) {
			return e.RequesterURI, e.TargetURI
		})
	if err != nil {
		return err
	}
	room, err := consentRoom(e.RoomID)
	if err != nil {
		return err
	}
	ctx := context.WithoutCancel(r.Context())
	if e.ConsentOperation == federation.ConsentCancel {
		if err := s.store.RemoveRequest(ctx, ours.ID, speaker.String(), room); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		w.WriteHeader(http.StatusCreated)
		return nil
	}
	st, err := s.store.Contact(ctx, ours.ID, speaker.String())
	if err != nil {
		return err
	}
	if st == store.ContactNone {
		if err := s.store.AddRequest(ctx, store.MessageRequest{UserID: ours.ID, Peer: speaker.String(), RoomID: room,
			State: store.RequestPending, Created: s.now()}); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// fedUpdateConsent takes a partner user's grant or revocation of consent
// for one of our users to contact them: a grant makes the partner's user
// an accepted contact of ours, unless ours blocked them; a revoke removes
// an accepted contact (never a block). Answered 201.
func (s *Server) fedUpdateConsent(w http.ResponseWriter, r *http.Request) error {
	e, speaker, ours, err := s.consent(w, r, "updateConsent", "requesterUser", federation.ConsentGrant, federation.ConsentRevoke,
		func(e *federation.ConsentEntry) (speaker, ours federation.IdentifierURI) {
			return e.TargetURI, e.RequesterURI
		})
	if err != nil {
		return err
	}
	if _, err := consentRoom(e.RoomID); err != nil {
		return err
	}
	ctx := context.WithoutCancel(r.Context())
	if e.ConsentOperation == federation.ConsentGrant {
		if _, err := s.store.AddContact(ctx, ours.ID, speaker.String(), s.now()); err != nil {
			return err
		}
	} else {
		st, err := s.store.Contact(ctx, ours.ID, speaker.String())
		if err != nil {
			return err
		}
		if st == store.ContactAccepted {
			if err := s.store.SetContact(ctx, ours.ID, speaker.String(), store.ContactNone, s.now()); err != nil {
				return err
			}
		}
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// consentRoom reads a consent entry's room: a room URI, whose ID the
// request is kept under, or none.
func consentRoom(raw federation.IdentifierURI) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := identity.ParseURI(string(raw))
	if err != nil || u.Kind != identity.KindRoom {
		return "", errBadRequest("roomId %q is not a room URI", raw)
	}
	return u.ID, nil
}

// consent checks a ConsentEntry: one of the endpoint's two operations, the
// user who acts (speaker) a user of the calling partner, the other one
// ours and the path's user (pathVar). It returns the entry, the speaker
// and our user.
func (s *Server) consent(w http.ResponseWriter, r *http.Request, endpoint, pathVar string, op1, op2 federation.ConsentOperation,
	roles func(*federation.ConsentEntry) (speaker, ours federation.IdentifierURI)) (*federation.ConsentEntry, identity.URI, store.User, error) {
	fail := func(err error) (*federation.ConsentEntry, identity.URI, store.User, error) {
		return nil, identity.URI{}, store.User{}, err
	}
	if err := s.limitPartner(r); err != nil {
		return fail(err)
	}
	peer, err := federation.PeerDomain(r)
	if err != nil {
		return fail(err)
	}
	var e federation.ConsentEntry
	if err := s.readWire(r, "ConsentEntry", &e); err != nil {
		return fail(err)
	}
	if e.ConsentOperation != op1 && e.ConsentOperation != op2 {
		return fail(errBadRequest("%s carries %v or %v, not %v", endpoint, op1, op2, e.ConsentOperation))
	}
	speakerURI, oursURI := roles(&e)
	speaker, err := parseUserURI("the acting user", speakerURI)
	if err != nil {
		return fail(err)
	}
	if err := federation.CheckSpeaksFor(peer, speaker); err != nil {
		return fail(err)
	}
	ours, err := parseUserURI("the other user", oursURI)
	if err != nil {
		return fail(err)
	}
	if string(oursURI) != r.PathValue(pathVar) || ours.Domain != s.cfg.Domain {
		return fail(errBadRequest("%s must be the path's user, of %s", ours, s.cfg.Domain))
	}
	u, err := s.store.UserByHandle(r.Context(), ours.User)
	if err != nil {
		return fail(errNotFound("no user %s", ours))
	}
	s.log.Info("consent "+e.ConsentOperation.String(), "peer", peer, "endpoint", endpoint,
		"requester", string(e.RequesterURI), "target", string(e.TargetURI), "room", string(e.RoomID))
	return &e, speaker, u, nil
}

// fedGroupInfo answers a request for a room's GroupInfo, which a client
// needs to join by external commit. Joining that way is not offered (the
// hub keeps no GroupInfo and the room policy admits members by Add only),
// so a signed request for a room we host is answered notAuthorized, and
// one for a room we do not host noSuchRoom.
func (s *Server) fedGroupInfo(w http.ResponseWriter, r *http.Request) error {
	if err := s.limitPartner(r); err != nil {
		return err
	}
	var req federation.GroupInfoRequest
	if err := s.readWire(r, "GroupInfoRequest", &req); err != nil {
		return err
	}
	if err := req.Verify(); err != nil {
		return errInvalidSignature(err)
	}
	resp := federation.GroupInfoResponse{Protocol: federation.ProtocolMLS10,
		RoomID: federation.IdentifierURI(r.PathValue("roomId")), Status: federation.GroupInfoNotAuthorized}
	if _, unlock, err := s.hostedRoom(r.Context(), r.PathValue("roomId")); err != nil {
		resp.Status = federation.GroupInfoNoSuchRoom
	} else {
		unlock()
	}
	writeWire(w, &resp)
	return nil
}

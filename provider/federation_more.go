package provider

import (
	"net/http"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
)

// The federation endpoints whose full behaviour comes later (consent
// with its own issue; external joins not offered; abuse reports are in
// reports.go): they
// are served, check who speaks for whom, and answer as documented in
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
// one of our users (or its cancellation). It does not change who may reach
// the user (that is the user's reachability setting), so the request is checked
// and logged, and answered 201.
func (s *Server) fedRequestConsent(w http.ResponseWriter, r *http.Request) error {
	return s.consent(w, r, "requestConsent", "targetUser", federation.ConsentRequest, federation.ConsentCancel,
		func(e *federation.ConsentEntry) (speaker, ours federation.IdentifierURI) {
			return e.RequesterURI, e.TargetURI
		})
}

// fedUpdateConsent takes a partner user's grant or revocation of consent
// for one of our users to contact them. Checked and logged; answered 201.
func (s *Server) fedUpdateConsent(w http.ResponseWriter, r *http.Request) error {
	return s.consent(w, r, "updateConsent", "requesterUser", federation.ConsentGrant, federation.ConsentRevoke,
		func(e *federation.ConsentEntry) (speaker, ours federation.IdentifierURI) {
			return e.TargetURI, e.RequesterURI
		})
}

// consent checks a ConsentEntry: one of the endpoint's two operations, the
// user who acts (speaker) a user of the calling partner, the other one
// ours and the path's user (pathVar).
func (s *Server) consent(w http.ResponseWriter, r *http.Request, endpoint, pathVar string, op1, op2 federation.ConsentOperation,
	roles func(*federation.ConsentEntry) (speaker, ours federation.IdentifierURI)) error {
	if err := s.limitPartner(w, r); err != nil {
		return err
	}
	peer, err := federation.PeerDomain(r)
	if err != nil {
		return err
	}
	var e federation.ConsentEntry
	if err := s.readWire(r, "ConsentEntry", &e); err != nil {
		return err
	}
	if e.ConsentOperation != op1 && e.ConsentOperation != op2 {
		return errBadRequest("%s carries %v or %v, not %v", endpoint, op1, op2, e.ConsentOperation)
	}
	speakerURI, oursURI := roles(&e)
	speaker, err := parseUserURI("the acting user", speakerURI)
	if err != nil {
		return err
	}
	if err := federation.CheckSpeaksFor(peer, speaker); err != nil {
		return err
	}
	ours, err := parseUserURI("the other user", oursURI)
	if err != nil {
		return err
	}
	if string(oursURI) != r.PathValue(pathVar) || ours.Domain != s.cfg.Domain {
		return errBadRequest("%s must be the path's user, of %s", ours, s.cfg.Domain)
	}
	if _, err := s.store.UserByHandle(r.Context(), ours.User); err != nil {
		return errNotFound("no user %s", ours)
	}
	s.log.Info("consent "+e.ConsentOperation.String(), "peer", peer, "endpoint", endpoint,
		"requester", string(e.RequesterURI), "target", string(e.TargetURI), "room", string(e.RoomID))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// fedGroupInfo answers a request for a room's GroupInfo, which a client
// needs to join by external commit. Joining that way is not offered (the
// hub keeps no GroupInfo and the room policy admits members by Add only),
// so a signed request for a room we host is answered notAuthorized, and
// one for a room we do not host noSuchRoom.
func (s *Server) fedGroupInfo(w http.ResponseWriter, r *http.Request) error {
	if err := s.limitPartner(w, r); err != nil {
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

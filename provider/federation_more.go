package provider

import (
	"net/http"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
)

// The federation endpoints whose full behaviour comes later (consent and
// abuse reports with their own issue; external joins not offered): they
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
// one of our users (or its cancellation). Consent is not yet enforced —
// every user is reachable by partners' users — so the request is checked
// and logged, and answered 201.
func (s *Server) fedRequestConsent(w http.ResponseWriter, r *http.Request) error {
	peer, err := federation.PeerDomain(r)
	if err != nil {
		return err
	}
	var e federation.ConsentEntry
	if err := s.readWire(r, "ConsentEntry", &e); err != nil {
		return err
	}
	if e.ConsentOperation != federation.ConsentRequest && e.ConsentOperation != federation.ConsentCancel {
		return errBadRequest("requestConsent carries request or cancel, not %v", e.ConsentOperation)
	}
	requester, err := parseUserURI("requesterUri", e.RequesterURI)
	if err != nil {
		return err
	}
	if err := federation.CheckSpeaksFor(peer, requester); err != nil {
		return err
	}
	target, err := parseUserURI("targetUri", e.TargetURI)
	if err != nil {
		return err
	}
	if string(e.TargetURI) != r.PathValue("targetUser") || target.Domain != s.cfg.Domain {
		return errBadRequest("targetUri %s must be the path's user, of %s", target, s.cfg.Domain)
	}
	if _, err := s.store.UserByHandle(r.Context(), target.User); err != nil {
		return errNotFound("no user %s", target)
	}
	s.log.Info("consent requested", "peer", peer, "operation", e.ConsentOperation.String(), "requester", requester.String(), "target", target.String(), "room", string(e.RoomID))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// fedUpdateConsent takes a partner user's grant or revocation of consent
// for one of our users to contact them. Checked and logged; answered 201.
func (s *Server) fedUpdateConsent(w http.ResponseWriter, r *http.Request) error {
	peer, err := federation.PeerDomain(r)
	if err != nil {
		return err
	}
	var e federation.ConsentEntry
	if err := s.readWire(r, "ConsentEntry", &e); err != nil {
		return err
	}
	if e.ConsentOperation != federation.ConsentGrant && e.ConsentOperation != federation.ConsentRevoke {
		return errBadRequest("updateConsent carries grant or revoke, not %v", e.ConsentOperation)
	}
	granter, err := parseUserURI("targetUri", e.TargetURI)
	if err != nil {
		return err
	}
	if err := federation.CheckSpeaksFor(peer, granter); err != nil {
		return err
	}
	requester, err := parseUserURI("requesterUri", e.RequesterURI)
	if err != nil {
		return err
	}
	if string(e.RequesterURI) != r.PathValue("requesterUser") || requester.Domain != s.cfg.Domain {
		return errBadRequest("requesterUri %s must be the path's user, of %s", requester, s.cfg.Domain)
	}
	s.log.Info("consent updated", "peer", peer, "operation", e.ConsentOperation.String(), "requester", requester.String(), "target", granter.String(), "room", string(e.RoomID))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// fedReportAbuse takes a partner's report of abusive messages in a room
// this provider hosts. Franking is not yet checked and there is no report
// queue yet: the report is checked and logged for the operator, and
// answered 201.
func (s *Server) fedReportAbuse(w http.ResponseWriter, r *http.Request) error {
	peer, err := federation.PeerDomain(r)
	if err != nil {
		return err
	}
	var rep federation.AbuseReport
	if err := s.readWire(r, "AbuseReport", &rep); err != nil {
		return err
	}
	if rep.ReportingUser != "" {
		reporter, err := parseUserURI("reportingUser", rep.ReportingUser)
		if err != nil {
			return err
		}
		if err := federation.CheckSpeaksFor(peer, reporter); err != nil {
			return err
		}
	}
	rs, unlock, err := s.hostedRoom(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return err
	}
	unlock()
	s.log.Warn("abuse reported", "peer", peer, "room", rs.room.ID, "reporter", string(rep.ReportingUser),
		"alleged_abuser", string(rep.AllegedAbuserURI), "reason", rep.ReasonCode, "messages", len(rep.Messages))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// fedGroupInfo answers a request for a room's GroupInfo, which a client
// needs to join by external commit. Joining that way is not offered (the
// hub keeps no GroupInfo and the room policy admits members by Add only),
// so a signed request for a room we host is answered notAuthorized, and
// one for a room we do not host noSuchRoom.
func (s *Server) fedGroupInfo(w http.ResponseWriter, r *http.Request) error {
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

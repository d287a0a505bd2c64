package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// Consent (docs/consent.md): message requests, contacts and blocks, kept
// and enforced at the recipient's provider.
//
//   - A Welcome that adds a local user U to a room, from someone who is
//     neither U nor an accepted contact of U, makes a pending message
//     request (U, adder, room); from someone U blocked, it is not queued
//     for U's devices at all (consentRecipients, on the hub's path in
//     accept and the follower's in fedNotify).
//   - A room U declined, and application messages of a user U blocked,
//     are not queued for U's devices (consentRecipients again: one
//     indexed query per message).
//   - Key material of U is refused to a user U blocked: noConsent on
//     federation, no_consent on the client API; nothing is claimed.
//   - Claiming another user's key material makes them an accepted contact
//     of the claiming user: one consents to whom one invites.
//   - GET /v1/requests, POST /v1/requests/accept and /decline, PUT and GET
//     /v1/contacts are the user's side; accepting a partner's user sends
//     MIMI updateConsent (grant) through the outbox. Declining and
//     blocking send nothing: the sender learns nothing.
//   - requestConsent and updateConsent from partners (federation_more.go)
//     record requests and grants.

// errNoConsent is a claim refused because the target blocked the caller
// or does not accept contact from the caller's provider.
func errNoConsent(format string, args ...any) *Error {
	e := errForbidden(format, args...)
	e.Code = "no_consent"
	return e
}

// recipient is a local device that is to get a message, with its user.
type recipient struct {
	device, user int64
}

// userURI is a local user's URI, as contacts and requests name peers.
func (s *Server) userURI(handle string) identity.URI {
	return identity.UserURI(s.cfg.Domain, handle)
}

// consentRecipients keeps the recipients that may get a message of a
// room: for a Welcome (adder is the committing device's user) it records
// the message requests first and drops the users who blocked the adder;
// for every kind it drops users who declined the room and, for an
// application message (sender is its device's user), users who blocked
// the sender. Commits and proposals of a blocked user still go, so that a
// member's MLS state stays right in rooms both share.
func (s *Server) consentRecipients(ctx context.Context, roomID string, kind store.Kind, sender identity.URI, rcpts []recipient) ([]int64, error) {
	if len(rcpts) == 0 {
		return nil, nil
	}
	senderURI := sender.UserOf().String()
	if kind == store.KindWelcome {
		var err error
		if rcpts, err = s.welcomeConsent(ctx, roomID, senderURI, rcpts); err != nil {
			return nil, err
		}
	}
	users := make([]int64, 0, len(rcpts))
	for _, r := range rcpts {
		if !slices.Contains(users, r.user) {
			users = append(users, r.user)
		}
	}
	blocker := ""
	if kind == store.KindApplication {
		blocker = senderURI
	}
	refusing, err := s.refusing(ctx, roomID, blocker, users)
	if err != nil {
		return nil, err
	}
	out := make([]int64, 0, len(rcpts))
	for _, r := range rcpts {
		if !slices.Contains(refusing, r.user) {
			out = append(out, r.device)
		}
	}
	return out, nil
}

// welcomeConsent records a message request for each user the Welcome adds
// who has not accepted the adder, and leaves out those who blocked them.
func (s *Server) welcomeConsent(ctx context.Context, roomID, adder string, rcpts []recipient) ([]recipient, error) {
	state := map[int64]store.ContactState{}
	var out []recipient
	for _, r := range rcpts {
		st, seen := state[r.user]
		if !seen {
			u, err := s.store.UserByID(ctx, r.user)
			if err != nil {
				return nil, err
			}
			if s.userURI(u.Handle).String() == adder {
				st = store.ContactAccepted // one's own devices
			} else if st, err = s.store.Contact(ctx, r.user, adder); err != nil {
				return nil, err
			}
			if st == store.ContactNone {
				// Recorded before the Welcome is queued, so that a device
				// that asks on receiving it finds the request.
				if err := s.store.AddRequest(context.WithoutCancel(ctx), store.MessageRequest{
					UserID: r.user, Peer: adder, RoomID: roomID, State: store.RequestPending, Created: s.now()}); err != nil {
					return nil, err
				}
			}
			state[r.user] = st
		}
		if st != store.ContactBlocked {
			out = append(out, r)
		}
	}
	return out, nil
}

// blockedBy says whether the local user blocked peer (a user URI).
func (s *Server) blockedBy(ctx context.Context, userID int64, peer identity.URI) (bool, error) {
	st, err := s.store.Contact(ctx, userID, peer.String())
	return st == store.ContactBlocked, err
}

// noteInvited records that the user claimed peer's key material: peer
// becomes an accepted contact, unless the user blocked them. A failure is
// logged only; the claim has handed out KeyPackages already.
func (s *Server) noteInvited(ctx context.Context, userID int64, peer identity.URI) {
	if _, err := s.store.AddContact(context.WithoutCancel(ctx), userID, peer.String(), s.now()); err != nil {
		s.log.Error("recording an invited contact", "err", err)
	}
}

// ---- The client API ----

// parsePeer reads a peer user URI from a client request.
func parsePeer(raw string) (identity.URI, error) {
	u, err := identity.ParseURI(raw)
	if err != nil || u.Kind != identity.KindUser {
		return identity.URI{}, errBadRequest("peer %q is not a user URI (mimi://DOMAIN/u/HANDLE)", raw)
	}
	return u, nil
}

type requestBody struct {
	Peer    string    `json:"peer"`
	Room    string    `json:"room"`
	Created time.Time `json:"created"`
}

// listRequests is GET /v1/requests: the caller's pending requests.
func (s *Server) listRequests(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.store.Requests(r.Context(), callerOf(r).user.ID)
	if err != nil {
		return err
	}
	out := []requestBody{}
	for _, q := range rs {
		out = append(out, requestBody{Peer: q.Peer, Room: q.RoomID, Created: q.Created})
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": out})
	return nil
}

type answerBody struct {
	Peer string `json:"peer"`
	Room string `json:"room"`
}

func (s *Server) readAnswer(r *http.Request) (identity.URI, string, error) {
	var req answerBody
	if err := s.readJSON(r, &req); err != nil {
		return identity.URI{}, "", err
	}
	peer, err := parsePeer(req.Peer)
	return peer, req.Room, err
}

// acceptRequest is POST /v1/requests/accept: the peer becomes an accepted
// contact, every pending request of theirs goes, and a partner's user's
// provider is told with updateConsent (grant), through the outbox.
func (s *Server) acceptRequest(w http.ResponseWriter, r *http.Request) error {
	peer, room, err := s.readAnswer(r)
	if err != nil {
		return err
	}
	u := callerOf(r).user
	var out []store.Outbound
	if peer.Domain != s.cfg.Domain {
		o, err := s.grantOutbound(r.Context(), u, peer, room)
		if err != nil {
			return err
		}
		out = append(out, o)
	}
	err = s.store.AcceptRequest(context.WithoutCancel(r.Context()), u.ID, peer.String(), room, s.now(), out)
	s.consentChanged(callerOf(r).device.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("no pending request from %s for room %q", peer, room)
	} else if err != nil {
		return err
	}
	s.wakeOutbox(out)
	s.log.Info("message request accepted", "user", u.Handle, "partner", peer.Domain != s.cfg.Domain)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// grantOutbound is the updateConsent grant for the peer's provider.
func (s *Server) grantOutbound(ctx context.Context, u store.User, peer identity.URI, room string) (store.Outbound, error) {
	e := federation.ConsentEntry{ConsentOperation: federation.ConsentGrant,
		RequesterURI: federation.IdentifierURI(peer.String()),
		TargetURI:    federation.IdentifierURI(s.userURI(u.Handle).String())}
	if room != "" {
		hub := s.cfg.Domain
		if rm, err := s.store.Room(ctx, room); err == nil && rm.Hub != "" {
			hub = rm.Hub
		}
		e.RoomID = s.roomURI(hub, room)
	}
	var id [12]byte
	rand.Read(id[:])
	return store.Outbound{Destination: peer.Domain, Kind: "updateConsent",
		Path: partnerPath(partnerDirectory.UpdateConsentURL(e.RequesterURI)),
		Body: mls.Marshal(&e), ID: "updateConsent/" + hex.EncodeToString(id[:])}, nil
}

// declineRequest is POST /v1/requests/decline: the room is dropped for the
// caller; nothing is sent to anyone.
func (s *Server) declineRequest(w http.ResponseWriter, r *http.Request) error {
	peer, room, err := s.readAnswer(r)
	if err != nil {
		return err
	}
	u := callerOf(r).user
	err = s.store.DeclineRequest(context.WithoutCancel(r.Context()), u.ID, peer.String(), room)
	s.consentChanged(callerOf(r).device.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("no pending request from %s for room %q", peer, room)
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type contactBody struct {
	Peer    string             `json:"peer,omitempty"`
	State   store.ContactState `json:"state"`
	Updated *time.Time         `json:"updated,omitempty"`
}

// setContact is PUT /v1/contacts/{peer}: accepted, blocked or none
// (unblock, or forget an acceptance). A block sends nothing to anyone.
func (s *Server) setContact(w http.ResponseWriter, r *http.Request) error {
	peer, err := parsePeer(r.PathValue("peer"))
	if err != nil {
		return err
	}
	var req contactBody
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	if req.State == "none" {
		req.State = store.ContactNone
	}
	if req.Peer != "" || req.Updated != nil || (req.State != store.ContactAccepted && req.State != store.ContactBlocked && req.State != store.ContactNone) {
		return errBadRequest(`the body is {"state": "accepted" | "blocked" | "none"}`)
	}
	u := callerOf(r).user
	if peer == s.userURI(u.Handle) {
		return errBadRequest("one cannot accept or block oneself")
	}
	err = s.store.SetContact(context.WithoutCancel(r.Context()), u.ID, peer.String(), req.State, s.now())
	s.consentChanged(callerOf(r).device.ID)
	if err != nil {
		return err
	}
	state := req.State
	if state == store.ContactNone {
		state = "none"
	}
	writeJSON(w, http.StatusOK, contactBody{Peer: peer.String(), State: state})
	return nil
}

// listContacts is GET /v1/contacts?state=accepted|blocked (both without).
func (s *Server) listContacts(w http.ResponseWriter, r *http.Request) error {
	states := []store.ContactState{store.ContactAccepted, store.ContactBlocked}
	switch q := r.URL.Query().Get("state"); q {
	case "":
	case string(store.ContactAccepted), string(store.ContactBlocked):
		states = []store.ContactState{store.ContactState(q)}
	default:
		return errBadRequest(`state must be "accepted" or "blocked"`)
	}
	out := []contactBody{}
	for _, st := range states {
		cs, err := s.store.Contacts(r.Context(), callerOf(r).user.ID, st)
		if err != nil {
			return err
		}
		for _, c := range cs {
			out = append(out, contactBody{Peer: c.Peer, State: c.State, Updated: &c.Updated})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"contacts": out})
	return nil
}

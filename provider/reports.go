package provider

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// Abuse reports (docs/abuse.md). A device reports messages it received,
// revealing their content with the hub's franks; its provider verifies
// every message before it queues the report for its operator, and sends
// it on to the room's hub and to the alleged abuser's provider, which
// verify it again with their own copies of the room's log.

// maxReportMessages bounds the messages of one report.
const maxReportMessages = 20

// maxReportNote bounds a report's note, in bytes.
const maxReportNote = 4096

// reportRequest is the body of POST /v1/rooms/{id}/reports.
type reportRequest struct {
	// AllegedAbuser is the user reported: a user URI, or the API's
	// address form (a handle of this provider, handle@domain otherwise).
	AllegedAbuser string          `json:"alleged_abuser"`
	Reason        uint8           `json:"reason"`
	Note          string          `json:"note"`
	Messages      []reportMessage `json:"messages"`
}

// reportMessage is one reported message: its decrypted content, and the
// frank and acceptance time the device received with it.
type reportMessage struct {
	Content           []byte `json:"content"`
	Frank             []byte `json:"frank"`
	AcceptedTimestamp uint64 `json:"accepted_timestamp"`
}

// parseReportRequest decodes and checks a report request from a device of
// this provider (domain) whose user is reporter, and makes the MIMI
// AbuseReport of it. It never panics; a bad request is a *Error.
func parseReportRequest(body []byte, domain string, reporter identity.URI) (*federation.AbuseReport, error) {
	var req reportRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, errBadRequest("malformed report: %v", err)
	}
	// More() would let a stray "}" or "]" pass: only the end may follow.
	if _, err := dec.Token(); err != io.EOF {
		return nil, errBadRequest("malformed report: data after the JSON object")
	}
	abuser, err := parseAddress(req.AllegedAbuser, domain)
	if err != nil {
		return nil, err
	}
	if federation.AbuseType(req.Reason) != federation.AbuseUnspecified {
		return nil, errBadRequest("reason %d is not defined; the draft defines 0 (unspecified) only", req.Reason)
	}
	if len(req.Note) > maxReportNote {
		return nil, errBadRequest("the note is longer than %d bytes", maxReportNote)
	}
	if !utf8.ValidString(req.Note) {
		return nil, errBadRequest("the note is not UTF-8")
	}
	if len(req.Messages) == 0 || len(req.Messages) > maxReportMessages {
		return nil, errBadRequest("a report names 1 to %d messages, not %d", maxReportMessages, len(req.Messages))
	}
	rep := &federation.AbuseReport{
		ReportingUser:    federation.IdentifierURI(reporter.String()),
		AllegedAbuserURI: federation.IdentifierURI(abuser.String()),
		ReasonCode:       federation.AbuseUnspecified,
		Note:             req.Note,
	}
	for i, m := range req.Messages {
		f, err := federation.ParseFrank(m.Frank)
		if err != nil {
			return nil, errBadRequest("message %d: frank is not a MIMI Frank: %v", i, err)
		}
		if len(m.Content) == 0 {
			return nil, errBadRequest("message %d has no content", i)
		}
		rep.Messages = append(rep.Messages, federation.AbusiveMessage{MessageContent: m.Content, Frank: *f, AcceptedTimestamp: m.AcceptedTimestamp})
	}
	return rep, nil
}

// parseAddress reads a user as a URI or as the API's address form.
func parseAddress(a, domain string) (identity.URI, error) {
	raw := a
	if !strings.HasPrefix(a, "mimi://") {
		user, dom, found := strings.Cut(a, "@")
		if !found {
			dom = domain
		}
		raw = identity.UserURI(dom, user).String()
	}
	u, err := identity.ParseURI(raw)
	if err != nil || u.Kind != identity.KindUser {
		return identity.URI{}, errBadRequest("alleged_abuser %q is not a user (a user URI, a handle, or handle@domain)", a)
	}
	return u, nil
}

// report is POST /v1/rooms/{id}/reports: a member reports messages of a
// room. The report is verified, queued for this provider's operator, and
// sent to the hub and to the alleged abuser's provider (when those are
// other providers) through the outbox.
func (s *Server) report(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	if err := s.limit(limitKey{s.limits.user, userKey(c)}); err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" && ct != "application/json; charset=utf-8" {
		return errUnsupportedMedia()
	}
	body, err := s.readBody(r)
	if err != nil {
		return err
	}
	rep, err := parseReportRequest(body, s.cfg.Domain, identity.UserURI(s.cfg.Domain, c.user.Handle))
	if err != nil {
		return err
	}
	rs, unlock, err := s.memberRoom(r)
	if err != nil {
		return err
	}
	room := rs.room
	unlock() // verification reads the log; nothing to serialise
	verified, err := s.verifyReport(r.Context(), room, rep)
	if err != nil {
		return err
	}
	hub := roomHub(room, s.cfg.Domain)
	roomURI := s.roomURI(hub, room.ID)
	enc := mls.Marshal(rep)
	abuser, _ := identity.ParseURI(string(rep.AllegedAbuserURI)) // checked by parseReportRequest
	// The report goes on to the hub and to the alleged abuser's provider,
	// through the outbox, stored with the report: queued here means sent.
	deliveryID := "report/" + randomID()
	var out []store.Outbound
	forwarded := []string{}
	for _, d := range []string{hub, abuser.Domain} {
		if d == s.cfg.Domain || slices.Contains(forwarded, d) {
			continue
		}
		if err := s.activePartner(d); err != nil {
			s.log.Warn("abuse report not forwarded", "to", d, "err", err)
			continue
		}
		forwarded = append(forwarded, d)
		out = append(out, store.Outbound{Destination: d, Kind: "reportAbuse",
			Path: partnerPath(partnerDirectory.ReportAbuseURL(roomURI)), Body: enc, ID: deliveryID})
	}
	id, err := s.store.AddReport(context.WithoutCancel(r.Context()), store.Report{Room: string(roomURI), Reporter: string(rep.ReportingUser),
		AllegedAbuser: string(rep.AllegedAbuserURI), Reason: uint8(rep.ReasonCode), Note: rep.Note, Body: enc,
		From: "local", VerifiedBy: verified, Outbound: out})
	if err != nil {
		return err
	}
	s.wakeOutbox(out)
	s.log.Warn("abuse reported", "report", id, "room", roomURI, "reporter", string(rep.ReportingUser),
		"alleged_abuser", string(rep.AllegedAbuserURI), "messages", len(rep.Messages), "forwarded_to", forwarded)
	writeJSON(w, http.StatusCreated, map[string]any{"id": id, "forwarded_to": forwarded})
	return nil
}

// randomID is 128 random bits in hex: a delivery ID no retry or other
// report can collide with.
func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// roomHub is the domain of the provider hosting a room.
func roomHub(room store.Room, self string) string {
	if room.Hub != "" {
		return room.Hub
	}
	return self
}

// verifyReport checks every message of a report against this provider's
// copy of the room's log (docs/abuse.md), and says what it checked. Any
// mismatch is frank_invalid and the report must not be kept.
func (s *Server) verifyReport(ctx context.Context, room store.Room, rep *federation.AbuseReport) (string, error) {
	hub := roomHub(room, s.cfg.Domain)
	roomURI := s.roomURI(hub, room.ID)
	if len(rep.Messages) == 0 {
		return "", errFrankInvalid("the report names no message, so nothing can be verified")
	}
	abuser, err := parseUserURI("allegedAbuserUri", rep.AllegedAbuserURI)
	if err != nil {
		return "", err
	}
	for i := range rep.Messages {
		if err := s.verifyReported(ctx, room, hub, roomURI, abuser, &rep.Messages[i]); err != nil {
			var e *Error
			if errors.As(err, &e) && e.Code == "frank_invalid" {
				e.Message = fmt.Sprintf("message %d: %s", i, e.Message)
			}
			return "", err
		}
	}
	verified := "hub " + hub + "'s frank signature; the content's sender_uri and room_uri; the franking tag of the log entry with this frank"
	if hub == s.cfg.Domain {
		verified += "; the server frank with this hub's hub_key"
	}
	return verified, nil
}

// verifyReported checks one reported message.
func (s *Server) verifyReported(ctx context.Context, room store.Room, hub string, roomURI federation.IdentifierURI, abuser identity.URI, m *federation.AbusiveMessage) error {
	suite, err := mls.SuiteFor(m.Frank.FrankingSignatureCiphersuite)
	if err != nil {
		return errFrankInvalid("the frank names cipher suite %v, which this provider does not know", m.Frank.FrankingSignatureCiphersuite)
	}
	pub, err := s.hubFrankingKey(ctx, hub, suite)
	if err != nil {
		return &Error{Code: "hub_unreachable", Status: http.StatusServiceUnavailable,
			Message: fmt.Sprintf("the franking key of the room's hub %s is not available: %v; try again", hub, err), cause: err}
	}
	fctx := federation.ServerFrankingContext{SenderURI: federation.IdentifierURI(abuser.String()), RoomURI: roomURI, AcceptedTimestamp: m.AcceptedTimestamp}
	if err := federation.VerifyFrank(&m.Frank, pub, fctx); err != nil {
		return errFrankInvalid("the hub's signature does not cover this sender, room and time")
	}
	msg, err := content.Decode(m.MessageContent)
	if err != nil {
		return errFrankInvalid("the content is not a MIMI content message: %v", err)
	}
	if sender, ok := msg.SenderURI(); !ok || sender != abuser.String() {
		return errFrankInvalid("the content's sender_uri is not the alleged abuser %s", abuser)
	}
	if r, ok := msg.RoomURI(); !ok || r != string(roomURI) {
		return errFrankInvalid("the content's room_uri is not %s", roomURI)
	}
	entry, err := s.store.MessageByFrank(ctx, room.ID, mls.Marshal(&m.Frank))
	if errors.Is(err, store.ErrNotFound) {
		return errFrankInvalid("no message of room %s carries this frank", roomURI)
	} else if err != nil {
		return err
	}
	if entry.Accepted != int64(m.AcceptedTimestamp) { // #nosec G115 -- compares the same bits stored from the timestamp
		return errFrankInvalid("the message with this frank was accepted at %d, not %d", entry.Accepted, m.AcceptedTimestamp)
	}
	logged, err := mls.ParseMLSMessage(entry.Payload)
	if err != nil || logged.Private == nil {
		return errFrankInvalid("the message with this frank is not an application message")
	}
	tag, ok, err := federation.FrankingTagOf(logged.Private.AuthenticatedData)
	if err != nil || !ok {
		return errFrankInvalid("the message with this frank carries no franking tag")
	}
	if want := federation.FrankingTag(msg.Salt[:], m.MessageContent); !hmac.Equal(want[:], tag[:]) {
		return errFrankInvalid("the content is not the message that was sent: its franking tag differs")
	}
	if hub == s.cfg.Domain {
		k, err := s.ownFrankingKey(ctx, suite)
		if err != nil {
			return err
		}
		if sf := federation.ServerFrank(k.hubKey, tag, fctx); !hmac.Equal(sf[:], m.Frank.ServerFrank[:]) {
			return errFrankInvalid("the server frank is not this hub's")
		}
	}
	return nil
}

// fedReportAbuse takes a partner's abuse report about a room this
// provider hosts or holds a copy of (the hub, or the alleged abuser's
// provider, docs/abuse.md). The partner must speak for the reporting
// user; every message is verified as for a local report; a verified
// report is queued for the operator and answered 201, anything else is
// refused and nothing kept.
func (s *Server) fedReportAbuse(w http.ResponseWriter, r *http.Request) error {
	if err := s.limitPartner(r); err != nil {
		return err
	}
	peer, err := federation.PeerDomain(r)
	if err != nil {
		return err
	}
	var rep federation.AbuseReport
	if err := s.readWire(r, "AbuseReport", &rep); err != nil {
		return err
	}
	if rep.ReportingUser == "" {
		return errBadRequest("this provider takes reports from a named reporting user only")
	}
	reporter, err := parseUserURI("reportingUser", rep.ReportingUser)
	if err != nil {
		return err
	}
	if err := federation.CheckSpeaksFor(peer, reporter); err != nil {
		return err
	}
	u, err := identity.ParseURI(r.PathValue("roomId"))
	if err != nil || u.Kind != identity.KindRoom {
		return errBadRequest("%q is not a room URI", r.PathValue("roomId"))
	}
	var room store.Room
	if u.Domain == s.cfg.Domain {
		rs, unlock, err := s.hostedRoom(r.Context(), r.PathValue("roomId"))
		if err != nil {
			return err
		}
		member := false
		for _, m := range rs.members {
			member = member || m.uri.UserOf() == reporter
		}
		room = rs.room
		unlock()
		if !member {
			return errForbidden("%s is not a member of room %s", reporter, u)
		}
	} else {
		// A copy: the alleged abuser's provider follows the room. A copy
		// knows its own users in the room, not the partners', so the
		// reporter's membership is the hub's and its provider's word.
		room, err = s.store.Room(r.Context(), u.ID)
		if err != nil || room.Hub != u.Domain {
			return errNotFound("this provider holds no copy of room %s", u)
		}
	}
	verified, err := s.verifyReport(r.Context(), room, &rep)
	if err != nil {
		return err
	}
	// The delivery ID makes a retry of a report already queued a
	// duplicate, answered as the first delivery was.
	id, err := s.store.AddReport(context.WithoutCancel(r.Context()), store.Report{Room: string(s.roomURI(u.Domain, u.ID)), Reporter: string(rep.ReportingUser),
		AllegedAbuser: string(rep.AllegedAbuserURI), Reason: uint8(rep.ReasonCode), Note: rep.Note, Body: mls.Marshal(&rep),
		From: peer, VerifiedBy: verified, DeliveryID: r.Header.Get(federation.HeaderDeliveryID)})
	if errors.Is(err, store.ErrExists) {
		w.WriteHeader(http.StatusCreated)
		return nil
	} else if err != nil {
		return err
	}
	s.log.Warn("abuse reported by a partner", "report", id, "peer", peer, "room", u.String(), "reporter", string(rep.ReportingUser),
		"alleged_abuser", string(rep.AllegedAbuserURI), "messages", len(rep.Messages))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// notices is GET /v1/me/notices: the operator's notices to the user.
func (s *Server) notices(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	ns, err := s.store.Notices(r.Context(), c.user.ID)
	if err != nil {
		return err
	}
	type noticeJSON struct {
		ID      int64  `json:"id"`
		Text    string `json:"text"`
		Report  int64  `json:"report,omitempty"`
		Created string `json:"created"`
	}
	out := []noticeJSON{}
	for _, n := range ns {
		out = append(out, noticeJSON{ID: n.ID, Text: n.Text, Report: n.Report, Created: n.Created.UTC().Format("2006-01-02T15:04:05.000Z07:00")})
	}
	writeJSON(w, http.StatusOK, map[string]any{"notices": out})
	return nil
}

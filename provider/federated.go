package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/crashpoint"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// Rooms that span providers (docs/federation.md). A room lives at its
// hub, the provider of the user who created it. Every other provider
// with members in it is a follower: it forwards its devices' messages to
// the hub (update, submitMessage) and answers them once the hub has
// ordered them; the hub fans every accepted message out to each follower
// (notify, through the durable outbox), and the follower keeps a copy of
// the room's log under the hub's sequence numbers and queues each message
// for its own devices.
//
// MIMI's bodies carry the messages; what a Switchboard follower needs
// besides travels in headers of our own (HeaderRoomSeq and the others
// below), which a peer that does not know them can ignore.

// Federation connects a provider to its partners.
type Federation struct {
	// Trust is the partner configuration (the trust file).
	Trust *federation.Trust
	// Transport makes the calls that wait for an answer: a follower's
	// update and submitMessage to the hub, keyMaterial for its devices.
	Transport federation.Transport
	// Outbox delivers the hub's notify requests; the caller runs it.
	Outbox *federation.Outbox
}

// EnableFederation lets the provider's rooms span providers. Call it once,
// before serving; without it rooms hold this provider's users only.
func (s *Server) EnableFederation(f Federation) {
	s.fed = &f
}

// trustConfig is the partner configuration, or nil without federation.
func (s *Server) trustConfig() *federation.Trust {
	if s.fed == nil {
		return nil
	}
	return s.fed.Trust
}

// activePartner refuses a provider that is not an active partner.
func (s *Server) activePartner(domain string) error {
	if s.fed == nil || s.fed.Trust == nil {
		return fmt.Errorf("%s is not a partner: this provider has no federation", domain)
	}
	_, err := s.fed.Trust.Partner(domain)
	return err
}

// wakeOutbox tells the outbox of new entries, so they leave at once.
func (s *Server) wakeOutbox(out []store.Outbound) {
	if s.fed == nil || s.fed.Outbox == nil {
		return
	}
	for _, o := range out {
		s.fed.Outbox.Wake(o.Destination)
	}
}

// Switchboard's own request headers between hub and followers.
const (
	// HeaderRoomSeq is the message's place in the hub's log (notify), the
	// place the hub gave a forwarded message (update and submitMessage
	// answers), or the end of the hub's log (their refusals), in decimal.
	HeaderRoomSeq = "Mimi-Room-Seq"
	// HeaderRoomEpoch is the epoch the message was sent in (notify) or
	// the room's epoch after it (answers), in decimal.
	HeaderRoomEpoch = "Mimi-Room-Epoch"
	// HeaderSender is the device URI of the message's sender (notify), or
	// of the device a follower forwards for (update, submitMessage).
	HeaderSender = "Mimi-Sender"
	// HeaderRecipients lists, separated by spaces, the device URIs of the
	// receiving provider that get the message (notify); "-" for none.
	HeaderRecipients = "Mimi-Recipients"
	// HeaderRoomUsers lists the user URIs of the receiving provider in the
	// room after a commit (notify of commits and Welcomes); "-" for none.
	HeaderRoomUsers = "Mimi-Room-Users"
	// HeaderClientID is the sending device's idempotency key (update,
	// submitMessage): the hub answers a repeat with the first answer.
	HeaderClientID = "Mimi-Client-Id"
)

// partnerBase is a stand-in origin for laying out a partner's endpoints:
// Switchboard providers place them as federation.NewDirectory does under
// their federation URL, the endpoint in our trust file.
const partnerBase = "https://partner.invalid"

var partnerDirectory = func() *federation.Directory {
	d, err := federation.NewDirectory(partnerBase)
	if err != nil {
		panic(err)
	}
	return d
}()

// partnerPath turns one of partnerDirectory's URLs into a request path.
func partnerPath(u string, err error) string {
	if err != nil {
		panic(err) // the templates are ours and the values URIs: cannot fail
	}
	return strings.TrimPrefix(u, partnerBase)
}

func (s *Server) roomURI(hub, id string) federation.IdentifierURI {
	return federation.IdentifierURI(identity.RoomURI(hub, id).String())
}

func joinURIs(us []identity.URI) string {
	if len(us) == 0 {
		return "-"
	}
	parts := make([]string, len(us))
	for i, u := range us {
		parts[i] = u.String()
	}
	return strings.Join(parts, " ")
}

// fanoutOf makes the hub's notify requests for an accepted message: one
// per follower provider that had or now has members in the room, each with
// the message and the devices of that provider that get it; a commit's
// Welcome follows as the next entry. Every follower gets every message,
// even one for none of its devices, so its copy of the log has no holes
// that its devices could mistake for lost messages.
func (s *Server) fanoutOf(rs *roomState, sub store.Submission, o offer, next *mls.PublicGroup, after map[mls.LeafIndex]member, remote map[string][]identity.URI, welcome *welcomeRoute) []store.Outbound {
	domains := map[string]bool{}
	for _, set := range []map[mls.LeafIndex]member{rs.members, after} {
		for _, m := range set {
			if !m.local() {
				domains[m.domain()] = true
			}
		}
	}
	if len(domains) == 0 {
		return nil
	}
	usersAfter := map[string][]identity.URI{}
	seen := map[identity.URI]bool{}
	for _, l := range sortedLeaves(after) {
		if m := after[l]; !m.local() && !seen[m.uri.UserOf()] {
			seen[m.uri.UserOf()] = true
			usersAfter[m.domain()] = append(usersAfter[m.domain()], m.uri.UserOf())
		}
	}
	now := uint64(sub.Accepted) // #nosec G115 -- a millisecond timestamp of this hub's clock, not negative
	var frank *federation.Frank
	if len(sub.Frank) > 0 {
		frank, _ = federation.ParseFrank(sub.Frank) // made by frankOf just now
	}
	path := partnerPath(partnerDirectory.NotifyURL(s.roomURI(s.cfg.Domain, rs.room.ID)))
	var wm *mls.MLSMessage
	if welcome != nil {
		wm, _ = mls.ParseMLSMessage(o.welcome) // routeWelcome parsed it already
	}
	var out []store.Outbound
	for _, d := range slices.Sorted(maps.Keys(domains)) {
		fm := federation.FanoutMessage{Timestamp: now, Message: *o.msg, Frank: frank}
		hdr := map[string]string{
			HeaderRoomSeq:    strconv.FormatInt(sub.Seq, 10),
			HeaderRoomEpoch:  strconv.FormatUint(sub.Epoch, 10),
			HeaderSender:     o.sender.uri.String(),
			HeaderRecipients: joinURIs(remote[d]),
		}
		if sub.Kind == store.KindCommit {
			hdr[HeaderRoomUsers] = joinURIs(usersAfter[d])
		}
		out = append(out, store.Outbound{
			Destination: d, Kind: "notify", Path: path, Body: federation.MarshalFanout(fm),
			ID: rs.room.ID + "/" + strconv.FormatInt(sub.Seq, 10), Header: hdr,
		})
		if wm == nil {
			continue
		}
		wf := federation.FanoutMessage{Timestamp: now, Message: *wm, RatchetTree: federation.FullRatchetTree(next.Tree().TreeNodes())}
		out = append(out, store.Outbound{
			Destination: d, Kind: "notify", Path: path, Body: federation.MarshalFanout(wf),
			ID: rs.room.ID + "/" + strconv.FormatInt(sub.Seq+1, 10),
			Header: map[string]string{
				HeaderRoomSeq:    strconv.FormatInt(sub.Seq+1, 10),
				HeaderRoomEpoch:  strconv.FormatUint(sub.NewEpoch, 10),
				HeaderSender:     o.sender.uri.String(),
				HeaderRecipients: joinURIs(welcome.remote[d]),
				HeaderRoomUsers:  joinURIs(usersAfter[d]),
			},
		})
	}
	return out
}

// ---- The hub's endpoints: a follower forwards its device's message ----

// hostedRoom finds, from a room URI in a federation path, a room this
// provider hosts, and locks it.
func (s *Server) hostedRoom(ctx context.Context, raw string) (*roomState, func(), error) {
	u, err := identity.ParseURI(raw)
	if err != nil || u.Kind != identity.KindRoom {
		return nil, nil, errBadRequest("%q is not a room URI", raw)
	}
	if u.Domain != s.cfg.Domain {
		return nil, nil, errNotFound("room %s is not hosted by %s", u, s.cfg.Domain)
	}
	rs, unlock, err := s.hub.acquire(ctx, u.ID)
	if err != nil {
		return nil, nil, err
	}
	if rs.room.Hub != "" {
		unlock()
		return nil, nil, errNotFound("room %s is hosted by %s, not here", u, rs.room.Hub)
	}
	return rs, unlock, nil
}

// remoteSender checks the device a follower forwards for: named in
// HeaderSender, a device of the calling partner, and a member of the room.
func (s *Server) remoteSender(r *http.Request, rs *roomState) (member, string, error) {
	peer, err := federation.PeerDomain(r)
	if err != nil {
		return member{}, "", err
	}
	dev, err := identity.ParseURI(r.Header.Get(HeaderSender))
	if err != nil || dev.Kind != identity.KindDevice {
		return member{}, "", errBadRequest("%s must be the sending device's URI", HeaderSender)
	}
	if err := federation.CheckSpeaksFor(peer, dev); err != nil {
		return member{}, "", err
	}
	key := r.Header.Get(HeaderClientID)
	if !validClientID(key) {
		return member{}, "", errBadRequest("%s must be 8 to 64 characters of A-Z a-z 0-9 . _ -", HeaderClientID)
	}
	find := func() (member, bool) {
		for _, m := range rs.members {
			if m.uri == dev {
				return m, true
			}
		}
		return member{}, false
	}
	m, ok := find()
	if !ok {
		// Another replica may have added the device since this one read
		// the room (as memberRoomOf looks again for a local device): a
		// partner's device that was just welcomed sends at once.
		if err := s.hub.refresh(r.Context(), rs); err != nil {
			return member{}, "", err
		}
		m, ok = find()
	}
	if !ok {
		// Not a member: answer as for a room the partner cannot see.
		return member{}, "", errNotFound("no room %s with device %s in it", rs.room.ID, dev)
	}
	return m, peer + ":" + key, nil
}

// fedUpdate is the hub's update endpoint: a commit or proposal of a
// partner's device, with the Welcome of a commit.
func (s *Server) fedUpdate(w http.ResponseWriter, r *http.Request) error {
	if err := s.limitForwarded(r); err != nil {
		return err
	}
	var req federation.UpdateRequest
	n, err := s.readWireWithin(r, "UpdateRequest", &req, s.cfg.MaxCommitBytes)
	if err != nil {
		return err
	}
	if n > s.cfg.MaxBodyBytes && !isCommit(&req.Bundle.ProposalOrCommit) {
		return errTooLarge(s.cfg.MaxBodyBytes)
	}
	if len(req.Bundle.MoreProposals) > 0 {
		return errBadRequest("send one proposal per update request")
	}
	hv, err := s.acceptForwarded(w, r, func(sender member, clientID string) (offer, error) {
		o := offer{sender: sender, clientID: clientID, msg: &req.Bundle.ProposalOrCommit, raw: mls.Marshal(&req.Bundle.ProposalOrCommit)}
		if req.Bundle.Welcome != nil {
			o.welcome = mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatWelcome, Welcome: req.Bundle.Welcome})
		}
		return o, nil
	})
	if err != nil {
		return err
	}
	resp := federation.UpdateRoomResponse{ResponseCode: federation.UpdateSuccess, ErrorDescription: hv.desc}
	switch hv.v {
	case verdictAccepted:
		resp.AcceptedTimestamp = uint64(hv.accepted) // #nosec G115 -- a millisecond timestamp of this hub's clock, not negative
	case verdictWrongEpoch:
		resp.ResponseCode, resp.CurrentEpoch = federation.UpdateWrongEpoch, hv.epoch
	default:
		resp.ResponseCode = federation.UpdateNotAllowed
	}
	writeWire(w, &resp)
	return nil
}

// fedSubmitMessage is the hub's submitMessage endpoint: an application
// message of a partner's device.
func (s *Server) fedSubmitMessage(w http.ResponseWriter, r *http.Request) error {
	if err := s.limitForwarded(r); err != nil {
		return err
	}
	var req federation.SubmitMessageRequest
	if err := s.readWire(r, "SubmitMessageRequest", &req); err != nil {
		return err
	}
	hv, err := s.acceptForwarded(w, r, func(sender member, clientID string) (offer, error) {
		if string(req.SendingURI) != sender.uri.UserOf().String() {
			return offer{}, errBadRequest("sendingUri %q is not the user of %s", req.SendingURI, sender.uri)
		}
		return offer{sender: sender, clientID: clientID, msg: &req.AppMessage, raw: mls.Marshal(&req.AppMessage)}, nil
	})
	if err != nil {
		return err
	}
	resp := federation.SubmitMessageResponse{Protocol: federation.ProtocolMLS10, StatusCode: federation.SubmitAccepted}
	switch hv.v {
	case verdictAccepted:
		resp.AcceptedTimestamp = uint64(hv.accepted) // #nosec G115 -- a millisecond timestamp of this hub's clock, not negative
		if len(hv.frank) > 0 {
			if resp.Frank, err = federation.ParseFrank(hv.frank); err != nil {
				return err
			}
		}
	case verdictWrongEpoch:
		resp.StatusCode, resp.CurrentEpoch = federation.SubmitEpochTooOld, hv.epoch
	default:
		resp.StatusCode = federation.SubmitNotAllowed
	}
	writeWire(w, &resp)
	return nil
}

// hubVerdict is the hub's answer to a forwarded message, before it is put
// into the endpoint's MIMI response.
type hubVerdict struct {
	v     verdict
	desc  string // why it was refused
	epoch uint64 // the room's epoch, for a wrong-epoch refusal
	// accepted and frank are the acceptance's (see acceptance).
	accepted int64
	frank    []byte
}

// acceptForwarded is the hub's part of update and submitMessage: the
// room must be hosted here and the forwarding partner's device a member;
// build makes the offer from the body; accept judges it. A refusal for
// the epoch or the policy is a verdict; anything else is an error.
func (s *Server) acceptForwarded(w http.ResponseWriter, r *http.Request, build func(sender member, clientID string) (offer, error)) (hubVerdict, error) {
	rs, unlock, err := s.hostedRoom(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return hubVerdict{}, err
	}
	defer unlock()
	sender, clientID, err := s.remoteSender(r, rs)
	if err != nil {
		return hubVerdict{}, err
	}
	o, err := build(sender, clientID)
	if err != nil {
		return hubVerdict{}, err
	}
	res, err := s.accept(r.Context(), rs, o)
	var apiErr *Error
	switch {
	case err == nil:
		setRoomHeaders(w, res.seq, res.epoch)
		return hubVerdict{v: verdictAccepted, accepted: res.accepted, frank: res.frank}, nil
	case errors.As(err, &apiErr) && apiErr.Code == "wrong_epoch":
		// The end of the log lets the follower catch up before it answers.
		setRoomHeaders(w, rs.room.LastSeq, rs.group.Epoch())
		return hubVerdict{v: verdictWrongEpoch, desc: apiErr.Message, epoch: rs.group.Epoch()}, nil
	case errors.As(err, &apiErr) && apiErr.Code == "forbidden":
		return hubVerdict{v: verdictRefused, desc: apiErr.Message}, nil
	}
	return hubVerdict{}, err
}

func setRoomHeaders(w http.ResponseWriter, seq int64, epoch uint64) {
	w.Header().Set(HeaderRoomSeq, strconv.FormatInt(seq, 10))
	w.Header().Set(HeaderRoomEpoch, strconv.FormatUint(epoch, 10))
}

// ---- The follower: forwarding a device's message to the hub ----

// forwardWait bounds how long a follower waits, after the hub accepted a
// message, for the hub's notify to bring its copy of the log up to that
// message, so that the device finds it there when it reads the log.
const forwardWait = 5 * time.Second

// forward sends a local device's message for a room hosted by a partner to
// that hub, and returns the hub's verdict, as submitTo does for a hosted
// room.
func (s *Server) forward(ctx context.Context, room store.Room, c *caller, req submitRequest, msg *mls.MLSMessage) (acceptance, error) {
	if s.fed == nil || s.fed.Transport == nil {
		return acceptance{}, errUnavailable("this provider has no federation to reach the room's hub")
	}
	dev := identity.DeviceURI(s.cfg.Domain, c.user.Handle, c.device.Name)
	hdr := http.Header{HeaderSender: {dev.String()}, HeaderClientID: {req.ClientID}}
	uri := s.roomURI(room.Hub, room.ID)
	var path string
	var body []byte
	switch {
	case msg.WireFormat == mls.WireFormatPrivateMessage && msg.Private.ContentType == mls.ContentApplication:
		path = partnerPath(partnerDirectory.SubmitMessageURL(uri))
		body = mls.Marshal(&federation.SubmitMessageRequest{Protocol: federation.ProtocolMLS10, AppMessage: *msg, SendingURI: federation.IdentifierURI(dev.UserOf().String())})
	case msg.WireFormat == mls.WireFormatPublicMessage:
		b, err := handshakeBundle(msg, req)
		if err != nil {
			return acceptance{}, err
		}
		path = partnerPath(partnerDirectory.UpdateURL(uri))
		body = mls.Marshal(&federation.UpdateRequest{Bundle: *b})
	default:
		return acceptance{}, errBadRequest("a room accepts application PrivateMessages and handshake PublicMessages only")
	}
	resp, err := s.fed.Transport.Post(ctx, room.Hub, path, body, hdr)
	if perr := federation.Classify(resp, err); perr != nil {
		// 429 is retryable for Classify; the device hears it as such.
		if e := hubRateLimited(room.Hub, perr, s.now()); e != nil {
			return acceptance{}, e
		}
		if e := hubFull(room.Hub, perr); e != nil {
			return acceptance{}, e
		}
		var pe *federation.PeerError
		if errors.As(perr, &pe) && pe.Permanent && pe.Status >= 400 && pe.Status < 500 {
			return acceptance{}, &Error{Code: pe.Code, Status: pe.Status, Message: fmt.Sprintf("the room's hub %s refused the message: %s", room.Hub, pe.Message), cause: perr}
		}
		return acceptance{}, &Error{Code: "hub_unreachable", Status: http.StatusServiceUnavailable,
			Message: fmt.Sprintf("the room's hub %s could not be reached; try again", room.Hub), cause: perr}
	}
	seq, _ := strconv.ParseInt(resp.Header.Get(HeaderRoomSeq), 10, 64)
	epoch, _ := strconv.ParseUint(resp.Header.Get(HeaderRoomEpoch), 10, 64)
	verdict, desc, acc, err := readVerdict(msg, resp.Body)
	if err != nil {
		return acceptance{}, &Error{Code: "hub_unreachable", Status: http.StatusBadGateway, Message: fmt.Sprintf("the room's hub %s answered badly: %v", room.Hub, err), cause: err}
	}
	crashpoint.ReachedIf(verdict == verdictAccepted, crashpoint.ForwardAccepted)
	// Either way the device will read the log next (to find its message,
	// or to catch up after losing an epoch): let the hub's notify bring
	// the copy that far first.
	s.awaitSeq(ctx, room.ID, seq)
	switch verdict {
	case verdictAccepted:
		if seq <= 0 {
			return acceptance{}, &Error{Code: "hub_unreachable", Status: http.StatusBadGateway, Message: fmt.Sprintf("the room's hub %s did not say where it put the message", room.Hub)}
		}
		return acceptance{seq: seq, epoch: epoch, accepted: acc.accepted, frank: acc.frank}, nil
	case verdictWrongEpoch:
		return acceptance{}, errWrongEpoch(fmt.Errorf("the room's hub %s is in epoch %d: %s", room.Hub, epoch, desc))
	default:
		return acceptance{}, errForbidden("the room's hub %s refused the message: %s", room.Hub, desc)
	}
}

// handshakeBundle is the update request for a device's commit or proposal.
func handshakeBundle(msg *mls.MLSMessage, req submitRequest) (*federation.HandshakeBundle, error) {
	b := &federation.HandshakeBundle{ProposalOrCommit: *msg}
	if msg.Public == nil || msg.Public.Content.ContentType != mls.ContentCommit {
		return b, nil
	}
	if len(req.Welcome) > 0 {
		wm, err := mls.ParseMLSMessage(req.Welcome)
		if err != nil || wm.Welcome == nil {
			return nil, errBadRequest("welcome must be a Welcome MLSMessage")
		}
		b.Welcome = wm.Welcome
	}
	gm, err := mls.ParseMLSMessage(req.GroupInfo)
	if err != nil || gm.GroupInfo == nil {
		return nil, errBadRequest("a commit to a room hosted by another provider needs its group_info (a GroupInfo MLSMessage)")
	}
	var tree mls.TreeNodes
	if err := mls.Unmarshal(req.RatchetTree, &tree); err != nil || len(tree) == 0 {
		return nil, errBadRequest("a commit to a room hosted by another provider needs its ratchet_tree")
	}
	b.GroupInfo, b.RatchetTree = federation.FullGroupInfo(*gm.GroupInfo), federation.FullRatchetTree(tree)
	return b, nil
}

type verdict int

const (
	verdictAccepted verdict = iota
	verdictWrongEpoch
	verdictRefused
)

// readVerdict reads the hub's answer to an update or submitMessage, with
// the acceptance time and frank of an accepted one.
func readVerdict(msg *mls.MLSMessage, body []byte) (verdict, string, acceptance, error) {
	var acc acceptance
	if msg.WireFormat == mls.WireFormatPrivateMessage {
		var resp federation.SubmitMessageResponse
		if err := mls.Unmarshal(body, &resp); err != nil {
			return 0, "", acc, err
		}
		switch resp.StatusCode {
		case federation.SubmitAccepted:
			acc.accepted = int64(resp.AcceptedTimestamp) // #nosec G115 -- a hub's millisecond timestamp, stored as the same bits
			if resp.Frank != nil {
				acc.frank = mls.Marshal(resp.Frank)
			}
			return verdictAccepted, "", acc, nil
		case federation.SubmitEpochTooOld:
			return verdictWrongEpoch, "epoch too old", acc, nil
		}
		return verdictRefused, "not allowed", acc, nil
	}
	var resp federation.UpdateRoomResponse
	if err := mls.Unmarshal(body, &resp); err != nil {
		return 0, "", acc, err
	}
	switch resp.ResponseCode {
	case federation.UpdateSuccess:
		acc.accepted = int64(resp.AcceptedTimestamp) // #nosec G115 -- a hub's millisecond timestamp, stored as the same bits
		return verdictAccepted, "", acc, nil
	case federation.UpdateWrongEpoch:
		return verdictWrongEpoch, resp.ErrorDescription, acc, nil
	}
	return verdictRefused, resp.ErrorDescription, acc, nil
}

// ---- The follower: the hub's notify ----

// fedNotify stores a message the hub fanned out: in this provider's copy
// of the room's log, under the hub's seq, queued for the devices the hub
// names (for a Welcome: the devices whose KeyPackages this provider handed
// out). A repeat of the same seq is answered as a success and changes
// nothing.
func (s *Server) fedNotify(w http.ResponseWriter, r *http.Request) error {
	if err := s.limitPartner(r); err != nil {
		return err
	}
	peer, err := federation.PeerDomain(r)
	if err != nil {
		return err
	}
	u, err := identity.ParseURI(r.PathValue("roomId"))
	if err != nil || u.Kind != identity.KindRoom {
		return errBadRequest("%q is not a room URI", r.PathValue("roomId"))
	}
	// A hub speaks for its own rooms only.
	if u.Domain != peer {
		return &federation.TrustError{Kind: federation.ErrNotItsUser, Domain: peer, Msg: fmt.Sprintf("%s cannot notify for room %s, hosted by %s", peer, u, u.Domain)}
	}
	seq, err := strconv.ParseInt(r.Header.Get(HeaderRoomSeq), 10, 64)
	if err != nil || seq <= 0 {
		return errBadRequest("%s must be the message's positive seq", HeaderRoomSeq)
	}
	epoch, err := strconv.ParseUint(r.Header.Get(HeaderRoomEpoch), 10, 64)
	if err != nil {
		return errBadRequest("%s must be the message's epoch", HeaderRoomEpoch)
	}
	sender, err := identity.ParseURI(r.Header.Get(HeaderSender))
	if err != nil || sender.Kind != identity.KindDevice {
		return errBadRequest("%s must be the sender's device URI", HeaderSender)
	}
	var body []byte
	if body, err = s.readBodyWithin(r, s.cfg.MaxCommitBytes); err != nil {
		return err
	}
	msgs, err := federation.SplitFanout(body)
	if err != nil {
		return errBadRequest("malformed FanoutMessage: %v", err)
	}
	if len(msgs) != 1 {
		return errBadRequest("a notify carries one message with its seq, not %d", len(msgs))
	}
	fm := msgs[0]
	if int64(len(body)) > s.cfg.MaxBodyBytes && !isCommit(&fm.Message) && fm.Message.Welcome == nil {
		return errTooLarge(s.cfg.MaxBodyBytes)
	}
	sub := store.Submission{RoomID: u.ID, ClientID: "hub:" + strconv.FormatInt(seq, 10), Seq: seq, Sender: sender.String(),
		Epoch: epoch, Payload: mls.Marshal(&fm.Message), Accepted: int64(fm.Timestamp)} // #nosec G115 -- a hub's millisecond timestamp, stored as the same bits
	if fm.Frank != nil {
		// Kept as the hub made it: a report names the message by it.
		sub.Frank = mls.Marshal(fm.Frank)
	}
	switch {
	case fm.Message.Welcome != nil:
		sub.Kind = store.KindWelcome
	case fm.Message.Private != nil:
		sub.Kind = store.KindApplication
	case fm.Message.Public != nil && fm.Message.Public.Content.ContentType == mls.ContentCommit:
		sub.Kind = store.KindCommit
	case fm.Message.Public != nil:
		sub.Kind = store.KindProposal
	default:
		return errBadRequest("a notify carries an MLS message of a room")
	}
	if sender.Domain == s.cfg.Domain {
		if d, err := s.localDevice(r.Context(), sender); err == nil {
			sub.SenderDevice = d.ID
		}
	}
	if sub.Recipients, err = s.localDevices(r.Context(), r.Header.Get(HeaderRecipients)); err != nil {
		return err
	}
	if sub.Kind == store.KindWelcome {
		// Only the devices this provider handed the KeyPackages out for,
		// whatever the hub says.
		// Each of those KeyPackages is used once (RFC 9420 §16.8): the
		// store marks them with the Welcome and refuses one an earlier
		// Welcome used (key_package_used), whichever room it was for.
		sub.Recipients = nil
		for _, sec := range fm.Message.Welcome.Secrets {
			d, err := s.store.KeyPackageDevice(r.Context(), sec.NewMember)
			if err != nil {
				continue
			}
			// Checked here too, so that a refused Welcome for a room this
			// provider has no copy of does not make one.
			if used, err := s.store.KeyPackageWelcomed(r.Context(), sec.NewMember); err != nil {
				return err
			} else if used && !s.repeatedNotify(r.Context(), u.ID, sub.ClientID) {
				return errKeyPackageUsedElsewhere(fmt.Errorf("notify %s of room %s: %w", sub.ClientID, u, store.ErrKeyPackageUsed))
			}
			sub.Recipients = append(sub.Recipients, d)
			sub.KeyPackages = append(sub.KeyPackages, sec.NewMember)
		}
	}
	// Third-party reachability (docs/reachability.md): the message, a
	// Welcome too, is queued only for the devices of users who allow the
	// hub to reach them. The copy still logs it, so that its seqs stay
	// the hub's, contiguous; a user who turns reachability off gets
	// nothing new from this room from that moment on.
	reachable, err := s.reachableDevices(r.Context(), sub.Recipients, peer)
	if err != nil {
		return err
	}
	// Consent (docs/consent.md): a Welcome from someone new is a message
	// request, from someone blocked it is not queued; a declined room and
	// a blocked sender's application messages are not queued either.
	if sub.Recipients, err = s.consentRecipients(r.Context(), u.ID, sub.Kind, sender, reachable); err != nil {
		return err
	}
	if users, ok := r.Header[http.CanonicalHeaderKey(HeaderRoomUsers)]; ok && len(users) > 0 {
		if sub.Members, err = s.localUsers(r.Context(), u.ID, users[0]); err != nil {
			return err
		}
	}

	rs, unlock, err := s.followerRoom(r.Context(), u.ID, peer)
	if err != nil {
		return err
	}
	defer unlock()
	if sub.Kind == store.KindCommit || sub.Kind == store.KindProposal {
		// The store orders a room's handshakes by version, in a copy too.
		sub.PrevVersion, sub.NewEpoch = rs.room.Version, epoch
		if sub.Kind == store.KindCommit {
			sub.NewEpoch = epoch + 1
		}
	}
	res, err := s.store.Submit(context.WithoutCancel(r.Context()), sub)
	if err != nil {
		rs.loaded = false
	}
	if errors.Is(err, store.ErrConflict) {
		return errConflict("seq %d is not after the last message this provider has of room %s", seq, u)
	} else if errors.Is(err, store.ErrKeyPackageUsed) {
		return errKeyPackageUsedElsewhere(err)
	} else if err != nil {
		return err
	}
	crashpoint.ReachedIf(sub.Kind == store.KindCommit, crashpoint.FollowerCommitStored)
	crashpoint.ReachedIf(sub.Kind == store.KindWelcome, crashpoint.FollowerWelcomeStored)
	crashpoint.ReachedIf(sub.Kind == store.KindApplication, crashpoint.FollowerMessageStored)
	if !res.Duplicate {
		rs.room.LastSeq = max(rs.room.LastSeq, seq)
		if sub.Kind == store.KindCommit || sub.Kind == store.KindProposal {
			rs.room.Version++
		}
		s.metrics.accepted.WithLabelValues(string(sub.Kind)).Inc()
		s.bus.WakeDevices(sub.Recipients)
	}
	// The waiters here learn the seq at once; the bus tells the other
	// replicas' waiters (and would wake none here: they are gone).
	if !res.Duplicate {
		s.seqs.reached(u.ID, seq)
	}
	s.bus.WakeRoom(u.ID)
	w.WriteHeader(http.StatusCreated)
	return nil
}

// repeatedNotify reports whether the copy of the room already holds the
// hub's message of this client ID ("hub:SEQ"): its Welcome marked its
// KeyPackages, and a repeat must be answered as the first was.
func (s *Server) repeatedNotify(ctx context.Context, roomID, clientID string) bool {
	_, err := s.store.MessageByClientID(ctx, roomID, clientID)
	return err == nil
}

// followerRoom locks this provider's copy of a room hosted by hub,
// creating it on the hub's first notify.
func (s *Server) followerRoom(ctx context.Context, id, hub string) (*roomState, func(), error) {
	rs, unlock, err := s.hub.acquire(ctx, id)
	if errors.Is(err, errRoomNotFound) {
		err = s.store.CreateRoom(ctx, store.Room{ID: id, Hub: hub, Created: s.now()}, nil)
		if err != nil && !errors.Is(err, store.ErrExists) {
			return nil, nil, err
		}
		rs, unlock, err = s.hub.acquire(ctx, id)
	}
	if err != nil {
		return nil, nil, err
	}
	if rs.room.Hub != hub {
		unlock()
		return nil, nil, errForbidden("room %s is not hosted by %s", id, hub)
	}
	return rs, unlock, nil
}

// localDevice finds one of this provider's devices by URI.
func (s *Server) localDevice(ctx context.Context, dev identity.URI) (store.Device, error) {
	u, err := s.store.UserByHandle(ctx, dev.User)
	if err != nil {
		return store.Device{}, err
	}
	ds, err := s.store.DevicesOfUser(ctx, u.ID)
	if err != nil {
		return store.Device{}, err
	}
	for _, d := range ds {
		if d.Name == dev.Device {
			return d, nil
		}
	}
	return store.Device{}, store.ErrNotFound
}

// localDevices reads HeaderRecipients: this provider's devices. Devices
// that no longer exist are left out; another provider's are refused.
func (s *Server) localDevices(ctx context.Context, list string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Fields(list) {
		if f == "-" {
			continue
		}
		u, err := identity.ParseURI(f)
		if err != nil || u.Kind != identity.KindDevice {
			return nil, errBadRequest("%s: %q is not a device URI", HeaderRecipients, f)
		}
		if u.Domain != s.cfg.Domain {
			return nil, errBadRequest("%s: %s is not a device of %s", HeaderRecipients, u, s.cfg.Domain)
		}
		d, err := s.localDevice(ctx, u)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, d.ID)
	}
	return out, nil
}

// localUsers reads HeaderRoomUsers into the member rows of a follower's
// copy.
func (s *Server) localUsers(ctx context.Context, roomID, list string) ([]store.RoomMember, error) {
	out := []store.RoomMember{}
	for _, f := range strings.Fields(list) {
		if f == "-" {
			continue
		}
		u, err := identity.ParseURI(f)
		if err != nil || u.Kind != identity.KindUser || u.Domain != s.cfg.Domain {
			return nil, errBadRequest("%s: %q is not a user URI of %s", HeaderRoomUsers, f, s.cfg.Domain)
		}
		user, err := s.store.UserByHandle(ctx, u.User)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, store.RoomMember{RoomID: roomID, UserID: user.ID, Role: store.RoleMember})
	}
	return out, nil
}

// ---- Waiting for the log to reach a seq ----

// seqWaiters lets a follower wait until its copy of a room's log reaches a
// seq. reached is called after every notify: with the seq just stored,
// when the notify landed in this process, so that its waiters learn it
// without reading the store; with 0 when another replica says the room
// moved, and the waiters read the store. A missed wake-up costs only
// time (awaitSeq gives up after forwardWait).
type seqWaiters struct {
	mu sync.Mutex
	ch map[string]*roomWait
	// stalled holds the rooms whose hub's notify did not come within
	// forwardWait, until a notify of the room lands (reached). Meanwhile
	// forwarded messages are answered without waiting: the hub cannot
	// reach us, and each of the devices' sends would otherwise take
	// forwardWait for as long as that lasts. The answer is the same as
	// after a wait that timed out.
	stalled map[string]bool
}

// stall marks room as stalled; isStalled says whether it still is.
func (sw *seqWaiters) stall(room string) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.stalled == nil {
		sw.stalled = map[string]bool{}
	}
	sw.stalled[room] = true
}

func (sw *seqWaiters) isStalled(room string) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.stalled[room]
}

// roomWait is the state of one room's waiters, kept while there are any.
type roomWait struct {
	waiters int
	last    int64         // the highest seq stored here since
	foreign int           // wake-ups from other replicas since
	echo    bool          // the next wake-up without a seq is a notify's own
	done    chan struct{} // closed, and replaced, at each wake-up
}

func (sw *seqWaiters) join(room string) *roomWait {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.ch == nil {
		sw.ch = map[string]*roomWait{}
	}
	w := sw.ch[room]
	if w == nil {
		w = &roomWait{done: make(chan struct{})}
		sw.ch[room] = w
	}
	w.waiters++
	return w
}

func (sw *seqWaiters) leave(room string, w *roomWait) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if w.waiters--; w.waiters == 0 {
		delete(sw.ch, room)
	}
}

// look returns what w's waiter needs: the channel of the next wake-up,
// the highest seq stored here, and the count of other replicas' wake-ups.
func (sw *seqWaiters) look(w *roomWait) (<-chan struct{}, int64, int) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return w.done, w.last, w.foreign
}

func (sw *seqWaiters) reached(room string, seq int64) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	delete(sw.stalled, room) // the hub reaches us again
	w := sw.ch[room]
	if w == nil {
		return
	}
	// A notify stored here calls reached with its seq, then the bus calls
	// it with 0 for the same notify (the bus wakes every replica, this
	// one included): that second call adds nothing. Should another
	// replica's wake-up be taken for it, the notify's own, which follows,
	// counts instead; either way the store is read after it.
	switch {
	case seq > 0:
		w.last, w.echo = max(w.last, seq), true
	case w.echo:
		w.echo = false
	default:
		w.foreign++
	}
	close(w.done)
	w.done = make(chan struct{})
}

// reachedAll wakes every waiter as another replica's wake-up would, so
// that each reads the store: what the bus carried meanwhile may be lost.
func (sw *seqWaiters) reachedAll() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	clear(sw.stalled)
	for _, w := range sw.ch {
		w.foreign++
		close(w.done)
		w.done = make(chan struct{})
	}
}

// awaitSeq waits, at most forwardWait, until the copy of a room's log
// holds seq. It reads the store once, and again only after another
// replica's wake-up: a notify that lands here says its seq.
func (s *Server) awaitSeq(ctx context.Context, room string, seq int64) {
	if seq <= 0 {
		return
	}
	if s.seqs.isStalled(room) {
		s.log.Debug("the hub's notifies are late: not waiting", "room", room, "seq", seq)
		return
	}
	w := s.seqs.join(room)
	defer s.seqs.leave(room, w)
	deadline := time.NewTimer(forwardWait)
	defer deadline.Stop()
	var have int64
	read := -1 // the foreign count at the last read of the store
	for {
		woken, last, foreign := s.seqs.look(w)
		if last >= seq {
			return
		}
		if foreign != read {
			read = foreign
			r, err := s.store.Room(ctx, room)
			if err != nil || r.LastSeq >= seq {
				return
			}
			have = r.LastSeq
		}
		select {
		case <-woken:
		case <-deadline.C:
			s.log.Warn("the hub's notify has not arrived yet", "room", room, "seq", seq, "have", max(have, last))
			s.seqs.stall(room)
			return
		case <-ctx.Done():
			return
		}
	}
}

// ---- Key material of another provider's user, for a local device ----

// claimRemote claims one KeyPackage per device of handle@domain from that
// partner, with the KeyMaterialRequest the calling device signed. The
// request must be the caller's own: its user, its credential and its key.
func (s *Server) claimRemote(w http.ResponseWriter, r *http.Request, handle, domain string, req claimRequest) error {
	if err := s.activePartner(domain); err != nil || s.fed.Transport == nil {
		return errNotFound("no user %s@%s: %v", handle, domain, err)
	}
	var km federation.KeyMaterialRequest
	if err := mls.Unmarshal(req.KeyMaterialRequest, &km); err != nil {
		return errBadRequest("key_material_request: a signed KeyMaterialRequest is needed for a user of another provider: %v", err)
	}
	c := callerOf(r)
	me := identity.DeviceURI(s.cfg.Domain, c.user.Handle, c.device.Name)
	target := identity.UserURI(domain, handle)
	if err := target.Validate(); err != nil {
		return errNotFound("no user %s@%s", handle, domain)
	}
	if string(km.RequestingUser) != me.UserOf().String() || string(km.TargetUser) != target.String() {
		return errBadRequest("key_material_request must ask as %s for %s", me.UserOf(), target)
	}
	if err := km.Verify(); err != nil {
		return errInvalidSignature(err)
	}
	suite, err := km.SigningSuite()
	if err != nil {
		return errBadRequest("%v", err)
	}
	dev, err := s.verifier.Verify(suite, km.RequesterCredential, km.RequesterSignatureKey, s.now())
	if err != nil || dev.URI != me {
		return errForbidden("key_material_request must carry the calling device's own credential")
	}
	path := partnerPath(partnerDirectory.KeyMaterialURL(km.TargetUser))
	resp, err := s.fed.Transport.Post(r.Context(), domain, path, req.KeyMaterialRequest, nil)
	if perr := federation.Classify(resp, err); perr != nil {
		return &Error{Code: "partner_unreachable", Status: http.StatusBadGateway,
			Message: fmt.Sprintf("%s did not hand out key material: %v", domain, perr), cause: perr}
	}
	var kr federation.KeyMaterialResponse
	if err := mls.Unmarshal(resp.Body, &kr); err != nil {
		return &Error{Code: "partner_unreachable", Status: http.StatusBadGateway, Message: fmt.Sprintf("%s answered badly: %v", domain, err), cause: err}
	}
	if kr.UserStatus == federation.KeyMaterialUserUnknown || kr.UserStatus == federation.KeyMaterialUserDeleted {
		return errNotFound("no user %s@%s", handle, domain)
	}
	type claimed struct {
		Device     string `json:"device"`
		KeyPackage []byte `json:"key_package"`
	}
	out := []claimed{}
	for _, cl := range kr.Clients {
		cu, err := identity.ParseURI(string(cl.ClientURI))
		if cl.ClientStatus != federation.ClientKeyMaterialSuccess || cl.KeyPackage == nil || err != nil || cu.Kind != identity.KindDevice {
			continue
		}
		// The device checks the KeyPackage's credential against the
		// partner's CA; here it is only passed on.
		out = append(out, claimed{Device: cu.Device, KeyPackage: mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: cl.KeyPackage})})
	}
	if len(out) == 0 {
		if kr.UserStatus == federation.KeyMaterialNoConsent || kr.UserStatus == federation.KeyMaterialNoConsentForThisRoom {
			return errNoConsent("%s@%s does not accept contact from this user (%v)", handle, domain, kr.UserStatus)
		}
		return errNoKeyPackages(handle+"@"+domain, req.CipherSuite)
	}
	s.noteInvited(r.Context(), c.user.ID, target)
	writeJSON(w, http.StatusOK, map[string]any{"key_packages": out})
	return nil
}

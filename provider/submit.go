package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-chat/switchboard/crashpoint"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
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
	// GroupInfo and RatchetTree are the new epoch's, sent with a commit.
	// The hub has no use for them (it follows the room's public state);
	// a follower forwards them to the hub, as the update request carries
	// them.
	GroupInfo   []byte `json:"group_info"`
	RatchetTree []byte `json:"ratchet_tree"`
}

// validClientID reports whether a device's idempotency key is acceptable:
// 8 to 64 characters of A-Z a-z 0-9 . _ -. Keys of other providers' devices
// are stored as DOMAIN:KEY, which a local key can therefore never be.
func validClientID(id string) bool {
	if len(id) < 8 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// submit accepts one message into a room from a member device
// (POST /v1/rooms/{id}/messages); submitTo does the work.
func (s *Server) submit(w http.ResponseWriter, r *http.Request) error {
	var req submitRequest
	n, err := s.readJSONWithin(r, &req, s.cfg.MaxCommitBytes)
	if err != nil {
		return err
	}
	res, err := s.submitTo(r.Context(), callerOf(r), r.PathValue("id"), req, n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res.answer())
	return nil
}

// submitTo accepts one message into a room from a member device: an
// application PrivateMessage, or a proposal or commit PublicMessage. In a
// room this provider hosts, the hub checks it and, for a commit, lets it
// through only if it is the first of its epoch; in a room hosted by a
// partner it is forwarded to that hub (forward). It returns only once the
// message is durably stored and queued. The HTTP handler and the stream's
// send frames both come here, so they make the very same checks.
//
// size is the request's (or the send frame's) size in bytes.
func (s *Server) submitTo(ctx context.Context, c *caller, roomID string, req submitRequest, size int64) (acceptance, error) {
	if !validClientID(req.ClientID) {
		return acceptance{}, errBadRequest("client_id must be 8 to 64 characters of A-Z a-z 0-9 . _ -")
	}
	msg, err := mls.ParseMLSMessage(req.Message)
	if err != nil {
		return acceptance{}, errInvalidMessage(err)
	}
	// A commit (or a Welcome) carries the room's tree and may be as large
	// as MaxCommitBytes; anything else stays within MaxBodyBytes.
	if size > s.cfg.MaxBodyBytes && !isCommit(msg) {
		return acceptance{}, errTooLarge(s.cfg.MaxBodyBytes)
	}
	rs, unlock, err := s.memberRoomOf(ctx, c, roomID)
	if err != nil {
		return acceptance{}, err
	}
	if rs.room.Hub != "" {
		room := rs.room
		unlock() // the hub orders the room; nothing local to serialise
		if err := s.limit(limitKey{s.limits.user, userKey(c)}); err != nil {
			return acceptance{}, err
		}
		return s.forward(ctx, room, c, req, msg)
	}
	if err := s.limit(limitKey{s.limits.user, userKey(c)}, limitKey{s.limits.room, rs.room.ID}); err != nil {
		unlock()
		return acceptance{}, err
	}
	sender := member{uri: identity.DeviceURI(s.cfg.Domain, c.user.Handle, c.device.Name), device: c.device, user: c.user}
	return s.acceptQueued(ctx, rs, unlock, offer{sender: sender, clientID: req.ClientID, msg: msg, raw: req.Message, welcome: req.Welcome})
}

// answer is the client API's answer for an accepted message.
func (a acceptance) answer() map[string]any {
	out := map[string]any{"seq": a.seq, "epoch": a.epoch, "duplicate": a.duplicate}
	frankFields(out, a.frank, a.accepted)
	return out
}

// isCommit reports whether msg is a commit, the one message that may be
// as large as MaxCommitBytes (with its Welcome, the room's whole tree).
func isCommit(msg *mls.MLSMessage) bool {
	return msg.Public != nil && msg.Public.Content.ContentType == mls.ContentCommit
}

// offer is a message offered to a room this provider hosts, by a local
// device or, through a follower provider, by a partner's device.
type offer struct {
	sender   member
	clientID string // unique per room: the device's key, DOMAIN:KEY for a partner's device
	msg      *mls.MLSMessage
	raw      []byte
	welcome  []byte // the Welcome MLSMessage of a commit that adds members
}

// acceptance is the hub's answer to an offer.
type acceptance struct {
	seq       int64
	epoch     uint64 // the room's epoch after the message
	duplicate bool
	// accepted is the hub's acceptance time (Unix ms) and frank the
	// encoded Frank of an application message that asked for one: the
	// same values the log, the deliveries and the fanout carry.
	accepted int64
	frank    []byte
}

// accept is the hub's part: it checks an offered message against the room
// and its policy, and stores it, queued for the local devices and fanned
// out to the other providers in the room (one transaction). The caller
// holds the room's lock.
//
// The room's state is cached, and when the provider runs as several
// replicas another one may have moved the room on since this one read it.
// The store is where that shows (a Seq or Version already taken), and a
// message for an epoch newer than the cached one says it too. Either way
// the room is read again and the message checked once more against what
// is really there: only then is wrong_epoch the sender's business.
func (s *Server) accept(ctx context.Context, rs *roomState, o offer) (acceptance, error) {
	for attempt := 1; ; attempt++ {
		res, err := s.acceptOnce(ctx, rs, o)
		var stale *staleRoom
		if !errors.As(err, &stale) {
			return res, err
		}
		if attempt == maxStaleReloads {
			return acceptance{}, errWrongEpoch(stale.err)
		}
		s.metrics.staleReloads.Inc()
		if err := s.hub.refresh(ctx, rs); err != nil {
			return acceptance{}, err
		}
	}
}

// maxStaleReloads bounds how often one offer reads its room again: each
// reload follows another replica's write to the room, and a room written
// that busily elsewhere is better answered with wrong_epoch than waited on.
const maxStaleReloads = 8

// staleRoom is acceptOnce's answer when the message did not fit the cached
// room and the cache may be what is behind; err says what did not fit.
type staleRoom struct{ err error }

func (e *staleRoom) Error() string { return "the room's cached state is behind: " + e.err.Error() }

func (s *Server) acceptOnce(ctx context.Context, rs *roomState, o offer) (acceptance, error) {
	start := time.Now()
	// A retry of an accepted message gets the first answer, whatever the
	// room did since.
	if first, ok, err := s.firstAnswer(ctx, rs.room.ID, o.clientID); err != nil || ok {
		return first, err
	}

	sub := s.submissionOf(rs, o)
	var next *mls.PublicGroup
	nextMembers := rs.members
	var welcome *welcomeRoute
	switch o.msg.WireFormat {
	case mls.WireFormatPrivateMessage:
		if err := s.checkApplication(ctx, rs, o, &sub); err != nil {
			return acceptance{}, err
		}
	case mls.WireFormatPublicMessage:
		u, err := rs.group.Check(o.msg)
		if errors.Is(err, mls.ErrWrongEpoch) {
			if o.msg.Public != nil && o.msg.Public.Content.Epoch > rs.group.Epoch() {
				return acceptance{}, &staleRoom{err}
			}
			return acceptance{}, errWrongEpoch(err)
		} else if err != nil {
			return acceptance{}, errInvalidMessage(err)
		}
		if err := s.authorize(ctx, rs, o.sender, u); err != nil {
			return acceptance{}, err
		}
		if u.ContentType == mls.ContentProposal && rs.group.ProposalCount() >= maxProposalsPerEpoch {
			return acceptance{}, errForbidden("the room holds %d proposals; commit them before proposing more", maxProposalsPerEpoch)
		}
		next, err = mls.RestorePublicGroup(rs.group.MarshalState())
		if err != nil {
			return acceptance{}, err
		}
		if err := next.Apply(u); err != nil {
			return acceptance{}, errInvalidMessage(err)
		}
		sub.Epoch = rs.group.Epoch()
		sub.PrevVersion, sub.NewState, sub.NewEpoch = rs.room.Version, next.MarshalState(), next.Epoch()
		if u.ContentType == mls.ContentCommit {
			sub.Kind = store.KindCommit
			nextMembers, err = s.membersAfter(ctx, next, rs)
			if err != nil {
				return acceptance{}, err
			}
			sub.Members, err = s.roomRoles(ctx, rs, nextMembers)
			if err != nil {
				return acceptance{}, err
			}
			if len(u.Added) > 0 {
				welcome, err = s.routeWelcome(ctx, o.welcome, next.Suite(), u.Added)
				if err != nil {
					return acceptance{}, err
				}
				// Consent (docs/consent.md): the Welcome makes message
				// requests, and is not queued for users who blocked the
				// adder or declined the room.
				rc, err := s.recipientsOf(ctx, welcome.local, nextMembers)
				if err != nil {
					return acceptance{}, err
				}
				local, err := s.consentRecipients(ctx, rs.room.ID, store.KindWelcome, o.sender.uri, rc)
				if err != nil {
					return acceptance{}, err
				}
				sub.Welcome = &store.Welcome{Payload: o.welcome, Recipients: local, KeyPackages: welcome.refs}
			}
		} else {
			sub.Kind = store.KindProposal
		}
	default:
		return acceptance{}, errBadRequest("a room accepts PublicMessages and PrivateMessages, not wire format %d", o.msg.WireFormat)
	}
	if err := s.addressSub(ctx, rs, o, &sub, next, nextMembers, welcome); err != nil {
		return acceptance{}, err
	}

	// The store is asked to finish even if the caller goes away: a write
	// can land after a cancelled request, and the hub must know the truth.
	// Where the store queues writes in order, the submission goes behind
	// those acceptQueued left in flight, and its Seq must follow theirs.
	var res store.SubmitResult
	var err error
	if q, ok := s.store.(submitQueuer); ok && q.QueuesSubmissions() {
		var wait func() (store.SubmitResult, error)
		if wait, err = q.SubmitQueued(context.WithoutCancel(ctx), sub); err == nil {
			res, err = wait()
		}
	} else {
		res, err = s.store.Submit(context.WithoutCancel(ctx), sub)
	}
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			// accept reads the room again before another try.
			return acceptance{}, &staleRoom{fmt.Errorf("the room moved on; fetch its new messages and try again")}
		}
		rs.loaded = false // whatever happened, read the room again next time
		if errors.Is(err, store.ErrKeyPackageUsed) {
			// Another room's Welcome took the KeyPackage between
			// routeWelcome's check and this write.
			return acceptance{}, errKeyPackageUsedElsewhere(err)
		}
		return acceptance{}, err
	}
	if res.Duplicate {
		// Accepted by an earlier attempt that this process did not see
		// finish: the cached state may be behind.
		rs.loaded = false
		dup := acceptance{seq: res.Seq, epoch: rs.group.Epoch(), duplicate: true}
		if m, err := s.store.MessageByClientID(ctx, rs.room.ID, o.clientID); err == nil {
			dup.accepted, dup.frank = m.Accepted, m.Frank
		}
		return dup, nil
	}
	crashpoint.ReachedIf(sub.Kind == store.KindCommit, crashpoint.HubCommitStored)
	crashpoint.ReachedIf(sub.Welcome != nil, crashpoint.HubWelcomeStored)
	crashpoint.ReachedIf(sub.Kind == store.KindApplication, crashpoint.HubMessageStored)
	rs.room.LastSeq = max(rs.room.LastSeq, res.Seq)
	if next != nil {
		rs.group, rs.room.Version, rs.room.Epoch = next, rs.room.Version+1, next.Epoch()
		rs.members = nextMembers
	}
	s.metrics.accepted.WithLabelValues(string(sub.Kind)).Inc()
	s.bus.WakeDevices(sub.Recipients)
	if sub.Welcome != nil {
		rs.room.LastSeq++
		s.metrics.accepted.WithLabelValues(string(store.KindWelcome)).Inc()
		s.bus.WakeDevices(sub.Welcome.Recipients)
	}
	s.wakeOutbox(sub.Outbound)
	s.metrics.commitWait.Observe(time.Since(start).Seconds())
	return acceptance{seq: res.Seq, epoch: rs.group.Epoch(), accepted: sub.Accepted, frank: sub.Frank}, nil
}

// submitQueuer is a store that can queue a submission behind the ones
// before it without waiting for its COMMIT (store/sqlstore on SQLite); on
// other databases SubmitQueued is errors.ErrUnsupported.
type submitQueuer interface {
	QueuesSubmissions() bool
	SubmitQueued(ctx context.Context, sub store.Submission) (func() (store.SubmitResult, error), error)
}

// acceptQueued is accept for a message from a local device, called with
// the room locked; it unlocks it. An application message, which changes
// nothing but the log, holds the room's lock only to be read against the
// room and, once franked and addressed without the lock (a signature and
// a store read), to take its Seq and be queued in the store behind the
// room's earlier messages. Its COMMIT is waited for without the lock: the
// room's next messages are checked and queued meanwhile, and they all
// share the store's group commits instead of taking one each. The sender
// is still answered only once its message is durable.
//
// A queued submission that fails (a Seq taken by another replica, a
// duplicate, an error) leaves its Seq unused, so the store refuses every
// one queued after it (SubmitQueued wants each Seq to follow the last):
// the log never has a gap, and those are checked again against the room
// read afresh once everything in flight has landed.
func (s *Server) acceptQueued(ctx context.Context, rs *roomState, unlock func(), o offer) (acceptance, error) {
	q, ok := s.store.(submitQueuer)
	if !ok || !q.QueuesSubmissions() || o.msg.WireFormat != mls.WireFormatPrivateMessage {
		defer unlock()
		return s.accept(ctx, rs, o)
	}
	roomID := rs.room.ID
	for attempt := 1; ; attempt++ {
		// The room is locked here. The message is checked against a view
		// of the room: its group and members are replaced, never changed
		// in place, so the view holds while the lock is let go.
		start := time.Now()
		view := &roomState{loaded: true, room: rs.room, group: rs.group, members: rs.members}
		unlock()
		// A retry of an accepted message is not looked for here: a read
		// per message for the rare retry. One that fails its checks gets
		// the first answer below; one that passes them is found by the
		// store as a duplicate, answered with the first answer too, and
		// the room's messages queued behind it, refused as its Seq stays
		// unused, are checked again (rs.stale).
		sub := s.submissionOf(view, o)
		err := s.checkApplication(ctx, view, o, &sub)
		var remote map[string][]identity.URI
		if err == nil {
			remote, err = s.consentOf(ctx, view, o, &sub)
		}
		var stale *staleRoom
		if err != nil && !(errors.As(err, &stale) && attempt < maxStaleReloads) {
			// A retry of an accepted message gets the first answer,
			// whatever the room did since.
			if first, ok, ferr := s.firstAnswer(ctx, roomID, o.clientID); ferr != nil || ok {
				return first, ferr
			}
			if stale != nil {
				return acceptance{}, errWrongEpoch(stale.err)
			}
			return acceptance{}, err
		}
		rs.mu.Lock()
		if stale != nil || !rs.loaded || rs.stale || rs.group != view.group {
			// The view was behind, or the room moved on meanwhile: check
			// the message again against the room as it is.
			if attempt == maxStaleReloads {
				rs.mu.Unlock()
				return acceptance{}, errWrongEpoch(fmt.Errorf("the room moved on; fetch its new messages and try again"))
			}
			s.metrics.staleReloads.Inc()
			if err := s.settle(ctx, rs); err != nil {
				rs.mu.Unlock()
				return acceptance{}, err
			}
			continue
		}
		if first, ok := rs.pending[o.clientID]; ok {
			// The same message is in flight already: its answer is ours.
			rs.mu.Unlock()
			<-first.done
			if first.err == nil {
				dup := first.res
				dup.duplicate = true
				return dup, nil
			}
			// It was not accepted (or was, earlier: a duplicate).
			if ans, ok, err := s.firstAnswer(ctx, roomID, o.clientID); err != nil || ok {
				return ans, err
			}
			rs.mu.Lock() // this one tries for itself
			continue
		}
		sub.Seq = rs.nextSeq()
		sub.Outbound = s.fanoutOf(rs, sub, o, nil, rs.members, remote, nil)
		wait, err := q.SubmitQueued(context.WithoutCancel(ctx), sub)
		if err != nil {
			rs.loaded = false
			rs.mu.Unlock()
			return acceptance{}, err
		}
		rs.queued = sub.Seq
		rs.inflight.Add(1)
		mine := &pendingMsg{done: make(chan struct{}), err: errors.New("not accepted")}
		if rs.pending == nil {
			rs.pending = map[string]*pendingMsg{}
		}
		rs.pending[o.clientID] = mine
		epoch := rs.group.Epoch()
		rs.mu.Unlock()

		res, err := wait()
		rs.inflight.Done() // before locking: hub.load waits for it, locked
		rs.mu.Lock()
		delete(rs.pending, o.clientID)
		if err == nil && !res.Duplicate {
			mine.res, mine.err = acceptance{seq: res.Seq, epoch: epoch, accepted: sub.Accepted, frank: sub.Frank}, nil
		}
		close(mine.done)
		if err == nil && !res.Duplicate {
			crashpoint.Reached(crashpoint.HubMessageStored)
			rs.room.LastSeq = max(rs.room.LastSeq, res.Seq)
			rs.mu.Unlock()
			s.metrics.accepted.WithLabelValues(string(sub.Kind)).Inc()
			s.bus.WakeDevices(sub.Recipients)
			s.wakeOutbox(sub.Outbound)
			s.metrics.commitWait.Observe(time.Since(start).Seconds())
			return acceptance{seq: res.Seq, epoch: epoch, accepted: sub.Accepted, frank: sub.Frank}, nil
		}
		// The Seq handed out is unused: the ones queued after it fail.
		rs.stale = true
		switch {
		case errors.Is(err, store.ErrConflict) && attempt < maxStaleReloads:
			// Another replica wrote to the room, or one queued before
			// failed: check the message again against the room as it is.
			s.metrics.staleReloads.Inc()
			if err := s.settle(ctx, rs); err != nil {
				rs.mu.Unlock()
				return acceptance{}, err
			}
			continue
		case errors.Is(err, store.ErrConflict):
			rs.mu.Unlock()
			return acceptance{}, errWrongEpoch(fmt.Errorf("the room moved on; fetch its new messages and try again"))
		case err != nil:
			rs.loaded = false // whatever happened, read the room again next time
			rs.mu.Unlock()
			return acceptance{}, err
		}
		// A duplicate, accepted by an earlier attempt: rs.stale has the
		// room's end read again (and the rest, if it moved on).
		rs.mu.Unlock()
		if first, ok, err := s.firstAnswer(ctx, roomID, o.clientID); err != nil || ok {
			return first, err
		}
		return acceptance{seq: res.Seq, epoch: epoch, duplicate: true}, nil
	}
}

// settle reads the locked room again, as much as it needs: all of it if
// it is not loaded, else its log's end and, if another replica committed,
// the rest.
func (s *Server) settle(ctx context.Context, rs *roomState) error {
	if !rs.loaded {
		return s.hub.load(ctx, rs.room.ID, rs)
	}
	return s.hub.refresh(ctx, rs)
}

// firstAnswer is the answer an accepted message got, if the room holds one
// with this client ID (ok), for its retry.
func (s *Server) firstAnswer(ctx context.Context, roomID, clientID string) (acceptance, bool, error) {
	m, err := s.store.MessageByClientID(ctx, roomID, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return acceptance{}, false, nil
	} else if err != nil {
		return acceptance{}, false, err
	}
	epoch := m.Epoch
	if m.Kind == store.KindCommit {
		epoch++ // the first answer named the epoch the commit began
	}
	return acceptance{seq: m.Seq, epoch: epoch, duplicate: true, accepted: m.Accepted, frank: m.Frank}, true, nil
}

// submissionOf starts the submission of an offer, with the room's next Seq.
func (s *Server) submissionOf(rs *roomState, o offer) store.Submission {
	return store.Submission{
		RoomID: rs.room.ID, ClientID: o.clientID, SenderDevice: o.sender.device.ID, Sender: o.sender.uri.String(),
		Payload: o.raw, Seq: rs.nextSeq(),
		// One reading of the clock: the frank signs it, the fanout and
		// every delivery carry it, all as the same number.
		Accepted: s.now().UnixMilli(),
	}
}

// checkApplication checks an application PrivateMessage against the room
// and franks it, filling in sub.
func (s *Server) checkApplication(ctx context.Context, rs *roomState, o offer, sub *store.Submission) error {
	pm := o.msg.Private
	if !bytes.Equal(pm.GroupID, rs.group.GroupID()) {
		return errInvalidMessage(fmt.Errorf("the message is for another group"))
	}
	if pm.ContentType != mls.ContentApplication {
		return errForbidden("handshake messages must be PublicMessages so the hub can check them")
	}
	if pm.Epoch != rs.group.Epoch() {
		err := fmt.Errorf("application message for epoch %d, the room is in epoch %d", pm.Epoch, rs.group.Epoch())
		if pm.Epoch > rs.group.Epoch() {
			return &staleRoom{err}
		}
		return errWrongEpoch(err)
	}
	sub.Kind, sub.Epoch = store.KindApplication, pm.Epoch
	frank, err := s.frankOf(ctx, rs, pm, federation.IdentifierURI(o.sender.uri.UserOf().String()), uint64(sub.Accepted)) // #nosec G115 -- a millisecond timestamp of this hub's clock, not negative
	if err != nil {
		return err
	}
	sub.Frank = frank
	return nil
}

// addressSub fills in who gets a message: the room's local devices that
// consent to it, and the fanout to the other providers.
func (s *Server) addressSub(ctx context.Context, rs *roomState, o offer, sub *store.Submission, next *mls.PublicGroup, nextMembers map[mls.LeafIndex]member, welcome *welcomeRoute) error {
	remote, err := s.consentOf(ctx, rs, o, sub)
	if err != nil {
		return err
	}
	sub.Outbound = s.fanoutOf(rs, *sub, o, next, nextMembers, remote, welcome)
	return nil
}

// consentOf sets sub.Recipients to the room's local devices that get the
// message, and returns the other providers' devices by provider.
func (s *Server) consentOf(ctx context.Context, rs *roomState, o offer, sub *store.Submission) (map[string][]identity.URI, error) {
	// Everyone in the group before the message hears of it, so a removed
	// member learns it was removed; the sender's own device does not.
	var remote map[string][]identity.URI
	sub.Recipients, remote = recipients(rs.members, o.sender.uri)
	// Consent: users who declined the room, or blocked the sender of an
	// application message, get nothing of it.
	rc, err := s.recipientsOf(ctx, sub.Recipients, rs.members)
	if err != nil {
		return nil, err
	}
	if sub.Recipients, err = s.consentRecipients(ctx, rs.room.ID, sub.Kind, o.sender.uri, rc); err != nil {
		return nil, err
	}
	return remote, nil
}

// recipients splits the room's devices, except the sender, into this
// provider's (by device ID) and the others' (by provider).
func recipients(members map[mls.LeafIndex]member, except identity.URI) ([]int64, map[string][]identity.URI) {
	var local []int64
	remote := map[string][]identity.URI{}
	for _, l := range sortedLeaves(members) {
		m := members[l]
		switch {
		case m.uri == except:
		case m.local():
			local = append(local, m.device.ID)
		default:
			remote[m.domain()] = append(remote[m.domain()], m.uri)
		}
	}
	return local, remote
}

// recipientsOf pairs local devices with their users, from the room's
// members where they are found and the store otherwise. A device that no
// longer exists is left out.
func (s *Server) recipientsOf(ctx context.Context, devices []int64, members map[mls.LeafIndex]member) ([]recipient, error) {
	users := map[int64]int64{}
	for _, m := range members {
		if m.local() {
			users[m.device.ID] = m.user.ID
		}
	}
	out := make([]recipient, 0, len(devices))
	for _, d := range devices {
		u, ok := users[d]
		if !ok {
			dev, err := s.store.DeviceByID(ctx, d)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return nil, err
			}
			u = dev.UserID
		}
		out = append(out, recipient{device: d, user: u})
	}
	return out, nil
}

// welcomeRoute is where a commit's Welcome goes: local devices by ID, and
// the new members of other providers by provider.
type welcomeRoute struct {
	local  []int64
	remote map[string][]identity.URI
	refs   [][]byte // the local devices' KeyPackages, marked used with the Welcome
}

// routeWelcome addresses a commit's Welcome to the devices whose
// KeyPackages it names: this provider's by the KeyPackages it handed out,
// others' by the provider their credentials name. It is stored with the
// commit, atomically.
func (s *Server) routeWelcome(ctx context.Context, raw []byte, suite *mls.Suite, added []mls.MemberChange) (*welcomeRoute, error) {
	if len(raw) == 0 {
		return nil, errBadRequest("a commit that adds members needs its welcome")
	}
	wm, err := mls.ParseMLSMessage(raw)
	if err != nil || wm.Welcome == nil {
		return nil, errBadRequest("welcome must be a Welcome MLSMessage")
	}
	// The Welcome must be for exactly the members the commit adds: the hub
	// delivers it to devices that did not ask for it.
	want := map[string]mls.MemberChange{}
	for _, a := range added {
		want[string(a.KeyPackage.Ref(suite))] = a
	}
	if len(wm.Welcome.Secrets) != len(want) {
		return nil, errBadRequest("the welcome is for %d new members, the commit adds %d", len(wm.Welcome.Secrets), len(want))
	}
	route := &welcomeRoute{remote: map[string][]identity.URI{}}
	for _, sec := range wm.Welcome.Secrets {
		a, ok := want[string(sec.NewMember)]
		if !ok {
			return nil, errBadRequest("the welcome names a KeyPackage the commit does not add")
		}
		delete(want, string(sec.NewMember))
		m, err := s.leafMember(ctx, suite, &a.KeyPackage.LeafNode)
		if err != nil {
			return nil, err
		}
		if !m.local() {
			route.remote[m.domain()] = append(route.remote[m.domain()], m.uri)
			continue
		}
		d, err := s.store.KeyPackageDevice(ctx, sec.NewMember)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errBadRequest("the welcome names a KeyPackage this provider did not hand out")
		} else if err != nil {
			return nil, err
		}
		// A KeyPackage is used once: one welcomed before would add a
		// member who cannot read, without a fresh claim.
		if used, err := s.store.KeyPackageWelcomed(ctx, sec.NewMember); err != nil {
			return nil, err
		} else if used {
			return nil, errKeyPackageUsed(m.uri)
		}
		route.local = append(route.local, d)
		route.refs = append(route.refs, sec.NewMember)
	}
	return route, nil
}

// roomRoles carries the roles over to the group after a commit: local
// users who stay keep theirs, new ones are members, users with no device
// left go. Other providers' users have no row (they are plain members).
func (s *Server) roomRoles(ctx context.Context, rs *roomState, next map[mls.LeafIndex]member) ([]store.RoomMember, error) {
	old, err := s.store.RoomMembers(ctx, rs.room.ID)
	if err != nil {
		return nil, err
	}
	role := map[int64]store.Role{}
	for _, m := range old {
		role[m.UserID] = m.Role
	}
	seen := map[int64]bool{}
	out := []store.RoomMember{}
	for _, l := range sortedLeaves(next) {
		if !next[l].local() {
			continue
		}
		u := next[l].user.ID
		if seen[u] {
			continue
		}
		seen[u] = true
		out = append(out, store.RoomMember{RoomID: rs.room.ID, UserID: u, Role: roleOr(role, u)})
	}
	return out, nil
}

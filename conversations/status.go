package conversations

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
)

// Delivered and read reports, and typing indicators, are MIMI content
// messages like any other, encrypted end to end inside the room, with a
// single inline part of our own media types. The MIMI content draft leaves
// message status to a separate draft (draft-mahy-mimi-message-status),
// which we do not have; the report below has the same shape in spirit (a
// timestamp and a status per message ID) under a media type of ours.
const (
	// StatusType is a delivered/read report: CBOR {1: timestamp ms, 2:
	// [{1: message ID, 2: status}]}, status 1 delivered, 2 read.
	StatusType = "application/vnd.switchboard.message-status+cbor"
	// TypingType says the sender is typing in the room; its content is
	// empty.
	TypingType = "application/vnd.switchboard.typing"
)

type statusReport struct {
	Timestamp uint64          `cbor:"1,keyasint"`
	Statuses  []messageStatus `cbor:"2,keyasint"`
}

type messageStatus struct {
	ID     []byte `cbor:"1,keyasint"`
	Status uint8  `cbor:"2,keyasint"`
}

// maxReported bounds the message IDs of one report, both ways.
const maxReported = 1000

var (
	statusEnc = must(cbor.CoreDetEncOptions().EncMode())
	statusDec = must(cbor.DecOptions{
		MaxNestedLevels: 4, MaxArrayElements: maxReported, MaxMapPairs: 16,
		DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden,
	}.DecMode())
)

// must panics at start-up on options the library refuses: a programming
// error, caught by any test.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// typingFor is how long an indicator shows without a newer one; typingEvery
// bounds how often a device says it is typing.
const (
	typingFor   = 6 * time.Second
	typingEvery = 3 * time.Second
)

// receiveControl handles a message that is not for people to read: a
// status report or a typing indicator. Other media are recorded as
// messages of their type.
func (m *Messenger) receiveControl(ctx context.Context, e *client.Message, msg *content.Message, from string, own bool) error {
	switch msg.Body.ContentType {
	case StatusType:
		if own {
			return nil // this person's other device reporting: nothing to show
		}
		var r statusReport
		if err := statusDec.Unmarshal(msg.Body.Content, &r); err != nil {
			return fmt.Errorf("a status report: %w", err)
		}
		for _, st := range r.Statuses {
			var id content.ID
			if len(st.ID) != len(id) || (st.Status != 1 && st.Status != 2) {
				continue
			}
			copy(id[:], st.ID)
			if err := m.h.receipt(ctx, e.Room, id, from, Status(st.Status)+StatusSent); err != nil {
				return err
			}
			m.notify(Update{Room: e.Room, Kind: "status", ID: id})
		}
		return nil
	case TypingType:
		if own || m.opts.NoTyping {
			return nil
		}
		m.mu.Lock()
		if m.typing[e.Room] == nil {
			m.typing[e.Room] = map[string]time.Time{}
		}
		m.typing[e.Room][from] = m.opts.Now().Add(typingFor)
		m.mu.Unlock()
		m.notify(Update{Room: e.Room, Kind: "typing"})
		return nil
	}
	entry := &Entry{Room: e.Room, Seq: e.Seq, Sender: from, Own: own, Sent: e.Time,
		Text: fmt.Sprintf("[%s]", msg.Body.ContentType)}
	id, err := content.MessageID(senderURI(e.Sender), m.c.RoomURI(e.Room), e.Body)
	if err != nil {
		return err
	}
	entry.ID = id
	return m.h.add(ctx, entry)
}

// report sends a status report for messages of a room.
func (m *Messenger) report(ctx context.Context, room client.RoomID, ids []content.ID, st Status) error {
	for len(ids) > 0 {
		n := min(len(ids), maxReported)
		r := statusReport{Timestamp: uint64(m.opts.Now().UnixMilli())}
		for _, id := range ids[:n] {
			r.Statuses = append(r.Statuses, messageStatus{ID: id[:], Status: uint8(st - StatusSent)}) // #nosec G115 -- st is StatusDelivered or StatusRead here: 1 or 2
		}
		data, err := statusEnc.Marshal(r)
		if err != nil {
			return err
		}
		if _, _, err := m.send(ctx, room, content.New(content.InlinePart(StatusType, data))); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// flushDelivered reports the messages received since the last report as
// delivered, one report per room.
func (m *Messenger) flushDelivered(ctx context.Context) {
	m.flushing.Lock()
	defer m.flushing.Unlock()
	m.mu.Lock()
	pending := m.pendingRecv
	m.pendingRecv = map[client.RoomID][]content.ID{}
	m.mu.Unlock()
	for room, ids := range pending {
		// Nothing goes back for a message request until it is accepted:
		// the sender learns nothing, not even that it arrived.
		if ri, err := m.h.roomInfo(ctx, room); err != nil || ri.state == "request" || ri.state == "declined" {
			if err == nil && ri.state == "request" {
				m.mu.Lock()
				m.pendingRecv[room] = append(ids, m.pendingRecv[room]...)
				m.mu.Unlock()
			}
			continue
		}
		if err := m.report(ctx, room, ids, StatusDelivered); err != nil {
			// Kept for the next flush rather than lost, unless the room
			// will never take it: the sender would never see these
			// messages delivered.
			m.log.Warn("reporting delivery", "room", room, "err", err)
			if reportCannotGo(err) {
				continue
			}
			m.mu.Lock()
			m.pendingRecv[room] = append(ids, m.pendingRecv[room]...)
			m.mu.Unlock()
		}
	}
}

// MarkRead reports every unread message of a room as read (to their
// senders and the room) and clears its unread count: call it when the
// person has the room open.
func (m *Messenger) MarkRead(ctx context.Context, room client.RoomID) error {
	// A message request stays unread, and unreported, until accepted.
	if ri, err := m.h.roomInfo(ctx, room); err != nil || ri.state == "request" {
		return err
	}
	ids, top, err := m.h.unread(ctx, room)
	if err != nil || len(ids) == 0 {
		return err
	}
	if err := m.report(ctx, room, ids, StatusRead); err != nil {
		return err
	}
	if err := m.h.markRead(ctx, room, top); err != nil {
		return err
	}
	m.notify(Update{Room: room, Kind: "room"})
	return nil
}

// Typing tells the room this person is typing. It sends at most one
// indicator every few seconds, and none when typing indicators are off.
func (m *Messenger) Typing(ctx context.Context, room client.RoomID) error {
	if m.opts.NoTyping {
		return nil
	}
	now := m.opts.Now()
	m.mu.Lock()
	if now.Sub(m.lastTyping[room]) < typingEvery {
		m.mu.Unlock()
		return nil
	}
	m.lastTyping[room] = now
	m.mu.Unlock()
	_, _, err := m.send(ctx, room, content.New(content.InlinePart(TypingType, nil)))
	return err
}

// Typists lists who is typing in a room now.
func (m *Messenger) Typists(room client.RoomID) []string {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for who, until := range m.typing[room] {
		if now.Before(until) {
			out = append(out, who)
		} else {
			delete(m.typing[room], who)
		}
	}
	return out
}

func (m *Messenger) stopTyping(room client.RoomID, who string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.typing[room], who)
}

// ---- Expiry ----

// ExpireNow deletes the messages whose time is up and returns how many
// rooms lost messages.
func (m *Messenger) ExpireNow(ctx context.Context) (int, error) {
	rooms, err := m.h.expire(ctx, m.opts.Now())
	for _, r := range rooms {
		m.notify(Update{Room: r, Kind: "expired"})
	}
	return len(rooms), err
}

func (m *Messenger) wakeExpiry() {
	select {
	case m.expiryWake <- struct{}{}:
	default:
	}
}

// expireLoop deletes messages as they expire, sleeping until the next.
func (m *Messenger) expireLoop(ctx context.Context) {
	for {
		if _, err := m.ExpireNow(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("expiring messages", "err", err)
		}
		wait := time.Minute
		if next, err := m.h.nextExpiry(ctx); err == nil && !next.IsZero() {
			wait = min(wait, max(next.Sub(m.opts.Now()), 10*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-m.expiryWake:
			t.Stop()
		case <-t.C:
		}
	}
}

// reportCannotGo tells the errors after which a report to the room will
// never be taken, however often it is sent again.
func reportCannotGo(err error) bool {
	for _, e := range []error{client.ErrRemoved, client.ErrUnknownRoom, client.ErrForbidden,
		client.ErrNotFound, client.ErrGone, client.ErrNoConsent, client.ErrBadRequest, client.ErrTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

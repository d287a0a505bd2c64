// Package conversations is what a person's app keeps of their chats, on
// top of the SDK (package client): every message in the MIMI content
// format (package content), with replies, reactions, edits, deletions,
// files and expiry; delivered and read reports and typing indicators,
// end-to-end encrypted inside the room like any message; and a local
// history with unread counts and search. The terminal client (package
// chat) and the business inbox are built on it.
//
// The history holds plaintext: it lives only on the device, in
// history.db beside the client's state.
package conversations

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/content"
)

// Errors.
var (
	// ErrNoSuchMessage reports a message that is not in the history.
	ErrNoSuchMessage = errors.New("conversations: no such message")
	// ErrNotYours reports an edit or deletion of someone else's message.
	ErrNotYours = errors.New("conversations: not your message")
	// ErrNoFile reports SaveFile on a message without a file.
	ErrNoFile = errors.New("conversations: the message has no file")
)

// Status is how far one of this person's messages got.
type Status int

const (
	StatusNone      Status = iota // not one of this person's messages
	StatusSent                    // the room's hub has it
	StatusDelivered               // every recipient has it on at least one device
	StatusRead                    // every recipient has read it
)

func (s Status) String() string {
	return [...]string{"", "sent", "delivered", "read"}[min(int(s), 3)]
}

// Entry is one message as the person sees it: edits applied, deletions
// marked, reactions gathered.
type Entry struct {
	Room client.RoomID
	ID   content.ID // the MIMI message ID
	Seq  int64      // the room's order
	// Sender is the user: a handle for this provider's users,
	// handle@domain for others'.
	Sender   string
	Own      bool // sent by this person (from any of their devices)
	Sent     time.Time
	Text     string
	Markdown bool
	ReplyTo  *content.ID
	Edited   bool
	Deleted  bool
	Expires  time.Time // zero: never
	File     *client.Attachment
	// Reactions are the users who reacted, by emoji, in order.
	Reactions map[string][]string
	// Status is set on this person's own messages.
	Status Status

	recipients []string // own messages: the other users in the room when sent
	// Received messages: the content as received and the hub's frank,
	// kept for a report.
	content []byte
	frank   *client.Frank
}

// Conversation is one room in the person's list.
type Conversation struct {
	Room    client.RoomID
	Members []string // the other users, as Entry.Sender names them
	// Domains are the providers of the members, this person's excluded.
	Domains []string
	// ThirdParty is set when someone in the room is on another provider.
	ThirdParty bool
	Unread     int
	Last       *Entry
	// Request is set for a room someone else added this person to, until
	// they accept (by accepting, or by writing in it).
	Request bool
	Inviter string
}

// Update tells the application what changed, so it can redraw.
type Update struct {
	Room client.RoomID
	// Kind is "message" (a message, edit, deletion or reaction), "status"
	// (a delivered or read report), "typing", "room" (joined, members
	// changed, removed) or "expired".
	Kind string
	ID   content.ID // the message concerned, if any
}

// Options are an application's choices. The zero value is usable.
type Options struct {
	// NoTyping stops this device from sending typing indicators and from
	// showing others'.
	NoTyping bool
	// Now replaces time.Now (tests of expiry).
	Now    func() time.Time
	Logger *slog.Logger
}

// Messenger is one device's conversations. Its methods are safe for
// concurrent use.
type Messenger struct {
	c    *client.Client
	h    *history
	opts Options
	log  *slog.Logger
	me   string // this person, as Entry.Sender names users

	updates chan Update

	mu          sync.Mutex
	typing      map[client.RoomID]map[string]time.Time // who is typing, until when
	lastTyping  map[client.RoomID]time.Time            // when this device last said it types
	expiryWake  chan struct{}
	pendingRecv map[client.RoomID][]content.ID // delivered reports to send

	// flushing makes delivered reports go out one flush at a time: a
	// flush that found a room still a request puts its IDs back, and an
	// Accept's flush running beside it would find none and send nothing,
	// leaving the report to wait for the next message to arrive.
	flushing sync.Mutex
}

// Open makes the Messenger of a client, with its history in dir (the
// client's own directory is a good place).
func Open(c *client.Client, dir string, opts Options) (*Messenger, error) {
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := openHistory(filepath.Join(dir, "history.db"))
	if err != nil {
		return nil, err
	}
	return &Messenger{
		c: c, h: h, opts: opts, log: opts.Logger, me: c.User(),
		updates:     make(chan Update, 256),
		typing:      map[client.RoomID]map[string]time.Time{},
		lastTyping:  map[client.RoomID]time.Time{},
		expiryWake:  make(chan struct{}, 1),
		pendingRecv: map[client.RoomID][]content.ID{},
	}, nil
}

// Close closes the history (not the client).
func (m *Messenger) Close() error { return m.h.close() }

// Client is the SDK client underneath.
func (m *Messenger) Client() *client.Client { return m.c }

// Updates delivers a notice of every change. It is never closed; a slow
// reader loses the oldest notices (never the newest, and never messages:
// the history has them), so redraw from the history on any notice.
func (m *Messenger) Updates() <-chan Update { return m.updates }

// notify queues a notice. When the application lags and the queue is
// full, the oldest notice makes room: the newest must never be lost, or
// the application would show a stale state until the next change.
func (m *Messenger) notify(u Update) {
	for {
		select {
		case m.updates <- u:
			return
		default:
		}
		select {
		case <-m.updates:
		default:
		}
	}
}

// Run receives until ctx ends: it runs the client's stream, records
// everything that arrives, reports delivery, and removes messages as they
// expire.
func (m *Messenger) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- m.c.Run(ctx) }()
	go m.expireLoop(ctx)
	events := m.c.Events()
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case err := <-errc:
			return err
		case e, ok := <-events:
			if !ok {
				return client.ErrClosed
			}
			m.handle(ctx, e)
			// Drain what is queued, then report delivery once for it.
			for more := true; more; {
				select {
				case e, ok := <-events:
					if !ok {
						return client.ErrClosed
					}
					m.handle(ctx, e)
				default:
					more = false
				}
			}
			m.flushDelivered(ctx)
		}
	}
}

// Sync fetches and records what is queued for the device, without a
// stream (for tests and polling apps), and reports delivery.
func (m *Messenger) Sync(ctx context.Context) error {
	if err := m.c.Sync(ctx); err != nil {
		return err
	}
	for {
		select {
		case e, ok := <-m.c.Events():
			if !ok {
				return client.ErrClosed
			}
			m.handle(ctx, e)
		case <-time.After(20 * time.Millisecond):
			m.flushDelivered(ctx)
			_, err := m.ExpireNow(ctx)
			return err
		}
	}
}

// address names a sender as Entry.Sender does.
func (m *Messenger) address(s client.Sender) string {
	if s.Domain == "" || s.Domain == m.c.Domain() {
		return s.User
	}
	return s.User + "@" + s.Domain
}

// senderURI is the user URI the sender's message ID is computed over.
func senderURI(s client.Sender) string { return "mimi://" + s.Domain + "/u/" + s.User }

func (m *Messenger) handle(ctx context.Context, e client.Event) {
	switch e := e.(type) {
	case *client.Message:
		if err := m.receive(ctx, e); err != nil {
			m.log.Warn("message not recorded", "room", e.Room, "seq", e.Seq, "err", err)
		}
	case *client.RoomJoined:
		// Someone else added this person. The provider says whether it
		// is a message request (someone new) or not (an accepted
		// contact, another device of this person); the history keeps
		// its answer. If it cannot be asked, a request is the safe guess.
		state, inviter := "request", ""
		if req, found, err := m.providerRequest(ctx, e.Room); err != nil {
			m.log.Warn("asking the provider about a joined room", "room", e.Room, "err", err)
		} else if found {
			inviter = req.Peer
		} else {
			state = "accepted"
		}
		if err := m.h.setRoomState(ctx, e.Room, state, inviter); err != nil {
			m.log.Warn("recording a joined room", "room", e.Room, "err", err)
		}
		m.notify(Update{Room: e.Room, Kind: "room"})
	case *client.MembersChanged, *client.RemovedFromRoom:
		m.notify(Update{Room: e.EventRoom(), Kind: "room"})
	case *client.DeliveryFailed:
		m.log.Warn("a message could not be read", "room", e.Room, "seq", e.Seq, "err", e.Err)
	}
}

// receive records one decrypted message.
func (m *Messenger) receive(ctx context.Context, e *client.Message) error {
	msg, err := content.Decode(e.Body)
	if err != nil {
		return err
	}
	id, err := content.MessageID(senderURI(e.Sender), m.c.RoomURI(e.Room), e.Body)
	if err != nil {
		return err
	}
	from := m.address(e.Sender)
	if blocked, err := m.h.isBlocked(ctx, from); err != nil || blocked {
		return err // a blocked user's messages are dropped
	}
	own := e.Sender.User == m.me && (e.Sender.Domain == "" || e.Sender.Domain == m.c.Domain())
	u := Update{Room: e.Room, Kind: "message", ID: id}
	switch msg.Kind() {
	case content.KindMedia:
		return m.receiveControl(ctx, e, msg, from, own)
	case content.KindReaction:
		if msg.InReplyTo == nil {
			return fmt.Errorf("a reaction to nothing")
		}
		err = m.h.react(ctx, e.Room, *msg.InReplyTo, id, from, msg.Text())
		u.ID = *msg.InReplyTo
	case content.KindUnlike:
		err = m.h.unreact(ctx, e.Room, *msg.Replaces, from)
		if msg.InReplyTo != nil {
			u.ID = *msg.InReplyTo
		}
	case content.KindEdit:
		_, err = m.h.edit(ctx, e.Room, *msg.Replaces, from, msg.Text(), isMarkdown(msg))
		u.ID = *msg.Replaces
	case content.KindDelete:
		_, err = m.h.remove(ctx, e.Room, *msg.Replaces, from)
		u.ID = *msg.Replaces
	default:
		entry := &Entry{Room: e.Room, ID: id, Seq: e.Seq, Sender: from, Own: own, Sent: e.Time,
			Text: msg.Text(), Markdown: isMarkdown(msg), ReplyTo: msg.InReplyTo, content: e.Body, frank: e.Frank}
		if msg.Expires != nil {
			entry.Expires = msg.Expires.Deadline(m.opts.Now())
		}
		if atts := msg.Attachments(); len(atts) > 0 {
			entry.File = attachmentOf(atts[0])
			if entry.Text == "" {
				entry.Text = entry.File.Filename
			}
		}
		if entry.Text == "" && entry.File == nil {
			entry.Text = fmt.Sprintf("[%s message]", msg.Kind())
		}
		if own {
			entry.recipients = m.others(e.Room)
		}
		if err = m.h.add(ctx, entry); err != nil {
			return err
		}
		if !entry.Expires.IsZero() {
			m.wakeExpiry()
		}
		if !own {
			m.mu.Lock()
			m.pendingRecv[e.Room] = append(m.pendingRecv[e.Room], id)
			m.mu.Unlock()
		}
		m.stopTyping(e.Room, from)
	}
	if err != nil {
		return err
	}
	m.notify(u)
	return nil
}

func isMarkdown(msg *content.Message) bool {
	p, ok := msg.TextPart()
	return ok && p.MediaType() == content.TypeMarkdown
}

func attachmentOf(p *content.Part) *client.Attachment {
	x := p.External
	return &client.Attachment{URL: x.URL, MediaType: p.ContentType, Filename: x.Filename, Size: x.Size,
		EncAlg: x.EncAlg, Key: x.Key, Nonce: x.Nonce, AAD: x.AAD, HashAlg: x.HashAlg, Hash: x.ContentHash}
}

// others lists the users of a room other than this person.
func (m *Messenger) others(room client.RoomID) []string {
	all, err := m.c.Members(room)
	if err != nil {
		return nil
	}
	return slices.DeleteFunc(all, func(u string) bool { return u == m.me })
}

// ---- Sending ----

// send encrypts and posts a message, and returns its ID.
func (m *Messenger) send(ctx context.Context, room client.RoomID, msg *content.Message) (content.ID, int64, error) {
	// The sender and room go into the content, so the message commits
	// to them: a report can prove who sent it where (docs/abuse.md).
	if err := msg.SetExtension(content.SenderURIKey, m.c.UserURI()); err != nil {
		return content.ID{}, 0, err
	}
	if err := msg.SetExtension(content.RoomURIKey, m.c.RoomURI(room)); err != nil {
		return content.ID{}, 0, err
	}
	data, id, err := msg.EncodeWithID(m.c.UserURI(), m.c.RoomURI(room))
	if err != nil {
		return content.ID{}, 0, err
	}
	mid, err := m.c.Send(ctx, room, data)
	if err != nil {
		return content.ID{}, 0, err
	}
	var seq int64
	if i := strings.LastIndexByte(string(mid), '/'); i >= 0 {
		fmt.Sscan(string(mid)[i+1:], &seq) // #nosec G104 -- no number after the slash: the sequence is unknown (0)
	}
	return id, seq, nil
}

// post sends a message that people see, records it and returns it.
func (m *Messenger) post(ctx context.Context, room client.RoomID, msg *content.Message, text string, file *client.Attachment) (*Entry, error) {
	id, seq, err := m.send(ctx, room, msg)
	if err != nil {
		return nil, err
	}
	e := &Entry{Room: room, ID: id, Seq: seq, Sender: m.me, Own: true, Sent: m.opts.Now(), Text: text,
		Markdown: isMarkdown(msg), ReplyTo: msg.InReplyTo, File: file, recipients: m.others(room)}
	if msg.Expires != nil {
		e.Expires = msg.Expires.Deadline(m.opts.Now())
		m.wakeExpiry()
	}
	if err := m.h.add(ctx, e); err != nil {
		return nil, err
	}
	// Writing in a room accepts it.
	if ri, err := m.h.roomInfo(ctx, room); err == nil && ri.state == "request" {
		if err := m.Accept(ctx, room); err != nil {
			return nil, err
		}
	} else if err := m.h.setRoomState(ctx, room, "accepted", ""); err != nil {
		return nil, err
	}
	m.notify(Update{Room: room, Kind: "message", ID: id})
	return m.h.entry(ctx, room, id)
}

// Send sends a text message.
func (m *Messenger) Send(ctx context.Context, room client.RoomID, text string) (*Entry, error) {
	return m.post(ctx, room, content.Text(text), text, nil)
}

// SendExpiring sends a text message that every device deletes the given
// time after it arrives.
func (m *Messenger) SendExpiring(ctx context.Context, room client.RoomID, text string, after time.Duration) (*Entry, error) {
	return m.post(ctx, room, content.Text(text).WithExpiry(content.ExpiresAfter(after)), text, nil)
}

// Reply sends a text message in reply to another.
func (m *Messenger) Reply(ctx context.Context, room client.RoomID, to content.ID, text string) (*Entry, error) {
	if _, err := m.h.entry(ctx, room, to); err != nil {
		return nil, err
	}
	return m.post(ctx, room, content.Reply(to, content.TextPart(text)), text, nil)
}

// React adds an emoji reaction to a message.
func (m *Messenger) React(ctx context.Context, room client.RoomID, to content.ID, emoji string) error {
	if _, err := m.h.entry(ctx, room, to); err != nil {
		return err
	}
	id, _, err := m.send(ctx, room, content.Reaction(to, emoji))
	if err != nil {
		return err
	}
	if err := m.h.react(ctx, room, to, id, m.me, emoji); err != nil {
		return err
	}
	m.notify(Update{Room: room, Kind: "message", ID: to})
	return nil
}

// Unreact withdraws this person's reaction with emoji to a message.
func (m *Messenger) Unreact(ctx context.Context, room client.RoomID, to content.ID, emoji string) error {
	rid, err := m.h.ownReaction(ctx, room, to, m.me, emoji)
	if err != nil {
		return err
	}
	if _, _, err := m.send(ctx, room, content.Unlike(rid).WithReplyTo(to)); err != nil {
		return err
	}
	if err := m.h.unreact(ctx, room, rid, m.me); err != nil {
		return err
	}
	m.notify(Update{Room: room, Kind: "message", ID: to})
	return nil
}

// own finds one of this person's messages.
func (m *Messenger) own(ctx context.Context, room client.RoomID, id content.ID) (*Entry, error) {
	e, err := m.h.entry(ctx, room, id)
	if err != nil {
		return nil, err
	}
	if e.Sender != m.me {
		return nil, ErrNotYours
	}
	return e, nil
}

// Edit replaces the text of one of this person's messages.
func (m *Messenger) Edit(ctx context.Context, room client.RoomID, id content.ID, text string) error {
	if _, err := m.own(ctx, room, id); err != nil {
		return err
	}
	if _, _, err := m.send(ctx, room, content.Edit(id, content.TextPart(text))); err != nil {
		return err
	}
	if _, err := m.h.edit(ctx, room, id, m.me, text, false); err != nil {
		return err
	}
	m.notify(Update{Room: room, Kind: "message", ID: id})
	return nil
}

// Delete retracts one of this person's messages, for everyone.
func (m *Messenger) Delete(ctx context.Context, room client.RoomID, id content.ID) error {
	if _, err := m.own(ctx, room, id); err != nil {
		return err
	}
	if _, _, err := m.send(ctx, room, content.Delete(id)); err != nil {
		return err
	}
	if _, err := m.h.remove(ctx, room, id, m.me); err != nil {
		return err
	}
	m.notify(Update{Room: room, Kind: "message", ID: id})
	return nil
}

// SendFile encrypts a file, uploads it to this person's provider and
// sends it.
func (m *Messenger) SendFile(ctx context.Context, room client.RoomID, r io.Reader, name, mediaType string) (*Entry, error) {
	if mediaType == "" {
		mediaType = "application/octet-stream"
	}
	a, err := m.c.Upload(ctx, r, mediaType, name)
	if err != nil {
		return nil, err
	}
	x := content.External{URL: a.URL, Size: a.Size, EncAlg: a.EncAlg, Key: a.Key, Nonce: a.Nonce, AAD: a.AAD,
		HashAlg: a.HashAlg, ContentHash: a.Hash, Filename: name}
	return m.post(ctx, room, content.Attachment(mediaType, x), name, &a)
}

// SaveFile downloads and decrypts the file of a message.
func (m *Messenger) SaveFile(ctx context.Context, room client.RoomID, id content.ID) ([]byte, *client.Attachment, error) {
	e, err := m.h.entry(ctx, room, id)
	if err != nil {
		return nil, nil, err
	}
	if e.File == nil {
		return nil, nil, ErrNoFile
	}
	data, err := m.c.Download(ctx, *e.File)
	return data, e.File, err
}

// ---- Reading ----

// History returns up to limit messages of a room before seq (0: the
// newest), oldest first.
func (m *Messenger) History(ctx context.Context, room client.RoomID, before int64, limit int) ([]Entry, error) {
	return m.h.page(ctx, room, before, limit)
}

// Message returns one message.
func (m *Messenger) Message(ctx context.Context, room client.RoomID, id content.ID) (*Entry, error) {
	return m.h.entry(ctx, room, id)
}

// Search finds messages containing text, in every room, newest first.
func (m *Messenger) Search(ctx context.Context, text string, limit int) ([]Entry, error) {
	return m.h.search(ctx, text, limit)
}

// Conversations lists the person's rooms, the most recent first.
func (m *Messenger) Conversations(ctx context.Context) ([]Conversation, error) {
	var out []Conversation
	for _, room := range m.c.Rooms() {
		ri, err := m.h.roomInfo(ctx, room)
		if err != nil {
			return nil, err
		}
		if ri.state == "declined" {
			continue
		}
		cv := Conversation{Room: room, Members: m.others(room), Unread: ri.unread, Last: ri.last,
			Request: ri.state == "request", Inviter: ri.inviter}
		domains := map[string]bool{}
		for _, u := range cv.Members {
			if i := strings.LastIndexByte(u, '@'); i >= 0 {
				domains[u[i+1:]] = true
			}
		}
		cv.Domains = slices.Sorted(maps.Keys(domains))
		cv.ThirdParty = len(cv.Domains) > 0
		out = append(out, cv)
	}
	slices.SortStableFunc(out, func(a, b Conversation) int { return lastTime(b).Compare(lastTime(a)) })
	return out, nil
}

func lastTime(c Conversation) time.Time {
	if c.Last == nil {
		return time.Time{}
	}
	return c.Last.Sent
}

// Accept takes a room out of the requests: the provider makes the
// inviter an accepted contact (and tells their provider), and the
// delivered reports held back while it was a request go out.
func (m *Messenger) Accept(ctx context.Context, room client.RoomID) error {
	if err := m.answer(ctx, room, m.c.AcceptRequest); err != nil {
		return err
	}
	if err := m.h.setRoomState(ctx, room, "accepted", ""); err != nil {
		return err
	}
	m.flushDelivered(ctx)
	m.notify(Update{Room: room, Kind: "room"})
	return nil
}

// Decline hides a requested room; the provider delivers nothing more of
// it to this person. Nobody is told.
func (m *Messenger) Decline(ctx context.Context, room client.RoomID) error {
	if err := m.answer(ctx, room, m.c.DeclineRequest); err != nil {
		return err
	}
	if err := m.h.setRoomState(ctx, room, "declined", ""); err != nil {
		return err
	}
	m.notify(Update{Room: room, Kind: "room"})
	return nil
}

// Block blocks user at the provider (no key material for them, none of
// their messages, their requests declined), declines the room, and drops
// every later message of user, in any room, on this device too.
func (m *Messenger) Block(ctx context.Context, room client.RoomID, user string) error {
	if err := m.c.Block(ctx, user); err != nil {
		return err
	}
	if err := m.h.block(ctx, user, true); err != nil {
		return err
	}
	return m.Decline(ctx, room)
}

// providerRequest finds the provider's pending request for a room.
func (m *Messenger) providerRequest(ctx context.Context, room client.RoomID) (client.Request, bool, error) {
	rs, err := m.c.Requests(ctx)
	if err != nil {
		return client.Request{}, false, err
	}
	for _, r := range rs {
		if r.Room == room {
			return r, true, nil
		}
	}
	return client.Request{}, false, nil
}

// answer gives the provider this person's answer to the room's request,
// if it holds one: none (a room this person made, one answered already
// or from another device) is not an error.
func (m *Messenger) answer(ctx context.Context, room client.RoomID, give func(context.Context, string, client.RoomID) error) error {
	req, found, err := m.providerRequest(ctx, room)
	if err != nil || !found {
		return err
	}
	if err := give(ctx, req.Peer, room); err != nil && !errors.Is(err, client.ErrNotFound) {
		return err
	}
	return nil
}

// Setting and SetSetting keep an application's choices in the history.
func (m *Messenger) Setting(ctx context.Context, key string) (string, error) {
	return m.h.setting(ctx, key)
}

// SetSetting keeps an application's choice.
func (m *Messenger) SetSetting(ctx context.Context, key, value string) error {
	return m.h.setSetting(ctx, key, value)
}

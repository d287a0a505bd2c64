package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/mls"
)

// wireMessage is a message object of the stream, the inbox and a room's
// log (docs/api.md).
type wireMessage struct {
	ID     string `json:"id"`
	Room   RoomID `json:"room"`
	Seq    int64  `json:"seq"`
	Kind   string `json:"kind"`
	Epoch  uint64 `json:"epoch"`
	Sender struct {
		User   string `json:"user"`
		Device string `json:"device"`
		Domain string `json:"domain"`
	} `json:"sender"`
	Payload []byte    `json:"payload"`
	Created time.Time `json:"created"`
	Hub     string    `json:"hub"`
	// Frank and AcceptedTimestamp are the hub's stamp on an application
	// message that carries a franking tag (docs/abuse.md).
	Frank             []byte `json:"frank"`
	AcceptedTimestamp uint64 `json:"accepted_timestamp"`

	// unreadable is why some of the message's fields did not read
	// (decodeStreamFrame); nil for a message read whole.
	unreadable error
}

// frame is one entry of the device's queue: a stream frame or an inbox
// entry (which has no type and always a message).
type frame struct {
	Type        string       `json:"type"`
	Cursor      int64        `json:"cursor"`
	Message     *wireMessage `json:"message"`
	CipherSuite uint16       `json:"cipher_suite"`
	Available   int          `json:"available"`
	Device      string       `json:"device"`
}

// decodeStreamFrame reads one frame of the stream: an answer to a send,
// or a queue entry. A message whose fields do not all read (a provider of
// another version, say) is still returned if its cursor, room and seq do,
// marked unreadable: the device then reports it as a DeliveryFailed
// instead of passing over it in silence, its cursor acknowledged with
// the entries after it. Only a frame that cannot be placed is an error.
func decodeStreamFrame(data []byte) (f frame, a *sendAnswer, err error) {
	ferr := json.Unmarshal(data, &f)
	if ferr != nil || f.Type == "sent" || f.Type == "send_error" {
		// An answer to a send (whose message is a string: it does not
		// read as a frame).
		var ans sendAnswer
		if json.Unmarshal(data, &ans) == nil && (ans.Type == "sent" || ans.Type == "send_error") {
			return frame{}, &ans, nil
		}
	}
	if ferr == nil {
		return f, nil, nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(ferr, &te) && f.Cursor > 0 && f.Message != nil && validRoomID(f.Message.Room) && f.Message.Seq > 0 {
		// json.Unmarshal filled in every field that did read.
		f.Message.unreadable = ferr
		return f, nil, nil
	}
	return frame{}, nil, ferr
}

// batch collects what processing changed, so that it is saved once, in
// the right order (rooms, then KeyPackages, then the cursor), before
// anything is acknowledged or shown to the application.
type batch struct {
	rooms map[RoomID]*roomEntry
	kps   bool
	// usedKPs are the KeyPackages whose Welcomes joined rooms, by room:
	// given back if the room cannot be saved.
	usedKPs map[RoomID]*keyPackageState
	cursor  int64
	events  []Event
}

func newBatch() *batch { return &batch{rooms: map[RoomID]*roomEntry{}} }

func (b *batch) dirty(r *roomEntry) { b.rooms[r.st.Room] = r }

func (b *batch) fail(r RoomID, seq int64, err error) {
	b.events = append(b.events, &DeliveryFailed{Room: r, Seq: seq, Err: err})
}

// membersChanged records a MembersChanged event if the users differ.
func (b *batch) membersChanged(room RoomID, before, after map[string]bool) {
	e := &MembersChanged{Room: room}
	for u := range after {
		if !before[u] {
			e.Added = append(e.Added, u)
		}
	}
	for u := range before {
		if !after[u] {
			e.Removed = append(e.Removed, u)
		}
	}
	if len(e.Added)+len(e.Removed) > 0 {
		e.Added = sortedUsers(toSet(e.Added))
		e.Removed = sortedUsers(toSet(e.Removed))
		b.events = append(b.events, e)
	}
}

func toSet(list []string) map[string]bool {
	s := map[string]bool{}
	for _, x := range list {
		s[x] = true
	}
	return s
}

// cursorSaveInterval is how often, at most, the cursor file is written.
const cursorSaveInterval = time.Second

// flushLocked saves what the batch changed. Each room file is the commit
// point of that room's part of the batch: once it is written, its last
// seq counts the batch's messages of the room, which are then skipped
// when delivered again, so their events must reach the application. A
// room whose save fails is reloaded from disk, so that memory never runs
// ahead of what is saved, and its events are dropped; the cursor then
// stays where it was, nothing is acknowledged, and the provider delivers
// the batch again. The other rooms are saved all the same: one room that
// cannot be written must not hold the rest back.
func (c *Client) flushLocked(b *batch) error {
	var err error
	var failed map[RoomID]bool
	for id, r := range b.rooms {
		if serr := c.saveRoomLocked(r); serr != nil {
			if failed == nil {
				failed = map[RoomID]bool{}
				err = serr
			}
			failed[id] = true
		}
	}
	for id := range failed {
		c.reloadRoomLocked(id) // #nosec G104 -- it logs and sets the room aside itself
		if kp := b.usedKPs[id]; kp != nil {
			// The room is not joined on disk: the KeyPackage must open
			// its Welcome when it is delivered again.
			c.kps[hex.EncodeToString(kp.Ref)] = kp
		}
	}
	if b.kps || c.kpsUnsaved {
		// Written even when a room failed: the KeyPackages used by the
		// rooms that were saved are of no further use.
		if kerr := c.saveKeyPackagesLocked(); kerr != nil {
			c.kpsUnsaved = true
			if err == nil {
				err = kerr
			}
		} else {
			c.kpsUnsaved = false
		}
	}
	if err == nil && b.cursor > c.cursor {
		// The cursor file is only where a restarted stream begins: the
		// rooms' last seqs, saved above, are the record of what was
		// processed and skip anything delivered again. So it is written
		// at most once per cursorSaveInterval (and at Close), not after
		// every batch, where it cost a second synced file write per
		// message received; a crash makes the provider deliver at most
		// that interval's entries again.
		if now := time.Now(); now.Sub(c.cursorSaved) >= cursorSaveInterval {
			if err = c.store.saveCursor(b.cursor); err == nil {
				c.cursorOnDisk, c.cursorSaved = b.cursor, now
			}
		}
		if err == nil {
			c.cursor = b.cursor
		}
	}
	if err == nil {
		return nil
	}
	// Only the events of rooms saved above are handed over. Any other
	// (a refused Welcome to a room this device is not in) comes again
	// with the batch.
	kept := b.events[:0]
	for _, e := range b.events {
		if id := e.EventRoom(); b.rooms[id] != nil && !failed[id] {
			kept = append(kept, e)
		}
	}
	clear(b.events[len(kept):])
	b.events = kept
	return err
}

// reloadRoomLocked replaces a room's memory with what is on disk, or
// forgets the room if nothing is (a Welcome whose room was never saved:
// it comes again). If the file is there but cannot be read now, the room
// is set aside in c.unloaded rather than forgotten: forgetting it would
// make the device pass over the room's messages as those of a room it is
// not in, and acknowledge them.
func (c *Client) reloadRoomLocked(id RoomID) error {
	delete(c.rooms, id)
	st, err := c.store.loadRoom(id)
	if errors.Is(err, fs.ErrNotExist) {
		delete(c.unloaded, id)
		return nil
	}
	var r *roomEntry
	if err == nil {
		r = &roomEntry{st: st, tree: st.Tree}
		if !st.Removed {
			r.g, err = c.restoreGroup(st)
		}
	}
	if err != nil {
		c.log.Error("room state unreadable", "room", id, "err", err)
		if c.unloaded == nil {
			c.unloaded = map[RoomID]error{}
		}
		c.unloaded[id] = err
		return fmt.Errorf("client: room %s: state unreadable: %w", id, err)
	}
	delete(c.unloaded, id)
	c.rooms[id] = r
	return nil
}

// loadSetAsideLocked tries again to load a room set aside by
// reloadRoomLocked. It returns an error while the room still cannot be
// read, so that nothing of it is processed (and acknowledged) meanwhile.
func (c *Client) loadSetAsideLocked(id RoomID) error {
	if _, ok := c.unloaded[id]; !ok {
		return nil
	}
	return c.reloadRoomLocked(id)
}

// applyLocked processes one message of a room's log. It returns an error
// only when the device could not do its part (the network, during a
// pending commit's resolution); a message that is bad in itself becomes a
// DeliveryFailed event and is passed over.
func (c *Client) applyLocked(ctx context.Context, m *wireMessage, b *batch) error {
	if err := c.loadSetAsideLocked(m.Room); err != nil {
		return err
	}
	r := c.rooms[m.Room]
	if r == nil || r.st.Removed {
		if m.Kind == "welcome" {
			if m.unreadable != nil {
				b.fail(m.Room, m.Seq, fmt.Errorf("%w: %w", ErrUnreadableMessage, m.unreadable))
				return nil
			}
			return c.applyWelcomeLocked(m, b)
		}
		// A room this device is not (or no longer) in: nothing to do.
		return nil
	}
	if m.Seq <= r.st.LastSeq {
		return nil // a redelivery: exactly once to the application
	}
	if p := r.st.Pending; p != nil {
		if p.Seq == 0 {
			if err := c.resolvePendingLocked(ctx, r, b); err != nil {
				return err
			}
			if r.st.Removed || m.Seq <= r.st.LastSeq {
				return nil
			}
		}
		if p := r.st.Pending; p != nil && p.Seq > 0 && m.Seq >= p.Seq {
			// Everything the hub ordered before this device's commit has
			// been processed in the old epoch: now the commit takes effect.
			if err := c.mergeOwnLocked(r, b); err != nil {
				return err
			}
			if m.Seq == p.Seq {
				return nil // the commit itself, echoed back
			}
		}
	}
	b.dirty(r)
	seq := m.Seq
	r.st.LastSeq = seq
	if m.unreadable != nil {
		b.fail(r.st.Room, seq, fmt.Errorf("%w: %w", ErrUnreadableMessage, m.unreadable))
		return nil
	}
	if m.Kind == "welcome" {
		// A Welcome for other devices, or this device's own again.
		return nil
	}
	if m.Kind == "application" && m.Sender.User == c.dev.User && m.Sender.Device == c.dev.Device &&
		(m.Sender.Domain == "" || m.Sender.Domain == c.dev.Domain) {
		// This device's own message: it cannot decrypt it (the key was
		// used up in sending) and the application already has it.
		return nil
	}
	msg, err := mls.ParseMLSMessage(m.Payload)
	if err != nil {
		b.fail(r.st.Room, seq, err)
		return nil
	}
	// Who is in the room is needed only to report what a commit changed;
	// finding it costs a look-up per member, which in a large room every
	// application message would otherwise pay.
	var before map[string]bool
	if isCommitMessage(msg) {
		before = c.usersOf(r.g)
	}
	recv, err := r.g.ProcessMessage(msg)
	if err != nil {
		if errors.Is(err, mls.ErrWrongEpoch) && messageEpoch(msg) < r.st.JoinedEpoch {
			// Sent before this device joined: it was never meant to
			// read it.
			return nil
		}
		c.log.Warn("message refused", "room", r.st.Room, "seq", seq, "kind", m.Kind, "err", err)
		b.fail(r.st.Room, seq, err)
		return nil
	}
	switch recv.ContentType {
	case mls.ContentApplication:
		leaf := r.g.Tree().Leaf(recv.Sender.Leaf)
		if leaf == nil {
			b.fail(r.st.Room, seq, fmt.Errorf("%w: sender leaf %d is empty", mls.ErrInvalidSender, recv.Sender.Leaf))
			return nil
		}
		who, err := c.verifier.leafMember(leaf)
		if err != nil {
			b.fail(r.st.Room, seq, err)
			return nil
		}
		if err := checkFrankingTag(recv.AuthenticatedData, recv.ApplicationData); err != nil {
			// The sender committed to other content than it sent: the
			// message could not be reported, so it is not shown.
			b.fail(r.st.Room, seq, err)
			return nil
		}
		id := MessageID(m.ID)
		if id == "" {
			id = MessageID(string(r.st.Room) + "/" + strconv.FormatInt(seq, 10))
		}
		b.events = append(b.events, &Message{
			ID:     id,
			Room:   r.st.Room,
			Sender: Sender{User: who.User, Device: who.Device, Domain: who.Domain},
			Body:   recv.ApplicationData,
			Seq:    seq,
			Time:   m.Created,
			Frank:  frankOf(m),
		})
	case mls.ContentCommit:
		if recv.Commit != nil && recv.Commit.RemovedSelf {
			// The group's secrets are of no further use; keeping them
			// would only keep old keys on disk.
			r.st.Removed = true
			r.st.Group = nil
			r.g = nil
			b.events = append(b.events, &RemovedFromRoom{Room: r.st.Room})
			return nil
		}
		b.membersChanged(r.st.Room, before, c.usersOf(r.g))
	}
	return nil
}

// messageEpoch is the epoch an MLS message was sent in.
func messageEpoch(m *mls.MLSMessage) uint64 {
	switch {
	case m.Public != nil:
		return m.Public.Content.Epoch
	case m.Private != nil:
		return m.Private.Epoch
	}
	return 0
}

// isCommitMessage reports whether msg carries a commit, in the clear or
// encrypted (the content type is outside the encryption either way).
func isCommitMessage(msg *mls.MLSMessage) bool {
	switch {
	case msg.Public != nil:
		return msg.Public.Content.ContentType == mls.ContentCommit
	case msg.Private != nil:
		return msg.Private.ContentType == mls.ContentCommit
	}
	return false
}

// applyWelcomeLocked joins a room with a Welcome for one of this device's
// KeyPackages.
func (c *Client) applyWelcomeLocked(m *wireMessage, b *batch) error {
	if !validRoomID(m.Room) {
		c.log.Warn("welcome for an unusable room id", "room", m.Room)
		return nil
	}
	msg, err := mls.ParseMLSMessage(m.Payload)
	if err != nil || msg.Welcome == nil {
		b.fail(m.Room, m.Seq, fmt.Errorf("%w: not a Welcome: %v", mls.ErrInvalidWelcome, err))
		return nil
	}
	var kp *keyPackageState
	for _, s := range msg.Welcome.Secrets {
		if k := c.kps[hex.EncodeToString(s.NewMember)]; k != nil {
			kp = k
			break
		}
	}
	if kp == nil {
		// Not for this device, or for a KeyPackage already used: a
		// redelivered Welcome of a room this device has since left.
		return nil
	}
	priv, err := c.keyPackagePrivate(kp)
	if err != nil {
		return err
	}
	g, err := mls.JoinFromWelcome(msg.Welcome, priv, nil, c.groupConfig())
	if err != nil {
		b.fail(m.Room, m.Seq, err)
		return nil
	}
	if !roomMatchesGroup(m.Room, g.GroupID()) {
		b.fail(m.Room, m.Seq, fmt.Errorf("%w: Welcome to group %x delivered as room %s", mls.ErrInvalidWelcome, g.GroupID(), m.Room))
		return nil
	}
	// Authenticate every member before joining: a group with a member
	// whose credential the provider's CA did not issue is not one to
	// speak in.
	for l, leaf := range g.Members() {
		if _, err := c.verifier.leafMember(leaf); err != nil {
			b.fail(m.Room, m.Seq, fmt.Errorf("member at leaf %d: %w", l, err))
			return nil
		}
	}
	r := &roomEntry{st: &roomState{Room: m.Room, Hub: m.Hub, LastSeq: m.Seq, JoinedEpoch: g.Epoch()}, g: g}
	c.rooms[m.Room] = r
	b.dirty(r)
	if !kp.LastResort {
		// A KeyPackage's keys are used once; forgetting them means a
		// replayed Welcome cannot be opened again.
		delete(c.kps, hex.EncodeToString(kp.Ref))
		b.kps = true
		if b.usedKPs == nil {
			b.usedKPs = map[RoomID]*keyPackageState{}
		}
		b.usedKPs[m.Room] = kp
	}
	b.events = append(b.events, &RoomJoined{Room: m.Room})
	return nil
}

// catchUpLocked processes a room's log from the room's last seq, up to
// and including seq until (0: to the end). It reads the room's log rather
// than the device's queue so that one room can be brought up to date in
// the middle of an operation on it; what it processes is skipped when the
// queue delivers it later.
func (c *Client) catchUpLocked(ctx context.Context, r *roomEntry, until int64, b *batch) error {
	for {
		if r.st.Removed || (until > 0 && r.st.LastSeq >= until) {
			return nil
		}
		start := r.st.LastSeq
		q := url.Values{"after": {strconv.FormatInt(start, 10)}, "limit": {"100"}}
		var resp struct {
			Messages []wireMessage `json:"messages"`
		}
		if err := c.call(ctx, http.MethodGet, "/v1/rooms/"+url.PathEscape(string(r.st.Room))+"/messages", q, nil, &resp); err != nil {
			return fmt.Errorf("client: catch up room %s: %w", r.st.Room, err)
		}
		for i := range resp.Messages {
			m := &resp.Messages[i]
			if m.Room == "" {
				m.Room = r.st.Room
			}
			if m.Room != r.st.Room || (until > 0 && m.Seq > until) {
				continue
			}
			if err := c.applyLocked(ctx, m, b); err != nil {
				return err
			}
			if r.st.Removed {
				return nil
			}
		}
		if r.st.LastSeq <= start {
			return nil // the log has nothing newer
		}
	}
}

// housekeepingInterval is how often a long-lived stream checks KeyPackage
// stock and the user's devices on its own.
const housekeepingInterval = 10 * time.Minute

// streamBatch bounds how many stream frames are processed and saved
// together.
const streamBatch = 200

// processFrames applies a run of queue entries in order, saves the
// result, and returns the cursor that may now be acknowledged. Events are
// handed to the application only after everything is saved.
func (c *Client) processFrames(ctx context.Context, frames []frame) (int64, error) {
	c.mu.Lock()
	if c.closed.Load() {
		// Nothing more is applied once Close has run: an entry saved as
		// processed must reach the application, and after Close it could not.
		cursor := c.cursor
		c.mu.Unlock()
		return cursor, ErrClosed
	}
	b := newBatch()
	var err error
	for _, f := range frames {
		if f.Message != nil {
			if err = c.applyLocked(ctx, f.Message, b); err != nil {
				break
			}
		}
		b.cursor = max(b.cursor, f.Cursor)
	}
	if ferr := c.flushLocked(b); err == nil {
		err = ferr
	}
	cursor := c.cursor
	// Hand the events over before letting Close in (it takes c.mu), so
	// that nothing saved as processed is dropped.
	c.events.push(b.events...)
	c.mu.Unlock()
	return cursor, err
}

func (c *Client) currentCursor() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cursor
}

// handleControl acts on a queue entry that is not a message.
func (c *Client) handleControl(ctx context.Context, f *frame) {
	switch f.Type {
	case "keypackages.low":
		if f.CipherSuite != 0 && f.CipherSuite != c.dev.Suite {
			return
		}
		if err := c.uploadKeyPackages(ctx, c.opts.KeyPackageBatch, false); err != nil {
			c.log.Warn("replenishing key packages", "err", err)
		}
	case "device.added":
		if f.Device == c.dev.Device {
			return
		}
		if err := c.reconcileDevices(ctx, true); err != nil {
			c.log.Warn("adding own new device", "device", f.Device, "err", err)
		}
	}
}

// housekeeping does what the provider's notices ask for, in case they were
// missed: it replenishes KeyPackages and adds the user's new devices.
func (c *Client) housekeeping(ctx context.Context) error {
	if err := c.refreshPartners(ctx); err != nil {
		return err
	}
	if err := c.checkKeyPackages(ctx); err != nil {
		return err
	}
	return c.reconcileDevices(ctx, false)
}

// Sync fetches and processes everything queued for this device over plain
// HTTP (GET /v1/inbox), acknowledging as it goes, until the queue is
// empty. It is for tests, for catching up without a WebSocket, and for
// applications that poll.
func (c *Client) Sync(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	for {
		after := c.currentCursor()
		q := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {"100"}}
		var resp struct {
			Entries []frame `json:"entries"`
		}
		if err := c.call(ctx, http.MethodGet, "/v1/inbox", q, nil, &resp); err != nil {
			return fmt.Errorf("client: sync: %w", err)
		}
		if len(resp.Entries) == 0 {
			return c.housekeeping(ctx)
		}
		cursor, err := c.processFrames(ctx, resp.Entries)
		if cursor > after {
			if aerr := c.call(ctx, http.MethodPost, "/v1/inbox/ack", nil, map[string]int64{"cursor": cursor}, nil); aerr != nil && err == nil {
				err = aerr
			}
		}
		for i := range resp.Entries {
			if f := &resp.Entries[i]; f.Message == nil && f.Type != "" {
				c.handleControl(ctx, f)
			}
		}
		if err != nil {
			return err
		}
		if cursor <= after {
			return c.housekeeping(ctx)
		}
	}
}

// Run keeps a WebSocket to the provider and processes the device's queue
// as it arrives, until ctx ends (it then returns ctx's error). A lost
// connection is made again with exponential backoff; the saved cursor
// makes the provider resend what was not yet acknowledged.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("client: Run is already running")
	}
	defer c.running.Store(false)
	const minBackoff, maxBackoff = 250 * time.Millisecond, 30 * time.Second
	backoff := minBackoff
	for {
		if c.closed.Load() {
			return ErrClosed
		}
		connected, err := c.stream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if connected {
			backoff = minBackoff
		}
		c.log.Info("stream disconnected", "err", err, "retry_in", backoff)
		// Jitter keeps a provider's devices from all reconnecting in the
		// same instant after it restarts.
		if err := sleep(ctx, backoff+rand.N(backoff/2)); err != nil { // #nosec G404 -- jitter of a retry, not a secret
			return err
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// stream runs one WebSocket connection; connected reports whether the
// connection was established (so that backoff starts over).
func (c *Client) stream(ctx context.Context) (connected bool, err error) {
	tok, err := c.token(ctx)
	if err != nil {
		return false, err
	}
	after := c.currentCursor()
	u := *c.api.base
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path += "/v1/stream"
	u.RawQuery = url.Values{"after": {strconv.FormatInt(after, 10)}}.Encode()
	conn, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient: c.api.http,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			// The session expired: sign in afresh on the next attempt.
			c.tokenMu.Lock()
			c.api.token = ""
			c.tokenMu.Unlock()
		}
		return false, err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxResponse)
	// A reader goroutine lets the loop below take every frame that has
	// already arrived as one batch: one save and one acknowledgement for
	// many messages, which is what makes catching up after a long absence
	// fast (each save is an fsync). It hands answers to sends straight to
	// the sends waiting for them.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := newInbound()
	ss := newStreamSender(conn)
	go func() {
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				// Sends waiting for an answer learn at once that none
				// will come: one of them may hold the client's lock,
				// which the loop below needs before it can return.
				ss.close()
				in.end(err)
				return
			}
			f, a, ferr := decodeStreamFrame(data)
			if a != nil {
				ss.answered(*a)
				continue
			}
			if ferr != nil {
				c.log.Warn("unreadable stream frame", "err", ferr)
				continue
			}
			// Hold back while the loop has plenty to do, unless a send
			// waits for its answer, which may be behind.
			n := in.add(f)
			for n >= streamBatch && !ss.busy() {
				select {
				case <-in.taken:
				case <-ss.started:
				case <-ctx.Done():
					ss.close()
					in.end(ctx.Err())
					return
				}
				n = in.held()
			}
		}
	}()
	// Sends go over this stream from now on, until it ends; those still
	// waiting then are posted over HTTP.
	c.sender.Store(ss)
	defer func() {
		c.sender.CompareAndSwap(ss, nil)
		ss.close()
	}()
	// Notices sent while the device was away are lost; catch up on what
	// they would have said. The reader holds the queue meanwhile, or
	// reads on while a commit this makes waits for its answer.
	if err := c.housekeeping(ctx); err != nil {
		c.log.Warn("housekeeping", "err", err)
	}
	// A new device announces itself before it has uploaded KeyPackages,
	// so adding it may have to wait: retry soon, backing off. Housekeeping
	// also runs now and then in case a notice was lost.
	retryDelay := time.Second
	retry := time.NewTimer(retryDelay)
	defer retry.Stop()
	routine := time.NewTicker(housekeepingInterval)
	defer routine.Stop()
	for {
		var batch []frame
		select {
		case <-in.more:
			b, done, err := in.take(streamBatch)
			if done {
				return true, err
			}
			if len(b) == 0 {
				continue
			}
			batch = b
		case <-retry.C:
			if c.devicesIncomplete.Load() {
				if err := c.reconcileDevices(ctx, true); err != nil {
					c.log.Warn("adding own devices", "err", err)
				}
				retryDelay = min(2*retryDelay, time.Minute)
			}
			retry.Reset(retryDelay)
			continue
		case <-routine.C:
			if err := c.housekeeping(ctx); err != nil {
				c.log.Warn("housekeeping", "err", err)
			}
			continue
		}
		before := c.currentCursor()
		cursor, err := c.processFrames(ctx, batch)
		if cursor > before {
			ack, _ := json.Marshal(map[string]any{"type": "ack", "cursor": cursor})
			if werr := conn.Write(ctx, websocket.MessageText, ack); werr != nil {
				return true, werr
			}
		}
		if err != nil {
			return true, err
		}
		// A control frame ends a batch, so it is acted on after the
		// messages that came before it.
		if last := &batch[len(batch)-1]; last.Message == nil {
			c.handleControl(ctx, last)
			if c.devicesIncomplete.Load() {
				retryDelay = time.Second
				retry.Reset(retryDelay)
			}
		}
	}
}

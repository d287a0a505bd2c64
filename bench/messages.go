package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
)

// The message workloads, pairs and group: rooms with senders and
// receivers, set up with the SDK, then driven with relay or e2ee
// payloads.

// room is one room of a run.
type room struct {
	id      client.RoomID
	epoch   uint64 // the epoch relay messages are framed for
	members []*member
}

// member is one device of a room of the run.
type member struct {
	idx    int // the device's number in the run, as the tracker knows it
	dev    *device
	room   *room
	sender bool

	joined chan struct{} // closed once the device can read the room
	once   sync.Once
}

func (m *member) markJoined() { m.once.Do(func() { close(m.joined) }) }

// setupWorkers is how many devices are set up at a time.
const setupWorkers = 4

// setupRooms makes the rooms of a pairs or group run with SDK devices:
// each room's creator invites the others, which join as a person's
// device does.
func setupRooms(ctx context.Context, s *Settings, e *env) ([]*room, error) {
	var mu sync.Mutex
	var rooms []*room
	idx := 0
	newMember := func(r *room, d *device, sender bool) *member {
		mu.Lock()
		defer mu.Unlock()
		m := &member{idx: idx, dev: d, room: r, sender: sender, joined: make(chan struct{})}
		idx++
		r.members = append(r.members, m)
		return m
	}
	switch s.Workload {
	case WorkloadPairs:
		rooms = make([]*room, s.Pairs)
		err := parallel(ctx, s.Pairs, setupWorkers, func(ctx context.Context, i int) error {
			pb := e.provs[0]
			if s.Cross {
				pb = e.provs[1]
			}
			a, err := e.newSDKDevice(ctx, e.provs[0], "a"+strconv.Itoa(i), false)
			if err != nil {
				return err
			}
			b, err := e.newSDKDevice(ctx, pb, "b"+strconv.Itoa(i), s.Cross)
			if err != nil {
				return err
			}
			r := &room{}
			if r.id, err = a.sdk.CreateRoom(ctx); err != nil {
				return fmt.Errorf("bench: %s creates a room: %w", a.handle, err)
			}
			if err := a.sdk.Invite(ctx, r.id, b.address(a.p)); err != nil {
				return fmt.Errorf("bench: %s invites %s: %w", a.handle, b.address(a.p), err)
			}
			if r.epoch, err = a.sdk.Epoch(r.id); err != nil {
				return err
			}
			newMember(r, a, true).markJoined()
			newMember(r, b, true)
			rooms[i] = r
			return nil
		})
		return rooms, err
	case WorkloadGroup:
		r, err := setupGroup(ctx, s.Members, e, func(r *room, d *device) *member { return newMember(r, d, false) })
		if err != nil {
			return nil, err
		}
		r.members[0].sender = true
		return []*room{r}, nil
	}
	return nil, fmt.Errorf("bench: %s is not a message workload", s.Workload)
}

// inviteBatch is how many users one commit adds while a large room is
// set up. One commit per user costs every member already in the room a
// commit to process (and its whole room state to save) per later user:
// for a room of M, about M*M/2 commits processed in all. Batches of 50
// make that about M*M/100, and one Welcome per batch. (A variable so
// that a test can make batches of a tiny room.)
var inviteBatch = 50

// setupGroup makes one room of n SDK devices spread over the providers
// in turn (green, blue, red), hosted by device 0 on the first, which
// creates it and invites the others, inviteBatch users per commit. add
// makes each device a member (device 0 first, already joined).
func setupGroup(ctx context.Context, n int, e *env, add func(*room, *device) *member) (*room, error) {
	devs := make([]*device, n)
	err := parallel(ctx, n, setupWorkers, func(ctx context.Context, i int) error {
		d, err := e.newSDKDevice(ctx, e.provs[i%len(e.provs)], "m"+strconv.Itoa(i), true)
		devs[i] = d
		return err
	})
	if err != nil {
		return nil, err
	}
	r := &room{}
	host := devs[0]
	if r.id, err = host.sdk.CreateRoom(ctx); err != nil {
		return nil, fmt.Errorf("bench: %s creates a room: %w", host.handle, err)
	}
	add(r, host).markJoined()
	for rest := devs[1:]; len(rest) > 0; {
		batch := rest[:min(inviteBatch, len(rest))]
		rest = rest[len(batch):]
		handles := make([]string, len(batch))
		for i, d := range batch {
			handles[i] = d.address(host.p)
		}
		if err := host.sdk.InviteAll(ctx, r.id, handles); err != nil {
			return nil, fmt.Errorf("bench: %s invites %s to %s: %w", host.handle, handles[0], handles[len(handles)-1], err)
		}
		for _, d := range batch {
			add(r, d)
		}
	}
	if r.epoch, err = host.sdk.Epoch(r.id); err != nil {
		return nil, err
	}
	return r, nil
}

// sendFunc sends one measured message with the given header.
type sendFunc func(ctx context.Context, h header) error

// startMembers starts every member's receiving side and returns the send
// function of each sender; stop ends the receivers. Receiving devices
// report to tr from the moment this returns.
func startMembers(ctx context.Context, payload string, size int, submit string, e *env, rooms []*room, tr *trackerRef) (senders map[*member]sendFunc, stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg, runs sync.WaitGroup
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			waitRuns(&runs)
		})
	}
	senders = map[*member]sendFunc{}
	for _, r := range rooms {
		for _, m := range r.members {
			if payload == PayloadRelay {
				if err := m.dev.openRaw(ctx); err != nil {
					stop()
					return nil, nil, err
				}
				// The SDK's part is done: from here on the device is its
				// raw session.
				m.dev.sdk.Close() // #nosec G104 -- the SDK's part is done; its state is not reused
				m.dev.raw.overStream = submit == SubmitStream
				wg.Add(1)
				go func() {
					defer wg.Done()
					relayReceive(ctx, m, tr)
				}()
				if m.sender {
					senders[m] = relaySender(m, size, e.run)
				}
				continue
			}
			wg.Add(1)
			runs.Add(1)
			go func() {
				defer runs.Done()
				m.dev.sdk.Run(ctx) // #nosec G104 -- Run returns ctx's error when the run ends
			}()
			go func() {
				defer wg.Done()
				e2eeReceive(ctx, m, tr)
			}()
			if m.sender {
				senders[m] = e2eeSender(m, size)
			}
		}
	}
	return senders, stop, nil
}

// trackerRef lets the receivers start before the load phase's tracker
// exists (nothing measured is sent before it).
type trackerRef struct {
	mu sync.Mutex
	t  *tracker
}

func (r *trackerRef) get() *tracker {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.t
}

func (r *trackerRef) set(t *tracker) {
	r.mu.Lock()
	r.t = t
	r.mu.Unlock()
}

// relayReceive reads a member's raw stream: a Welcome to its room means
// it is in (the provider delivers to it), an application message is
// measured.
func relayReceive(ctx context.Context, m *member, ref *trackerRef) {
	err := m.dev.raw.stream(ctx, nil, func(f *streamFrame, at time.Time) {
		if f.Message == nil || f.Message.Room != string(m.room.id) {
			return
		}
		switch f.Message.Kind {
		case "welcome":
			m.markJoined()
		case "application":
			t := ref.get()
			if t == nil {
				return
			}
			msg, err := mls.ParseMLSMessage(f.Message.Payload)
			if err != nil || msg.Private == nil {
				t.fail("receive:not_a_private_message")
				return
			}
			h, err := readHeader(msg.Private.Ciphertext)
			if err != nil {
				t.fail("receive:short")
				return
			}
			t.delivered(m.idx, h, at.Sub(t.start))
		}
	})
	if err != nil {
		if t := ref.get(); t != nil {
			t.fail("receive:stream_lost")
		}
	}
}

// e2eeReceive reads a member's decrypted messages from the SDK.
func e2eeReceive(ctx context.Context, m *member, ref *trackerRef) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-m.dev.sdk.Events():
			if !ok {
				return
			}
			at := time.Now()
			switch ev := ev.(type) {
			case *client.RoomJoined:
				if ev.Room == m.room.id {
					m.markJoined()
				}
			case *client.Message:
				t := ref.get()
				if t == nil || ev.Room != m.room.id {
					continue
				}
				msg, err := content.Decode(ev.Body)
				if err != nil {
					t.fail("receive:not_content")
					continue
				}
				h, err := readHeader(msg.Body.Content)
				if err != nil {
					t.fail("receive:short")
					continue
				}
				t.delivered(m.idx, h, at.Sub(t.start))
			case *client.DeliveryFailed:
				if t := ref.get(); t != nil {
					t.fail("receive:delivery_failed")
				}
			}
		}
	}
}

// relaySender posts ready-made PrivateMessages. The provider checks an
// application message's framing only (its group, content type and
// epoch) and stamps its franking tag; it cannot decrypt it. So the
// message is framed exactly as a device frames one (the room's group ID
// and epoch, a Safe AAD with a franking tag, encrypted sender data of
// the real size) around random ciphertext of the given size, which
// begins with the measured header. No MLS work is done per message.
func relaySender(m *member, size int, run string) sendFunc {
	gid, err := base64.RawURLEncoding.DecodeString(string(m.room.id))
	if err != nil {
		gid, _ = base64.URLEncoding.DecodeString(string(m.room.id))
	}
	fill := make([]byte, size)
	rand.Read(fill)
	// Sender data is leaf index, generation and reuse guard (12 bytes),
	// encrypted with a 16-byte tag.
	senderData := make([]byte, 28)
	rand.Read(senderData)
	return func(ctx context.Context, h header) error {
		ct := slices.Clone(fill)
		h.put(ct)
		var tag [federation.FrankingTagSize]byte
		rand.Read(tag[:])
		msg := &mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatPrivateMessage, Private: &mls.PrivateMessage{
			GroupID: gid, Epoch: m.room.epoch, ContentType: mls.ContentApplication,
			AuthenticatedData: federation.FrankAAD(tag), EncryptedSenderData: senderData, Ciphertext: ct,
		}}
		// A client ID per message, as a device makes one per send.
		id := run + "-" + strconv.FormatUint(uint64(h.sender), 10) + "-" + strconv.FormatUint(uint64(h.num), 10)
		_, err := m.dev.raw.post(ctx, string(m.room.id), id, mls.Marshal(msg))
		return err
	}
}

// e2eeSender sends MIMI content messages with the SDK, which encrypts
// them (with a franking tag) and posts them. The body is an inline part
// of the given size that begins with the measured header.
func e2eeSender(m *member, size int) sendFunc {
	fill := make([]byte, size)
	rand.Read(fill)
	return func(ctx context.Context, h header) error {
		body := slices.Clone(fill)
		h.put(body)
		enc, err := content.New(content.InlinePart("application/octet-stream", body)).Encode()
		if err != nil {
			return err
		}
		_, err = m.dev.sdk.Send(ctx, m.room.id, enc)
		return err
	}
}

// waitJoined waits until every member can read its room, or the timeout.
func waitJoined(ctx context.Context, rooms []*room, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, r := range rooms {
		for _, m := range r.members {
			select {
			case <-m.joined:
			case <-deadline.C:
				return fmt.Errorf("bench: %s did not join its room within %s", m.dev.handle, timeout)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

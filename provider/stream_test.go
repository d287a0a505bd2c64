package provider_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// Messages sent over the device's stream (docs/api.md, "Sending over the
// stream"): the same checks and answers as POST /v1/rooms/{id}/messages,
// as frames.

// rawStream is a device's WebSocket, driven frame by frame.
type rawStream struct {
	t   *testing.T
	ws  *websocket.Conn
	ctx context.Context
}

func (d *rawDevice) openStream(ctx context.Context, t *testing.T) *rawStream {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, "ws://"+d.p.addr+"/v1/stream", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + d.token}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &rawStream{t: t, ws: ws, ctx: ctx}
}

func (s *rawStream) write(frame any) {
	s.t.Helper()
	data, err := json.Marshal(frame)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.ws.Write(s.ctx, websocket.MessageText, data); err != nil {
		s.t.Fatal(err)
	}
}

// send sends a message to a room as a send frame.
func (s *rawStream) send(id, room, clientID string, msg []byte) {
	s.t.Helper()
	s.write(map[string]any{"type": "send", "id": id, "room": room, "client_id": clientID, "message": msg})
}

// answer is a sent or send_error frame.
type answer struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	Seq        int64  `json:"seq"`
	Epoch      uint64 `json:"epoch"`
	Duplicate  bool   `json:"duplicate"`
	Status     int    `json:"status"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	RetryAfter int64  `json:"retry_after"`
}

// answers reads frames, passing over deliveries, until n answers came,
// and returns them by ID.
func (s *rawStream) answers(n int) map[string]answer {
	s.t.Helper()
	out := map[string]answer{}
	for len(out) < n {
		_, data, err := s.ws.Read(s.ctx)
		if err != nil {
			s.t.Fatalf("reading the stream: %v", err)
		}
		var a answer
		if err := json.Unmarshal(data, &a); err != nil {
			s.t.Fatal(err)
		}
		if a.Type != "sent" && a.Type != "send_error" {
			continue
		}
		if _, dup := out[a.ID]; dup {
			s.t.Fatalf("two answers to send %q", a.ID)
		}
		out[a.ID] = a
	}
	return out
}

func (s *rawStream) answer(id string) answer {
	s.t.Helper()
	a, ok := s.answers(1)[id]
	if !ok {
		s.t.Fatalf("no answer to send %q", id)
	}
	return a
}

// A device submits over its stream: sends are answered in whatever order
// they are stored, each with its seq; a retry of a client_id (over the
// stream or HTTP) gets the first answer, marked duplicate.
func TestSendOverTheStream(t *testing.T) {
	ctx := testContext(t)
	p := newProvider(t, provider.Config{})
	alice := p.newRawDevice("alice", "phone")
	g, room := alice.createRoom()
	st := alice.openStream(ctx, t)
	msgs := map[string][]byte{}
	for i := range 5 {
		m, err := g.Encrypt(fmt.Appendf(nil, "message %d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("s%d", i)
		msgs[id] = mls.Marshal(m)
		st.send(id, room, fmt.Sprintf("cid-%08d", i), msgs[id])
	}
	got := st.answers(5)
	seqs := map[int64]bool{}
	for id, a := range got {
		if a.Type != "sent" || a.Seq <= 0 || a.Duplicate {
			t.Fatalf("send %s: %+v", id, a)
		}
		seqs[a.Seq] = true
	}
	if len(seqs) != 5 {
		t.Fatalf("5 messages stored at seqs %v", seqs)
	}

	st.send("again", room, "cid-00000003", msgs["s3"])
	if a := st.answer("again"); a.Type != "sent" || a.Seq != got["s3"].Seq || !a.Duplicate {
		t.Fatalf("the retry over the stream: %+v, first %+v", a, got["s3"])
	}
	r := alice.submit(room, "cid-00000003", msgs["s3"])
	var viaHTTP answer
	json.Unmarshal(r.body, &viaHTTP)
	if r.status != 200 || viaHTTP.Seq != got["s3"].Seq || !viaHTTP.Duplicate {
		t.Fatalf("the retry over HTTP: %d %s", r.status, r.body)
	}
	if v, _ := p.metric("switchboard_requests_total", `handler="stream_submit"`, `code="ok"`); v != 6 {
		t.Fatalf("%v stream submits counted, want 6", v)
	}
}

// A send the provider refuses gets the status and code HTTP would have
// given, and changes nothing; a malformed one with an ID is refused as a
// bad request, and the stream goes on.
func TestSendOverTheStreamRefused(t *testing.T) {
	ctx := testContext(t)
	p := newProvider(t, provider.Config{})
	alice := p.newRawDevice("alice", "phone")
	g, room := alice.createRoom()
	mallory := p.newRawDevice("mallory", "phone")
	m, err := g.Encrypt([]byte("not mallory's"), nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := mls.Marshal(m)

	before := p.dump()
	viaHTTP := mallory.submit(room, "cid-mallory1", msg)
	p.expectError(viaHTTP, http.StatusNotFound, "not_found")
	st := mallory.openStream(ctx, t)
	st.send("1", room, "cid-mallory1", msg)
	if a := st.answer("1"); a.Type != "send_error" || a.Status != http.StatusNotFound || a.Code != "not_found" || a.Message == "" {
		t.Fatalf("a stranger's send: %+v", a)
	}
	st.write(map[string]any{"type": "send", "id": "2", "room": room, "client_id": "short", "message": msg})
	if a := st.answer("2"); a.Code != "bad_request" || a.Status != 400 {
		t.Fatalf("a bad client_id: %+v", a)
	}
	st.write(map[string]any{"type": "send", "id": "3", "room": room, "client_id": "cid-mallory2", "message": msg, "colour": "red"})
	if a := st.answer("3"); a.Code != "bad_request" {
		t.Fatalf("an unknown field: %+v", a)
	}
	st.write(map[string]any{"type": "send", "id": "4", "client_id": "cid-mallory2", "message": msg})
	if a := st.answer("4"); a.Code != "bad_request" {
		t.Fatalf("no room: %+v", a)
	}
	if after := p.dump(); after != before {
		t.Fatalf("refused sends changed the provider's state:\n%s", diff(before, after))
	}

	// A send without a usable ID cannot be answered: the stream closes,
	// saying why.
	st.write(map[string]any{"type": "send", "room": room, "client_id": "cid-mallory3", "message": msg})
	_, _, err = st.ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Fatalf("a send without an id: %v", err)
	}
}

// A rate-limited send is refused with retry_after, as HTTP's 429 has
// Retry-After, and gets through once the device waited.
func TestSendOverTheStreamRateLimited(t *testing.T) {
	ctx := testContext(t)
	p := newProvider(t, provider.Config{UserMessageLimit: provider.RateLimit{Every: 300 * time.Millisecond, Burst: 2}})
	alice := p.newRawDevice("alice", "phone")
	g, room := alice.createRoom()
	st := alice.openStream(ctx, t)
	for i := 0; ; i++ {
		m, err := g.Encrypt(fmt.Appendf(nil, "message %d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprint(i)
		st.send(id, room, fmt.Sprintf("cid-%08d", i), mls.Marshal(m))
		a := st.answer(id)
		if a.Type == "sent" {
			if i > 50 {
				t.Fatal("no limit after 50 messages")
			}
			continue
		}
		if a.Status != http.StatusTooManyRequests || a.Code != "rate_limited" || a.RetryAfter != 1 {
			t.Fatalf("refusal: %+v", a)
		}
		break
	}
	if v, _ := p.metric("switchboard_rate_limited_total", `limit="user"`); v != 1 {
		t.Fatalf("%v refusals counted", v)
	}
}

// A drain while a send is being stored: the stream stays open until the
// send is answered, then closes; the message is kept.
func TestDrainAnswersStreamSendsInFlight(t *testing.T) {
	ctx := testContext(t)
	var gate *gatedStore
	p := newProviderWith(t, provider.Config{}, func(s store.Store) store.Store {
		gate = &gatedStore{Store: s}
		return gate
	})
	alice := p.newRawDevice("alice", "phone")
	g, room := alice.createRoom()
	st := alice.openStream(ctx, t)
	m, err := g.Encrypt([]byte("in flight"), nil)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := gate.holdNext()
	st.send("1", room, "cid-inflight", mls.Marshal(m))
	<-entered
	p.srv.Drain()
	release()
	a := st.answer("1")
	if a.Type != "sent" || a.Seq <= 0 {
		t.Fatalf("the send in flight at the drain: %+v", a)
	}
	_, _, err = st.ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("after the answer: %v", err)
	}
	p.restart()
	alice.signIn()
	var log struct {
		Messages []struct {
			Seq int64 `json:"seq"`
		} `json:"messages"`
	}
	p.call("GET", "/v1/rooms/"+room+"/messages", alice.token, nil, &log)
	if n := len(log.Messages); n == 0 || log.Messages[n-1].Seq != a.Seq {
		t.Fatalf("after the restart the log is %+v, want seq %d last", log.Messages, a.Seq)
	}
}

// A send frame is held to the limits of a POST body: a message that is
// not a commit to max_body_bytes (send_error too_large, nothing stored),
// any frame to max_commit_bytes (beyond it the stream closes, 1009).
func TestStreamFrameOverTheBodyLimit(t *testing.T) {
	ctx := testContext(t)
	p := newProvider(t, provider.Config{MaxBodyBytes: 4096, MaxCommitBytes: 16384})
	alice := p.newRawDevice("alice", "phone")
	g, room := alice.createRoom()
	st := alice.openStream(ctx, t)
	m, err := g.Encrypt(make([]byte, 6000), nil)
	if err != nil {
		t.Fatal(err)
	}
	st.send("large", room, "cid-00000001", mls.Marshal(m))
	if a := st.answer("large"); a.Type != "send_error" || a.Code != "too_large" {
		t.Fatalf("a message over max_body_bytes: %+v", a)
	}
	st.send("huge", room, "cid-00000002", make([]byte, 32768))
	_, _, err = st.ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("a frame over max_commit_bytes: %v", err)
	}
	if db := p.dump(); strings.Contains(db, "cid-00000001") {
		t.Fatalf("the message over the limit was stored:\n%s", db)
	}
}

// The operator suspends a user from another process (only the store
// changes): the user's stream, already open, stops taking its sends
// within the session cache's bound, as a POST would.
func TestSuspendedUserCannotSendOverAnOpenStream(t *testing.T) {
	ctx := testContext(t)
	p := newProvider(t, provider.Config{SessionCacheTTL: 50 * time.Millisecond})
	alice := p.newRawDevice("alice", "phone")
	g, room := alice.createRoom()
	st := alice.openStream(ctx, t)
	encrypt := func(text string) []byte {
		m, err := g.Encrypt([]byte(text), nil)
		if err != nil {
			t.Fatal(err)
		}
		return mls.Marshal(m)
	}
	st.send("before", room, "client-before", encrypt("before"))
	if a := st.answer("before"); a.Type != "sent" {
		t.Fatalf("a send before the suspension: %+v", a)
	}
	u, err := p.st.UserByHandle(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.st.SetSuspended(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // past the bound
	st.send("after", room, "client-after", encrypt("after"))
	if a := st.answer("after"); a.Type != "send_error" || a.Code != "suspended" {
		t.Fatalf("a send after the suspension: %+v", a)
	}
	if db := p.dump(); !strings.Contains(db, "client-before") || strings.Contains(db, "client-after") {
		t.Fatalf("the store should hold the message sent before the suspension and not the one after:\n%s", db)
	}
}

// TestSlowStreamFrameIsCutOff: a device opens its stream, starts a frame
// and sends the rest of it a byte now and then. Once BodyTimeout has
// passed since the frame began, the provider closes the stream, as it
// cuts off a POST body that trickles in; a frame that takes its time to
// begin is no offence (streams sit idle for hours). The device's next
// stream works as usual.
func TestSlowStreamFrameIsCutOff(t *testing.T) {
	ctx := testContext(t)
	p := newProvider(t, provider.Config{BodyTimeout: time.Second})
	alice := p.newRawDevice("alice", "phone")
	before := p.dump()

	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/stream HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Key: c3dpdGNoYm9hcmQgdGVzdA==\r\n\r\n", p.addr, alice.token)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// Idle longer than the body timeout before the frame begins: allowed.
	time.Sleep(1500 * time.Millisecond)
	// A masked text frame announcing 100 bytes, then its mask key.
	conn.Write([]byte{0x81, 0x80 | 100, 1, 2, 3, 4})
	// Whatever the provider sends (its pings, a close frame) is read
	// beside the trickle; the stream is over when the socket closes.
	closed := make(chan error, 1)
	go func() {
		conn.SetReadDeadline(time.Now().Add(time.Minute))
		_, err := io.Copy(io.Discard, br)
		closed <- err
	}()
	trickle := time.NewTicker(200 * time.Millisecond)
	defer trickle.Stop()
	// Not a timed assertion: the minute is a bound so that a provider
	// that never cuts the frame off fails rather than hangs the test.
	for sent := 0; ; sent++ {
		select {
		case err := <-closed:
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the provider kept a frame trickling in for a minute open")
			}
			if sent >= 100 {
				t.Fatalf("the whole frame arrived before the provider closed the stream")
			}
			if after := p.dump(); after != before {
				t.Errorf("the slow frame changed the provider's state:\n%s", diff(before, after))
			}
			// Her next stream is served.
			st := alice.openStream(ctx, t)
			g2, room2 := alice.createRoom()
			m, err := g2.Encrypt([]byte("hello again"), nil)
			if err != nil {
				t.Fatal(err)
			}
			st.send("again", room2, "cid-00000003", mls.Marshal(m))
			if a := st.answer("again"); a.Type != "sent" {
				t.Fatalf("a send on the next stream: %+v", a)
			}
			return
		case <-trickle.C:
			if sent < 100 {
				conn.Write([]byte{'x' ^ byte(1+sent%4)})
			}
		}
	}
}

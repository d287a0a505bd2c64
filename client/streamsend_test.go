package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/provider"
)

// While Run holds the stream, Send goes over it (no POST); without Run,
// it posts. Either way the other member gets the messages, once, in order.
func TestSendGoesOverTheStreamWhileRunning(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.register("alice", "phone"), e.register("bob", "phone")
	room, err := alice.CreateRoom(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Invite(e.ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)
	posts := func() float64 {
		return e.p.metric("switchboard_requests_total", `handler="submit"`, `code="ok"`)
	}
	streamed := func() float64 {
		return e.p.metric("switchboard_requests_total", `handler="stream_submit"`, `code="ok"`)
	}

	ctx, stop := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- alice.Run(ctx) }()
	// Once alice's stream has delivered bob's message, it is up.
	bob.send(e.ctx, room, "are you there?")
	expectMessages(t, alice, room, []string{"bob: are you there?"})
	postsBefore, streamedBefore := posts(), streamed()
	for _, body := range []string{"yes", "over the stream"} {
		alice.send(e.ctx, room, body)
	}
	if n := posts() - postsBefore; n != 0 {
		t.Errorf("%v messages posted while Run held the stream", n)
	}
	if n := streamed() - streamedBefore; n != 2 {
		t.Errorf("%v messages sent over the stream, want 2", n)
	}

	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	alice.send(e.ctx, room, "and over HTTP")
	if n := posts() - postsBefore; n != 1 {
		t.Errorf("%v messages posted after Run ended, want 1", n)
	}
	bob.sync(e.ctx)
	expectMessages(t, bob, room, []string{"alice: yes", "alice: over the stream", "alice: and over HTTP"})
}

// A rate-limited send over the stream is waited out as over HTTP: the
// refusal's retry_after, then the same client_id again.
func TestStreamSendWaitsOutARateLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	e := &env{t: t, ctx: ctx, p: newTestProvider(t, func(c *provider.Config) {
		c.UserMessageLimit = provider.RateLimit{Every: 200 * time.Millisecond, Burst: 2}
	})}
	alice, bob := e.register("alice", "phone"), e.register("bob", "phone")
	room, err := alice.CreateRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Invite(ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.sync(ctx)
	go alice.Run(ctx)
	bob.send(ctx, room, "ready?")
	expectMessages(t, alice, room, []string{"bob: ready?"})
	var want []string
	for i := range 5 {
		body := fmt.Sprintf("message %d", i)
		alice.send(ctx, room, body)
		want = append(want, "alice: "+body)
	}
	if got := e.p.metric("switchboard_requests_total", `handler="stream_submit"`, `code="rate_limited"`); got == 0 {
		t.Fatal("no send over the stream was refused: the test proves nothing")
	}
	bob.sync(ctx)
	expectMessages(t, bob, room, want)
}

// cutter is a dialer whose connections it can cut: once armed, the next
// large write (a message, not an ack) goes out and then the connection
// closes, as a network that fails right after sending would.
type cutter struct {
	mu    sync.Mutex
	armed bool
}

func (c *cutter) arm() {
	c.mu.Lock()
	c.armed = true
	c.mu.Unlock()
}

func (c *cutter) fire() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	fired := c.armed
	c.armed = false
	return fired
}

func (c *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &cutConn{Conn: conn, c: c}, nil
}

type cutConn struct {
	net.Conn
	c *cutter
}

func (cc *cutConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	if len(p) > 200 && cc.c.fire() {
		cc.Conn.Close()
	}
	return n, err
}

// The stream drops right after a message went out on it, before its
// answer: Send posts it again over HTTP with the same client_id, and the
// provider, which may have stored it already, keeps it once.
func TestStreamDroppedBeforeTheAnswer(t *testing.T) {
	e := newEnv(t)
	first, bob := e.register("alice", "phone"), e.register("bob", "phone")
	room, err := first.CreateRoom(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Invite(e.ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)
	first.Close()
	<-first.done
	cut := &cutter{}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: cut.dial}}
	c, err := client.Open(e.ctx, e.p.URL(), first.dir, client.Options{KeyPackageBatch: 20, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	alice := &device{Client: c, t: t, dir: first.dir}
	alice.record()
	t.Cleanup(func() { alice.Close() })
	go alice.Run(e.ctx)
	bob.send(e.ctx, room, "there?")
	expectMessages(t, alice, room, []string{"bob: there?"})

	posts := e.p.metric("switchboard_requests_total", `handler="submit"`, `code="ok"`)
	cut.arm()
	alice.send(e.ctx, room, "sent as the line broke")
	if cut.fire() {
		t.Fatal("the message did not go over the stream: the test proves nothing")
	}
	if n := e.p.metric("switchboard_requests_total", `handler="submit"`, `code="ok"`) - posts; n != 1 {
		t.Errorf("%v POSTs after the stream broke, want 1", n)
	}
	alice.send(e.ctx, room, "and after")
	bob.sync(e.ctx)
	expectMessages(t, bob, room, []string{"alice: sent as the line broke", "alice: and after"})
}

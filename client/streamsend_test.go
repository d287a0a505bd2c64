package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

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

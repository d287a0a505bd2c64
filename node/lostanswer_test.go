package node_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/node"
)

// When the hub's answer to a forwarded message is lost: the hub stored the
// message, but the follower gave up waiting for the answer.

// Blue waits peerTimeout for green's answers; green holds back the ones
// the test picks for longer.
const (
	peerTimeout = 2 * time.Second
	heldFor     = 3 * time.Second
)

func startLossy(t *testing.T) *harness {
	return startHarnessWith(t, func(cfg *node.Config) {
		if cfg.Domain == "blue.test" {
			cfg.PeerTimeout = peerTimeout
		}
	}, "green.test", "blue.test")
}

// loseAnswersTo makes green hold back its answer to blue's next request of
// kind (submitMessage, update) beyond blue's patience, once.
func loseAnswersTo(h *harness, kind string) {
	var held atomic.Bool
	h.traffic.holdAnswers(func(e exchange) time.Duration {
		if e.To != "green.test" || !strings.HasPrefix(e.Path, "/"+kind+"/") || !held.CompareAndSwap(false, true) {
			return 0
		}
		return heldFor
	})
}

// TestLostAnswerToAForwardedMessage: Bob (blue) sends a message to a room
// hosted by green; green stores it, but its answer does not reach blue in
// time, so blue answers the device 503 hub_unreachable. The SDK sends
// again with the same client_id, green recognises it and gives its first
// answer: Send succeeds, and Alice reads the message once.
func TestLostAnswerToAForwardedMessage(t *testing.T) {
	h := startLossy(t)
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	ctx := context.Background()
	room, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, room, "bob@blue.test"))
	cv := newConversation(t, room, alice, bob)
	cv.say(alice, "hi")
	cv.expect(bob)

	loseAnswersTo(h, "submitMessage")
	start := time.Now()
	_, err = bob.c.Send(ctx, room, []byte("did you get this?"))
	cv.heard(bob, "did you get this?")
	if err != nil {
		t.Errorf("bob's Send failed after %v although green stored the message: %v", time.Since(start).Round(time.Millisecond), err)
	}
	cv.expect(alice)
}

// TestLostAnswerToAForwardedCommit: Bob's phone (blue) adds his laptop to a
// room hosted by green; green accepts the commit, but its answer does not
// reach blue in time. The SDK keeps the commit, whose outcome it does not
// know, pending and settles it with the same client_id: the phone merges
// its own commit and stays in the room's epoch, with the laptop in it.
// (Were a 503 taken as a refusal, the phone would drop the commit the hub
// had accepted and be stuck in the old epoch for good.)
func TestLostAnswerToAForwardedCommit(t *testing.T) {
	h := startLossy(t)
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	ctx := context.Background()
	room, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, room, "bob@blue.test"))
	cv := newConversation(t, room, alice, bob)
	cv.say(alice, "hi")
	cv.expect(bob)

	laptop, _ := h.enroll("blue.test", "bob", "laptop", client.Options{})
	loseAnswersTo(h, "update")
	if err := bob.c.Invite(ctx, room, "bob"); err != nil {
		t.Errorf("bob's phone adding his laptop failed although green accepted the commit: %v", err)
	}
	h.settle("green.test", room)
	laptop.read()
	cv.joined(laptop)
	cv.say(alice, "hello, laptop")
	cv.expect(laptop)

	// Bob's phone reads on.
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(bob.messages(room), cv.readBy(bob)) && time.Now().Before(deadline) {
		bob.read()
	}
	if got := bob.messages(room); !slices.Equal(got, cv.readBy(bob)) {
		t.Errorf("bob's phone read %q, want %q", got, cv.readBy(bob))
	}
	for _, f := range bob.failures(room) {
		t.Errorf("bob's phone could not process seq %d: %v", f.Seq, f.Err)
	}
	if epoch, err := bob.c.Epoch(room); err == nil {
		r, err := h.node("green.test").Store.Room(ctx, string(room))
		must(t, "reading green's room", err)
		if epoch != r.Epoch {
			t.Errorf("bob's phone is in epoch %d, the room in epoch %d", epoch, r.Epoch)
		}
	}
}

// failures lists the person's DeliveryFailed events in a room.
func (p *person) failures(room client.RoomID) []*client.DeliveryFailed {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*client.DeliveryFailed
	for _, e := range p.seen {
		if f, ok := e.(*client.DeliveryFailed); ok && f.Room == room {
			out = append(out, f)
		}
	}
	return out
}

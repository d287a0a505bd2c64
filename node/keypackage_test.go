package node_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// TestAWelcomeCannotUseAnotherProvidersKeyPackageTwice: Alice (green)
// adds Bob (blue) to her room with a KeyPackage green claimed from blue.
// Green, hosting the room, cannot tell whether a KeyPackage of blue's was
// used before; blue can. So when green (a careless hub, or one passing on
// a member's commit that reuses the KeyPackage) sends the same Welcome
// again, into a second room or later in the same one, blue refuses it
// with 409 key_package_used: nothing reaches Bob's phone and no provider's
// record of either room changes. The hub's outbox sending the first notify
// again, with a fresh stamp, is still answered as a success: that is the
// same Welcome, not a second use.
func TestAWelcomeCannotUseAnotherProvidersKeyPackageTwice(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test")
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	ctx := context.Background()

	room, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, room, "bob@blue.test"))
	cv := newConversation(t, room, alice, bob)
	cv.say(alice, "hello bob")
	cv.expect(bob)
	h.settle("green.test", room)

	// The Welcome as blue's copy of the room keeps it, and the notify that
	// carried it, made again as the hub makes it.
	blue := h.node("blue.test")
	log, err := blue.Store.RoomMessages(ctx, string(room), 0, 100)
	must(t, "reading blue's copy of the room", err)
	var welcome store.Message
	for _, m := range log {
		if m.Kind == store.KindWelcome {
			welcome = m
		}
	}
	if welcome.Seq == 0 {
		t.Fatalf("blue's copy of the room holds no Welcome: %d messages", len(log))
	}
	wm, err := mls.ParseMLSMessage(welcome.Payload)
	must(t, "parsing the Welcome", err)
	hosted, err := h.node("green.test").Store.Room(ctx, string(room))
	must(t, "reading green's room", err)
	group, err := mls.RestorePublicGroup(hosted.State)
	must(t, "green's group state", err)
	body := federation.MarshalFanout(federation.FanoutMessage{Timestamp: uint64(welcome.Accepted), Message: *wm,
		RatchetTree: federation.FullRatchetTree(group.Tree().TreeNodes())})
	notify := func(seq int64) http.Header {
		return http.Header{
			provider.HeaderRoomSeq:    {strconv.FormatInt(seq, 10)},
			provider.HeaderRoomEpoch:  {strconv.FormatUint(welcome.Epoch, 10)},
			provider.HeaderSender:     {welcome.Sender},
			provider.HeaderRecipients: {"mimi://blue.test/d/bob/phone"},
		}
	}

	bobsQueue := func() int {
		u, err := blue.Store.UserByHandle(ctx, "bob")
		must(t, "finding bob", err)
		ds, err := blue.Store.DevicesOfUser(ctx, u.ID)
		must(t, "bob's devices", err)
		n := 0
		for _, d := range ds {
			q, err := blue.Store.Deliveries(ctx, d.ID, 0, 10000)
			must(t, "bob's queue", err)
			n += len(q)
		}
		return n
	}
	hub := h.partner("green.test", "blue.test")

	t.Run("into a second room", func(t *testing.T) {
		h := h.with(t)
		second := client.RoomID(newID())
		queued := bobsQueue()
		h.unchanged(second, func() {
			a := hub.mustPost(notifyPath("green.test", second), body, notify(1))
			expectRefusal(t, "the Welcome sent again into a second room", a, http.StatusConflict, "key_package_used")
		})
		if got := bobsQueue(); got != queued {
			t.Errorf("bob's queue holds %d messages after the refusal, %d before", got, queued)
		}
	})

	t.Run("later in the same room", func(t *testing.T) {
		h := h.with(t)
		queued := bobsQueue()
		h.unchanged(room, func() {
			a := hub.mustPost(notifyPath("green.test", room), body, notify(1000))
			expectRefusal(t, "the Welcome sent again at a later seq", a, http.StatusConflict, "key_package_used")
		})
		if got := bobsQueue(); got != queued {
			t.Errorf("bob's queue holds %d messages after the refusal, %d before", got, queued)
		}
	})

	t.Run("the outbox sending the same notify again", func(t *testing.T) {
		h := h.with(t)
		queued := bobsQueue()
		h.unchanged(room, func() {
			a := hub.mustPost(notifyPath("green.test", room), body, notify(welcome.Seq))
			if a.Status != http.StatusCreated {
				t.Errorf("the first Welcome's notify, sent again with a fresh stamp: %d %s, want 201", a.Status, a.Body)
			}
		})
		if got := bobsQueue(); got != queued {
			t.Errorf("bob's queue holds %d messages after the repeat, %d before", got, queued)
		}
	})

	// The room goes on as before.
	cv.say(bob, "still here")
	cv.say(alice, "good")
	cv.expect(alice, bob)
}

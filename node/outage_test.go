package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/store"
)

// When a partner is down, or a provider restarts: what the hub's durable
// outbox and the followers' copies of the log promise people.

// TestPartnerDownAndBack: Alice (green) hosts a group with Bob (blue) and
// Carol (red). Red goes down. Alice and Bob keep chatting, and Bob reads
// every message while red is still down: green's outbox works on each
// partner separately, so red's queue, retried again and again meanwhile,
// holds up nothing for blue. Red comes back, and Carol reads everything
// she missed, in the hub's order, each message once; then she joins in
// again.
func TestPartnerDownAndBack(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test", "red.test")
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	carol, _ := h.enroll("red.test", "carol", "phone", client.Options{})
	ctx := context.Background()

	group, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates the group", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, group, "bob@blue.test"))
	must(t, "alice invites carol", alice.c.Invite(ctx, group, "carol@red.test"))
	alice.send(group, "welcome, both")
	bob.expect(group, "alice@green.test: welcome, both")
	carol.expect(group, "alice@green.test: welcome, both")
	h.settle("green.test", group)

	green := h.outbox["green.test"]
	h.stop("red.test")
	down := time.Now()
	sentToRed := green.get("sent", "red.test")

	// Alice and Bob talk while red is down; each of Alice's messages
	// reaches Bob's device before the next is sent.
	all := []string{"alice@green.test: welcome, both"}
	var fromAlice, fromBob []string
	var slowest time.Duration
	for i := range 4 {
		text := fmt.Sprintf("is carol there? (%d)", i)
		alice.send(group, text)
		sent := time.Now()
		fromAlice = append(fromAlice, "alice@green.test: "+text)
		all = append(all, "alice@green.test: "+text)
		bob.expect(group, slices.Concat(all[:1], fromAlice)...)
		slowest = max(slowest, time.Since(sent))

		text = fmt.Sprintf("not yet (%d)", i)
		bob.send(group, text)
		fromBob = append(fromBob, "bob@blue.test: "+text)
		all = append(all, "bob@blue.test: "+text)
	}
	alice.expect(group, fromBob...)

	// Green kept red's share and kept trying: at least three attempts
	// failed while Bob was reading, and none reached red.
	waitFor(t, "green retried red three times", func() bool { return green.get("retried", "red.test") >= 3 })
	if n := green.get("sent", "red.test"); n != sentToRed {
		t.Errorf("green delivered %d notify requests to red while it was down", n-sentToRed)
	}
	if green.get("sent", "blue.test") < len(all)-1 {
		t.Errorf("green's outbox sent %d requests to blue, want at least %d", green.get("sent", "blue.test"), len(all)-1)
	}
	// Blue never waited for the hub's notify of Bob's own messages (it
	// logs when it gives up waiting, after five seconds).
	if h.logged("blue.test", "the hub's notify has not arrived yet") {
		t.Error("blue waited in vain for the hub's notify while red was down")
	}
	if _, err := h.node("green.test").Store.NextOutbound(ctx, "red.test"); err != nil {
		t.Fatalf("green has nothing queued for red while it is down: %v", err)
	}
	outage := time.Since(down)
	t.Logf("red was down %v; green retried it %d times; Bob read each of Alice's messages within %v",
		outage.Round(time.Millisecond), green.get("retried", "red.test"), slowest.Round(time.Millisecond))

	// Red comes back: Carol reads all she missed, once each, in order.
	h.start("red.test")
	carol.expect(group, all...)
	h.settle("green.test", group)
	if n := green.get("sent", "red.test") - sentToRed; n != len(all)-1 {
		t.Errorf("green delivered %d notify requests to red after it came back, want %d", n, len(all)-1)
	}
	if n := green.get("failed", "red.test"); n != 0 {
		t.Errorf("green dropped %d notify requests to red", n)
	}

	carol.send(group, "back! sorry")
	alice.expect(group, slices.Concat(fromBob, []string{"carol@red.test: back! sorry"})...)
	bob.expect(group, slices.Concat(all[:1], fromAlice, []string{"carol@red.test: back! sorry"})...)
}

// TestProviderRestartedMidConversation: a group hosted by green with
// members on blue and red. Between messages, first the follower blue and
// then the hub green are stopped and started again, each right after a
// message was acknowledged (Send returned). Nothing acknowledged is lost:
// messages sent while blue is down wait in green's outbox; a burst Alice
// sends just before green stops (with red down too, so that green stops
// with a backlog) leaves from green's outbox when it is back. Bob's and
// Carol's devices carry on with the same client objects across their
// providers' restarts; Alice's app is restarted with green (client.Open on
// its directory).
// Everyone reads every message once, in the hub's order.
func TestProviderRestartedMidConversation(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test", "red.test")
	alice, aliceDir := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	carol, _ := h.enroll("red.test", "carol", "phone", client.Options{})
	ctx := context.Background()

	group, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates the group", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, group, "bob@blue.test"))
	must(t, "alice invites carol", alice.c.Invite(ctx, group, "carol@red.test"))

	cv := newConversation(t, group, alice, bob, carol)
	cv.say(alice, "one")
	bob.read()
	carol.read()
	cv.say(bob, "two")

	// Blue stops right after Bob's message was acknowledged.
	h.stop("blue.test")
	cv.say(alice, "three (blue is down)")
	cv.say(carol, "four (blue is down)")
	h.start("blue.test")
	cv.expect(bob)
	cv.say(bob, "five (blue is back)")
	cv.expect(alice, carol)

	// Green stops right after a burst of Alice's messages was
	// acknowledged: those for blue may be in flight, those for red are
	// surely still queued, as red is down too.
	h.stop("red.test")
	for i := range 4 {
		cv.say(alice, fmt.Sprintf("six.%d (green is about to stop)", i))
	}
	if _, err := h.node("green.test").Store.NextOutbound(ctx, "red.test"); err != nil {
		t.Fatalf("green has nothing queued for red, which is down: %v", err)
	}
	h.stop("green.test")
	must(t, "closing alice's app", alice.c.Close())
	h.start("green.test")
	reopened, err := client.Open(ctx, h.node("green.test").ClientURL, aliceDir, client.Options{})
	must(t, "reopening alice's app", err)
	t.Cleanup(func() { reopened.Close() })
	alice.c = reopened
	h.start("red.test")

	cv.expect(bob, carol)
	cv.say(bob, "seven (green is back)")
	cv.say(carol, "eight")
	cv.say(alice, "nine, from alice's reopened app")
	cv.expect(alice, bob, carol)

	// Every copy of the log is the hub's, and nothing is left queued.
	h.settle("green.test", group)
	hub, err := h.node("green.test").Store.RoomMessages(ctx, string(group), 0, 1000)
	must(t, "reading the hub's log", err)
	for _, d := range []string{"blue.test", "red.test"} {
		copyLog, err := h.node(d).Store.RoomMessages(ctx, string(group), 0, 1000)
		must(t, "reading "+d+"'s copy", err)
		// A follower's copy starts where its first user joined, and from
		// there on has every message of the hub's log.
		if len(copyLog) == 0 {
			t.Errorf("%s has no copy of the room", d)
			continue
		}
		from := slices.IndexFunc(hub, func(m store.Message) bool { return m.Seq == copyLog[0].Seq })
		if from < 0 || len(hub)-from != len(copyLog) {
			t.Errorf("%s's copy holds seqs %d to %d, %d messages; the hub's log ends at %d",
				d, copyLog[0].Seq, copyLog[len(copyLog)-1].Seq, len(copyLog), hub[len(hub)-1].Seq)
			continue
		}
		for i, m := range copyLog {
			if m.Seq != hub[from+i].Seq || string(m.Payload) != string(hub[from+i].Payload) {
				t.Errorf("%s's copy differs from the hub's log at seq %d", d, hub[from+i].Seq)
			}
		}
	}
	for _, d := range h.domains {
		if dests, err := h.node(d).Store.OutboundDestinations(ctx); err != nil || len(dests) > 0 {
			t.Errorf("%s still has entries queued for %v (%v)", d, dests, err)
		}
		if n := h.outbox[d].get("failed", "red.test") + h.outbox[d].get("failed", "blue.test"); n > 0 {
			t.Errorf("%s's outbox dropped %d entries", d, n)
		}
	}
	if _, err := h.node("green.test").Store.NextOutbound(ctx, "blue.test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("green still has entries for blue: %v", err)
	}
}

package node_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/store"
)

// Consent (docs/consent.md): first contact from someone new lands as a
// message request at the recipient's provider; the recipient accepts,
// declines or blocks, and the provider enforces the answer, across
// restarts, while the sender learns nothing of a decline or a block.

// requests lists p's pending requests as "peer room".
func (p *person) requests() []string {
	p.t.Helper()
	rs, err := p.c.Requests(context.Background())
	must(p.t, p.name+" listing requests", err)
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Peer+" "+string(r.Room))
	}
	return out
}

// contacts lists the peers a provider holds in a state for one of its
// users.
func (h *harness) contacts(domain, handle string, state store.ContactState) []string {
	h.t.Helper()
	n, ctx := h.node(domain), context.Background()
	u, err := n.Store.UserByHandle(ctx, handle)
	must(h.t, "finding "+handle, err)
	cs, err := n.Store.Contacts(ctx, u.ID, state)
	must(h.t, "listing "+handle+"'s contacts", err)
	var out []string
	for _, c := range cs {
		out = append(out, c.Peer)
	}
	return out
}

// consentTraffic is every consent request that reached a provider.
func (h *harness) consentTraffic(to string) []exchange {
	return h.traffic.all(func(e exchange) bool {
		return e.To == to && (strings.Contains(e.Path, "/updateConsent/") || strings.Contains(e.Path, "/requestConsent/"))
	})
}

// invited makes room with alice and invites p, waiting until p's
// provider has the Welcome.
func (h *harness) invited(by *person, hub string, p *person, addr string) client.RoomID {
	h.t.Helper()
	room, err := by.c.CreateRoom(context.Background())
	must(h.t, by.name+" creates a room", err)
	must(h.t, by.name+" invites "+addr, by.c.Invite(context.Background(), room, addr))
	h.settle(hub, room)
	return room
}

func TestMessageRequestAccepted(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test")
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	ctx := context.Background()

	// Alice is new to Bob: her invitation is a request at blue.
	room := h.invited(alice, "green.test", bob, "bob@blue.test")
	if got, want := bob.requests(), []string{"alice@green.test " + string(room)}; !slices.Equal(got, want) {
		t.Fatalf("bob's requests %q, want %q", got, want)
	}
	// Until Bob answers, green hears nothing about it.
	if ex := h.consentTraffic("green.test"); len(ex) != 0 {
		t.Fatalf("green got %d consent requests before bob answered", len(ex))
	}

	// Green made Bob Alice's contact when she claimed his KeyPackages
	// (one consents to whom one invites). Forget that here, so that what
	// follows shows the grant alone.
	if got := h.contacts("green.test", "alice", store.ContactAccepted); !slices.Equal(got, []string{"mimi://blue.test/u/bob"}) {
		t.Fatalf("alice's accepted contacts at green %q, want bob, whom she invited", got)
	}
	green := h.node("green.test")
	aliceAt, err := green.Store.UserByHandle(ctx, "alice")
	must(t, "finding alice", err)
	must(t, "forgetting bob", green.Store.SetContact(ctx, aliceAt.ID, "mimi://blue.test/u/bob", store.ContactNone, aliceAt.Created))

	must(t, "bob accepts", bob.c.AcceptRequest(ctx, "alice@green.test", room))
	if got := bob.requests(); len(got) != 0 {
		t.Errorf("after accepting, bob's requests %q", got)
	}
	// A second accept finds nothing to accept.
	if err := bob.c.AcceptRequest(ctx, "alice@green.test", room); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("accepting twice: %v, want not_found", err)
	}
	// Green is told through the outbox (updateConsent, grant) and keeps
	// Bob as Alice's contact.
	waitFor(t, "green answers bob's grant", func() bool { return len(h.consentTraffic("green.test")) > 0 })
	if ex := h.consentTraffic("green.test"); len(ex) != 1 || ex[0].Status != 201 || !strings.Contains(ex[0].Path, "/updateConsent/") {
		t.Errorf("green got consent traffic %+v, want one updateConsent answered 201", ex)
	}
	if got := h.contacts("green.test", "alice", store.ContactAccepted); !slices.Equal(got, []string{"mimi://blue.test/u/bob"}) {
		t.Errorf("after the grant, alice's accepted contacts at green %q, want bob", got)
	}
	// Blue holds Alice as Bob's.
	if got := h.contacts("blue.test", "bob", store.ContactAccepted); !slices.Equal(got, []string{"mimi://green.test/u/alice"}) {
		t.Errorf("bob's accepted contacts at blue %q", got)
	}

	alice.send(room, "hello Bob")
	bob.expect(room, "alice@green.test: hello Bob")
	bob.send(room, "hi Alice")
	alice.expect(room, "bob@blue.test: hi Alice")

	// Bob was accepted by inviting him: his own room with Alice is no
	// request for her. (Alice's provider hosts nothing for this room; it
	// still records the request check at green, her provider.)
	back := h.invited(bob, "blue.test", alice, "alice@green.test")
	h.settle("blue.test", back)
	if got := alice.requests(); len(got) != 0 {
		t.Errorf("alice's requests %q after bob, whom she invited, invited her", got)
	}
}

func TestMessageRequestDeclined(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test")
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	ctx := context.Background()

	room := h.invited(alice, "green.test", bob, "bob@blue.test")
	bob.read() // bob's device joins and sees the request
	if got := bob.requests(); len(got) != 1 {
		t.Fatalf("bob's requests %q, want alice's", got)
	}
	alice.send(room, "first")
	h.settle("green.test", room)
	if n := h.queued("blue.test", "bob"); n != 1 {
		t.Fatalf("blue queued %d messages for bob, want alice's first", n)
	}

	// Bob declines: what was waiting is dropped, and nothing more of the
	// room reaches his device.
	must(t, "bob declines", bob.c.DeclineRequest(ctx, "alice@green.test", room))
	if got := bob.requests(); len(got) != 0 {
		t.Errorf("after declining, bob's requests %q", got)
	}
	if n := h.queued("blue.test", "bob"); n != 0 {
		t.Errorf("blue still queues %d messages of the declined room for bob", n)
	}
	alice.send(room, "are you there?")
	h.settle("green.test", room)
	if n := h.queued("blue.test", "bob"); n != 0 {
		t.Errorf("blue queued %d messages of the declined room for bob", n)
	}
	bob.read()
	bob.expect(room)

	// Alice learns nothing: no consent message, no report, nothing left
	// in blue's outbox for green.
	if ex := h.consentTraffic("green.test"); len(ex) != 0 {
		t.Errorf("green got %d consent requests after bob declined", len(ex))
	}
	alice.read()
	alice.expect(room)
	if dests, err := h.node("blue.test").Store.OutboundDestinations(ctx); err != nil || len(dests) != 0 {
		t.Errorf("blue's outbox holds entries for %v (%v)", dests, err)
	}
	// Declining again, or a request that is not there, is not_found; a
	// malformed peer is bad_request.
	if err := bob.c.DeclineRequest(ctx, "alice@green.test", room); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("declining twice: %v, want not_found", err)
	}
	if err := bob.c.DeclineRequest(ctx, "mimi://green.test/r/"+string(room), room); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("declining with a room URI for peer: %v, want bad_request", err)
	}
}

func TestBlockedSenderStaysBlockedAcrossRestarts(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test")
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	carol, _ := h.enroll("green.test", "carol", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	ctx := context.Background()

	// Carol's group, with Alice and Bob; Bob accepts Carol.
	group, err := carol.c.CreateRoom(ctx)
	must(t, "carol creates the group", err)
	must(t, "carol invites alice", carol.c.Invite(ctx, group, "alice"))
	must(t, "carol invites bob", carol.c.Invite(ctx, group, "bob@blue.test"))
	h.settle("green.test", group)
	must(t, "bob accepts carol", bob.c.AcceptRequest(ctx, "carol@green.test", group))
	alice.read()
	bob.read()

	// Alice asks Bob to a room of her own: a request.
	direct := h.invited(alice, "green.test", bob, "bob@blue.test")
	if got, want := bob.requests(), []string{"alice@green.test " + string(direct)}; !slices.Equal(got, want) {
		t.Fatalf("bob's requests %q, want %q", got, want)
	}

	// Bob blocks her: the request is gone and the room dropped.
	must(t, "bob blocks alice", bob.c.Block(ctx, "alice@green.test"))
	if got := bob.requests(); len(got) != 0 {
		t.Errorf("after blocking alice, bob's requests %q", got)
	}
	if got, err := bob.c.Blocked(ctx); err != nil || !slices.Equal(got, []string{"alice@green.test"}) {
		t.Errorf("bob blocked %q (%v), want alice@green.test", got, err)
	}

	check := func(when string) {
		t.Helper()
		// A new invitation gets the consent error; no KeyPackage of Bob's
		// is claimed.
		before := h.keyPackages("blue.test", "bob")
		other, err := alice.c.CreateRoom(ctx)
		must(t, "alice creates another room", err)
		if err := alice.c.Invite(ctx, other, "bob@blue.test"); !errors.Is(err, client.ErrNoConsent) {
			t.Errorf("%s: alice invites bob, who blocked her: %v, want no_consent", when, err)
		}
		if after := h.keyPackages("blue.test", "bob"); after != before {
			t.Errorf("%s: blue handed out %d of bob's KeyPackages to alice", when, before-after)
		}
		// In the group both share, Carol's messages reach Bob, Alice's
		// do not.
		alice.send(group, "alice "+when)
		carol.send(group, "carol "+when)
		alice.send(direct, "direct "+when)
		h.settle("green.test", group)
		h.settle("green.test", direct)
	}
	check("before the restarts")
	bob.expect(group, "carol@green.test: carol before the restarts")
	bob.expect(direct)

	// Both providers restart; the block holds.
	h.stop("green.test")
	h.stop("blue.test")
	h.start("green.test")
	h.start("blue.test")
	if got, err := bob.c.Blocked(ctx); err != nil || !slices.Equal(got, []string{"alice@green.test"}) {
		t.Fatalf("after the restarts, bob blocked %q (%v)", got, err)
	}
	check("after the restarts")
	bob.expect(group, "carol@green.test: carol before the restarts", "carol@green.test: carol after the restarts")
	bob.expect(direct)
	// Carol, in the same group, read everyone.
	carol.expect(group, "alice@green.test: alice before the restarts", "alice@green.test: alice after the restarts")
	if ex := h.consentTraffic("green.test"); len(ex) != 1 {
		t.Errorf("green got %d consent requests, want the grant for carol only", len(ex))
	}

	// Unblocking lifts it: Alice's invitation goes through again, as a
	// request.
	must(t, "bob unblocks alice", bob.c.Unblock(ctx, "alice@green.test"))
	again := h.invited(alice, "green.test", bob, "bob@blue.test")
	if got, want := bob.requests(), []string{"alice@green.test " + string(again)}; !slices.Equal(got, want) {
		t.Errorf("after unblocking, bob's requests %q, want %q", got, want)
	}
	if err := bob.c.Block(ctx, "not a handle!"); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("blocking a malformed peer: %v, want bad_request", err)
	}
}

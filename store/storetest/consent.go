package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Consent: contacts and message requests (docs/consent.md).

const (
	carolURI = "mimi://blue.example/u/carol"
	daveURI  = "mimi://blue.example/u/dave"
)

// pending lists the user's pending requests as "peer room".
func (e *env) pending(u store.User) []string {
	e.t.Helper()
	rs, err := e.s.Requests(e.ctx, u.ID)
	e.ok(err)
	out := []string{}
	for _, r := range rs {
		if r.State != store.RequestPending || r.UserID != u.ID {
			e.t.Fatalf("Requests gave %+v", r)
		}
		out = append(out, r.Peer+" "+r.RoomID)
	}
	return out
}

func (e *env) contact(u store.User, peer string) store.ContactState {
	e.t.Helper()
	st, err := e.s.Contact(e.ctx, u.ID, peer)
	e.ok(err)
	return st
}

func (e *env) refusing(room, sender string, users ...int64) []int64 {
	e.t.Helper()
	got, err := e.s.Refusing(e.ctx, room, sender, users)
	e.ok(err)
	return got
}

func consentRequests(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	// Pending requests are listed oldest first; a repeat stores nothing.
	e.ok(e.s.AddRequest(e.ctx, store.MessageRequest{UserID: alice.ID, Peer: carolURI, RoomID: "r2", Created: t0.Add(time.Minute)}))
	e.ok(e.s.AddRequest(e.ctx, store.MessageRequest{UserID: alice.ID, Peer: carolURI, RoomID: "r1", Created: t0}))
	e.ok(e.s.AddRequest(e.ctx, store.MessageRequest{UserID: alice.ID, Peer: carolURI, RoomID: "r1", Created: t0.Add(time.Hour)}))
	e.ok(e.s.AddRequest(e.ctx, store.MessageRequest{UserID: alice.ID, Peer: daveURI, RoomID: "", Created: t0.Add(2 * time.Minute)}))
	if got, want := e.pending(alice), []string{carolURI + " r1", carolURI + " r2", daveURI + " "}; !slices.Equal(got, want) {
		t.Fatalf("alice's requests %q, want %q", got, want)
	}
	rs, _ := e.s.Requests(e.ctx, alice.ID)
	if !rs[0].Created.Equal(t0) {
		t.Errorf("the first request was created %v, want %v (a repeat keeps the first)", rs[0].Created, t0)
	}
	if got := e.pending(bob); len(got) != 0 {
		t.Errorf("bob has requests %q", got)
	}
	// Cancel removes a pending request; a second cancel finds none.
	e.ok(e.s.RemoveRequest(e.ctx, alice.ID, daveURI, ""))
	is(t, e.s.RemoveRequest(e.ctx, alice.ID, daveURI, ""), store.ErrNotFound, "cancelling twice")
	// Decline: the request leaves the list and stays declined; a new
	// Welcome of the same room does not make it pending again.
	e.ok(e.s.DeclineRequest(e.ctx, alice.ID, carolURI, "r2"))
	is(t, e.s.DeclineRequest(e.ctx, alice.ID, carolURI, "r2"), store.ErrNotFound, "declining twice")
	e.ok(e.s.AddRequest(e.ctx, store.MessageRequest{UserID: alice.ID, Peer: carolURI, RoomID: "r2", Created: t0}))
	if got, want := e.pending(alice), []string{carolURI + " r1"}; !slices.Equal(got, want) {
		t.Fatalf("after declining r2, requests %q, want %q", got, want)
	}
	is(t, e.s.RemoveRequest(e.ctx, alice.ID, carolURI, "r2"), store.ErrNotFound, "cancelling a declined request")
	// Accept: carol becomes a contact, her pending requests go, and the
	// answer is in the outbox.
	is(t, e.s.AcceptRequest(e.ctx, alice.ID, carolURI, "nope", t0, nil), store.ErrNotFound, "accepting an unknown request")
	out := []store.Outbound{{Destination: "blue.example", Kind: "updateConsent", Path: "/mimi/updateConsent/x", Body: []byte("grant"), ID: "consent/1"}}
	e.ok(e.s.AcceptRequest(e.ctx, alice.ID, carolURI, "r1", t0, out))
	if got := e.pending(alice); len(got) != 0 {
		t.Errorf("after accepting, requests %q", got)
	}
	if st := e.contact(alice, carolURI); st != store.ContactAccepted {
		t.Errorf("carol is %q to alice, want accepted", st)
	}
	if next, err := e.s.NextOutbound(e.ctx, "blue.example"); err != nil || next.Kind != "updateConsent" || string(next.Body) != "grant" {
		t.Errorf("the outbox holds %+v, %v; want the grant", next, err)
	}
	// The declined room stays refused.
	if got := e.refusing("r2", "", alice.ID, bob.ID); !slices.Equal(got, []int64{alice.ID}) {
		t.Errorf("refusing r2: %v, want alice", got)
	}
	// Unknown users.
	unknown := alice.ID + bob.ID + 100
	is(t, e.s.AddRequest(e.ctx, store.MessageRequest{UserID: unknown, Peer: carolURI, RoomID: "r", Created: t0}), store.ErrNotFound, "a request for an unknown user")
}

func consentContacts(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	if st := e.contact(alice, carolURI); st != store.ContactNone {
		t.Fatalf("no decision yet, but %q", st)
	}
	// Inviting carol accepts her; blocking turns that round; AddContact
	// does not undo a block.
	if st, err := e.s.AddContact(e.ctx, alice.ID, carolURI, now); err != nil || st != store.ContactAccepted {
		t.Fatalf("AddContact: %q, %v", st, err)
	}
	e.ok(e.s.SetContact(e.ctx, alice.ID, carolURI, store.ContactBlocked, now))
	if st, err := e.s.AddContact(e.ctx, alice.ID, carolURI, now); err != nil || st != store.ContactBlocked {
		t.Fatalf("AddContact of a blocked peer: %q, %v; want blocked", st, err)
	}
	e.ok(e.s.SetContact(e.ctx, alice.ID, daveURI, store.ContactAccepted, now))
	bl, err := e.s.Contacts(e.ctx, alice.ID, store.ContactBlocked)
	e.ok(err)
	if len(bl) != 1 || bl[0].Peer != carolURI || !bl[0].Updated.Equal(now) {
		t.Errorf("alice's blocked contacts %+v, want carol", bl)
	}
	if ac, _ := e.s.Contacts(e.ctx, alice.ID, store.ContactAccepted); len(ac) != 1 || ac[0].Peer != daveURI {
		t.Errorf("alice's accepted contacts %+v, want dave", ac)
	}
	if bl, _ := e.s.Contacts(e.ctx, bob.ID, store.ContactBlocked); len(bl) != 0 {
		t.Errorf("bob has blocked %+v", bl)
	}
	// Unblock removes the row.
	e.ok(e.s.SetContact(e.ctx, alice.ID, carolURI, store.ContactNone, now))
	if st := e.contact(alice, carolURI); st != store.ContactNone {
		t.Errorf("after unblocking, carol is %q", st)
	}
	e.ok(e.s.SetContact(e.ctx, alice.ID, carolURI, store.ContactNone, now)) // twice is fine
	// Bad state, unknown user.
	if err := e.s.SetContact(e.ctx, alice.ID, carolURI, "friend", now); err == nil {
		t.Error("SetContact accepted the state \"friend\"")
	}
	unknown := alice.ID + bob.ID + 100
	is(t, e.s.SetContact(e.ctx, unknown, carolURI, store.ContactBlocked, now), store.ErrNotFound, "blocking for an unknown user")
	_, err = e.s.AddContact(e.ctx, unknown, carolURI, now)
	is(t, err, store.ErrNotFound, "AddContact for an unknown user")
}

// consentBlockDropsRequests: a block declines the peer's pending
// requests and drops what their rooms had queued; Refusing then finds the
// user for the rooms and for the peer's messages anywhere.
func consentBlockDropsRequests(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	ad, bd := e.device(alice.ID, "phone"), e.device(bob.ID, "phone")
	now := time.Now()
	e.room("req", bob.ID, alice.ID)
	e.room("group", bob.ID, alice.ID)
	e.submit(app("req", "m-req-1", bd.ID, ad.ID))
	e.submit(app("group", "m-group-1", bd.ID, ad.ID))
	e.ok(e.s.AddRequest(e.ctx, store.MessageRequest{UserID: alice.ID, Peer: carolURI, RoomID: "req", Created: now}))

	if got := e.refusing("req", carolURI, alice.ID, bob.ID); len(got) != 0 {
		t.Fatalf("before any decision, refusing %v", got)
	}
	e.ok(e.s.SetContact(e.ctx, alice.ID, carolURI, store.ContactBlocked, now))
	if got := e.pending(alice); len(got) != 0 {
		t.Errorf("after the block, requests %q", got)
	}
	if got := clientIDs(e.deliveries(ad.ID)); !slices.Equal(got, []string{"m-group-1"}) {
		t.Errorf("alice's queue %q after the block, want the group's message only", got)
	}
	if got := clientIDs(e.deliveries(bd.ID)); len(got) != 0 {
		t.Errorf("bob's queue changed: %q", got)
	}
	// The declined room, for anyone's messages; carol's, in any room.
	if got := e.refusing("req", "", alice.ID, bob.ID); !slices.Equal(got, []int64{alice.ID}) {
		t.Errorf("refusing req: %v", got)
	}
	if got := e.refusing("group", carolURI, bob.ID, alice.ID, alice.ID); !slices.Equal(got, []int64{alice.ID}) {
		t.Errorf("refusing carol's message in group: %v", got)
	}
	if got := e.refusing("group", daveURI, alice.ID, bob.ID); len(got) != 0 {
		t.Errorf("refusing dave's message in group: %v", got)
	}
	// Declined by the request and blocked: listed once.
	if got := e.refusing("req", carolURI, alice.ID); !slices.Equal(got, []int64{alice.ID}) {
		t.Errorf("refusing carol's message in req: %v", got)
	}
	if got := e.refusing("group", carolURI); len(got) != 0 {
		t.Errorf("refusing for no users: %v", got)
	}
	// Unblocking lets carol's messages through again; the declined room
	// stays declined.
	e.ok(e.s.SetContact(e.ctx, alice.ID, carolURI, store.ContactNone, now))
	if got := e.refusing("group", carolURI, alice.ID); len(got) != 0 {
		t.Errorf("after unblocking, refusing %v", got)
	}
	if got := e.refusing("req", "", alice.ID); !slices.Equal(got, []int64{alice.ID}) {
		t.Errorf("after unblocking, req is no longer declined: %v", got)
	}
}

func reopenConsent(t *testing.T, open func() *env) {
	e := open()
	alice, bob := e.user("alice"), e.user("bob")
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	e.ok(e.s.SetContact(e.ctx, alice.ID, carolURI, store.ContactBlocked, now))
	e.ok(e.s.AddRequest(e.ctx, store.MessageRequest{UserID: bob.ID, Peer: daveURI, RoomID: "r", Created: now}))
	e.ok(e.s.AddRequest(e.ctx, store.MessageRequest{UserID: bob.ID, Peer: daveURI, RoomID: "d", Created: now}))
	e.ok(e.s.DeclineRequest(e.ctx, bob.ID, daveURI, "d"))
	e.ok(e.s.Close())

	e = open()
	if st := e.contact(alice, carolURI); st != store.ContactBlocked {
		t.Errorf("after reopening, carol is %q to alice", st)
	}
	if got := e.pending(bob); !slices.Equal(got, []string{daveURI + " r"}) {
		t.Errorf("after reopening, bob's requests %q", got)
	}
	if got := e.refusing("d", "", bob.ID); !slices.Equal(got, []int64{bob.ID}) {
		t.Errorf("after reopening, d is not declined: %v", got)
	}
}

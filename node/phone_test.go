package node_test

import (
	"context"
	"errors"
	"testing"

	"github.com/switchboard-chat/switchboard/client"
)

// memberPhone is the verified phone number p reads for user in a room.
func (p *person) memberPhone(room client.RoomID, user string) string {
	p.t.Helper()
	got, err := p.c.MemberPhone(room, user)
	if err != nil {
		p.t.Fatalf("%s: phone of %s in %s: %v", p.name, user, room, err)
	}
	return got
}

// TestVerifiedPhoneAcrossProviders: Bob (blue) and Carol (red) both have
// a verified phone number; Bob lets people find him by it, Carol does not.
// Each writes to the shop on green. The shop reads Bob's number from his
// credential in their room, vouched for by blue, and no number for Carol.
// When Bob stops being discoverable by phone, a room he starts afterwards
// no longer shows it.
func TestVerifiedPhoneAcrossProviders(t *testing.T) {
	l := startLocal(t, "green.test", "blue.test", "red.test")
	shop := newPerson(t, l, 0, "shop")
	bob := newPersonWithPhone(t, l, 1, "bob", "+41 44 668 18 00")
	carol := newPersonWithPhone(t, l, 2, "carol", "+49 30 901820")
	ctx := context.Background()

	// Bob agrees to be found by his number; his device's credential is
	// renewed with it.
	must(t, "bob allows phone lookups", bob.c.SetDiscovery(ctx, false, true))

	write := func(p *person, text string) client.RoomID {
		t.Helper()
		room, err := p.c.CreateRoom(ctx)
		must(t, p.name+" creates a room", err)
		must(t, p.name+" invites the shop", p.c.Invite(ctx, room, "shop@green.test"))
		p.send(room, text)
		shop.expect(room, p.name+": "+text)
		return room
	}
	bobRoom := write(bob, "where is my parcel?")
	carolRoom := write(carol, "do you ship to Berlin?")

	if got := shop.memberPhone(bobRoom, "bob@blue.test"); got != "+41446681800" {
		t.Errorf("the shop reads bob's phone as %q, want +41446681800", got)
	}
	if got := shop.memberPhone(carolRoom, "carol@red.test"); got != "" {
		t.Errorf("carol is not discoverable by phone, yet the shop reads %q", got)
	}
	// The shop has no number; Bob reads none for it, and the shop none
	// for itself.
	if got := bob.memberPhone(bobRoom, "shop@green.test"); got != "" {
		t.Errorf("bob reads the shop's phone as %q", got)
	}
	if got := shop.memberPhone(bobRoom, "shop"); got != "" {
		t.Errorf("the shop reads its own phone as %q", got)
	}
	// Someone who is not in the room has no answer at all.
	if _, err := shop.c.MemberPhone(bobRoom, "carol@red.test"); !errors.Is(err, client.ErrNotMember) {
		t.Errorf("phone of carol in bob's room: %v, want ErrNotMember", err)
	}
	if _, err := shop.c.MemberPhone("no-such-room", "bob@blue.test"); !errors.Is(err, client.ErrUnknownRoom) {
		t.Errorf("phone in an unknown room: %v, want ErrUnknownRoom", err)
	}

	// Bob withdraws his consent: the next room he starts shows no number.
	must(t, "bob stops phone lookups", bob.c.SetDiscovery(ctx, false, false))
	later := write(bob, "one more question")
	if got := shop.memberPhone(later, "bob@blue.test"); got != "" {
		t.Errorf("bob is no longer discoverable by phone, yet the shop reads %q in his new room", got)
	}
	// The room where he showed it keeps the credential he joined with.
	if got := shop.memberPhone(bobRoom, "bob@blue.test"); got != "+41446681800" {
		t.Errorf("bob's first room: phone %q", got)
	}
}

package conversations_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/node"
)

// conversation finds a room in the person's list (nil: not listed).
func (p *person) conversation(room client.RoomID) *conversations.Conversation {
	p.t.Helper()
	cs, err := p.m.Conversations(context.Background())
	ok(p.t, "listing conversations", err)
	for i := range cs {
		if cs[i].Room == room {
			return &cs[i]
		}
	}
	return nil
}

// TestRequestsFollowTheProvider: whether a joined room is a request is
// the provider's answer; a request reports nothing back, delivered or
// read, until accepted; declining and blocking reach the provider.
func TestRequestsFollowTheProvider(t *testing.T) {
	l, err := node.StartLocal(t.TempDir(), []string{"green.test", "blue.test"}, node.LocalOptions{})
	ok(t, "providers", err)
	t.Cleanup(func() { l.Close() })
	alice := newPerson(t, l.Node(0), "alice", conversations.Options{})
	carol := newPerson(t, l.Node(0), "carol", conversations.Options{})
	bob := newPerson(t, l.Node(1), "bob", conversations.Options{})
	ctx := context.Background()

	room, err := alice.m.Client().CreateRoom(ctx)
	ok(t, "alice creates a room", err)
	ok(t, "alice invites bob", alice.m.Client().Invite(ctx, room, "bob@blue.test"))
	hi, err := alice.m.Send(ctx, room, "Hi Bob")
	ok(t, "alice writes", err)
	bob.syncUntil("alice's message", bob.has(room, hi.ID))
	if c := bob.conversation(room); c == nil || !c.Request || c.Inviter != "alice@green.test" {
		t.Fatalf("bob's room %+v, want a request from alice@green.test", c)
	}
	// Bob opens it: nothing goes back, delivered or read.
	ok(t, "bob opens the request", bob.m.MarkRead(ctx, room))
	time.Sleep(100 * time.Millisecond)
	alice.sync()
	if st := alice.entry(room, hi.ID).Status; st != conversations.StatusSent {
		t.Fatalf("alice sees %v before bob accepted, want sent", st)
	}
	if c := bob.conversation(room); c.Unread != 1 {
		t.Errorf("the request has %d unread, want 1", c.Unread)
	}
	// Accepting tells the provider, which lists no request any more, and
	// the delivered report goes out.
	ok(t, "bob accepts", bob.m.Accept(ctx, room))
	if rs, err := bob.m.Client().Requests(ctx); err != nil || len(rs) != 0 {
		t.Errorf("after accepting, the provider lists %+v (%v)", rs, err)
	}
	alice.syncUntil("bob's delivered report", func() bool { return alice.entry(room, hi.ID).Status == conversations.StatusDelivered })

	// Alice is Bob's contact now: her next room is no request.
	next, err := alice.m.Client().CreateRoom(ctx)
	ok(t, "alice creates another room", err)
	ok(t, "alice invites bob again", alice.m.Client().Invite(ctx, next, "bob@blue.test"))
	bob.syncUntil("the second room", func() bool { return bob.conversation(next) != nil })
	if c := bob.conversation(next); c.Request {
		t.Errorf("a room from alice, whom bob accepted, is a request: %+v", c)
	}

	// Carol is new: her room is a request; Bob declines it at the
	// provider, and then blocks her.
	third, err := carol.m.Client().CreateRoom(ctx)
	ok(t, "carol creates a room", err)
	ok(t, "carol invites bob", carol.m.Client().Invite(ctx, third, "bob@blue.test"))
	bob.syncUntil("carol's room", func() bool { return bob.conversation(third) != nil })
	if c := bob.conversation(third); !c.Request || c.Inviter != "carol@green.test" {
		t.Fatalf("carol's room %+v, want a request", c)
	}
	ok(t, "bob declines", bob.m.Decline(ctx, third))
	if rs, err := bob.m.Client().Requests(ctx); err != nil || len(rs) != 0 {
		t.Errorf("after declining, the provider lists %+v (%v)", rs, err)
	}
	if c := bob.conversation(third); c != nil {
		t.Errorf("the declined room is listed: %+v", c)
	}
	ok(t, "bob blocks carol", bob.m.Block(ctx, third, "carol@green.test"))
	if got, err := bob.m.Client().Blocked(ctx); err != nil || !slices.Equal(got, []string{"carol@green.test"}) {
		t.Errorf("the provider holds bob's blocks %q (%v)", got, err)
	}
}

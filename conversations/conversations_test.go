package conversations_test

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// Scenarios of two people on two providers chatting through their
// Messengers, on real providers over loopback with mutual TLS between them.

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type person struct {
	t *testing.T
	m *conversations.Messenger
}

func newPerson(t *testing.T, n *node.Node, handle string, opts conversations.Options) *person {
	t.Helper()
	u, code, err := provider.AddUser(context.Background(), n.Store, handle, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Reachable by every partner, as if they had turned it on.
	if err := n.Store.SetReachability(context.Background(), u.ID, store.ReachAll, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := client.Register(context.Background(), n.ClientURL, code, "phone", dir, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := conversations.Open(c, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); c.Close() })
	return &person{t: t, m: m}
}

func (p *person) sync() {
	p.t.Helper()
	if err := p.m.Sync(context.Background()); err != nil {
		p.t.Fatal(err)
	}
}

// syncUntil syncs until cond holds: messages to a person on another
// provider than the room's hub arrive through the hub's outbox, a moment
// after the sender's call returns.
func (p *person) syncUntil(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.sync()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited in vain for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *person) has(room client.RoomID, id content.ID) func() bool {
	return func() bool {
		_, err := p.m.Message(context.Background(), room, id)
		return err == nil
	}
}

func (p *person) history(room client.RoomID) []conversations.Entry {
	p.t.Helper()
	es, err := p.m.History(context.Background(), room, 0, 100)
	if err != nil {
		p.t.Fatal(err)
	}
	return es
}

func (p *person) entry(room client.RoomID, id content.ID) *conversations.Entry {
	p.t.Helper()
	e, err := p.m.Message(context.Background(), room, id)
	if err != nil {
		p.t.Fatalf("message %s: %v", id, err)
	}
	return e
}

func ok(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestAConversationAcrossProviders: Alice (green) and Bob (blue) hold a
// whole conversation: text, a reply, a reaction and its withdrawal, an
// edit, a deletion, a file, an expiring message; each sees the other's
// delivered and read reports, typing, unread counts and search.
func TestAConversationAcrossProviders(t *testing.T) {
	l, err := node.StartLocal(t.TempDir(), []string{"green.test", "blue.test"}, node.LocalOptions{})
	ok(t, "providers", err)
	t.Cleanup(func() { l.Close() })
	bobClock := &clock{now: time.Now()}
	alice := newPerson(t, l.Node(0), "alice", conversations.Options{})
	bob := newPerson(t, l.Node(1), "bob", conversations.Options{Now: bobClock.Now})
	ctx := context.Background()

	room, err := alice.m.Client().CreateRoom(ctx)
	ok(t, "alice creates a room", err)
	ok(t, "alice invites bob", alice.m.Client().Invite(ctx, room, "bob@blue.test"))
	hi, err := alice.m.Send(ctx, room, "Hi Bob! Lunch on Friday?")
	ok(t, "alice writes", err)
	if hi.Status != conversations.StatusSent {
		t.Errorf("a fresh message is %v, want sent", hi.Status)
	}

	// Bob's device gets it: a request from someone new, one unread.
	bob.syncUntil("alice's first message", bob.has(room, hi.ID))
	convs, err := bob.m.Conversations(ctx)
	ok(t, "bob's conversations", err)
	if len(convs) != 1 || !convs[0].Request || convs[0].Unread != 1 || !slices.Equal(convs[0].Members, []string{"alice@green.test"}) ||
		!convs[0].ThirdParty || convs[0].Last == nil || convs[0].Last.Text != "Hi Bob! Lunch on Friday?" {
		t.Fatalf("bob's list: %+v", convs)
	}
	ok(t, "bob accepts", bob.m.Accept(ctx, room))

	// Alice sees it delivered, then read once Bob opens the chat.
	alice.sync()
	if st := alice.entry(room, hi.ID).Status; st != conversations.StatusDelivered {
		t.Errorf("after bob's device got it, alice sees %v", st)
	}
	ok(t, "bob reads", bob.m.MarkRead(ctx, room))
	alice.sync()
	if st := alice.entry(room, hi.ID).Status; st != conversations.StatusRead {
		t.Errorf("after bob read it, alice sees %v", st)
	}

	// Bob types, then replies; Alice reacts, then thinks better of it.
	ok(t, "bob types", bob.m.Typing(ctx, room))
	alice.sync()
	if got := alice.m.Typists(room); !slices.Equal(got, []string{"bob@blue.test"}) {
		t.Errorf("alice sees typing: %v", got)
	}
	reply, err := bob.m.Reply(ctx, room, hi.ID, "Friday works. Noon?")
	ok(t, "bob replies", err)
	alice.sync()
	if got := alice.m.Typists(room); len(got) != 0 {
		t.Errorf("bob's message did not end his typing indicator: %v", got)
	}
	if r := alice.entry(room, reply.ID); r.ReplyTo == nil || *r.ReplyTo != hi.ID || r.Sender != "bob@blue.test" {
		t.Errorf("alice got the reply as %+v", r)
	}
	ok(t, "alice reacts", alice.m.React(ctx, room, reply.ID, "👍"))
	bob.syncUntil("alice's reaction", func() bool { return len(bob.entry(room, reply.ID).Reactions) > 0 })
	if got := bob.entry(room, reply.ID).Reactions["👍"]; !slices.Equal(got, []string{"alice@green.test"}) {
		t.Errorf("bob sees reactions %v", bob.entry(room, reply.ID).Reactions)
	}
	ok(t, "alice withdraws her reaction", alice.m.Unreact(ctx, room, reply.ID, "👍"))
	bob.syncUntil("the withdrawal", func() bool { return len(bob.entry(room, reply.ID).Reactions) == 0 })
	if got := bob.entry(room, reply.ID).Reactions; len(got) != 0 {
		t.Errorf("bob still sees reactions %v", got)
	}

	// Alice edits her first message, then deletes it; Bob cannot edit hers.
	ok(t, "alice edits", alice.m.Edit(ctx, room, hi.ID, "Hi Bob! Lunch on Thursday?"))
	bob.syncUntil("the edit", func() bool { return bob.entry(room, hi.ID).Edited })
	if e := bob.entry(room, hi.ID); e.Text != "Hi Bob! Lunch on Thursday?" || !e.Edited {
		t.Errorf("bob sees the edit as %+v", e)
	}
	if err := bob.m.Edit(ctx, room, hi.ID, "forged"); err != conversations.ErrNotYours {
		t.Errorf("bob editing alice's message: %v", err)
	}
	ok(t, "alice deletes", alice.m.Delete(ctx, room, hi.ID))
	bob.syncUntil("the deletion", func() bool { return bob.entry(room, hi.ID).Deleted })
	if e := bob.entry(room, hi.ID); !e.Deleted || e.Text != "" {
		t.Errorf("bob sees the deletion as %+v", e)
	}

	// A file, end to end encrypted, fetched by Bob through blue.
	menu := bytes.Repeat([]byte("soup, bread, salad\n"), 500)
	f, err := alice.m.SendFile(ctx, room, bytes.NewReader(menu), "menu.txt", "text/plain")
	ok(t, "alice sends a file", err)
	bob.syncUntil("the file", bob.has(room, f.ID))
	data, att, err := bob.m.SaveFile(ctx, room, f.ID)
	ok(t, "bob saves the file", err)
	if !bytes.Equal(data, menu) || att.Filename != "menu.txt" {
		t.Errorf("bob saved %d bytes named %q", len(data), att.Filename)
	}

	// A message that expires a minute after it arrives.
	secret, err := alice.m.SendExpiring(ctx, room, "the door code is 4711", time.Minute)
	ok(t, "alice sends an expiring message", err)
	bob.syncUntil("the expiring message", bob.has(room, secret.ID))
	if e := bob.entry(room, secret.ID); e.Expires.IsZero() {
		t.Fatalf("bob's copy does not expire: %+v", e)
	}
	found, err := bob.m.Search(ctx, "door code", 10)
	ok(t, "bob searches", err)
	if len(found) != 1 || found[0].ID != secret.ID {
		t.Errorf("bob's search found %+v", found)
	}
	bobClock.advance(2 * time.Minute)
	if n, err := bob.m.ExpireNow(ctx); err != nil || n != 1 {
		t.Errorf("expiry removed from %d rooms, %v", n, err)
	}
	if _, err := bob.m.Message(ctx, room, secret.ID); err != conversations.ErrNoSuchMessage {
		t.Errorf("the expired message is still in bob's history: %v", err)
	}
	if found, _ := bob.m.Search(ctx, "door code", 10); len(found) != 0 {
		t.Errorf("search still finds the expired message")
	}

	want := []string{"", "Friday works. Noon?", "menu.txt"}
	var got []string
	for _, e := range bob.history(room) {
		got = append(got, e.Text)
	}
	if !slices.Equal(got, want) {
		t.Errorf("bob's history: %q, want %q", got, want)
	}
}

// TestTypingCanBeTurnedOff: a person who turned typing indicators off
// neither sends them nor sees others'.
func TestTypingCanBeTurnedOff(t *testing.T) {
	l, err := node.StartLocal(t.TempDir(), []string{"green.test", "blue.test"}, node.LocalOptions{})
	ok(t, "providers", err)
	t.Cleanup(func() { l.Close() })
	alice := newPerson(t, l.Node(0), "alice", conversations.Options{NoTyping: true})
	bob := newPerson(t, l.Node(1), "bob", conversations.Options{})
	ctx := context.Background()
	room, err := alice.m.Client().CreateRoom(ctx)
	ok(t, "room", err)
	ok(t, "invite", alice.m.Client().Invite(ctx, room, "bob@blue.test"))
	bob.syncUntil("joining", func() bool { return len(bob.m.Client().Rooms()) == 1 })
	logLen := func() int {
		msgs, err := l.Node(0).Store.RoomMessages(ctx, string(room), 0, 1000)
		ok(t, "green's log", err)
		return len(msgs)
	}
	before := logLen()
	ok(t, "alice types", alice.m.Typing(ctx, room))
	if logLen() != before {
		t.Error("alice, with typing off, sent a typing indicator")
	}
	ok(t, "bob types", bob.m.Typing(ctx, room))
	if logLen() != before+1 {
		t.Fatal("bob's typing indicator did not reach the hub")
	}
	alice.sync() // the hub queued it for alice's device at once
	if got := alice.m.Typists(room); len(got) != 0 {
		t.Errorf("alice, with typing off, sees %v typing", got)
	}
}

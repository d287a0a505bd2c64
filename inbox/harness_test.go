package inbox_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/inbox"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// The scenarios run real providers on loopback: the shop's business
// account on green.test, customers on green.test and blue.test, each a
// real SDK client with its own Messenger. The Desk runs on the business
// account's device with a clock the test moves.

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

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

type shop struct {
	t     *testing.T
	l     *node.Local
	clock *clock
	desk  *inbox.Desk
	dir   string
	m     *conversations.Messenger
	stop  func() // stops the running Desk and closes it
}

// wednesday is a Wednesday morning in Paris, within usual hours.
var wednesday = time.Date(2026, 12, 2, 10, 0, 0, 0, mustZone("Europe/Paris"))

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func ok(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// register makes a user with a device and its Messenger, reachable by
// every partner.
func register(t *testing.T, n *node.Node, handle, phone string, opts conversations.Options) *conversations.Messenger {
	t.Helper()
	ctx := context.Background()
	u, code, err := provider.AddUser(ctx, n.Store, handle, phone, time.Hour)
	ok(t, "adding "+handle, err)
	ok(t, "reachability", n.Store.SetReachability(ctx, u.ID, store.ReachAll, nil))
	dir := t.TempDir()
	c, err := client.Register(ctx, n.ClientURL, code, "device", dir, client.Options{})
	ok(t, "registering "+handle, err)
	m, err := conversations.Open(c, dir, opts)
	ok(t, "messenger of "+handle, err)
	t.Cleanup(func() { m.Close(); c.Close() })
	return m
}

// newShop starts green.test and blue.test, the shop's account on green
// and its Desk, running.
func newShop(t *testing.T) *shop {
	t.Helper()
	l, err := node.StartLocal(t.TempDir(), []string{"green.test", "blue.test"}, node.LocalOptions{})
	ok(t, "providers", err)
	t.Cleanup(func() { l.Close() })
	s := &shop{t: t, l: l, clock: &clock{now: wednesday}, dir: t.TempDir()}
	s.m = register(t, l.Node(0), "shop", "", conversations.Options{Now: s.clock.Now})
	s.start()
	return s
}

// start opens the Desk and runs it until the test ends (or stop).
func (s *shop) start() {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := inbox.Open(ctx, inbox.Config{Dir: s.dir, Messenger: s.m, Now: s.clock.Now})
	ok(s.t, "opening the desk", err)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	s.desk = d
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				s.t.Errorf("the desk's Run: %v", err)
			}
			ok(s.t, "closing the desk", d.Close())
		})
	}
	s.t.Cleanup(s.stop)
}

// waitFor polls until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// customer is someone writing to the shop from their own app.
type customer struct {
	t    *testing.T
	s    *shop
	name string
	m    *conversations.Messenger
	room client.RoomID
}

// newCustomer registers a customer on provider i (0 green, 1 blue).
func (s *shop) newCustomer(i int, handle, phone string) *customer {
	s.t.Helper()
	return &customer{t: s.t, s: s, name: handle, m: register(s.t, s.l.Node(i), handle, phone, conversations.Options{})}
}

// findableByPhone lets people find the customer by their verified
// number: their credential then carries it, for the shop to read.
func (c *customer) findableByPhone() *customer {
	c.t.Helper()
	ok(c.t, c.name+" allows phone lookups", c.m.Client().SetDiscovery(context.Background(), false, true))
	return c
}

// write sends the shop a message, opening a room with it the first time,
// and waits until the desk has taken it in (its unread count grows); it
// returns the conversation's ID.
func (c *customer) write(text string) int64 {
	c.t.Helper()
	ctx := context.Background()
	if c.room == "" {
		room, err := c.m.Client().CreateRoom(ctx)
		ok(c.t, c.name+" creates a room", err)
		ok(c.t, c.name+" invites the shop", c.m.Client().Invite(ctx, room, "shop@green.test"))
		c.room = room
	}
	unread := -1
	if cv := c.s.byRoom(c.room); cv != nil {
		unread = cv.Unread
	}
	_, err := c.m.Send(ctx, c.room, text)
	ok(c.t, c.name+" writes", err)
	var id int64
	waitFor(c.t, "the desk to take in "+c.name+"'s message", func() bool {
		cv := c.s.byRoom(c.room)
		if cv == nil {
			return false
		}
		id = cv.ID
		return cv.Unread > max(unread, 0)
	})
	return id
}

// receive syncs until the customer has a message from the shop matching
// want, and returns it.
func (c *customer) receive(want string) conversations.Entry {
	c.t.Helper()
	var got conversations.Entry
	waitFor(c.t, c.name+" to receive "+want, func() bool {
		ok(c.t, c.name+" syncs", c.m.Sync(context.Background()))
		h, err := c.m.History(context.Background(), c.room, 0, 100)
		ok(c.t, "history", err)
		for _, e := range h {
			if !e.Own && strings.Contains(e.Text, want) {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

// fromShop lists the texts the customer got from the shop.
func (c *customer) fromShop() []string {
	c.t.Helper()
	ok(c.t, c.name+" syncs", c.m.Sync(context.Background()))
	h, err := c.m.History(context.Background(), c.room, 0, 100)
	ok(c.t, "history", err)
	var out []string
	for _, e := range h {
		if !e.Own {
			out = append(out, e.Text)
		}
	}
	return out
}

func (s *shop) list(f inbox.Filter) []inbox.Conversation {
	s.t.Helper()
	cs, err := s.desk.List(context.Background(), f)
	ok(s.t, "listing", err)
	return cs
}

// byRoom finds the conversation of a room (nil: none).
func (s *shop) byRoom(room client.RoomID) *inbox.Conversation {
	s.t.Helper()
	for _, cv := range s.list(inbox.Filter{}) {
		if cv.Room == room {
			return &cv
		}
	}
	return nil
}

func (s *shop) conv(id int64) inbox.Conversation {
	s.t.Helper()
	c, err := s.desk.Conversation(context.Background(), id)
	ok(s.t, "conversation", err)
	return c
}

func (s *shop) agent(login string, role inbox.Role) inbox.Agent {
	s.t.Helper()
	a, err := s.desk.AddAgent(context.Background(), login, strings.ToUpper(login[:1])+login[1:], "correct horse battery", role)
	ok(s.t, "adding agent "+login, err)
	return a
}

func (s *shop) audit(id int64) []string {
	s.t.Helper()
	evs, err := s.desk.Audit(context.Background(), id)
	ok(s.t, "audit", err)
	var out []string
	for _, e := range evs {
		out = append(out, strings.TrimSpace(e.Actor+" "+e.Action+" "+e.Detail))
	}
	return out
}

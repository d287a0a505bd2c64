package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// Scenarios across providers: three providers on loopback, partners of
// one another over mutual TLS, and people on each using the Go SDK exactly
// as they would against one provider.

func startLocal(t *testing.T, domains ...string) *node.Local {
	t.Helper()
	opts := node.LocalOptions{}
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	l, err := node.StartLocal(t.TempDir(), domains, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// person is one user's device, with what it has read so far. It reads
// by syncing when the test asks (read), or, once stream has been called,
// only what its open stream brings, as an app does.
type person struct {
	t    *testing.T
	name string // handle@domain
	dir  string // the device's state
	c    *client.Client

	// stop ends the stream's Run, done its collecting of events (after
	// Close); nil before stream.
	stop func()
	done chan struct{}

	mu   sync.Mutex
	seen []client.Event
}

// newPerson makes a user with one device on provider i, reachable by
// every partner provider (as if they had turned that on: a new user is
// reachable by none, docs/reachability.md).
func newPerson(t *testing.T, l *node.Local, i int, handle string) *person {
	t.Helper()
	return addPerson(t, l, i, handle, "", store.ReachAll)
}

// addPerson makes a user with the phone number (or none) and the
// reachability given, and one device.
func addPerson(t *testing.T, l *node.Local, i int, handle, phone string, reach store.ReachMode) *person {
	t.Helper()
	return personOn(t, l.Node(i), handle, phone, reach)
}

// personOn makes a user on the running node n and registers its device.
func personOn(t *testing.T, n *node.Node, handle, phone string, reach store.ReachMode) *person {
	t.Helper()
	u, code, err := provider.AddUser(context.Background(), n.Store, handle, phone, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	must(t, "setting "+handle+"'s reachability", n.Store.SetReachability(context.Background(), u.ID, reach, nil))
	p := &person{t: t, name: handle + "@" + n.Domain, dir: t.TempDir()}
	c, err := client.Register(context.Background(), n.ClientURL, code, "phone", p.dir, client.Options{})
	if err != nil {
		t.Fatalf("registering %s on %s: %v", handle, n.Domain, err)
	}
	p.c = c
	t.Cleanup(p.close)
	return p
}

// stream keeps the device's stream open (client.Run) and collects what
// it brings; from then on read no longer syncs.
func (p *person) stream() {
	ctx, cancel := context.WithCancel(context.Background())
	c, ran, done := p.c, make(chan struct{}), make(chan struct{})
	p.stop = func() { cancel(); <-ran }
	p.done = done
	go func() { defer close(ran); c.Run(ctx) }()
	go func() {
		// Until Close closes the channel: what the device saved as
		// processed is delivered even after Run has stopped.
		defer close(done)
		for e := range c.Events() {
			p.mu.Lock()
			p.seen = append(p.seen, e)
			p.mu.Unlock()
		}
	}()
}

// close stops the stream, if open, and closes the device.
func (p *person) close() {
	if p.stop != nil {
		p.stop()
	}
	p.c.Close()
	if p.stop != nil {
		<-p.done
		p.stop = nil
	}
}

// moveTo closes the device and opens it again on clientURL, streaming,
// as an app does when it reconnects through another address.
func (p *person) moveTo(clientURL string) {
	p.t.Helper()
	p.close()
	c, err := client.Open(context.Background(), clientURL, p.dir, client.Options{})
	if err != nil {
		p.t.Fatalf("%s: reopening on %s: %v", p.name, clientURL, err)
	}
	p.c = c
	p.stream()
}

// read syncs the device and collects its events; a streaming device
// only has what its stream brought.
func (p *person) read() {
	p.t.Helper()
	if p.stop != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.c.Sync(ctx); err != nil {
		p.t.Fatalf("%s: sync: %v", p.name, err)
	}
	for {
		select {
		case e := <-p.c.Events():
			p.mu.Lock()
			p.seen = append(p.seen, e)
			p.mu.Unlock()
		case <-time.After(20 * time.Millisecond):
			return
		}
	}
}

// messages lists what the person read in a room, as "sender: body", in
// the order the device got them, failing on a message that is not after
// the one before (a repeat or a reordering).
func (p *person) messages(room client.RoomID) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	var last int64
	for _, e := range p.seen {
		if m, ok := e.(*client.Message); ok && m.Room == room {
			if m.Seq <= last {
				p.t.Errorf("%s read seq %d after seq %d in room %s", p.name, m.Seq, last, room)
			}
			last = m.Seq
			out = append(out, m.Sender.User+"@"+m.Sender.Domain+": "+string(m.Body))
		}
	}
	return out
}

func (p *person) send(room client.RoomID, body string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := p.c.Send(ctx, room, []byte(body)); err != nil {
		p.t.Fatalf("%s: send %q: %v", p.name, body, err)
	}
}

// expect waits until the person has read exactly want in the room. The
// wait is well under a stream's 30 s re-read of its queue, so a
// streaming device passes only if a wake-up brought the messages.
func (p *person) expect(room client.RoomID, want ...string) {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p.read()
		got := p.messages(room)
		if slices.Equal(got, want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			p.t.Fatalf("%s read in room %s:\n  %s\nwant:\n  %s", p.name, room, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// joined waits until the person's device has processed its Welcome to
// the room: sending before that fails with client.ErrUnknownRoom.
func (p *person) joined(room client.RoomID) {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !slices.Contains(p.c.Rooms(), room) {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s never joined room %s", p.name, room)
		}
		p.read()
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *person) removed(room client.RoomID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.seen {
		if r, ok := e.(*client.RemovedFromRoom); ok && r.Room == room {
			return true
		}
	}
	return false
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestChatAcrossThreeProviders: Alice (green) talks 1:1 with Bob (blue),
// then in a group with Bob and Carol (red); Dave, also on red, is added
// and Carol removed. Everyone reads every message once, in the hub's order.
func TestChatAcrossThreeProviders(t *testing.T) {
	l := startLocal(t, "green.test", "blue.test", "red.test")
	alice := newPerson(t, l, 0, "alice")
	bob := newPerson(t, l, 1, "bob")
	carol := newPerson(t, l, 2, "carol")
	dave := newPerson(t, l, 2, "dave")
	ctx := context.Background()

	// 1:1, hosted by green.
	dm, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, dm, "bob@blue.test"))
	alice.send(dm, "hello Bob")
	bob.expect(dm, "alice@green.test: hello Bob")
	bob.send(dm, "hi Alice, from blue")
	alice.expect(dm, "bob@blue.test: hi Alice, from blue")

	// A group across all three providers.
	group, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates the group", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, group, "bob@blue.test"))
	must(t, "alice invites carol", alice.c.Invite(ctx, group, "carol@red.test"))
	alice.send(group, "welcome both")
	bob.joined(group)
	carol.joined(group)
	bob.send(group, "bob here")
	carol.send(group, "carol here")
	want := []string{"alice@green.test: welcome both", "bob@blue.test: bob here", "carol@red.test: carol here"}
	alice.expect(group, want[1:]...)
	bob.expect(group, want[0], want[2])
	carol.expect(group, want[0], want[1])

	// Dave, on red too, is added; Carol is removed.
	must(t, "alice adds dave", alice.c.Invite(ctx, group, "dave@red.test"))
	must(t, "alice removes carol", alice.c.Remove(ctx, group, "carol@red.test"))
	bob.read()
	dave.joined(group)
	dave.send(group, "dave joined")
	alice.send(group, "bye Carol")
	bob.expect(group, want[0], want[2], "dave@red.test: dave joined", "alice@green.test: bye Carol")
	dave.expect(group, "alice@green.test: bye Carol")
	carol.read()
	if !carol.removed(group) {
		t.Error("carol was not told she was removed")
	}
	carol.expect(group, want[0], want[1])
	members, err := bob.c.Members(group)
	must(t, "members", err)
	if got := fmt.Sprint(members); got != "[alice@green.test bob dave@red.test]" {
		t.Errorf("bob sees members %s", got)
	}

	// The hub's /metrics counts what its outbox delivered to each follower.
	resp, err := http.Get(l.Node(0).ClientURL + "/metrics")
	must(t, "metrics", err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, d := range []string{"blue.test", "red.test"} {
		if !strings.Contains(string(body), `switchboard_federation_outbox_total{destination="`+d+`",event="sent"}`) {
			t.Errorf("green's metrics show no notify sent to %s", d)
		}
	}
}

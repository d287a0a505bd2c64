package node_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
)

// Third-party reachability (docs/reachability.md): a new user cannot be
// reached from other providers until they allow it, for all partners or
// some; turning it off stops new key material and new messages from that
// provider at once, and stays off across a restart.

// newcomer is a user just made on a provider, with one device, who has
// not touched their reachability.
func (h *harness) newcomer(domain, handle string) *person {
	h.t.Helper()
	n := h.node(domain)
	ctx := context.Background()
	_, code, err := provider.AddUser(ctx, n.Store, handle, "", time.Hour)
	must(h.t, "adding "+handle, err)
	c, err := client.Register(ctx, n.ClientURL, code, "phone", h.t.TempDir(), client.Options{})
	must(h.t, "registering "+handle, err)
	p := &person{t: h.t, name: handle + "@" + domain, c: c}
	h.t.Cleanup(func() { p.c.Close() })
	return p
}

// keyPackages counts the fresh KeyPackages a provider keeps for all of a
// user's devices.
func (h *harness) keyPackages(domain, handle string) int {
	h.t.Helper()
	n, ctx := h.node(domain), context.Background()
	u, err := n.Store.UserByHandle(ctx, handle)
	must(h.t, "finding "+handle, err)
	devices, err := n.Store.DevicesOfUser(ctx, u.ID)
	must(h.t, "listing "+handle+"'s devices", err)
	total := 0
	for _, d := range devices {
		for _, cs := range mls.SupportedSuites {
			k, err := n.Store.CountKeyPackages(ctx, d.ID, uint16(cs))
			must(h.t, "counting KeyPackages", err)
			total += k
		}
	}
	return total
}

// reachability is what p's provider says p allows, as "mode partners".
func (p *person) reachability() string {
	p.t.Helper()
	mode, partners, err := p.c.Reachability(context.Background())
	must(p.t, p.name+" reading reachability", err)
	return strings.TrimSpace(mode + " " + strings.Join(partners, " "))
}

func TestReachabilityIsOffUntilTheUserTurnsItOn(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test", "red.test")
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob := h.newcomer("blue.test", "bob")
	ctx := context.Background()

	// Bob is new: nobody on another provider may reach him.
	if got := bob.reachability(); got != "off" {
		t.Fatalf("a new user's reachability is %q, want off", got)
	}
	room, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	before := h.keyPackages("blue.test", "bob")
	if before == 0 {
		t.Fatal("bob's device has no KeyPackages at blue")
	}
	err = alice.c.Invite(ctx, room, "bob@blue.test")
	if !errors.Is(err, client.ErrForbidden) || !strings.Contains(err.Error(), "does not accept contact") {
		t.Fatalf("alice invites bob, who allows no one: %v, want forbidden, does not accept contact", err)
	}
	if after := h.keyPackages("blue.test", "bob"); after != before {
		t.Errorf("blue handed out %d of bob's KeyPackages to green without his consent", before-after)
	}
	if members, err := alice.c.Members(room); err != nil || !slices.Equal(members, []string{"alice"}) {
		t.Errorf("alice's room has members %v (%v), want alice alone", members, err)
	}

	// Only red: green is still refused.
	must(t, "bob allows red", bob.c.SetReachability(ctx, client.ReachSome, []string{"red.test"}))
	if err := alice.c.Invite(ctx, room, "bob@blue.test"); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("alice invites bob, who allows red only: %v, want forbidden", err)
	}
	// A bad setting is refused and changes nothing.
	for _, bad := range []struct {
		mode     string
		partners []string
	}{{client.ReachSome, nil}, {client.ReachAll, []string{"green.test"}}, {client.ReachSome, []string{"not a domain"}}, {"everyone", nil}} {
		if err := bob.c.SetReachability(ctx, bad.mode, bad.partners); !errors.Is(err, client.ErrBadRequest) {
			t.Errorf("reachability %s %v: %v, want bad_request", bad.mode, bad.partners, err)
		}
	}
	if got := bob.reachability(); got != "some red.test" {
		t.Errorf("bob's reachability is %q, want some red.test", got)
	}

	// Green too: the same invitation goes through now (the refused
	// request was not recorded as answered, so it is not a replay), and
	// they chat.
	must(t, "bob allows green and red", bob.c.SetReachability(ctx, client.ReachSome, []string{"Green.test", "red.test"}))
	if got := bob.reachability(); got != "some green.test red.test" {
		t.Errorf("bob's reachability is %q, want some green.test red.test", got)
	}
	must(t, "alice invites bob, who allows green", alice.c.Invite(ctx, room, "bob@blue.test"))
	alice.send(room, "hello Bob")
	bob.expect(room, "alice@green.test: hello Bob")
	bob.send(room, "hi Alice")
	alice.expect(room, "bob@blue.test: hi Alice")

	// Bob turns it off: blue keeps its copy of green's room in order, but
	// queues nothing more of it for Bob's device.
	must(t, "bob turns reachability off", bob.c.SetReachability(ctx, client.ReachOff, nil))
	alice.send(room, "are you still there?")
	h.settle("green.test", room)
	bob.read()
	bob.expect(room, "alice@green.test: hello Bob")

	// Blue restarts: the setting is kept, and still nothing arrives.
	h.stop("blue.test")
	h.start("blue.test")
	if got := bob.reachability(); got != "off" {
		t.Fatalf("after blue restarted, bob's reachability is %q, want off", got)
	}
	alice.send(room, "after the restart")
	h.settle("green.test", room)
	if n := h.queued("blue.test", "bob"); n != 0 {
		t.Errorf("blue queued %d messages for bob after he turned reachability off", n)
	}
	bob.read()
	bob.expect(room, "alice@green.test: hello Bob")
	// Nor can green get new key material for him.
	other, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates another room", err)
	before = h.keyPackages("blue.test", "bob")
	if err := alice.c.Invite(ctx, other, "bob@blue.test"); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("alice invites bob after he turned reachability off: %v, want forbidden", err)
	}
	if after := h.keyPackages("blue.test", "bob"); after != before {
		t.Errorf("blue handed out %d of bob's KeyPackages after he turned reachability off", before-after)
	}
}

// queued counts the messages waiting in the queues of a user's devices.
func (h *harness) queued(domain, handle string) int {
	h.t.Helper()
	n, ctx := h.node(domain), context.Background()
	u, err := n.Store.UserByHandle(ctx, handle)
	must(h.t, "finding "+handle, err)
	devices, err := n.Store.DevicesOfUser(ctx, u.ID)
	must(h.t, "listing "+handle+"'s devices", err)
	total := 0
	for _, d := range devices {
		ds, err := n.Store.Deliveries(ctx, d.ID, 0, 1000)
		must(h.t, "reading a queue", err)
		total += len(ds)
	}
	return total
}

package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/provider"
)

// The scenarios run against a real provider (package provider on SQLite)
// on loopback: see provider_env_test.go.

type env struct {
	t   *testing.T
	ctx context.Context
	p   *testProvider
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, ctx: ctx, p: newTestProvider(t)}
}

// device is one registered device and everything it received.
type device struct {
	*client.Client
	t   *testing.T
	dir string

	mu     sync.Mutex
	events []client.Event
	done   chan struct{} // closed when the Events channel is
}

// register enrolls a new device of a user (the user is made on first use).
func (e *env) register(handle, name string) *device {
	e.t.Helper()
	dir := e.t.TempDir()
	c, err := client.Register(e.ctx, e.p.URL(), e.p.Enroll(handle), name, dir, client.Options{KeyPackageBatch: 20})
	if err != nil {
		e.t.Fatalf("register %s/%s: %v", handle, name, err)
	}
	d := &device{Client: c, t: e.t, dir: dir}
	d.record()
	e.t.Cleanup(func() { d.Close() })
	return d
}

// reopen closes the device and opens it again from its directory, as an
// application restart would.
func (e *env) reopen(d *device) *device {
	e.t.Helper()
	d.Close()
	<-d.done // every event of the old client recorded
	c, err := client.Open(e.ctx, e.p.URL(), d.dir, client.Options{KeyPackageBatch: 20})
	if err != nil {
		e.t.Fatalf("open %s: %v", d.dir, err)
	}
	n := &device{Client: c, t: e.t, dir: d.dir}
	n.events = d.snapshot()
	n.record()
	e.t.Cleanup(func() { n.Close() })
	return n
}

func (d *device) record() {
	d.done = make(chan struct{})
	go func() {
		defer close(d.done)
		for ev := range d.Events() {
			d.mu.Lock()
			d.events = append(d.events, ev)
			d.mu.Unlock()
		}
	}()
}

func (d *device) name() string { return d.User() + "/" + d.Device() }

func (d *device) sync(ctx context.Context) {
	d.t.Helper()
	if err := d.Sync(ctx); err != nil {
		d.t.Fatalf("%s: sync: %v", d.name(), err)
	}
}

func (d *device) send(ctx context.Context, room client.RoomID, body string) {
	d.t.Helper()
	if _, err := d.Send(ctx, room, []byte(body)); err != nil {
		d.t.Fatalf("%s: send %q: %v", d.name(), body, err)
	}
}

// snapshot returns the events received so far.
func (d *device) snapshot() []client.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.events)
}

// messages returns "sender: body" of the room's messages, in the order
// received, failing the test if any arrived twice or out of hub order.
func (d *device) messages(room client.RoomID) []string {
	d.t.Helper()
	var out []string
	var last int64
	seen := map[client.MessageID]bool{}
	for _, ev := range d.snapshot() {
		m, ok := ev.(*client.Message)
		if !ok || m.Room != room {
			continue
		}
		if seen[m.ID] {
			d.t.Errorf("%s: message %s delivered twice", d.name(), m.ID)
		}
		seen[m.ID] = true
		if m.Seq <= last {
			d.t.Errorf("%s: message seq %d after %d", d.name(), m.Seq, last)
		}
		last = m.Seq
		out = append(out, m.Sender.User+": "+string(m.Body))
	}
	return out
}

// failures returns the DeliveryFailed events.
func (d *device) failures() []*client.DeliveryFailed {
	var out []*client.DeliveryFailed
	for _, ev := range d.snapshot() {
		if f, ok := ev.(*client.DeliveryFailed); ok {
			out = append(out, f)
		}
	}
	return out
}

// has reports whether an event matching f was received.
func (d *device) has(f func(client.Event) bool) bool {
	return slices.ContainsFunc(d.snapshot(), f)
}

// eventually polls cond until it holds, failing the test after a while.
// Events reach the recorder through a goroutine, so "after Sync returned"
// is not yet "recorded".
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func joined(room client.RoomID) func(client.Event) bool {
	return func(e client.Event) bool {
		j, ok := e.(*client.RoomJoined)
		return ok && j.Room == room
	}
}

// expectMessages waits until the device has exactly want in room.
func expectMessages(t *testing.T, d *device, room client.RoomID, want []string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to have %d messages", d.name(), len(want)), func() bool {
		return len(d.messages(room)) >= len(want)
	})
	if got := d.messages(room); !slices.Equal(got, want) {
		t.Fatalf("%s got messages\n%q\nwant\n%q", d.name(), got, want)
	}
}

func TestOneToOne(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	bob := e.register("bob", "phone")

	room, err := alice.CreateRoom(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Invite(e.ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)
	eventually(t, "bob to join", func() bool { return bob.has(joined(room)) })

	alice.send(e.ctx, room, "hi bob")
	bob.sync(e.ctx)
	bob.send(e.ctx, room, "hi alice")
	alice.send(e.ctx, room, "how are you?")
	alice.sync(e.ctx)
	bob.sync(e.ctx)

	expectMessages(t, bob, room, []string{"alice: hi bob", "alice: how are you?"})
	expectMessages(t, alice, room, []string{"bob: hi alice"})
	members, err := bob.Members(room)
	if err != nil || !slices.Equal(members, []string{"alice", "bob"}) {
		t.Fatalf("bob sees members %v, %v", members, err)
	}
	for _, d := range []*device{alice, bob} {
		if f := d.failures(); len(f) > 0 {
			t.Errorf("%s: delivery failures: %v", d.name(), f[0].Err)
		}
	}
}

func TestGroupJoiningAndLeaving(t *testing.T) {
	e := newEnv(t)
	handles := []string{"alice", "bob", "carol", "dave", "erin"}
	devs := map[string]*device{}
	for _, h := range handles {
		devs[h] = e.register(h, "phone")
	}
	alice := devs["alice"]
	room, err := alice.CreateRoom(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// want[h] is what h must read: every message sent while h was in the
	// room, except h's own, in order.
	want := map[string][]string{}
	in := map[string]bool{"alice": true}
	syncAll := func() {
		for _, h := range handles {
			devs[h].sync(e.ctx)
		}
	}
	say := func(from, body string) {
		devs[from].send(e.ctx, room, body)
		for h := range in {
			if h != from {
				want[h] = append(want[h], from+": "+body)
			}
		}
	}
	invite := func(h string) {
		if err := alice.Invite(e.ctx, room, h); err != nil {
			t.Fatalf("invite %s: %v", h, err)
		}
		in[h] = true
		syncAll()
		eventually(t, h+" to join", func() bool { return devs[h].has(joined(room)) })
	}

	invite("bob")
	invite("carol")
	say("alice", "welcome, bob and carol")
	say("bob", "thanks")
	syncAll()
	say("carol", "hello all")
	invite("dave")
	invite("erin")
	say("dave", "dave here")
	say("erin", "erin here")
	syncAll()
	say("alice", "five of us now")

	if err := alice.Remove(e.ctx, room, "carol"); err != nil {
		t.Fatal(err)
	}
	delete(in, "carol")
	syncAll()
	eventually(t, "carol to learn she was removed", func() bool {
		return devs["carol"].has(func(ev client.Event) bool { _, ok := ev.(*client.RemovedFromRoom); return ok })
	})
	if _, err := devs["carol"].Send(e.ctx, room, []byte("still here?")); !errors.Is(err, client.ErrRemoved) {
		t.Fatalf("removed carol sends: %v, want ErrRemoved", err)
	}
	say("bob", "bye carol")
	syncAll()
	say("erin", "last word")
	syncAll()

	for _, h := range handles {
		expectMessages(t, devs[h], room, want[h])
		if f := devs[h].failures(); len(f) > 0 {
			t.Errorf("%s: %d delivery failures, first: %v", h, len(f), f[0].Err)
		}
	}
	// Everyone still in the room agrees on who is in it and on the epoch.
	wantMembers := []string{"alice", "bob", "dave", "erin"}
	epoch, _ := alice.Epoch(room)
	for h := range in {
		m, err := devs[h].Members(room)
		if err != nil || !slices.Equal(m, wantMembers) {
			t.Errorf("%s sees members %v (%v), want %v", h, m, err, wantMembers)
		}
		if ep, _ := devs[h].Epoch(room); ep != epoch {
			t.Errorf("%s is in epoch %d, alice in %d", h, ep, epoch)
		}
	}
	// The others saw carol leave.
	left := func(ev client.Event) bool {
		mc, ok := ev.(*client.MembersChanged)
		return ok && slices.Equal(mc.Removed, []string{"carol"})
	}
	for _, h := range []string{"bob", "dave", "erin"} {
		if !devs[h].has(left) {
			t.Errorf("%s saw no MembersChanged removing carol", h)
		}
	}
}

func TestOfflineDeviceCatchesUp(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	bob := e.register("bob", "phone")
	room, err := alice.CreateRoom(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Invite(e.ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)

	// bob is offline (neither syncing nor streaming) while 1,000 messages
	// arrive; then he comes back over the WebSocket.
	var want []string
	for i := range 1000 {
		body := fmt.Sprintf("message %d", i)
		alice.send(e.ctx, room, body)
		want = append(want, "alice: "+body)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- bob.Run(ctx) }()
	expectMessages(t, bob, room, want)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	// Everything was acknowledged: nothing is redelivered after a restart.
	bob = e.reopen(bob)
	bob.sync(e.ctx)
	alice.send(e.ctx, room, "after the restart")
	bob.sync(e.ctx)
	expectMessages(t, bob, room, append(want, "alice: after the restart"))
}

func TestConcurrentCommitsOneWins(t *testing.T) {
	e := newEnv(t)
	phone := e.register("alice", "phone")
	room, err := phone.CreateRoom(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	laptop := e.register("alice", "laptop")
	// The phone learns of the laptop (device.added) and adds it.
	phone.sync(e.ctx)
	laptop.sync(e.ctx)
	eventually(t, "laptop to join", func() bool { return laptop.has(joined(room)) })
	bob := e.register("bob", "phone")
	carol := e.register("carol", "phone")

	// Both of alice's devices are in the same epoch and commit without
	// seeing each other's commit: the phone's wins, the laptop's gets
	// wrong_epoch, catches up, and commits again in the next epoch.
	if err := phone.Invite(e.ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	wrongEpochs := func() float64 {
		return e.p.metric("switchboard_requests_total", `code="wrong_epoch"`, `handler="submit"`)
	}
	before := wrongEpochs()
	if err := laptop.Invite(e.ctx, room, "carol"); err != nil {
		t.Fatalf("laptop's invite after losing its epoch: %v", err)
	}
	if n := wrongEpochs() - before; n != 1 {
		t.Errorf("the laptop's commit was refused %v times, want once", n)
	}
	// And both at once, for good measure.
	dave := e.register("dave", "phone")
	erin := e.register("erin", "phone")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = phone.Invite(e.ctx, room, "dave") }()
	go func() { defer wg.Done(); errs[1] = laptop.Invite(e.ctx, room, "erin") }()
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("concurrent invites: %v, %v", errs[0], errs[1])
	}

	all := []*device{phone, laptop, bob, carol, dave, erin}
	for _, d := range all {
		d.sync(e.ctx)
	}
	epoch, _ := phone.Epoch(room)
	for _, d := range all {
		m, err := d.Members(room)
		if err != nil || !slices.Equal(m, []string{"alice", "bob", "carol", "dave", "erin"}) {
			t.Errorf("%s sees members %v (%v)", d.name(), m, err)
		}
		if ep, _ := d.Epoch(room); ep != epoch {
			t.Errorf("%s in epoch %d, phone in %d", d.name(), ep, epoch)
		}
	}
	// The group works: a message from each reaches all the others.
	for _, d := range all {
		d.send(e.ctx, room, "from "+d.name())
	}
	for _, d := range all {
		d.sync(e.ctx)
	}
	for _, d := range all {
		var want []string
		for _, s := range all {
			if s != d {
				want = append(want, s.User()+": from "+s.name())
			}
		}
		expectMessages(t, d, room, want)
		if f := d.failures(); len(f) > 0 {
			t.Errorf("%s: delivery failures: %v", d.name(), f[0].Err)
		}
	}
}

func TestSendRetriesWithSameClientID(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	bob := e.register("bob", "phone")
	room, _ := alice.CreateRoom(e.ctx)
	if err := alice.Invite(e.ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)
	e.p.loseReplies(1)
	id, err := alice.Send(e.ctx, room, []byte("once"))
	if err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)
	expectMessages(t, bob, room, []string{"alice: once"})
	if got := bob.messages(room); len(got) != 1 {
		t.Fatalf("bob got %q", got)
	}
	if id == "" {
		t.Fatal("no message id")
	}
}

func TestRestartKeepsRooms(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	bob := e.register("bob", "phone")
	room, _ := alice.CreateRoom(e.ctx)
	if err := alice.Invite(e.ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)
	alice.send(e.ctx, room, "before")
	bob.sync(e.ctx)
	alice = e.reopen(alice)
	bob = e.reopen(bob)
	alice.send(e.ctx, room, "after")
	bob.send(e.ctx, room, "back")
	bob.sync(e.ctx)
	alice.sync(e.ctx)
	expectMessages(t, bob, room, []string{"alice: before", "alice: after"})
	expectMessages(t, alice, room, []string{"bob: back"})
}

func TestKeyPackagesReplenished(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	bob := e.register("bob", "phone")
	// Each room costs bob one KeyPackage; below the watermark the
	// provider tells him, and he uploads a new batch.
	for range 12 {
		room, err := alice.CreateRoom(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := alice.Invite(e.ctx, room, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	bob.sync(e.ctx)
	if n := e.p.keyPackages("bob", "phone"); n < 20 {
		t.Fatalf("bob has %d key packages on the provider after replenishing", e.p.keyPackages("bob", "phone"))
	}
	eventually(t, "bob to join 12 rooms", func() bool { return len(bob.Rooms()) == 12 })
}

func TestAPIErrors(t *testing.T) {
	e := newEnv(t)
	_, err := client.Register(e.ctx, e.p.URL(), "no-such-code", "phone", t.TempDir(), client.Options{})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 410 || !errors.Is(err, client.ErrGone) {
		t.Fatalf("register with a bad code: %v", err)
	}
	alice := e.register("alice", "phone")
	room, _ := alice.CreateRoom(e.ctx)
	if err := alice.Invite(e.ctx, room, "nobody"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("invite unknown user: %v", err)
	}
	if err := alice.Remove(e.ctx, room, "nobody"); !errors.Is(err, client.ErrNotMember) {
		t.Fatalf("remove non-member: %v", err)
	}
	if _, err := alice.Send(e.ctx, "AAAA", []byte("x")); !errors.Is(err, client.ErrUnknownRoom) {
		t.Fatalf("send to unknown room: %v", err)
	}
}

func TestCommitOfUnknownOutcomeResolved(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	bob := e.register("bob", "phone")
	room, _ := alice.CreateRoom(e.ctx)
	// The provider stores the commit but every answer is lost: alice
	// cannot know whether it won.
	e.p.loseReplies(100)
	if err := alice.Invite(e.ctx, room, "bob"); err == nil {
		t.Fatal("invite succeeded without an answer")
	}
	e.p.loseReplies(0)
	// After a restart alice asks again with the same client_id, learns
	// that the commit won, and merges it.
	alice = e.reopen(alice)
	if ep, _ := alice.Epoch(room); ep != 1 {
		t.Fatalf("alice in epoch %d after resolving, want 1", ep)
	}
	bob.sync(e.ctx)
	eventually(t, "bob to join", func() bool { return bob.has(joined(room)) })
	alice.send(e.ctx, room, "did it work?")
	bob.sync(e.ctx)
	expectMessages(t, bob, room, []string{"alice: did it work?"})
}

func TestNewDeviceAddedToRoomsOverStream(t *testing.T) {
	e := newEnv(t)
	phone := e.register("alice", "phone")
	bob := e.register("bob", "phone")
	room, _ := phone.CreateRoom(e.ctx)
	if err := phone.Invite(e.ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go phone.Run(ctx)
	// Wait for the stream, so that the device.added notice reaches it.
	eventually(t, "the phone's stream", func() bool {
		return e.p.metric("switchboard_streams_open") > 0
	})
	laptop := e.register("alice", "laptop")
	eventually(t, "laptop to be added", func() bool {
		laptop.sync(e.ctx)
		return laptop.has(joined(room))
	})
	bob.sync(e.ctx)
	bob.send(e.ctx, room, "hi both")
	eventually(t, "the phone to get bob's message", func() bool { return len(phone.messages(room)) == 1 })
	laptop.sync(e.ctx)
	expectMessages(t, laptop, room, []string{"bob: hi both"})
	// The user's own devices read each other's messages, naming the device.
	phone.send(e.ctx, room, "from my phone")
	laptop.sync(e.ctx)
	eventually(t, "laptop to get the phone's message", func() bool { return len(laptop.messages(room)) == 2 })
	var last *client.Message
	for _, ev := range laptop.snapshot() {
		if m, ok := ev.(*client.Message); ok {
			last = m
		}
	}
	if last.Sender != (client.Sender{User: "alice", Device: "phone", Domain: "green.test"}) {
		t.Fatalf("sender %+v", last.Sender)
	}
}

// TestSendWaitsOutARateLimit: a person who sends faster than the
// provider's limit for one user is slowed, not failed: each refused send
// waits the provider's Retry-After and goes again with the same
// client_id, and every message arrives once, in order.
func TestSendWaitsOutARateLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := &env{t: t, ctx: ctx, p: newTestProvider(t, func(c *provider.Config) {
		c.UserMessageLimit = provider.RateLimit{Every: 200 * time.Millisecond, Burst: 2}
	})}
	alice, bob := e.register("alice", "phone"), e.register("bob", "phone")
	room, err := alice.CreateRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Invite(ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 5 {
		body := fmt.Sprintf("message %d", i)
		alice.send(ctx, room, body)
		want = append(want, "alice: "+body)
	}
	if got := e.p.metric("switchboard_rate_limited_total", `limit="user"`); got == 0 {
		t.Fatal("the provider's limit never refused a send: the test proves nothing")
	}
	bob.sync(ctx)
	expectMessages(t, bob, room, want)
}

func TestInviteSeveralUsersInOneCommit(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	bob := e.register("bob", "phone")
	carol := e.register("carol", "phone")
	carolLaptop := e.register("carol", "laptop")
	room, err := alice.CreateRoom(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := alice.Epoch(room)
	// carol named twice: each of her devices is still added once.
	if err := alice.InviteAll(e.ctx, room, []string{"bob", "carol", "carol"}); err != nil {
		t.Fatal(err)
	}
	after, _ := alice.Epoch(room)
	if after != before+1 {
		t.Fatalf("epoch %d after inviting three devices from %d: want one commit", after, before)
	}
	for _, d := range []*device{bob, carol, carolLaptop} {
		d.sync(e.ctx)
		eventually(t, d.name()+" to join", func() bool { return d.has(joined(room)) })
		if ep, _ := d.Epoch(room); ep != after {
			t.Errorf("%s joined in epoch %d, alice is in %d", d.name(), ep, after)
		}
	}
	carolLaptop.send(e.ctx, room, "all here")
	for _, d := range []*device{alice, bob, carol} {
		d.sync(e.ctx)
		expectMessages(t, d, room, []string{"carol: all here"})
	}
	if m, _ := bob.Members(room); !slices.Equal(m, []string{"alice", "bob", "carol"}) {
		t.Errorf("bob sees members %v", m)
	}

	// One user who cannot be invited stops the whole commit: nobody else
	// is added either.
	dave := e.register("dave", "phone")
	if err := alice.InviteAll(e.ctx, room, []string{"dave", "nobody"}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("inviting dave and an unknown user: %v, want ErrNotFound", err)
	}
	if ep, _ := alice.Epoch(room); ep != after {
		t.Errorf("a refused invitation moved the epoch from %d to %d", after, ep)
	}
	dave.sync(e.ctx)
	if dave.has(joined(room)) {
		t.Error("dave joined although his invitation failed")
	}
}

// A room grows by commits that carry its whole tree in their Welcome, so a
// commit outgrows the body limit long before other messages do. The
// provider takes a commit up to its larger commit limit, and the SDK sends
// the tree once: to a room its own provider hosts, neither the GroupInfo
// nor a second copy of the tree. Here the body limit is lowered to 32 KiB
// so that a room of 31 outgrows it (the default 1 MiB is about 250
// members' trees with three copies).
func TestRoomGrowsPastTheBodyLimit(t *testing.T) {
	const limit = 32 << 10
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, p: newTestProvider(t, func(c *provider.Config) { c.MaxBodyBytes = limit })}
	alice := e.register("alice", "phone")
	room, err := alice.CreateRoom(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var guests []*device
	var handles []string
	for i := range 30 {
		h := fmt.Sprintf("guest%02d", i)
		guests = append(guests, e.register(h, "phone"))
		handles = append(handles, h)
	}
	e.p.recordPosts()
	if err := alice.InviteAll(e.ctx, room, handles[:15]); err != nil {
		t.Fatal(err)
	}
	if err := alice.InviteAll(e.ctx, room, handles[15:]); err != nil {
		t.Fatalf("inviting 15 more into a room of 16 with a %d-byte body limit: %v", limit, err)
	}
	posts := e.p.submits()
	last := posts[len(posts)-1]
	if len(last) <= limit {
		t.Fatalf("the commit was %d bytes: the test needs one over the %d-byte limit", len(last), limit)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(last, &fields); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"group_info", "ratchet_tree"} {
		if _, ok := fields[f]; ok {
			t.Errorf("a commit to a room hosted by the device's own provider carries %s (%d bytes)", f, len(fields[f]))
		}
	}
	t.Logf("the commit adding 15 to a room of 16: %d bytes, its Welcome %d", len(last), len(fields["welcome"]))
	if _, ok := fields["welcome"]; !ok {
		t.Error("the commit that adds members has no Welcome")
	}

	newest := guests[len(guests)-1]
	newest.sync(e.ctx)
	eventually(t, "the last guest to join", func() bool { return newest.has(joined(room)) })
	newest.send(e.ctx, room, "thirty-one of us")
	alice.sync(e.ctx)
	expectMessages(t, alice, room, []string{"guest29: thirty-one of us"})

	// Every other message is still held to the body limit.
	_, err = alice.Send(e.ctx, room, bytes.Repeat([]byte("a"), limit))
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != "too_large" {
		t.Fatalf("a %d-byte message with a %d-byte body limit: %v, want too_large", limit, limit, err)
	}
}

// The cursor file is written at most once a second, so after a crash it
// may be behind what the device processed: the provider then delivers
// those entries again, and the rooms' last seqs skip them. Here bob's
// cursor file is set back to the start, as a crash could leave it.
func TestCursorBehindAfterACrash(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	bob := e.register("bob", "phone")
	room, _ := alice.CreateRoom(e.ctx)
	if err := alice.Invite(e.ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)
	alice.send(e.ctx, room, "one")
	alice.send(e.ctx, room, "two")
	bob.sync(e.ctx)

	bob.Close()
	<-bob.done
	if err := os.WriteFile(filepath.Join(bob.dir, "cursor.json"), []byte(`{"version":1,"cursor":0}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.Open(e.ctx, e.p.URL(), bob.dir, client.Options{KeyPackageBatch: 20})
	if err != nil {
		t.Fatal(err)
	}
	again := &device{Client: c, t: t, dir: bob.dir, events: bob.snapshot()}
	again.record()
	t.Cleanup(func() { again.Close() })

	alice.send(e.ctx, room, "three")
	again.sync(e.ctx)
	expectMessages(t, again, room, []string{"alice: one", "alice: two", "alice: three"})
	if f := again.failures(); len(f) > 0 {
		t.Errorf("entries delivered again were refused: %v", f)
	}
}

// TestRoomCreatedOnOneDeviceReachesTheOthers: Alice has a phone and a
// laptop, both already known to each other; she starts a chat with Bob
// from her phone. Her laptop is in the room too, and reads Bob's answer,
// without any new device being registered to prompt it.
func TestRoomCreatedOnOneDeviceReachesTheOthers(t *testing.T) {
	e := newEnv(t)
	phone := e.register("alice", "phone")
	laptop := e.register("alice", "laptop")
	bob := e.register("bob", "phone")
	// Both of Alice's devices have synced since the laptop was added: the
	// phone's list of her devices is up to date.
	phone.sync(e.ctx)
	laptop.sync(e.ctx)
	phone.sync(e.ctx)

	room, err := phone.CreateRoom(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := phone.Invite(e.ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the laptop to join", func() bool {
		laptop.sync(e.ctx)
		return laptop.has(joined(room))
	})
	bob.sync(e.ctx)
	bob.send(e.ctx, room, "hello Alice")
	laptop.sync(e.ctx)
	expectMessages(t, laptop, room, []string{"bob: hello Alice"})
	phone.sync(e.ctx)
	expectMessages(t, phone, room, []string{"bob: hello Alice"})
}

package storetest

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Scenarios for what schema version 3 of the interface added: LastSeq,
// Sender, hub-chosen Seqs, Welcomes logged on their own and followers'
// copies of rooms hosted by other providers.

// carolsPhone is a device of another provider: it has no local row, so
// its messages carry SenderDevice 0 and name it by Sender.
const carolsPhone = "mimi://green.example/d/carol/phone"

// seqs lists the messages' Seqs.
func seqs(ms []store.Message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func (e *env) lastSeq(room string) int64 {
	e.t.Helper()
	r, err := e.s.Room(e.ctx, room)
	e.ok(err)
	return r.LastSeq
}

// at is sub with its Seq set, as a hub (or a follower's copy) sends it.
func at(sub store.Submission, seq int64) store.Submission {
	sub.Seq = seq
	return sub
}

// lastSeq: Room reports the Seq of the log's last message, 0 for an empty
// log, counting a commit's Welcome; duplicates and refused submissions do
// not move it; CreateRoom ignores a LastSeq it is given.
func lastSeq(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.device(alice.ID, "a"), e.device(bob.ID, "b")
	e.room("!r", alice.ID, bob.ID)
	if got := e.lastSeq("!r"); got != 0 {
		t.Errorf("LastSeq of a new room = %d, want 0", got)
	}
	e.submit(app("!r", "m1", a.ID, b.ID))
	e.submit(app("!r", "m2", a.ID, b.ID))
	if got := e.lastSeq("!r"); got != 2 {
		t.Errorf("LastSeq after two messages = %d, want 2", got)
	}
	e.submit(app("!r", "m1", a.ID, b.ID))
	_, err := e.s.Submit(e.ctx, commit("!r", "stale", a.ID, 5, 6, b.ID))
	is(t, err, store.ErrConflict, "stale commit")
	if got := e.lastSeq("!r"); got != 2 {
		t.Errorf("LastSeq after a duplicate and a refused commit = %d, want 2", got)
	}
	c := commit("!r", "c1", a.ID, 0, 1, a.ID)
	c.Welcome = &store.Welcome{Payload: []byte("welcome"), Recipients: []int64{b.ID}}
	if res := e.submit(c); res.Seq != 3 {
		t.Fatalf("commit with a welcome at seq %d, want 3", res.Seq)
	}
	if got := e.lastSeq("!r"); got != 4 {
		t.Errorf("LastSeq after a commit and its welcome = %d, want 4: the welcome's", got)
	}

	e.ok(e.s.CreateRoom(e.ctx, store.Room{ID: "!told", CreatorID: alice.ID, LastSeq: 41}, nil))
	if got := e.lastSeq("!told"); got != 0 {
		t.Errorf("LastSeq of a room created with LastSeq 41 = %d, want 0: it is read-only", got)
	}
	if res := e.submit(app("!told", "m1", a.ID)); res.Seq != 1 {
		t.Errorf("first message of a room created with LastSeq 41 at seq %d, want 1", res.Seq)
	}
}

// senderRoundTrip: a message's Sender comes back from every read (the log,
// MessageByClientID, the queues), whether the device is local or of
// another provider (SenderDevice 0), and a commit's Welcome has the
// commit's Sender; no Sender reads back as empty.
func senderRoundTrip(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.device(alice.ID, "a"), e.device(bob.ID, "b")
	e.room("!r", alice.ID, bob.ID)

	local := app("!r", "local", a.ID, b.ID)
	local.Sender = "mimi://blue.example/d/alice/a"
	remote := app("!r", "remote", 0, a.ID, b.ID)
	remote.Sender = carolsPhone
	unnamed := app("!r", "unnamed", a.ID, b.ID)
	c := commit("!r", "c1", a.ID, 0, 1, a.ID)
	c.Sender = local.Sender
	c.Welcome = &store.Welcome{Payload: []byte("welcome for bob"), Recipients: []int64{b.ID}}
	subs := []store.Submission{local, remote, unnamed, c}
	for _, sub := range subs {
		e.submit(sub)
	}
	welcome := store.Submission{RoomID: "!r", ClientID: "c1/welcome", SenderDevice: a.ID, Sender: c.Sender,
		Kind: store.KindWelcome, Epoch: c.NewEpoch, Payload: c.Welcome.Payload}
	subs = append(subs, welcome)

	log := e.log("!r")
	if len(log) != len(subs) {
		t.Fatalf("log has %d messages, want %d", len(log), len(subs))
	}
	for i, m := range log {
		sameMessage(t, m, subs[i], int64(i+1))
	}
	for i, sub := range subs {
		m, err := e.s.MessageByClientID(e.ctx, "!r", sub.ClientID)
		e.ok(err)
		sameMessage(t, m, sub, int64(i+1))
	}
	bySeq := func(seq int64) store.Submission { return subs[seq-1] }
	for dev, want := range map[int64][]string{a.ID: {"remote", "c1"}, b.ID: {"local", "remote", "unnamed", "c1/welcome"}} {
		ds := e.deliveries(dev)
		if got := clientIDs(ds); !slices.Equal(got, want) {
			t.Errorf("device %d got %v, want %v", dev, got, want)
		}
		for _, d := range ds {
			sameMessage(t, d.Message, bySeq(d.Message.Seq), d.Message.Seq)
		}
	}
}

// submitSeq: a Submission's Seq, when set, is where its message goes. It
// must come after the log's last Seq, gaps allowed (a follower's copy is
// not sent everything); if not, the submission is ErrConflict and writes
// nothing at all. A ClientID already logged is still a Duplicate first,
// whatever Seq its retry names.
func submitSeq(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.device(alice.ID, "a"), e.device(bob.ID, "b")
	e.room("!r", alice.ID)

	if res := e.submit(at(app("!r", "m1", a.ID, b.ID), 1)); res.Seq != 1 || res.Duplicate {
		t.Errorf("m1 at seq 1 = %+v", res)
	}
	if res := e.submit(at(app("!r", "m5", a.ID, b.ID), 5)); res.Seq != 5 || res.Duplicate {
		t.Errorf("m5 at seq 5, after a gap = %+v", res)
	}
	if res := e.submit(app("!r", "m6", a.ID, b.ID)); res.Seq != 6 {
		t.Errorf("m6 without a seq = %+v, want seq 6, after the last", res)
	}
	c := at(commit("!r", "c10", a.ID, 0, 1, b.ID), 10)
	c.Welcome = &store.Welcome{Payload: []byte("welcome"), Recipients: []int64{b.ID}}
	if res := e.submit(c); res.Seq != 10 {
		t.Errorf("c10 at seq 10 = %+v", res)
	}
	wantLog := []int64{1, 5, 6, 10, 11}
	if got := seqs(e.log("!r")); !slices.Equal(got, wantLog) {
		t.Fatalf("log seqs = %v, want %v (the welcome right after its commit)", got, wantLog)
	}
	if got := e.lastSeq("!r"); got != 11 {
		t.Errorf("LastSeq = %d, want 11", got)
	}
	roomBefore, err := e.s.Room(e.ctx, "!r")
	e.ok(err)
	membersBefore, err := e.s.RoomMembers(e.ctx, "!r")
	e.ok(err)
	queueBefore := clientIDs(e.deliveries(b.ID))

	// Each of these would be accepted without its Seq: the commit is on
	// the room's current version.
	for _, seq := range []int64{11, 10, 7, 1, -1} {
		late := at(commit("!r", fmt.Sprint("late-commit", seq), a.ID, 1, 2, a.ID, b.ID), seq)
		late.Members = []store.RoomMember{}
		late.Welcome = &store.Welcome{Payload: []byte("late welcome"), Recipients: []int64{a.ID}}
		late.Outbound = []store.Outbound{outbound("blue.test", fmt.Sprint("late-commit", seq))}
		_, err := e.s.Submit(e.ctx, late)
		is(t, err, store.ErrConflict, fmt.Sprintf("commit at seq %d when the log ends at 11", seq))
		msg := at(app("!r", fmt.Sprint("late-app", seq), a.ID, a.ID, b.ID), seq)
		msg.Outbound = []store.Outbound{outbound("blue.test", fmt.Sprint("late-app", seq))}
		_, err = e.s.Submit(e.ctx, msg)
		is(t, err, store.ErrConflict, fmt.Sprintf("application message at seq %d when the log ends at 11", seq))
	}
	if got := seqs(e.log("!r")); !slices.Equal(got, wantLog) {
		t.Errorf("log seqs after refused submissions = %v, want %v", got, wantLog)
	}
	if got := e.deliveries(a.ID); len(got) != 0 {
		t.Errorf("refused submissions were queued for a: %v", clientIDs(got))
	}
	if got := clientIDs(e.deliveries(b.ID)); !slices.Equal(got, queueBefore) {
		t.Errorf("b's queue after refused submissions = %v, want %v", got, queueBefore)
	}
	if got := e.destinations(); len(got) != 0 {
		t.Errorf("refused submissions left outbox entries for %v", got)
	}
	roomAfter, err := e.s.Room(e.ctx, "!r")
	e.ok(err)
	if roomAfter.Version != roomBefore.Version || roomAfter.Epoch != roomBefore.Epoch || !bytes.Equal(roomAfter.State, roomBefore.State) {
		t.Errorf("room moved by refused commits: %+v, was %+v", roomAfter, roomBefore)
	}
	if got, _ := e.s.RoomMembers(e.ctx, "!r"); !slices.Equal(got, membersBefore) {
		t.Errorf("members changed by a refused commit: %+v, were %+v", got, membersBefore)
	}

	// Retries are Duplicates of the original, whatever Seq they name now.
	for _, retry := range []struct {
		sub  store.Submission
		want int64
	}{
		{at(app("!r", "m5", a.ID, b.ID), 5), 5},
		{at(app("!r", "m5", a.ID, b.ID), 3), 5},
		{at(app("!r", "m1", a.ID, b.ID), 1), 1},
		{at(app("!r", "m6", a.ID, b.ID), 100), 6},
		{c, 10},
	} {
		if res := e.submit(retry.sub); !res.Duplicate || res.Seq != retry.want {
			t.Errorf("retry of %s naming seq %d = %+v, want a duplicate of %d", retry.sub.ClientID, retry.sub.Seq, res, retry.want)
		}
	}
	if got := seqs(e.log("!r")); !slices.Equal(got, wantLog) {
		t.Errorf("log seqs after retries = %v, want %v", got, wantLog)
	}
	if res := e.submit(at(app("!r", "m12", a.ID, b.ID), 12)); res.Seq != 12 || res.Duplicate {
		t.Errorf("m12 at seq 12 = %+v", res)
	}
}

// submitWelcomeAlone: a welcome submitted as a message of its own (as a
// follower's copy logs the Welcome its hub fanned out) is queued for its
// recipients like any message; it is no handshake, so it neither checks
// PrevVersion nor moves the room.
func submitWelcomeAlone(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.device(alice.ID, "a"), e.device(bob.ID, "b")
	e.ok(e.s.CreateRoom(e.ctx, store.Room{ID: "!f", Hub: "green.example"}, nil))
	w := store.Submission{RoomID: "!f", ClientID: "green/3/welcome", Sender: carolsPhone, Kind: store.KindWelcome,
		Epoch: 3, Payload: []byte("welcome for bob"), PrevVersion: 42, Seq: 4, Recipients: []int64{b.ID, b.ID}}
	if res := e.submit(w); res.Seq != 4 || res.Duplicate {
		t.Fatalf("welcome at seq 4 = %+v", res)
	}
	r, err := e.s.Room(e.ctx, "!f")
	e.ok(err)
	if r.Version != 0 || r.Epoch != 0 || len(r.State) != 0 || r.LastSeq != 4 {
		t.Errorf("follower copy after a welcome = %+v, want it unmoved, LastSeq 4", r)
	}
	ds := e.deliveries(b.ID)
	if len(ds) != 1 {
		t.Fatalf("bob's queue = %v, want the welcome once", clientIDs(ds))
	}
	sameMessage(t, ds[0].Message, w, 4)
	if got := e.deliveries(a.ID); len(got) != 0 {
		t.Errorf("alice's queue = %v, want empty", clientIDs(got))
	}

	// The same in a hosted room.
	e.room("!h", alice.ID)
	hw := store.Submission{RoomID: "!h", ClientID: "w", SenderDevice: a.ID, Kind: store.KindWelcome, Epoch: 1,
		Payload: []byte("welcome"), PrevVersion: 7, Recipients: []int64{b.ID}}
	if res := e.submit(hw); res.Seq != 1 {
		t.Errorf("welcome in a hosted room = %+v, want seq 1", res)
	}
	if r, _ := e.s.Room(e.ctx, "!h"); r.Version != 0 {
		t.Errorf("hosted room's version after a welcome = %d, want 0", r.Version)
	}
	if got := clientIDs(e.deliveries(b.ID)); !slices.Equal(got, []string{"green/3/welcome", "w"}) {
		t.Errorf("bob's queue = %v, want both welcomes", got)
	}
}

// followerCopy: a room hosted by another provider is kept as a follower's
// copy: Hub names the hub, CreatorID is 0 and there is no State. Its log
// takes the hub's Seqs, gaps and all, and senders of other providers; a
// submission's Members replace its member rows as for a hosted room. A
// hosted room still needs its creator.
func followerCopy(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.device(alice.ID, "a"), e.device(bob.ID, "b")
	created := time.Date(2026, 2, 3, 4, 5, 6, 7000, time.UTC)
	e.ok(e.s.CreateRoom(e.ctx, store.Room{ID: "!f", Hub: "green.example", CreatorID: 0, Epoch: 4, State: nil, Created: created},
		[]store.RoomMember{{UserID: alice.ID, Role: store.RoleMember}}))
	got, err := e.s.Room(e.ctx, "!f")
	e.ok(err)
	if got.ID != "!f" || got.Hub != "green.example" || got.CreatorID != 0 || got.Epoch != 4 || got.Version != 0 ||
		len(got.State) != 0 || !got.Created.Equal(created) || got.LastSeq != 0 {
		t.Errorf("follower copy = %+v", got)
	}
	if members, err := e.s.RoomMembers(e.ctx, "!f"); err != nil ||
		!slices.Equal(members, []store.RoomMember{{RoomID: "!f", UserID: alice.ID, Role: store.RoleMember}}) {
		t.Errorf("follower copy's members = %+v, %v; want alice", members, err)
	}
	is(t, e.s.CreateRoom(e.ctx, store.Room{ID: "!f", Hub: "blue.example"}, nil), store.ErrExists, "a second !f")
	is(t, e.s.CreateRoom(e.ctx, store.Room{ID: "!hosted"}, nil), store.ErrNotFound, "a hosted room with creator 0")
	_, err = e.s.Room(e.ctx, "!hosted")
	is(t, err, store.ErrNotFound, "the refused hosted room")

	// The hub's commit adding bob, then a message it sent after one this
	// provider was not sent.
	add := at(commit("!f", "green/7", 0, 0, 5, a.ID, b.ID), 7)
	add.Sender = carolsPhone
	add.Members = []store.RoomMember{{UserID: alice.ID, Role: store.RoleMember}, {UserID: bob.ID, Role: store.RoleMember}}
	hello := at(app("!f", "green/9", 0, a.ID, b.ID), 9)
	hello.Sender = carolsPhone
	for _, sub := range []store.Submission{add, hello} {
		if res := e.submit(sub); res.Seq != sub.Seq || res.Duplicate {
			t.Errorf("%s = %+v, want seq %d", sub.ClientID, res, sub.Seq)
		}
	}
	got, err = e.s.Room(e.ctx, "!f")
	e.ok(err)
	if got.Hub != "green.example" || got.CreatorID != 0 || got.LastSeq != 9 || got.Epoch != 5 {
		t.Errorf("follower copy after the hub's messages = %+v, want hub kept, LastSeq 9, epoch 5", got)
	}
	want := []store.RoomMember{{RoomID: "!f", UserID: alice.ID, Role: store.RoleMember}, {RoomID: "!f", UserID: bob.ID, Role: store.RoleMember}}
	if members, err := e.s.RoomMembers(e.ctx, "!f"); err != nil || !slices.Equal(members, want) {
		t.Errorf("follower copy's members after the hub's commit = %+v, %v; want %+v", members, err, want)
	}
	log := e.log("!f")
	if len(log) != 2 {
		t.Fatalf("follower copy's log = %+v, want 2 messages", log)
	}
	sameMessage(t, log[0], add, 7)
	sameMessage(t, log[1], hello, 9)
	for _, d := range e.deliveries(b.ID) {
		if d.Message.Sender != carolsPhone || d.Message.SenderDevice != 0 {
			t.Errorf("bob's delivery %+v, want it from %s, device 0", d.Message, carolsPhone)
		}
	}
	// The hub's commit that removes everyone local empties the rows.
	gone := at(commit("!f", "green/10", 0, 1, 6), 10)
	gone.Sender, gone.Members = carolsPhone, []store.RoomMember{}
	e.submit(gone)
	if members, err := e.s.RoomMembers(e.ctx, "!f"); err != nil || len(members) != 0 {
		t.Errorf("follower copy's members after everyone local left = %+v, %v", members, err)
	}
}

// outboxHeaders: an entry's Header is stored with it, through
// EnqueueOutbound or with a Submit, and read back as given; an entry
// without headers, nil or an empty map, reads back with a nil Header.
func outboxHeaders(t *testing.T, e *env) {
	signed := outbound("blue.test", "h1")
	signed.Header = map[string]string{"Content-Type": "application/mimi-content", "Signature": "sig1=:AAEC/w==:",
		"X-Unicode": "ünïcødé ✓", "X-Empty": ""}
	bare := outbound("blue.test", "h2")
	empty := outbound("blue.test", "h3")
	empty.Header = map[string]string{}
	e.ok(e.s.EnqueueOutbound(e.ctx, []store.Outbound{signed, bare, empty}))

	alice := e.user("alice")
	a := e.device(alice.ID, "a")
	e.room("!r", alice.ID)
	m := app("!r", "m1", a.ID)
	fanout := outbound("green.test", "!r/1")
	fanout.Header = map[string]string{"Mimi-Hub": "blue.example"}
	m.Outbound = []store.Outbound{fanout}
	e.submit(m)

	for _, want := range []store.Outbound{signed, bare, empty, fanout} {
		got, err := e.s.NextOutbound(e.ctx, want.Destination)
		e.ok(err)
		switch {
		case got.ID != want.ID:
			t.Errorf("head of %s is %s, want %s", want.Destination, got.ID, want.ID)
		case len(want.Header) == 0 && got.Header != nil:
			t.Errorf("%s stored with header %#v reads back %#v, want nil", want.ID, want.Header, got.Header)
		case !maps.Equal(got.Header, want.Header):
			t.Errorf("%s's header = %#v, want %#v", want.ID, got.Header, want.Header)
		}
		e.ok(e.s.DeleteOutbound(e.ctx, got.Destination, got.Seq))
	}
}

// reopenFollowerCopy: a follower's copy (its Hub, no creator), its log's
// Senders and hub Seqs, and the outbox's headers survive a restart.
func reopenFollowerCopy(t *testing.T, open func() *env) {
	e := open()
	alice := e.user("alice")
	a := e.device(alice.ID, "a")
	e.ok(e.s.CreateRoom(e.ctx, store.Room{ID: "!f", Hub: "green.example"},
		[]store.RoomMember{{UserID: alice.ID, Role: store.RoleMember}}))
	hello := at(app("!f", "green/5", 0, a.ID), 5)
	hello.Sender = carolsPhone
	e.submit(hello)
	signed := outbound("green.test", "!f/5")
	signed.Header = map[string]string{"Signature": "sig1=:AAEC:", "Signature-Input": `sig1=("@method");keyid="k1"`}
	e.ok(e.s.EnqueueOutbound(e.ctx, []store.Outbound{signed, outbound("green.test", "bare")}))
	e.ok(e.s.Close())

	e = open()
	r, err := e.s.Room(e.ctx, "!f")
	e.ok(err)
	if r.Hub != "green.example" || r.CreatorID != 0 || r.LastSeq != 5 {
		t.Errorf("follower copy after reopen = %+v, want hub green.example, creator 0, LastSeq 5", r)
	}
	log := e.log("!f")
	if len(log) != 1 {
		t.Fatalf("log after reopen = %+v, want green/5", log)
	}
	sameMessage(t, log[0], hello, 5)
	if ds := e.deliveries(a.ID); len(ds) != 1 {
		t.Errorf("a's queue after reopen = %v, want green/5", clientIDs(ds))
	} else {
		sameMessage(t, ds[0].Message, hello, 5)
	}
	_, err = e.s.Submit(e.ctx, at(app("!f", "green/4", 0, a.ID), 4))
	is(t, err, store.ErrConflict, "seq 4 after reopen, the log ending at 5")

	head, err := e.s.NextOutbound(e.ctx, "green.test")
	e.ok(err)
	if head.ID != signed.ID || !maps.Equal(head.Header, signed.Header) {
		t.Errorf("head after reopen = %+v, want %s with header %#v", head, signed.ID, signed.Header)
	}
	e.ok(e.s.DeleteOutbound(e.ctx, "green.test", head.Seq))
	if next, err := e.s.NextOutbound(e.ctx, "green.test"); err != nil || next.ID != "bare" || next.Header != nil {
		t.Errorf("entry without headers after reopen = %+v, %v; want bare with a nil Header", next, err)
	}
}

package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/store"
)

// A KeyPackage is used by one Welcome (RFC 9420 §16.8), whichever room
// it is for and whichever path the Welcome takes: with the hub's commit
// (Submission.Welcome) or as a follower's copy of the hub's Welcome
// (Submission.KeyPackages). The check is the mark itself, in the
// Welcome's transaction, so two rooms racing for one KeyPackage cannot
// both have it.

// welcomeUsesAKeyPackageOnce: a second room's commit naming a KeyPackage
// another room's Welcome used is refused with ErrKeyPackageUsed and
// writes nothing; a last-resort one may be used again; a follower's copy
// of a Welcome marks the same way, and its repeat is a duplicate.
func welcomeUsesAKeyPackageOnce(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.device(alice.ID, "a"), e.device(bob.ID, "b")
	e.room("!one", alice.ID)
	e.room("!two", alice.ID)
	fresh, last := kps(b.ID, 1, 3), lastResort(b.ID, 1)
	e.ok(e.s.AddKeyPackages(e.ctx, append(fresh, last)))

	adding := func(room, clientID string, prev int64, refs ...[]byte) store.Submission {
		c := commit(room, clientID, a.ID, prev, uint64(prev+1)) // #nosec G115 -- prev is a seq the test made, not negative
		c.Welcome = &store.Welcome{Payload: []byte("welcome " + clientID), Recipients: []int64{b.ID}, KeyPackages: refs}
		return c
	}
	e.submit(adding("!one", "one/add", 0, fresh[0].Ref, last.Ref))
	queued := len(e.deliveries(b.ID))
	_, err := e.s.Submit(e.ctx, adding("!two", "two/add", 0, fresh[0].Ref))
	is(t, err, store.ErrKeyPackageUsed, "a second room's Welcome with a used KeyPackage")
	if r, err := e.s.Room(e.ctx, "!two"); err != nil || r.Version != 0 || r.LastSeq != 0 || string(r.State) != "state-0" {
		t.Errorf("the refused commit moved room !two: %+v, %v", r, err)
	}
	if got := len(e.deliveries(b.ID)); got != queued {
		t.Errorf("the refused Welcome was queued: %d deliveries, want %d", got, queued)
	}
	// A KeyPackage used with one that is not: the whole Welcome is refused,
	// and the fresh one stays unused.
	_, err = e.s.Submit(e.ctx, adding("!two", "two/add-mixed", 0, fresh[1].Ref, fresh[0].Ref))
	is(t, err, store.ErrKeyPackageUsed, "a Welcome naming a fresh and a used KeyPackage")
	if used, err := e.s.KeyPackageWelcomed(e.ctx, fresh[1].Ref); err != nil || used {
		t.Errorf("the refused Welcome's fresh KeyPackage is marked used: %v, %v", used, err)
	}
	// The last-resort KeyPackage serves every room that needs it.
	e.submit(adding("!two", "two/add-last-resort", 0, last.Ref))

	// A follower's copy: the hub's Welcome, stored as a message of its own.
	e.ok(e.s.CreateRoom(e.ctx, store.Room{ID: "!copy", Hub: "green.example"}, nil))
	welcome := func(clientID string, seq int64, refs ...[]byte) store.Submission {
		return store.Submission{RoomID: "!copy", ClientID: clientID, Seq: seq, Sender: carolsPhone, Kind: store.KindWelcome,
			Payload: []byte("hub's welcome " + clientID), Recipients: []int64{b.ID}, KeyPackages: refs}
	}
	first := e.submit(welcome("hub:3", 3, fresh[1].Ref))
	if again := e.submit(welcome("hub:3", 3, fresh[1].Ref)); !again.Duplicate || again.Seq != first.Seq {
		t.Errorf("the hub's repeated Welcome = %+v, want a duplicate of seq %d", again, first.Seq)
	}
	before := e.log("!copy")
	queued = len(e.deliveries(b.ID))
	_, err = e.s.Submit(e.ctx, welcome("hub:5", 5, fresh[1].Ref))
	is(t, err, store.ErrKeyPackageUsed, "the hub's second Welcome with a used KeyPackage")
	if after := e.log("!copy"); len(after) != len(before) {
		t.Errorf("the refused Welcome is in the copy's log: %d messages, want %d", len(after), len(before))
	}
	if got := len(e.deliveries(b.ID)); got != queued {
		t.Errorf("the refused Welcome was queued: %d deliveries, want %d", got, queued)
	}
	// And a hosted room cannot have a KeyPackage a copy's Welcome used.
	_, err = e.s.Submit(e.ctx, adding("!one", "one/add-again", 1, fresh[1].Ref))
	is(t, err, store.ErrKeyPackageUsed, "a hosted room's Welcome with a KeyPackage a copy used")
}

// roomsRacingForOneKeyPackage: eight rooms add bob with the same
// KeyPackage at the same instant; exactly one commit is stored, the others
// are ErrKeyPackageUsed and their rooms have not moved.
func roomsRacingForOneKeyPackage(t *testing.T, e *env) {
	const n = 8
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.device(alice.ID, "a"), e.device(bob.ID, "b")
	for round := range 3 {
		kp := kps(b.ID, 1, 1)
		e.ok(e.s.AddKeyPackages(e.ctx, kp))
		rooms := make([]string, n)
		for i := range rooms {
			rooms[i] = fmt.Sprintf("!race-%d-%d", round, i)
			e.room(rooms[i], alice.ID)
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, room := range rooms {
			wg.Go(func() {
				c := commit(room, "add-bob", a.ID, 0, 1)
				c.Welcome = &store.Welcome{Payload: []byte("welcome to " + room), Recipients: []int64{b.ID}, KeyPackages: [][]byte{kp[0].Ref}}
				_, errs[i] = e.s.Submit(e.ctx, c)
			})
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			r, rerr := e.s.Room(e.ctx, rooms[i])
			e.ok(rerr)
			switch {
			case err == nil:
				won++
				if r.Version != 1 || r.LastSeq != 2 {
					t.Errorf("round %d: the winning room %s = %+v", round, rooms[i], r)
				}
			case errors.Is(err, store.ErrKeyPackageUsed):
				if r.Version != 0 || r.LastSeq != 0 {
					t.Errorf("round %d: the refused room %s moved: %+v", round, rooms[i], r)
				}
			default:
				t.Fatalf("round %d: %v, want nil or ErrKeyPackageUsed", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d rooms added bob with one KeyPackage, want exactly one", round, won)
		}
	}
	if got := len(e.deliveries(b.ID)); got != 3 {
		t.Errorf("bob has %d Welcomes queued, want 3 (one per round)", got)
	}
}

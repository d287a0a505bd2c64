package client_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard-chat/switchboard/client"
)

// One room's state cannot be saved while a sync brings messages of several
// rooms: the rooms that were saved must still show their messages (their
// saved last seqs skip them when delivered again); the broken room is not
// forgotten while its file cannot be read; and once the disk is repaired,
// its message arrives too, everything exactly once.
func TestOneRoomUnsavableLosesNoOtherRoomsMessages(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	bob := e.register("bob", "phone")
	// Several rooms, because the batch saves its rooms in no fixed order:
	// the broken one is rarely the first.
	var rooms []client.RoomID
	for range 6 {
		room, err := alice.CreateRoom(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := alice.Invite(e.ctx, room, "bob"); err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, room)
	}
	bob.sync(e.ctx)
	for i, room := range rooms {
		alice.send(e.ctx, room, fmt.Sprintf("hello in room %d", i))
	}

	// The last room's file cannot be replaced: a directory stands where it
	// was (as a failing disk or a full one would refuse the write).
	broken := rooms[len(rooms)-1]
	file := filepath.Join(bob.dir, "rooms", string(broken)+".json")
	saved, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(file, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := bob.Sync(e.ctx); err == nil {
		t.Fatal("sync reported no error although a room could not be saved")
	}
	for i, room := range rooms[:len(rooms)-1] {
		expectMessages(t, bob, room, []string{fmt.Sprintf("alice: hello in room %d", i)})
	}

	// While the room can be neither saved nor read back, its messages are
	// not passed over as those of a room bob is not in: syncing fails.
	alice.send(e.ctx, rooms[0], "still there?")
	if err := bob.Sync(e.ctx); err == nil {
		t.Fatal("a second sync reported no error although a room cannot be read")
	}

	// The disk is repaired: the next sync brings the room's messages.
	if err := os.RemoveAll(file); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)
	want := func(i int) []string {
		w := []string{fmt.Sprintf("alice: hello in room %d", i)}
		if i == 0 {
			w = append(w, "alice: still there?")
		}
		return w
	}
	for i, room := range rooms {
		expectMessages(t, bob, room, want(i))
	}
	// And nothing comes twice after a restart.
	bob = e.reopen(bob)
	bob.sync(e.ctx)
	for i, room := range rooms {
		expectMessages(t, bob, room, want(i))
	}
	if f := bob.failures(); len(f) > 0 {
		t.Errorf("messages delivered again were refused: %v", f)
	}
}

// A Welcome arrives for a room whose state cannot be saved, in the same
// sync as a message of another room: the message is shown, and once the
// disk is repaired the next sync joins the room with the same KeyPackage.
func TestWelcomeToAnUnsavableRoomIsOpenedAgain(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	bob := e.register("bob", "phone")
	first, _ := alice.CreateRoom(e.ctx)
	if err := alice.Invite(e.ctx, first, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)

	second, _ := alice.CreateRoom(e.ctx)
	file := filepath.Join(bob.dir, "rooms", string(second)+".json")
	if err := os.MkdirAll(filepath.Join(file, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	alice.send(e.ctx, first, "meanwhile")
	if err := alice.Invite(e.ctx, second, "bob"); err != nil {
		t.Fatal(err)
	}
	alice.send(e.ctx, second, "welcome")
	if err := bob.Sync(e.ctx); err == nil {
		t.Fatal("sync reported no error although a room could not be saved")
	}
	expectMessages(t, bob, first, []string{"alice: meanwhile"})
	if bob.has(joined(second)) {
		t.Fatal("the room that could not be saved was reported joined")
	}

	if err := os.RemoveAll(file); err != nil {
		t.Fatal(err)
	}
	bob.sync(e.ctx)
	eventually(t, "bob to join the second room", func() bool { return bob.has(joined(second)) })
	expectMessages(t, bob, second, []string{"alice: welcome"})
	expectMessages(t, bob, first, []string{"alice: meanwhile"})
	if f := bob.failures(); len(f) > 0 {
		t.Errorf("messages delivered again were refused: %v", f)
	}
}

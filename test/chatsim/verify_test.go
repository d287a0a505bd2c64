package chatsim

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
)

// recorder is a testing.TB that keeps the failures it is told of, so that
// a test can see what Check and Verify report.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) said(s string) bool {
	for _, e := range r.errs {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

// offline is a device with no client, given what it received.
func offline(name string, got ...*client.Message) *Device {
	d := &Device{Name: name, User: name}
	for _, m := range got {
		d.got = append(d.got, Delivery{m, time.Now()})
	}
	return d
}

func msg(room client.RoomID, seq int64, text string) *client.Message {
	return &client.Message{Room: room, Seq: seq, Body: []byte(text)}
}

// TestCheckPassesAGoodRun: Alice sends two messages and Bob one to a
// room; each reads the other's, once, in order: nothing is reported, and
// a failed send that was stored all the same is counted.
func TestCheckPassesAGoodRun(t *testing.T) {
	const room = client.RoomID("r1")
	alice := offline("alice", msg(room, 3, "bob #0"))
	bob := offline("bob", msg(room, 1, "alice #0"), msg(room, 2, "alice #1"))
	sends := []Sent{
		{From: alice, Room: room, Text: "alice #0", Seq: 1},
		{From: alice, Room: room, Text: "alice #1", Err: errors.New("cut off")},
		{From: bob, Room: room, Text: "bob #0", Seq: 3},
	}
	members := Members{room: {alice, bob}}
	if m := Missing([]*Device{alice, bob}, members, sends); len(m) != 0 {
		t.Errorf("Missing reports %v", m)
	}
	r := &recorder{TB: t}
	checked, stored := Check(r, []*Device{alice, bob}, sends)
	if len(r.errs) != 0 || checked != 3 || stored != 1 {
		t.Errorf("Check: %d checked, %d stored unacknowledged, failures %q; want 3, 1, none", checked, stored, r.errs)
	}
}

// TestCheckReportsEachFault: every way a delivery can go wrong is reported
// with its own message.
func TestCheckReportsEachFault(t *testing.T) {
	const room = client.RoomID("r1")
	alice := offline("alice")
	bob := offline("bob",
		msg(room, 1, "alice #0"),
		msg(room, 1, "alice #0"),  // twice, and not after seq 1
		msg(room, 5, "alice #1"),  // told 2
		msg(room, 6, "bob #0"),    // its own
		msg(room, 7, "nobody #0"), // never sent
	)
	carol := offline("carol", msg(room, 2, "alice #1"), msg(room, 9, "alice #2"))
	dave := offline("dave", msg(room, 9, "alice #3"))
	bob.bad = []string{"room r1 seq 8: no key"}
	sends := []Sent{
		{From: alice, Room: room, Text: "alice #0", Seq: 1},
		{From: alice, Room: room, Text: "alice #1", Seq: 2},
		{From: bob, Room: room, Text: "bob #0", Seq: 6},
		{From: alice, Room: room, Text: "alice #2", Err: errors.New("cut off")},
		{From: alice, Room: room, Text: "alice #3", Err: errors.New("cut off")},
	}
	r := &recorder{TB: t}
	Check(r, []*Device{alice, bob, carol, dave}, sends)
	for _, want := range []string{
		`bob could not read a message: room r1 seq 8: no key`,
		`bob read "alice #0" twice in room r1`,
		`bob read seq 1 ("alice #0") after seq 1`,
		`bob read "alice #1" at seq 5 in room r1; its sender was told 2`,
		`bob read its own "bob #0"`,
		`bob read "nobody #0" at seq 7 in room r1, which nobody sent`,
		`dave read "alice #3" at seq 9 in room r1, another device "alice #2"`,
	} {
		if !r.said(want) {
			t.Errorf("Check did not report %q; it said %q", want, r.errs)
		}
	}
}

// TestVerifyReportsWhatNeverCame: an acknowledged message that one member
// lacks is reported after the drain bound, and one that a device received
// though its send failed must reach the others too.
func TestVerifyReportsWhatNeverCame(t *testing.T) {
	const room = client.RoomID("r1")
	alice := offline("alice")
	bob := offline("bob", msg(room, 2, "alice #1"))
	carol := offline("carol")
	sends := []Sent{
		{From: alice, Room: room, Text: "alice #0", Seq: 1},
		{From: alice, Room: room, Text: "alice #1", Err: errors.New("cut off")},
	}
	members := Members{room: {alice, bob, carol}}
	m := Missing([]*Device{alice, bob, carol}, members, sends)
	if len(m[bob]) != 1 || len(m[carol]) != 2 || len(m[alice]) != 0 {
		t.Errorf("Missing: %v; want bob to lack 1, carol 2, alice none", m)
	}
	// To overrides the room's members.
	sends[0].To = []*Device{carol}
	if m := Missing([]*Device{alice, bob, carol}, members, sends); len(m[bob]) != 0 {
		t.Errorf("Missing with To: bob lacks %v, though the message was not for him", m[bob])
	}
	r := &recorder{TB: t}
	res := Verify(r, VerifyOptions{Devices: []*Device{alice, bob, carol}, Members: members, Sends: sends, DrainBound: 100 * time.Millisecond, Hint: " (lost?)"})
	if !r.said(`carol still lacks 2 messages (lost?): "alice #0" in room r1`) || res.StoredUnacked != 1 {
		t.Errorf("Verify: %+v, failures %q", res, r.errs)
	}
}

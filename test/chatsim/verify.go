package chatsim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
)

// key names a message: its room and its text, which holds its sender's
// ID for it.
type key struct {
	room client.RoomID
	text string
}

// Members are the devices in each room.
type Members map[client.RoomID][]*Device

// recipients are the devices that must get s: its To, or every member of
// its room but the sender.
func (m Members) recipients(s *Sent) []*Device {
	if s.To != nil {
		return s.To
	}
	var out []*Device
	for _, d := range m[s.Room] {
		if d != s.From {
			out = append(out, d)
		}
	}
	return out
}

// Missing lists, per device, the messages it must have and lacks: every
// acknowledged message sent to it, and every message that any device
// received (a send whose answer a fault cut off may still have been
// stored, and then everyone it was for must get it).
func Missing(devices []*Device, members Members, sends []Sent) map[*Device][]string {
	sender := bySender(sends)
	must := map[*Device]map[key]bool{}
	add := func(k key) {
		s := sender[k]
		for _, d := range members.recipients(s) {
			if must[d] == nil {
				must[d] = map[key]bool{}
			}
			must[d][k] = true
		}
	}
	for _, s := range sends {
		if s.Err == nil {
			add(key{s.Room, s.Text})
		}
	}
	have := map[*Device]map[key]bool{}
	for _, d := range devices {
		have[d] = map[key]bool{}
		for _, m := range d.Received() {
			k := key{m.Room, string(m.Body)}
			have[d][k] = true
			if sender[k] != nil {
				add(k)
			}
		}
	}
	out := map[*Device][]string{}
	for d, keys := range must {
		if have[d] == nil { // not among devices: not checked
			continue
		}
		for k := range keys {
			if !have[d][k] {
				s := sender[k]
				out[d] = append(out[d], fmt.Sprintf("%q in room %s (acknowledged at seq %d; %v)", k.text, k.room, s.Seq, s.Err))
			}
		}
		slices.Sort(out[d])
	}
	return out
}

func bySender(sends []Sent) map[key]*Sent {
	sender := map[key]*Sent{}
	for i := range sends {
		sender[key{sends[i].Room, sends[i].Text}] = &sends[i]
	}
	return sender
}

// Check checks what every device received: each message once, none its
// own, none that nobody sent, at the seq its sender was told, each room
// read in seq order, the same message at a seq on every device, and
// nothing that failed to decrypt. It returns the number of deliveries
// checked and how many of the sends that failed were stored all the same.
func Check(t testing.TB, devices []*Device, sends []Sent) (checked, storedUnacked int) {
	t.Helper()
	sender := bySender(sends)
	seqOf := map[key]int64{}                       // where the first device to have it read a message
	textAt := map[client.RoomID]map[int64]string{} // what a room holds at each seq
	for _, d := range devices {
		for _, b := range d.Failures() {
			t.Errorf("%s could not read a message: %s", d.Name, b)
		}
		seen := map[key]int64{}
		last := map[client.RoomID]int64{}
		for _, m := range d.Received() {
			k := key{m.Room, string(m.Body)}
			s := sender[k]
			switch {
			case s == nil:
				t.Errorf("%s read %q at seq %d in room %s, which nobody sent", d.Name, k.text, m.Seq, m.Room)
				continue
			case s.From == d:
				t.Errorf("%s read its own %q at seq %d in room %s", d.Name, k.text, m.Seq, m.Room)
			}
			if at, ok := seen[k]; ok {
				t.Errorf("%s read %q twice in room %s: at seq %d and %d", d.Name, k.text, m.Room, at, m.Seq)
			}
			seen[k] = m.Seq
			if m.Seq <= last[m.Room] {
				t.Errorf("%s read seq %d (%q) after seq %d in room %s", d.Name, m.Seq, k.text, last[m.Room], m.Room)
			}
			last[m.Room] = m.Seq
			if s.Err == nil && m.Seq != s.Seq {
				t.Errorf("%s read %q at seq %d in room %s; its sender was told %d", d.Name, k.text, m.Seq, m.Room, s.Seq)
			}
			if seq, ok := seqOf[k]; ok && seq != m.Seq {
				t.Errorf("%s read %q at seq %d in room %s, another device at %d", d.Name, k.text, m.Seq, m.Room, seq)
			}
			seqOf[k] = m.Seq
			if textAt[m.Room] == nil {
				textAt[m.Room] = map[int64]string{}
			}
			if other, ok := textAt[m.Room][m.Seq]; ok && other != k.text {
				t.Errorf("%s read %q at seq %d in room %s, another device %q", d.Name, k.text, m.Seq, m.Room, other)
			}
			textAt[m.Room][m.Seq] = k.text
			checked++
		}
	}
	for k, s := range sender {
		if _, ok := seqOf[k]; ok && s.Err != nil {
			storedUnacked++
		}
	}
	return checked, storedUnacked
}

// VerifyOptions is what Verify checks.
type VerifyOptions struct {
	Devices []*Device
	Members Members // who must get a send that names no To
	Sends   []Sent
	// DrainBound is how long the devices get to receive what they lack.
	DrainBound time.Duration
	// Hint, when set, follows a failure to drain: what it may mean.
	Hint string
}

// Result is what Verify found.
type Result struct {
	Checked       int           // deliveries checked
	StoredUnacked int           // failed sends stored all the same
	Drained       time.Duration // how long until no device lacked anything
}

// Verify waits, up to DrainBound, until no device lacks a message
// (Missing), then checks what each received (Check).
func Verify(t testing.TB, o VerifyOptions) Result {
	t.Helper()
	began := time.Now()
	for {
		m := Missing(o.Devices, o.Members, o.Sends)
		if len(m) == 0 {
			break
		}
		if time.Since(began) > o.DrainBound {
			for _, d := range o.Devices {
				if list := m[d]; len(list) > 0 {
					t.Errorf("%v after the load %s still lacks %d messages%s: %s", o.DrainBound, d.Name, len(list), o.Hint, strings.Join(list[:min(20, len(list))], ", "))
				}
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := Result{Drained: time.Since(began)}
	r.Checked, r.StoredUnacked = Check(t, o.Devices, o.Sends)
	return r
}

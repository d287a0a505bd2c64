package chatsim

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
)

// Sent is one message a device tried to send: its text is its ID (sender
// and number, say); Seq is where the hub put it, 0 when the send failed
// and its outcome is unknown to the sender (stored or not).
type Sent struct {
	From  *Device
	Room  client.RoomID
	Text  string
	Seq   int64
	Err   error
	Began time.Time // when Send was called
	Ended time.Time // when it returned
	// Stopped: the load ended during this send, which was cut off.
	Stopped bool
	// To are the devices that must get it; when nil, every member of
	// Room but the sender (see Verify).
	To []*Device
}

// Send sends text once, bounded by bound (the SDK itself retries a send
// cut off, with its client_id, as an app would), and tells what it was
// told. It records nothing: the caller adds it to its SendLog.
func Send(ctx context.Context, from *Device, room client.RoomID, text string, bound time.Duration) Sent {
	s := Sent{From: from, Room: room, Text: text, Began: time.Now()}
	sctx, cancel := context.WithTimeout(ctx, bound)
	id, err := from.Client().Send(sctx, room, []byte(text))
	cancel()
	s.Ended, s.Err, s.Stopped = time.Now(), err, err != nil && ctx.Err() != nil
	if err == nil {
		_, seq, _ := strings.Cut(string(id), string(room)+"/")
		if s.Seq, err = strconv.ParseInt(seq, 10, 64); err != nil {
			s.Err = fmt.Errorf("message ID %q is not %s/SEQ", id, room)
		}
	}
	return s
}

// SendLog is every send of a test, safe for its senders to add to at once.
type SendLog struct {
	mu   sync.Mutex
	list []Sent
}

// Add records s.
func (l *SendLog) Add(s Sent) {
	l.mu.Lock()
	l.list = append(l.list, s)
	l.mu.Unlock()
}

// All is every send recorded, in the order they were added.
func (l *SendLog) All() []Sent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list)
}

// Acked is how many sends were acknowledged.
func (l *SendLog) Acked() int {
	n := 0
	for _, s := range l.All() {
		if s.Err == nil {
			n++
		}
	}
	return n
}

// Failed is how many sends failed.
func (l *SendLog) Failed() int { return len(l.All()) - l.Acked() }

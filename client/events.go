package client

import (
	"sync"
	"time"
)

// Event is something the client received: a *Message, *RoomJoined,
// *MembersChanged, *RemovedFromRoom or *DeliveryFailed.
type Event interface {
	// EventRoom returns the room the event is about.
	EventRoom() RoomID
}

// Sender is the device that sent a message, as its MLS credential names it.
type Sender struct {
	// User is the sender's handle on its provider.
	User string
	// Device is the name of the sending device.
	Device string
	// Domain is the sender's provider.
	Domain string
}

// Message is a decrypted application message. A device's own messages are
// not delivered back to it (Send returned their IDs); the user's other
// devices receive them.
type Message struct {
	ID     MessageID
	Room   RoomID
	Sender Sender
	Body   []byte
	// Seq is the message's position in the room, as the hub ordered it.
	Seq  int64
	Time time.Time
	// Frank is the hub's stamp, kept so that the message can be reported
	// (Report); nil for a message sent without a franking tag.
	Frank *Frank
}

// RoomJoined reports that this device was added to a room.
type RoomJoined struct {
	Room RoomID
}

// MembersChanged reports users who joined or left a room (a user's
// first device added, or their last one removed). Users of this device's
// provider are given by handle, others as handle@domain.
type MembersChanged struct {
	Room    RoomID
	Added   []string
	Removed []string
}

// RemovedFromRoom reports that a commit removed this device from a room.
type RemovedFromRoom struct {
	Room RoomID
}

// DeliveryFailed reports a message of a room that could not be processed
// (it did not decrypt or verify, or its sender's credential is not
// valid). The client moves on past it: one bad message must not stop a
// room.
type DeliveryFailed struct {
	Room RoomID
	Seq  int64
	Err  error
}

// EventRoom returns the message's room.
func (e *Message) EventRoom() RoomID { return e.Room }

// EventRoom returns the joined room.
func (e *RoomJoined) EventRoom() RoomID { return e.Room }

// EventRoom returns the room whose members changed.
func (e *MembersChanged) EventRoom() RoomID { return e.Room }

// EventRoom returns the room this device was removed from.
func (e *RemovedFromRoom) EventRoom() RoomID { return e.Room }

// EventRoom returns the room of the failed message.
func (e *DeliveryFailed) EventRoom() RoomID { return e.Room }

// eventQueue hands events to the application through a channel without
// ever making the client wait for the application: events wait in an
// unbounded queue, and one goroutine feeds the channel. A bounded channel
// alone would deadlock an application that calls Send from the goroutine
// that reads Events while the client holds its lock to deliver.
type eventQueue struct {
	out chan Event

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []Event
	closing bool
}

func newEventQueue() *eventQueue {
	q := &eventQueue{out: make(chan Event)}
	q.cond = sync.NewCond(&q.mu)
	go q.pump()
	return q
}

func (q *eventQueue) push(events ...Event) {
	if len(events) == 0 {
		return
	}
	q.mu.Lock()
	if !q.closing {
		q.queue = append(q.queue, events...)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

func (q *eventQueue) pump() {
	defer close(q.out)
	for {
		q.mu.Lock()
		for len(q.queue) == 0 && !q.closing {
			q.cond.Wait()
		}
		if len(q.queue) == 0 {
			q.mu.Unlock()
			return // closing, and everything was delivered
		}
		e := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		q.mu.Unlock()
		q.out <- e
	}
}

// close takes no more events. Those already queued are still delivered,
// because they were saved as processed and the provider will not send
// them again; the channel is closed after the last one.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closing = true
	q.cond.Signal()
	q.mu.Unlock()
}

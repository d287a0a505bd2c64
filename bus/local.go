package bus

import (
	"context"
	"sync/atomic"
)

// Local is the in-process bus of a provider that runs as one process:
// wake-ups go straight to its own streams, there are no other replicas to
// announce to, and every lease is granted (the outbox already runs one
// worker per destination within a process).
type Local struct {
	devices atomic.Pointer[func([]int64)]
	rooms   atomic.Pointer[func(string)]
	tell    atomic.Pointer[func(int64, []byte)]
}

// NewLocal returns the in-process bus.
func NewLocal() *Local { return &Local{} }

// WakeDevices wakes this process's streams for devices.
func (l *Local) WakeDevices(devices []int64) {
	if fn := l.devices.Load(); fn != nil && len(devices) > 0 {
		(*fn)(devices)
	}
}

// OnDevices sets the function WakeDevices calls.
func (l *Local) OnDevices(fn func([]int64)) { l.devices.Store(&fn) }

// WakeRoom wakes this process's waiters for room.
func (l *Local) WakeRoom(room string) {
	if fn := l.rooms.Load(); fn != nil {
		(*fn)(room)
	}
}

// OnRoom sets the function WakeRoom calls.
func (l *Local) OnRoom(fn func(string)) { l.rooms.Store(&fn) }

// Tell hands the notice to this process's streams of device.
func (l *Local) Tell(device int64, notice []byte) {
	if fn := l.tell.Load(); fn != nil {
		(*fn)(device, notice)
	}
}

// OnTell sets the function Tell calls.
func (l *Local) OnTell(fn func(int64, []byte)) { l.tell.Store(&fn) }

// OnResync does nothing: within a process no hint is lost.
func (l *Local) OnResync(func()) {}

// Announce does nothing: there is no other replica.
func (l *Local) Announce(string) {}

// OnAnnounce does nothing: no announcement ever comes.
func (l *Local) OnAnnounce(func(string)) {}

// Acquire always grants the lease.
func (l *Local) Acquire(ctx context.Context, _ string) (context.Context, func(), bool, error) {
	held, cancel := context.WithCancel(ctx)
	return held, cancel, true, nil
}

// Close does nothing.
func (l *Local) Close() error { return nil }

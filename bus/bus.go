// Package bus carries hints between the replicas of one provider: which
// devices' queues grew (so the replica holding a device's stream sends at
// once) and which federation destinations have new outbox entries, and it
// hands out per-destination leases so that, across all replicas, at most
// one request to a destination is in flight.
//
// The store stays the system of record. Nothing the bus holds is needed to
// rebuild state: a lost wake-up only delays a delivery until the stream's
// or outbox's next look at the store, and a lease is only a right to send,
// never the data sent.
//
// Local is what a single binary uses (everything in-process); NATS spreads
// the same hints over a NATS server with JetStream.
package bus

import "context"

// Bus is what a provider needs from its replicas' shared channel.
type Bus interface {
	// WakeDevices tells every replica, this one included, that these
	// devices have new queue entries in the store. It never blocks on
	// the network and never fails: a wake-up is a hint.
	WakeDevices(devices []int64)
	// OnDevices sets the function that wakes this replica's streams for
	// the given devices. Set it before the first WakeDevices.
	OnDevices(fn func(devices []int64))

	// WakeRoom tells every replica, this one included, that this
	// provider's copy of a room hosted by a partner has grown (the hub's
	// notify arrived here), for the requests waiting for it: a device's
	// forwarded message returns once the copy holds it.
	WakeRoom(room string)
	// OnRoom sets the function that wakes this replica's waiters.
	OnRoom(fn func(room string))

	// Tell passes a notice for one device to every replica, this one
	// included, for the device's open streams wherever they are (a
	// device added to its account, its KeyPackages running low, its
	// session ended). The notice is the provider's own, at most
	// MaxNotice bytes; like a wake-up it is a hint and may be lost.
	Tell(device int64, notice []byte)
	// OnTell sets the function that hands a notice to this replica's
	// streams of the device.
	OnTell(fn func(device int64, notice []byte))

	// OnResync sets the function called when hints may have been lost
	// (the connection to the other replicas came back): the replica then
	// looks at the store for whatever it would have been woken for.
	OnResync(fn func())

	// Announce tells the other replicas that dest has new outbox entries
	// (this replica's outbox already knows).
	Announce(dest string)
	// OnAnnounce sets the function that wakes this replica's outbox for a
	// destination another replica announced.
	OnAnnounce(fn func(dest string))

	// Acquire tries to take dest's sending lease. ok is false, with a nil
	// error, when another holder has it. While held, the lease is renewed
	// in the background; held ends when the lease is lost (it could not
	// be renewed in time) or released. release gives the lease up; it is
	// safe to call more than once. An error means the bus could not be
	// asked (for instance NATS is unreachable): try again later.
	Acquire(ctx context.Context, dest string) (held context.Context, release func(), ok bool, err error)

	// Close stops the bus; leases held are released.
	Close() error
}

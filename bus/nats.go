package bus

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSOptions configure a NATS bus.
type NATSOptions struct {
	// URL is the NATS server, e.g. nats://127.0.0.1:4222 (a comma
	// separated list names several servers of one cluster).
	URL string
	// Domain is the provider's: its replicas share the subjects
	// sb.DOMAIN.wake and sb.DOMAIN.outbox and the lease bucket.
	Domain string
	// LeaseTTL is how long a destination's lease lives without renewal
	// (default 15s): the longest a dead replica's destinations wait
	// before another replica takes them over. It must be the same on
	// every replica (it is the lease bucket's max age).
	LeaseTTL time.Duration
	// Name identifies this replica in NATS connection lists and as the
	// value of the leases it holds (default: random).
	Name   string
	Logger *slog.Logger
}

// DefaultLeaseTTL is NATSOptions.LeaseTTL's default.
const DefaultLeaseTTL = 15 * time.Second

// headerOrigin names the replica that published a wake-up, so it skips
// its own (it has already woken its streams directly).
const headerOrigin = "Sb-Origin"

// NATS is the bus of a provider run as several replicas: wake-ups are core
// NATS messages (at most once, which suits hints), leases are keys of a
// JetStream key-value bucket whose max age is the lease TTL.
//
// The connection reconnects by itself and resubscribes; while NATS is
// away, wake-ups to other replicas are lost (their streams fall back to
// polling the store) and no lease can be taken or renewed, so federation
// sends pause, leaving their entries in the store, until NATS is back.
type NATS struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	log    *slog.Logger
	origin string
	ttl    time.Duration

	wakeSubject, roomSubject, tellSubject, outboxSubject, bucketName string

	devices  atomic.Pointer[func([]int64)]
	rooms    atomic.Pointer[func(string)]
	tell     atomic.Pointer[func(int64, []byte)]
	resync   atomic.Pointer[func()]
	announce atomic.Pointer[func(string)]

	kvMu sync.Mutex
	kv   jetstream.KeyValue // made on first use, since NATS may be down at start

	root   context.Context // ends with Close, and with it every lease
	cancel context.CancelFunc
	leases sync.WaitGroup
}

// DialNATS connects to NATS and subscribes to the provider's subjects. An
// unreachable server is not an error: the connection keeps trying in the
// background, and the provider serves from the store meanwhile.
func DialNATS(o NATSOptions) (*NATS, error) {
	if err := checkDomain(o.Domain); err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.Name == "" {
		o.Name = o.Domain + "-" + randomID()
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "bus", "replica", o.Name)
	b := &NATS{
		log:           log,
		origin:        o.Name,
		ttl:           o.LeaseTTL,
		wakeSubject:   "sb." + o.Domain + ".wake",
		roomSubject:   "sb." + o.Domain + ".room",
		tellSubject:   "sb." + o.Domain + ".tell",
		outboxSubject: "sb." + o.Domain + ".outbox",
		// Bucket names allow letters, digits, '-' and '_' only.
		bucketName: "sb_leases_" + strings.NewReplacer(".", "_", ":", "_").Replace(o.Domain),
	}
	nc, err := nats.Connect(o.URL,
		nats.Name("switchboard "+o.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("NATS disconnected: wake-ups to other replicas wait for their polls, federation sends pause", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("NATS reconnected", "server", c.ConnectedUrlRedacted())
			// Hints published while this replica was away (or before
			// its subscriptions were back) are gone: look at the store.
			if fn := b.resync.Load(); fn != nil {
				(*fn)()
			}
		}),
		nats.ConnectHandler(func(c *nats.Conn) { log.Info("NATS connected", "server", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("bus: %s: %w", o.URL, err)
	}
	b.nc = nc
	if b.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: %w", err)
	}
	b.root, b.cancel = context.WithCancel(context.Background())
	if _, err := nc.Subscribe(b.wakeSubject, b.onWake); err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: subscribing to %s: %w", b.wakeSubject, err)
	}
	if _, err := nc.Subscribe(b.roomSubject, b.onRoom); err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: subscribing to %s: %w", b.roomSubject, err)
	}
	if _, err := nc.Subscribe(b.tellSubject, b.onTell); err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: subscribing to %s: %w", b.tellSubject, err)
	}
	if _, err := nc.Subscribe(b.outboxSubject, b.onAnnounce); err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: subscribing to %s: %w", b.outboxSubject, err)
	}
	return b, nil
}

func randomID() string {
	var r [6]byte
	rand.Read(r[:])
	return base64.RawURLEncoding.EncodeToString(r[:])
}

// Name is this replica's name on the bus.
func (b *NATS) Name() string { return b.origin }

// WakeDevices wakes this replica's streams at once and publishes the
// devices to the other replicas.
func (b *NATS) WakeDevices(devices []int64) {
	if len(devices) == 0 {
		return
	}
	if fn := b.devices.Load(); fn != nil {
		(*fn)(devices)
	}
	for len(devices) > 0 {
		n := min(len(devices), maxWakeDevices)
		b.publish(b.wakeSubject, encodeDevices(devices[:n]))
		devices = devices[n:]
	}
}

// OnDevices sets the function that wakes this replica's streams.
func (b *NATS) OnDevices(fn func([]int64)) { b.devices.Store(&fn) }

// WakeRoom wakes this replica's waiters for room at once and publishes
// the room to the other replicas.
func (b *NATS) WakeRoom(room string) {
	if fn := b.rooms.Load(); fn != nil {
		(*fn)(room)
	}
	if checkRoom(room) == nil {
		b.publish(b.roomSubject, []byte(room))
	}
}

// OnRoom sets the function that wakes this replica's waiters.
func (b *NATS) OnRoom(fn func(string)) { b.rooms.Store(&fn) }

// Tell hands the notice to this replica's streams of device at once and
// publishes it to the other replicas.
func (b *NATS) Tell(device int64, notice []byte) {
	if fn := b.tell.Load(); fn != nil {
		(*fn)(device, notice)
	}
	if data, err := encodeNotice(device, notice); err == nil {
		b.publish(b.tellSubject, data)
	} else {
		b.log.Warn("bus: notice not sent to other replicas", "device", device, "err", err)
	}
}

// OnTell sets the function that hands notices to this replica's streams.
func (b *NATS) OnTell(fn func(int64, []byte)) { b.tell.Store(&fn) }

// OnResync sets the function called after NATS reconnects.
func (b *NATS) OnResync(fn func()) { b.resync.Store(&fn) }

// Announce publishes dest to the other replicas' outboxes.
func (b *NATS) Announce(dest string) {
	if checkDomain(dest) != nil {
		return // no replica would accept it
	}
	b.publish(b.outboxSubject, []byte(dest))
}

// OnAnnounce sets the function that wakes this replica's outbox.
func (b *NATS) OnAnnounce(fn func(string)) { b.announce.Store(&fn) }

// publish sends a hint; while disconnected nats.go buffers it for the
// reconnection, and if even that fails the hint is dropped (it is one).
func (b *NATS) publish(subject string, data []byte) {
	m := nats.NewMsg(subject)
	m.Header.Set(headerOrigin, b.origin)
	m.Data = data
	if err := b.nc.PublishMsg(m); err != nil {
		b.log.Debug("bus: hint dropped", "subject", subject, "err", err)
	}
}

func (b *NATS) onWake(m *nats.Msg) {
	if m.Header.Get(headerOrigin) == b.origin {
		return
	}
	ds, err := decodeDevices(m.Data)
	if err != nil {
		b.log.Warn("bus: ignoring a wake-up", "err", err)
		return
	}
	if fn := b.devices.Load(); fn != nil {
		(*fn)(ds)
	}
}

func (b *NATS) onRoom(m *nats.Msg) {
	if m.Header.Get(headerOrigin) == b.origin {
		return
	}
	room, err := decodeRoom(m.Data)
	if err != nil {
		b.log.Warn("bus: ignoring a room wake-up", "err", err)
		return
	}
	if fn := b.rooms.Load(); fn != nil {
		(*fn)(room)
	}
}

func (b *NATS) onTell(m *nats.Msg) {
	if m.Header.Get(headerOrigin) == b.origin {
		return
	}
	device, notice, err := decodeNotice(m.Data)
	if err != nil {
		b.log.Warn("bus: ignoring a notice", "err", err)
		return
	}
	if fn := b.tell.Load(); fn != nil {
		(*fn)(device, notice)
	}
}

func (b *NATS) onAnnounce(m *nats.Msg) {
	if m.Header.Get(headerOrigin) == b.origin {
		return
	}
	dest, err := decodeDest(m.Data)
	if err != nil {
		b.log.Warn("bus: ignoring an outbox announcement", "err", err)
		return
	}
	if fn := b.announce.Load(); fn != nil {
		(*fn)(dest)
	}
}

// Close releases the leases this replica holds and disconnects.
func (b *NATS) Close() error {
	b.cancel()
	b.leases.Wait()
	// Drain delivers the hints already received before closing.
	if err := b.nc.Drain(); err != nil {
		b.nc.Close()
	}
	return nil
}

// errClosed is returned by Acquire after Close.
var errClosed = errors.New("bus: closed")

// NATSConn is the underlying connection, for tests that cut it.
func (b *NATS) NATSConn() *nats.Conn { return b.nc }

// Package inbox is the business inbox: one place where a shop's agents
// answer customers who write from any partner provider, without breaking
// end-to-end encryption. The business account's own device (a
// conversations.Messenger) holds the keys, so messages are decrypted
// inside the business, never at a provider; the Desk adds what a support
// team needs on top: agents and sessions, assignment, statuses, labels,
// notes, service levels, business hours, contacts across providers,
// satisfaction, reports and search. Package inbox/console is the agents'
// web console on it. docs/inbox.md explains the choices.
package inbox

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/conversations"
)

// Config is how a Desk is opened.
type Config struct {
	// Dir is the inbox data directory; inbox.db lives here.
	Dir string
	// Messenger is the business account's device. Desk.Run runs it (its
	// Run and its updates); the caller must not run it too.
	Messenger *conversations.Messenger
	// Now is the clock; nil is time.Now. Tests pass a controllable one.
	Now func() time.Time
	Log *slog.Logger
}

// Desk is the business inbox. Its methods are safe for concurrent use.
type Desk struct {
	db  *sql.DB
	m   *conversations.Messenger
	now func() time.Time
	log *slog.Logger
	me  string // the business account, as the Messenger names users

	// mu serializes the desk's changes: assignment reads loads and
	// writes assignees, and must not interleave with itself.
	mu sync.Mutex

	setMu    sync.RWMutex
	settings Settings
	loc      *time.Location

	subMu   sync.Mutex
	subs    map[int]chan Event
	nextSub int

	wake chan struct{}
}

// Open opens (or creates) the inbox in cfg.Dir.
func Open(ctx context.Context, cfg Config) (*Desk, error) {
	if cfg.Messenger == nil {
		return nil, fmt.Errorf("%w: no Messenger", ErrInvalid)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	db, err := openDB(filepath.Join(cfg.Dir, "inbox.db"))
	if err != nil {
		return nil, err
	}
	d := &Desk{db: db, m: cfg.Messenger, now: cfg.Now, log: cfg.Log, me: cfg.Messenger.Client().User(),
		subs: map[int]chan Event{}, wake: make(chan struct{}, 1), loc: time.UTC}
	if err := d.loadSettings(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// Close closes inbox.db (not the Messenger).
func (d *Desk) Close() error { return d.db.Close() }

// sweepEvery is how often Run checks service levels and waiting
// conversations on its own; rescanEvery how often it looks at every room
// again, for a room whose request could not be accepted or an update the
// Messenger dropped while the desk lagged.
const (
	sweepEvery  = time.Second
	rescanEvery = 30 * time.Second
)

// Run runs the Messenger and the desk until ctx ends: it takes in the
// customers' rooms and messages as they arrive (accepting every message
// request: a business answers everyone), sends the greeting, away and
// satisfaction messages, assigns waiting conversations and records
// service-level breaches as their time comes.
func (d *Desk) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- d.m.Run(ctx) }()
	// What arrived while the desk was down.
	d.takeInAll(ctx)
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	rescan := time.NewTicker(rescanEvery)
	defer rescan.Stop()
	updates := d.m.Updates()
	for {
		select {
		case <-ctx.Done():
			<-errc
			return ctx.Err()
		case err := <-errc:
			return err
		case u := <-updates:
			rooms := map[client.RoomID]bool{u.Room: true}
			// Take what is queued too, then each room once.
			for more := true; more; {
				select {
				case u := <-updates:
					rooms[u.Room] = true
				default:
					more = false
				}
			}
			for room := range rooms {
				if err := d.takeIn(ctx, room, true); err != nil && ctx.Err() == nil {
					d.log.Warn("taking in a room", "room", room, "err", err)
				}
			}
		case <-rescan.C:
			d.takeInAll(ctx)
		case <-tick.C:
			d.sweep(ctx)
		case <-d.wake:
			d.sweep(ctx)
		}
	}
}

// sweep records due breaches and assigns what waits.
func (d *Desk) sweep(ctx context.Context) {
	if err := d.checkBreaches(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn("checking service levels", "err", err)
	}
	d.mu.Lock()
	err := d.autoAssign(ctx)
	d.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		d.log.Warn("assigning", "err", err)
	}
}

// takeInAll takes in every room of the business account.
func (d *Desk) takeInAll(ctx context.Context) {
	for _, room := range d.m.Client().Rooms() {
		if err := d.takeIn(ctx, room, false); err != nil && ctx.Err() == nil {
			d.log.Warn("taking in a room", "room", room, "err", err)
		}
	}
	d.sweep(ctx)
}

// ---- Live events ----

// subBuffer is how many events a subscriber may lag behind.
const subBuffer = 256

// Subscribe returns live events for the console and a function that ends
// the subscription. The channel is buffered; a slow subscriber loses the
// oldest events, and never blocks the Desk.
func (d *Desk) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, subBuffer)
	d.subMu.Lock()
	id := d.nextSub
	d.nextSub++
	d.subs[id] = ch
	d.subMu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			d.subMu.Lock()
			delete(d.subs, id)
			d.subMu.Unlock()
		})
	}
}

func (d *Desk) publish(e Event) {
	d.subMu.Lock()
	defer d.subMu.Unlock()
	for _, ch := range d.subs {
		for {
			select {
			case ch <- e:
			default:
				select {
				case <-ch: // the oldest makes room
				default:
				}
				continue
			}
			break
		}
	}
}

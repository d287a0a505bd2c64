package chatsim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// joinBound is how long Joined waits for a device to reach a room's
// epoch: generous, for a loaded machine.
const joinBound = 30 * time.Second

// Config is how a device is registered.
type Config struct {
	URL    string // its provider's client API
	Code   string // the registration code
	User   string // handle@domain
	Device string // the device's name at registration
	// Name is how the test names the device in its messages and
	// failures; User/Device when empty.
	Name string
	// Dir is the SDK's data directory; a new temporary one when empty.
	Dir string
	// Reachable lets every user reach this one (a new user is reachable
	// only from its own provider); Discoverable lists it in discovery.
	Reachable, Discoverable bool
	// Skew puts the device's clock that far from the real one.
	Skew time.Duration
	// Timeout bounds registering; 30 s when zero.
	Timeout time.Duration
}

// Device is a person's app on one device, its stream open (client.Run),
// recording every message it receives, across the times it is opened.
type Device struct {
	User string           // handle@domain
	Name string           // as the test names it
	URL  string           // its provider's client API, where Open goes back
	Dir  string           // the SDK's data directory
	Log  *Log             // what the SDK logged
	now  func() time.Time // its clock; nil for the real one

	mu      sync.Mutex
	c       *client.Client
	stop    func() // ends Run, closes the client, waits for its last events
	stopRun func() // ends Run alone: the stream closes, the session stays
	got     []Delivery
	bad     []string // DeliveryFailed events
	joined  map[client.RoomID]int
	removed map[client.RoomID]int
}

// Delivery is a message a device received, and when.
type Delivery struct {
	*client.Message
	At time.Time
}

// Register registers a device as cfg says, opens its stream, and closes
// it when the test ends.
func Register(t testing.TB, cfg Config) *Device {
	t.Helper()
	d := &Device{User: cfg.User, Name: cfg.Name, URL: cfg.URL, Dir: cfg.Dir, Log: &Log{},
		joined: map[client.RoomID]int{}, removed: map[client.RoomID]int{}}
	if d.Name == "" {
		d.Name = cfg.User + "/" + cfg.Device
	}
	if cfg.Skew != 0 {
		d.now = clock.Skewed(cfg.Skew)
	}
	if d.Dir == "" {
		d.Dir = t.TempDir()
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := client.Register(ctx, cfg.URL, cfg.Code, cfg.Device, d.Dir, d.options())
	if err != nil {
		if cfg.Skew != 0 {
			t.Fatalf("registering %s (clock %v): %v", d.Name, cfg.Skew, err)
		}
		t.Fatalf("registering %s: %v", d.Name, err)
	}
	if cfg.Reachable {
		if err := c.SetReachability(ctx, client.ReachAll, nil); err != nil {
			c.Close() // #nosec G104 -- cleanup before failing the test with the error above
			t.Fatalf("%s: %v", d.Name, err)
		}
	}
	if cfg.Discoverable {
		if err := c.SetDiscovery(ctx, true, false); err != nil {
			c.Close() // #nosec G104 -- cleanup before failing the test with the error above
			t.Fatalf("%s: %v", d.Name, err)
		}
	}
	d.run(c)
	t.Cleanup(d.Close)
	return d
}

// options are the SDK's: its log kept in memory, and echoed on stderr
// when SWITCHBOARD_TEST_LOG is set.
func (d *Device) options() client.Options {
	var w io.Writer = d.Log
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		w = io.MultiWriter(d.Log, proctest.PrefixWriter{Name: d.Name, W: os.Stderr})
	}
	return client.Options{Logger: slog.New(slog.NewTextHandler(w, nil)), Now: d.now}
}

// run opens c's stream and collects what it brings.
func (d *Device) run(c *client.Client) {
	collected := make(chan struct{})
	go func() {
		// Until Close closes the channel: what the device saved as
		// processed is delivered even after Run has stopped.
		defer close(collected)
		for e := range c.Events() {
			at := time.Now()
			d.mu.Lock()
			switch e := e.(type) {
			case *client.Message:
				d.got = append(d.got, Delivery{e, at})
			case *client.RoomJoined:
				d.joined[e.Room]++
			case *client.RemovedFromRoom:
				d.removed[e.Room]++
			case *client.DeliveryFailed:
				d.bad = append(d.bad, fmt.Sprintf("room %s seq %d: %v", e.Room, e.Seq, e.Err))
			}
			d.mu.Unlock()
		}
	}()
	d.mu.Lock()
	d.c = c
	d.stop = func() { d.PauseStream(); _ = c.Close(); <-collected } // a close error leaves nothing to undo in a test
	d.mu.Unlock()
	d.ResumeStream()
}

// PauseStream closes the device's stream, the app staying open and
// signed in.
func (d *Device) PauseStream() {
	d.mu.Lock()
	stop := d.stopRun
	d.stopRun = nil
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// ResumeStream opens the stream again, with the session the device has.
func (d *Device) ResumeStream() {
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	d.mu.Lock()
	c := d.c
	d.stopRun = func() { cancel(); <-ran }
	d.mu.Unlock()
	go func() { defer close(ran); _ = c.Run(ctx) }() // Run ends when ctx does or the app closes; what it met shows in the events
}

// Close closes the app; closing it again does nothing.
func (d *Device) Close() {
	d.mu.Lock()
	stop := d.stop
	d.stop = nil
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Open opens the app again from its data directory, on the provider at
// url, and opens its stream.
func (d *Device) Open(ctx context.Context, url string) error {
	c, err := client.Open(ctx, url, d.Dir, d.options())
	if err != nil {
		return err
	}
	d.run(c)
	return nil
}

// Client is the SDK client the app has open now.
func (d *Device) Client() *client.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.c
}

// Address is how host invites d: by handle on its own provider, by
// handle@domain from another.
func (d *Device) Address(host *Device) string {
	handle, domain, _ := strings.Cut(d.User, "@")
	if _, hostDomain, _ := strings.Cut(host.User, "@"); hostDomain == domain {
		return handle
	}
	return d.User
}

// Joined waits until d has joined room and caught up with its commits to
// epoch, so that its first message is in the room's epoch.
func (d *Device) Joined(t testing.TB, room client.RoomID, epoch uint64) {
	t.Helper()
	deadline := time.Now().Add(joinBound)
	for {
		if e, err := d.Client().Epoch(room); err == nil && e == epoch {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never joined room %s at epoch %d", d.Name, room, epoch)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Received is every message the device has received, in order.
func (d *Device) Received() []*client.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*client.Message, len(d.got))
	for i, g := range d.got {
		out[i] = g.Message
	}
	return out
}

// Deliveries is every message the device has received, with when.
func (d *Device) Deliveries() []Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

// Failures are the messages the device could not read (DeliveryFailed).
func (d *Device) Failures() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.bad)
}

// Counts is how many times the device was told it joined room, and that
// it was removed from it.
func (d *Device) Counts(room client.RoomID) (joined, removed int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.joined[room], d.removed[room]
}

// Log is a device's log, kept in memory to count and search what it says.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Count is how many times s occurs in the log.
func (l *Log) Count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Count(l.buf.Bytes(), []byte(s))
}

// Lines are the log's lines that hold s.
func (l *Log) Lines(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

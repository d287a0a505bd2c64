package diskfull_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// device is a person's app on one device, its stream open (client.Run),
// keeping every message it receives across the times it is opened.
type device struct {
	name   string
	dir    string // the SDK's data directory (not on the provider's disk)
	client *client.Client

	mu      sync.Mutex
	stop    func() // ends Run, closes the client, waits for its last events
	stopRun func() // ends Run alone: the stream closes, the session stays
	got     []*client.Message
	bad     []string // DeliveryFailed events
}

func options(name string) client.Options {
	var w io.Writer = io.Discard
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		w = proctest.PrefixWriter{Name: name, W: os.Stderr}
	}
	return client.Options{Logger: slog.New(slog.NewTextHandler(w, nil))}
}

func register(t *testing.T, name, url, code, deviceName string) *device {
	t.Helper()
	return registerIn(t, t.TempDir(), name, url, code, deviceName)
}

// registerIn registers a device that keeps its state in dir.
func registerIn(t *testing.T, dir, name, url, code, deviceName string) *device {
	t.Helper()
	d := &device{name: name, dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Register(ctx, url, code, deviceName, d.dir, options(name))
	if err != nil {
		t.Fatalf("registering %s: %v", name, err)
	}
	d.run(c)
	t.Cleanup(d.close)
	return d
}

// run opens c's stream and collects what it brings.
func (d *device) run(c *client.Client) {
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for e := range c.Events() {
			d.mu.Lock()
			switch e := e.(type) {
			case *client.Message:
				d.got = append(d.got, e)
			case *client.DeliveryFailed:
				d.bad = append(d.bad, e.Err.Error())
			}
			d.mu.Unlock()
		}
	}()
	d.mu.Lock()
	d.client = c
	d.stop = func() { d.pauseStream(); c.Close(); <-collected }
	d.mu.Unlock()
	d.resumeStream()
}

// pauseStream closes the device's stream, the app staying open and
// signed in.
func (d *device) pauseStream() {
	d.mu.Lock()
	stop := d.stopRun
	d.stopRun = nil
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// resumeStream opens the stream again, with the session the device has.
func (d *device) resumeStream() {
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	d.mu.Lock()
	c := d.client
	d.stopRun = func() { cancel(); <-ran }
	d.mu.Unlock()
	go func() { defer close(ran); c.Run(ctx) }()
}

// close closes the app (again: a no-op).
func (d *device) close() {
	d.mu.Lock()
	stop := d.stop
	d.stop = nil
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// open opens the app again from its data directory, on the provider at url.
func (d *device) open(ctx context.Context, url string) error {
	c, err := client.Open(ctx, url, d.dir, options(d.name))
	if err != nil {
		return err
	}
	d.run(c)
	return nil
}

func (d *device) received() []*client.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

// joined waits until d is in room at epoch.
func (d *device) joined(t *testing.T, room client.RoomID, epoch uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if e, err := d.client.Epoch(room); err == nil && e == epoch {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never joined room %s at epoch %d", d.name, room, epoch)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

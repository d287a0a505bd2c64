package clockskew_test

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

// device is a person's app on one device whose clock is skew away from
// the real one, its stream open, recording what it receives.
type device struct {
	user   string // handle@domain
	name   string // user/device
	skew   time.Duration
	client *client.Client
	log    *lockedLog

	mu   sync.Mutex
	stop func()
	got  []*client.Message
	bad  []string // DeliveryFailed events
}

func register(t *testing.T, user, deviceName, url, code string, skew time.Duration) *device {
	t.Helper()
	d := &device{user: user, name: user + "/" + deviceName, skew: skew, log: &lockedLog{}}
	var w io.Writer = d.log
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		w = io.MultiWriter(d.log, proctest.PrefixWriter{Name: d.name, W: os.Stderr})
	}
	opts := client.Options{Logger: slog.New(slog.NewTextHandler(w, nil)), Now: clock.Skewed(skew)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Register(ctx, url, code, deviceName, t.TempDir(), opts)
	if err != nil {
		t.Fatalf("registering %s (clock %v): %v", d.name, skew, err)
	}
	if err := c.SetReachability(ctx, client.ReachAll, nil); err != nil {
		t.Fatalf("%s: %v", d.name, err)
	}
	if err := c.SetDiscovery(ctx, true, false); err != nil {
		t.Fatalf("%s: %v", d.name, err)
	}
	d.client = c
	rctx, stop := context.WithCancel(context.Background())
	ran, collected := make(chan struct{}), make(chan struct{})
	go func() { defer close(ran); c.Run(rctx) }()
	go func() {
		defer close(collected)
		for e := range c.Events() {
			d.mu.Lock()
			switch e := e.(type) {
			case *client.Message:
				d.got = append(d.got, e)
			case *client.DeliveryFailed:
				d.bad = append(d.bad, fmt.Sprintf("room %s seq %d: %v", e.Room, e.Seq, e.Err))
			}
			d.mu.Unlock()
		}
	}()
	d.stop = func() { stop(); <-ran; c.Close(); <-collected }
	t.Cleanup(d.stop)
	return d
}

func (d *device) received() []*client.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

func (d *device) failures() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.bad)
}

// address is how a device of from's provider invites d.
func (d *device) address(from *device) string {
	handle, domain, _ := strings.Cut(d.user, "@")
	if _, fromDomain, _ := strings.Cut(from.user, "@"); fromDomain == domain {
		return handle
	}
	return d.user
}

// lockedLog is a device's log, kept to search when something fails.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) lines(s string) []string {
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

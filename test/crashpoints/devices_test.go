package crashpoints_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// device is a person's app on one device with its stream open
// (client.Run), recording what it receives.
type device struct {
	name   string // handle@domain/device
	user   string // handle@domain
	client *client.Client
	log    *countingLog

	mu      sync.Mutex
	got     []*client.Message
	joined  map[client.RoomID]int
	removed map[client.RoomID]int
	bad     []string
	stop    func()
}

func register(t *testing.T, p *proctest.Pair, name string) *device {
	t.Helper()
	user, devName, _ := strings.Cut(name, "/")
	_, domain, _ := strings.Cut(user, "@")
	d := &device{name: name, user: user, log: &countingLog{}, joined: map[client.RoomID]int{}, removed: map[client.RoomID]int{}}
	var w io.Writer = d.log
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		w = io.MultiWriter(d.log, proctest.PrefixWriter{Name: name, W: os.Stderr})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Register(ctx, p.URL[strings.TrimSuffix(domain, ".test")], p.Codes[name], devName, t.TempDir(),
		client.Options{Logger: slog.New(slog.NewTextHandler(w, nil))})
	if err != nil {
		t.Fatalf("registering %s: %v", name, err)
	}
	// Reachable from the partner provider (a new user is not).
	if err := c.SetReachability(ctx, client.ReachAll, nil); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	d.client = c
	runCtx, stopRun := context.WithCancel(context.Background())
	ran, collected := make(chan struct{}), make(chan struct{})
	go func() { defer close(ran); c.Run(runCtx) }()
	go func() {
		defer close(collected)
		for e := range c.Events() {
			d.mu.Lock()
			switch e := e.(type) {
			case *client.Message:
				d.got = append(d.got, e)
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
	d.stop = func() { stopRun(); <-ran; c.Close(); <-collected }
	t.Cleanup(d.stop)
	return d
}

func (d *device) received() []*client.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

func (d *device) counts(room client.RoomID) (joined, removed int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.joined[room], d.removed[room]
}

// sent is one message a device tried to send; its text is its ID. seq is
// where the hub put it; err, if set, means its outcome is unknown to the
// sender (stored or not). to are the devices that must get it.
type sent struct {
	from *device
	room client.RoomID
	text string
	seq  int64
	err  error
	to   []*device
}

type sendLog struct {
	mu   sync.Mutex
	list []sent
}

func (l *sendLog) add(s sent) {
	l.mu.Lock()
	l.list = append(l.list, s)
	l.mu.Unlock()
}

func (l *sendLog) all() []sent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list)
}

// send sends text once (the SDK retries a send cut off with its
// client_id, for about 1.5 s) and records the outcome.
func send(ctx context.Context, log *sendLog, from *device, room client.RoomID, text string, to ...*device) sent {
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	id, err := from.client.Send(sctx, room, []byte(text))
	cancel()
	s := sent{from: from, room: room, text: text, err: err, to: to}
	if err == nil {
		_, seq, _ := strings.Cut(string(id), string(room)+"/")
		if s.seq, err = strconv.ParseInt(seq, 10, 64); err != nil {
			s.err = fmt.Errorf("message ID %q is not %s/SEQ", id, room)
		}
	}
	log.add(s)
	return s
}

type key struct {
	room client.RoomID
	text string
}

// missing lists, per device, the messages it must have and lacks: every
// acknowledged message sent to it, and every message that any device
// received (a send whose answer a crash cut off may have been stored, and
// then everyone it was for must get it).
func missing(devices []*device, sends []sent) map[*device][]string {
	received := map[key]bool{}
	for _, d := range devices {
		for _, m := range d.received() {
			received[key{m.Room, string(m.Body)}] = true
		}
	}
	out := map[*device][]string{}
	for _, s := range sends {
		if s.err != nil && !received[key{s.room, s.text}] {
			continue
		}
		for _, d := range s.to {
			if !slices.ContainsFunc(d.received(), func(m *client.Message) bool { return m.Room == s.room && string(m.Body) == s.text }) {
				out[d] = append(out[d], fmt.Sprintf("%q (seq %d, %v)", s.text, s.seq, s.err))
			}
		}
	}
	return out
}

// checkDeliveries checks what every device received: each message once,
// none its own, none that nobody sent, at the seq its sender was told,
// each room read in seq order, the same message at a seq everywhere, and
// nothing that failed to decrypt. It returns the deliveries checked.
func checkDeliveries(t *testing.T, devices []*device, sends []sent) int {
	t.Helper()
	sender := map[key]sent{}
	for _, s := range sends {
		sender[key{s.room, s.text}] = s
	}
	textAt := map[client.RoomID]map[int64]string{}
	checked := 0
	for _, d := range devices {
		d.mu.Lock()
		for _, b := range d.bad {
			t.Errorf("%s could not read a message: %s", d.name, b)
		}
		d.mu.Unlock()
		seen := map[key]bool{}
		last := map[client.RoomID]int64{}
		for _, m := range d.received() {
			k := key{m.Room, string(m.Body)}
			s, ok := sender[k]
			switch {
			case !ok:
				t.Errorf("%s read %q at seq %d, which nobody sent", d.name, k.text, m.Seq)
				continue
			case s.from == d:
				t.Errorf("%s read its own %q", d.name, k.text)
			case seen[k]:
				t.Errorf("%s read %q twice", d.name, k.text)
			case m.Seq <= last[m.Room]:
				t.Errorf("%s read seq %d (%q) after seq %d", d.name, m.Seq, k.text, last[m.Room])
			case s.err == nil && m.Seq != s.seq:
				t.Errorf("%s read %q at seq %d; its sender was told %d", d.name, k.text, m.Seq, s.seq)
			}
			seen[k], last[m.Room] = true, m.Seq
			if textAt[m.Room] == nil {
				textAt[m.Room] = map[int64]string{}
			}
			if other, ok := textAt[m.Room][m.Seq]; ok && other != k.text {
				t.Errorf("%s read %q at seq %d, another device %q", d.name, k.text, m.Seq, other)
			}
			textAt[m.Room][m.Seq] = k.text
			checked++
		}
	}
	return checked
}

// cleanRefusal reports whether a failed send was refused as something to
// retry: the provider unreachable, or unavailable (draining, or its hub
// unreachable). Anything else (a fault, a refusal) during a graceful stop
// is a bug.
func cleanRefusal(err error) bool {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Status == 503
	}
	return errors.Is(err, client.ErrUnavailable) || strings.Contains(err.Error(), "client: network:")
}

// countingLog keeps a device's log in memory, out of the test's output
// (SWITCHBOARD_TEST_LOG echoes it as well).
type countingLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *countingLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func readFile(name string) (string, error) {
	data, err := os.ReadFile(name)
	return string(data), err
}

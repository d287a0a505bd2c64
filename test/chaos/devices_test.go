package chaos_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// device is a person's app on one device, its stream open (client.Run),
// recording every message it receives.
type device struct {
	user   string // handle@domain
	name   string // user/device, as the test's messages name it
	url    string // its provider's client API
	dir    string // the SDK's data directory
	client *client.Client
	log    *countingLog
	// away asks the device's sender to close the app, and keep it closed
	// until away is false again; awayTimes counts the times it did.
	away      atomic.Bool
	awayTimes atomic.Int32

	mu   sync.Mutex
	stop func() // ends Run, closes the client, waits for its last events
	got  []*client.Message
	bad  []string // DeliveryFailed events
}

func register(t *testing.T, user, deviceName, url, code string) *device {
	t.Helper()
	name := user + "/" + deviceName
	d := &device{user: user, name: name, url: url, dir: t.TempDir(), log: &countingLog{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Register(ctx, url, code, deviceName, d.dir, d.options())
	if err != nil {
		t.Fatalf("registering %s: %v", name, err)
	}
	// Reachable from the partner provider (a new user is not).
	if err := c.SetReachability(ctx, client.ReachAll, nil); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	d.run(c)
	t.Cleanup(func() { d.stop() })
	return d
}

func (d *device) options() client.Options {
	var w io.Writer = d.log
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		w = io.MultiWriter(d.log, proctest.PrefixWriter{Name: d.name, W: os.Stderr})
	}
	return client.Options{Logger: slog.New(slog.NewTextHandler(w, nil))}
}

// run opens c's stream and collects what it brings.
func (d *device) run(c *client.Client) {
	d.client = c
	ctx, cancel := context.WithCancel(context.Background())
	ran, collected := make(chan struct{}), make(chan struct{})
	go func() { defer close(ran); c.Run(ctx) }()
	go func() {
		// Until Close closes the channel: what the device saved as
		// processed is delivered even after Run has stopped.
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
	d.mu.Lock()
	d.stop = func() { cancel(); <-ran; c.Close(); <-collected }
	d.mu.Unlock()
}

// goAway closes the app while away is set (and ctx lasts), then opens it
// again from its data directory.
func (d *device) goAway(ctx context.Context) error {
	d.mu.Lock()
	stop := d.stop
	d.mu.Unlock()
	stop()
	d.awayTimes.Add(1)
	for d.away.Load() && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	// Opened again even if the load has ended: it must catch up. The
	// provider may be down at this moment: try until it answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		octx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := client.Open(octx, d.url, d.dir, d.options())
		cancel()
		if err == nil {
			d.run(c)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: opening the app again: %w", d.name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// address is how host invites d: by handle on its own provider.
func (d *device) address(host *device) string {
	handle, domain, _ := strings.Cut(d.user, "@")
	if _, hostDomain, _ := strings.Cut(host.user, "@"); hostDomain == domain {
		return handle
	}
	return d.user
}

// joined waits until d has joined room and caught up with its commits to
// epoch, so that its first message is in the room's epoch.
func (d *device) joined(t *testing.T, room client.RoomID, epoch uint64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
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

func (d *device) received() []*client.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

// sent is one message a device tried to send: its text is its ID
// (sender and number); seq is where the hub put it, 0 when the send
// failed and its outcome is unknown to the sender.
type sent struct {
	from *device
	room client.RoomID
	text string
	seq  int64
	err  error
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

func (l *sendLog) acked() int {
	n := 0
	for _, s := range l.all() {
		if s.err == nil {
			n++
		}
	}
	return n
}

// sendLoop sends numbered messages to rooms in turn until ctx ends,
// pausing sendPause after each answer. A send is one client.Send, which
// retries what a crash cut off as an app would; one that still fails is
// recorded as such and the next message is a new one.
func (d *device) sendLoop(ctx context.Context, rooms []client.RoomID, log *sendLog) error {
	for i := 0; ctx.Err() == nil; i++ {
		if d.away.Load() {
			if err := d.goAway(ctx); err != nil {
				return err
			}
			continue
		}
		room := rooms[i%len(rooms)]
		text := fmt.Sprintf("%s #%d", d.name, i)
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		id, err := d.client.Send(sctx, room, []byte(text))
		cancel()
		if ctx.Err() != nil && err != nil {
			// The load ended during this send: its outcome is unknown.
			log.add(sent{from: d, room: room, text: text, err: err})
			return nil
		}
		s := sent{from: d, room: room, text: text, err: err}
		if err == nil {
			_, seq, _ := strings.Cut(string(id), string(room)+"/")
			if s.seq, err = strconv.ParseInt(seq, 10, 64); err != nil {
				s.err = fmt.Errorf("message ID %q is not %s/SEQ", id, room)
			}
		}
		log.add(s)
		select {
		case <-ctx.Done():
		case <-time.After(sendPause):
		}
	}
	return nil
}

// key names a message: its room and its text, which holds its sender's
// ID for it.
type key struct {
	room client.RoomID
	text string
}

// verify waits until every device has every acknowledged message of its
// rooms sent by others, and every message that any device received (a
// send whose answer a crash cut off may still have been stored), then
// checks that each came once, at the seq its sender was told, and that
// every device read each room in seq order at the same seqs as the
// others. It returns the number of deliveries checked and how many of
// the sends that failed were stored all the same.
func verify(t *testing.T, devices []*device, members map[client.RoomID][]*device, log *sendLog) (checked, storedUnacked int) {
	t.Helper()
	sends := log.all()
	sender := map[key]*sent{}
	for i := range sends {
		sender[key{sends[i].room, sends[i].text}] = &sends[i]
	}
	// want[d]: what d must end up with. Acknowledged messages, and any
	// message some device has: it is in the room, so everyone gets it.
	want := func() map[*device]map[key]bool {
		w := map[*device]map[key]bool{}
		for _, d := range devices {
			w[d] = map[key]bool{}
		}
		add := func(k key, from *device) {
			for _, d := range members[k.room] {
				if d != from {
					w[d][k] = true
				}
			}
		}
		for _, s := range sends {
			if s.err == nil {
				add(key{s.room, s.text}, s.from)
			}
		}
		for _, d := range devices {
			for _, m := range d.received() {
				k := key{m.Room, string(m.Body)}
				if s := sender[k]; s != nil {
					add(k, s.from)
				}
			}
		}
		return w
	}
	missing := func() map[*device][]string {
		out := map[*device][]string{}
		for d, keys := range want() {
			have := map[key]bool{}
			for _, m := range d.received() {
				have[key{m.Room, string(m.Body)}] = true
			}
			for k := range keys {
				if !have[k] {
					s := sender[k]
					out[d] = append(out[d], fmt.Sprintf("%q in room %s (acknowledged at seq %d; %v)", k.text, k.room, s.seq, s.err))
				}
			}
			slices.Sort(out[d])
		}
		return out
	}
	began := time.Now()
	for {
		m := missing()
		if len(m) == 0 {
			break
		}
		if time.Since(began) > drainBound {
			for d, list := range m {
				t.Errorf("%v after the load %s still lacks %d messages: %s", drainBound, d.name, len(list), strings.Join(list[:min(20, len(list))], ", "))
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("drained %v after the load ended", time.Since(began).Round(time.Millisecond))

	seqOf := map[key]int64{}                       // where the first device to have it read a message
	textAt := map[client.RoomID]map[int64]string{} // what a room holds at each seq
	for _, d := range devices {
		d.mu.Lock()
		bad := slices.Clone(d.bad)
		d.mu.Unlock()
		for _, b := range bad {
			t.Errorf("%s could not read a message: %s", d.name, b)
		}
		seen := map[key]int64{}
		last := map[client.RoomID]int64{}
		for _, m := range d.received() {
			k := key{m.Room, string(m.Body)}
			s := sender[k]
			switch {
			case s == nil:
				t.Errorf("%s read %q at seq %d in room %s, which nobody sent", d.name, k.text, m.Seq, m.Room)
				continue
			case s.from == d:
				t.Errorf("%s read its own %q at seq %d in room %s", d.name, k.text, m.Seq, m.Room)
			}
			if at, ok := seen[k]; ok {
				t.Errorf("%s read %q twice in room %s: at seq %d and %d", d.name, k.text, m.Room, at, m.Seq)
			}
			seen[k] = m.Seq
			if m.Seq <= last[m.Room] {
				t.Errorf("%s read seq %d (%q) after seq %d in room %s", d.name, m.Seq, k.text, last[m.Room], m.Room)
			}
			last[m.Room] = m.Seq
			if s.err == nil && m.Seq != s.seq {
				t.Errorf("%s read %q at seq %d in room %s; its sender was told %d", d.name, k.text, m.Seq, m.Room, s.seq)
			}
			if seq, ok := seqOf[k]; ok && seq != m.Seq {
				t.Errorf("%s read %q at seq %d in room %s, another device at %d", d.name, k.text, m.Seq, m.Room, seq)
			}
			seqOf[k] = m.Seq
			if textAt[m.Room] == nil {
				textAt[m.Room] = map[int64]string{}
			}
			if other, ok := textAt[m.Room][m.Seq]; ok && other != k.text {
				t.Errorf("%s read %q at seq %d in room %s, another device %q", d.name, k.text, m.Seq, m.Room, other)
			}
			textAt[m.Room][m.Seq] = k.text
			checked++
		}
	}
	for k, s := range sender {
		if _, ok := seqOf[k]; ok && s.err != nil {
			storedUnacked++
		}
	}
	return checked, storedUnacked
}

// countingLog is a device's log, kept to count what it says.
type countingLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *countingLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *countingLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Count(l.buf.Bytes(), []byte(s))
}

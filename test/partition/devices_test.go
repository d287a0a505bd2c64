package partition_test

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
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// device is a person's app on one device, its stream open (client.Run),
// recording every message it receives and when.
type device struct {
	user   string // handle@domain
	name   string // user/device, as the test's messages name it
	client *client.Client
	log    *countingLog

	mu   sync.Mutex
	stop func() // ends Run, closes the client, waits for its last events
	got  []delivery
	bad  []string // DeliveryFailed events
}

// delivery is a message a device received, and when.
type delivery struct {
	*client.Message
	at time.Time
}

func register(t *testing.T, user, deviceName, url, code string) *device {
	t.Helper()
	name := user + "/" + deviceName
	d := &device{user: user, name: name, log: &countingLog{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var w io.Writer = d.log
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		w = io.MultiWriter(d.log, proctest.PrefixWriter{Name: name, W: os.Stderr})
	}
	c, err := client.Register(ctx, url, code, deviceName, t.TempDir(), client.Options{Logger: slog.New(slog.NewTextHandler(w, nil))})
	if err != nil {
		t.Fatalf("registering %s: %v", name, err)
	}
	// Reachable from the partner providers (a new user is not).
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
			at := time.Now()
			d.mu.Lock()
			switch e := e.(type) {
			case *client.Message:
				d.got = append(d.got, delivery{e, at})
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
	deadline := time.Now().Add(30 * time.Second)
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

func (d *device) received() []delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

// sent is one message a device tried to send: its text is its ID (sender
// and number); seq is where the hub put it, 0 when the send failed and its
// outcome is unknown to the sender. began is when Send was called.
type sent struct {
	from  *device
	room  client.RoomID
	text  string
	seq   int64
	err   error
	began time.Time
	ended time.Time // when Send returned
	// stopped: the load ended during this send, which was cut off.
	stopped bool
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
// retries what a fault cut off as an app would; one that still fails is
// recorded as such and the next message is a new one.
func (d *device) sendLoop(ctx context.Context, rooms []client.RoomID, log *sendLog) {
	for i := 0; ctx.Err() == nil; i++ {
		room := rooms[i%len(rooms)]
		text := fmt.Sprintf("%s #%d", d.name, i)
		began := time.Now()
		sctx, cancel := context.WithTimeout(ctx, sendBound)
		id, err := d.client.Send(sctx, room, []byte(text))
		cancel()
		s := sent{from: d, room: room, text: text, err: err, began: began, ended: time.Now(), stopped: err != nil && ctx.Err() != nil}
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
}

// key names a message: its room and its text, which holds its sender's
// ID for it.
type key struct {
	room client.RoomID
	text string
}

// verify waits until every device has every acknowledged message of its
// rooms sent by others, and every message that any device received (a
// send whose answer a fault cut off may still have been stored), then
// checks that each came once, at the seq its sender was told, and that
// every device read each room in seq order at the same seqs as the
// others. It returns the number of deliveries checked, how many of the
// sends that failed were stored all the same, and how long the drain took.
func verify(t *testing.T, devices []*device, members map[client.RoomID][]*device, log *sendLog) (checked, storedUnacked int, drained time.Duration) {
	t.Helper()
	sends := log.all()
	sender := map[key]*sent{}
	for i := range sends {
		sender[key{sends[i].room, sends[i].text}] = &sends[i]
	}
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
	drained = time.Since(began)

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
	return checked, storedUnacked, drained
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

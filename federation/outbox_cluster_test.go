package federation

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/bus"
	"github.com/switchboard-chat/switchboard/bus/natstest"
	"github.com/switchboard-chat/switchboard/store"
)

// Outboxes of several replicas over one store, sharing the destinations
// through NATS leases (the bus package's tests cover the leases alone).

// replicaOutbox is one replica's outbox on the shared store; its sends
// are recorded by replica name.
type replicaOutbox struct {
	name string
	bus  *bus.NATS
	box  *Outbox
	stop func()
}

type sendLog struct {
	mu sync.Mutex
	by map[string]string // delivery ID -> the replica that last sent it
}

func (l *sendLog) sender(id string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.by[id]
}

func startReplicas(t *testing.T, st store.Store, domain string, names []string, bases map[string]string, ttl time.Duration, log *sendLog) []*replicaOutbox {
	var rs []*replicaOutbox
	for _, name := range names {
		b, err := bus.DialNATS(bus.NATSOptions{URL: natstest.URL(t), Domain: domain, Name: name, LeaseTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		send := httpSend(bases)
		opts := fast
		opts.Cluster, opts.Rescan = b, 100*time.Millisecond
		box := NewOutbox(st, SendFunc(func(ctx context.Context, dest string, e store.OutboundEntry) error {
			log.mu.Lock()
			log.by[e.ID] = name
			log.mu.Unlock()
			return send(ctx, dest, e)
		}), opts)
		b.OnAnnounce(box.WakeLocal)
		r := &replicaOutbox{name: name, bus: b, box: box}
		r.stop = start(t, box)
		rs = append(rs, r)
	}
	return rs
}

// Three replicas enqueue to two partners, each replica some of the
// entries: every entry is applied once and in order, and no partner ever
// sees two requests at once, whichever replica sends.
func TestOutboxReplicasShareDestinations(t *testing.T) {
	blue, red := newReceiver(t, nil), newReceiver(t, nil)
	bases := map[string]string{"blue.test": blue.srv.URL, "red.test": red.srv.URL}
	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	domain := fmt.Sprintf("hub%d.test", time.Now().UnixNano())
	log := &sendLog{by: map[string]string{}}
	rs := startReplicas(t, st, domain, []string{"a", "b", "c"}, bases, 2*time.Second, log)

	wantBlue, wantRed := entries("blue.test", "b", 30), entries("red.test", "r", 30)
	for i := range 30 {
		r := rs[i%3]
		if err := r.box.Enqueue(t.Context(), []store.Outbound{wantBlue[i], wantRed[i]}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both partners served", func() bool { return empty(t, st, "blue.test") && empty(t, st, "red.test") })
	for _, c := range []struct {
		rcv  *receiver
		want []store.Outbound
	}{{blue, wantBlue}, {red, wantRed}} {
		if got := c.rcv.appliedIDs(); !slices.Equal(got, ids(c.want)) {
			t.Errorf("applied %v, want %v", got, ids(c.want))
		}
		c.rcv.mu.Lock()
		if c.rcv.maxIn != 1 {
			t.Errorf("a partner saw %d requests at once", c.rcv.maxIn)
		}
		c.rcv.mu.Unlock()
	}
}

// The replica sending to blue.test dies in the middle of a request that
// blue applied and never answered (its NATS connection cut, nothing
// released): it gives the request up by its lease's deadline, another
// replica takes the destination over once the lease has expired, sends
// that entry again (blue drops the repeat) and then the rest, in order,
// never two requests at once.
func TestOutboxReplicaDiesWhileSending(t *testing.T) {
	blue := newReceiver(t, func(id string, attempt int) fault {
		if id == "m10" && attempt == 1 {
			return applyHang
		}
		return accept
	})
	bases := map[string]string{"blue.test": blue.srv.URL}
	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	domain := fmt.Sprintf("hub%d.test", time.Now().UnixNano())
	log := &sendLog{by: map[string]string{}}
	rs := startReplicas(t, st, domain, []string{"a", "b"}, bases, 2*time.Second, log)
	out := entries("blue.test", "m", 20)
	if err := rs[0].box.Enqueue(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "m10 applied and unanswered", func() bool { return blue.holding() == 1 })
	holder := log.sender("m10")
	var dead, other *replicaOutbox
	for _, r := range rs {
		if r.name == holder {
			dead = r
		} else {
			other = r
		}
	}
	dead.bus.NATSConn().Close()
	waitFor(t, "the rest delivered", func() bool { return empty(t, st, "blue.test") })

	if got := blue.appliedIDs(); !slices.Equal(got, ids(out)) {
		t.Errorf("blue applied %v, want m1..m20 once each, in order", got)
	}
	if n := blue.attemptsOf("m10"); n != 2 {
		t.Errorf("m10 was requested %d times, want 2 (once by each replica)", n)
	}
	if s := log.sender("m20"); s != other.name {
		t.Errorf("m20 was sent by %q, want the surviving replica %q", s, other.name)
	}
	blue.mu.Lock()
	defer blue.mu.Unlock()
	if blue.maxIn != 1 {
		t.Errorf("blue saw %d requests at once", blue.maxIn)
	}
}

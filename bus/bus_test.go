package bus_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/bus"
	"github.com/switchboard-chat/switchboard/bus/natstest"
)

// replica dials a bus for domain, as one replica of that provider would.
func replica(t *testing.T, domain, name string, ttl time.Duration) *bus.NATS {
	t.Helper()
	b, err := bus.DialNATS(bus.NATSOptions{URL: natstest.URL(t), Domain: domain, Name: name, LeaseTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// uniqueDomain keeps runs (and parallel packages) apart on one server.
func uniqueDomain(t *testing.T) string {
	return "t" + time.Now().Format("150405.000000000") + ".test"
}

// woken collects what a replica's streams were woken for.
type woken struct {
	mu  sync.Mutex
	got []int64
	ch  chan struct{}
}

func watch(b bus.Bus) *woken {
	w := &woken{ch: make(chan struct{}, 100)}
	b.OnDevices(func(ds []int64) {
		w.mu.Lock()
		w.got = append(w.got, ds...)
		w.mu.Unlock()
		w.ch <- struct{}{}
	})
	return w
}

func (w *woken) wait(t *testing.T, want []int64) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		w.mu.Lock()
		got := slices.Clone(w.got)
		w.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		select {
		case <-w.ch:
		case <-deadline:
			t.Fatalf("woken for %v, want %v", got, want)
		}
	}
}

// A message accepted by replica A wakes the device whose stream is on
// replica B, and A's own streams, once each; another provider on the same
// NATS hears nothing.
func TestWakeUpsCrossReplicas(t *testing.T) {
	domain := uniqueDomain(t)
	a, b := replica(t, domain, "a", 0), replica(t, domain, "b", 0)
	other := replica(t, "other."+domain, "c", 0)
	wa, wb, wo := watch(a), watch(b), watch(other)
	b.NATSConn().Flush() // B's subscription is on the server

	a.WakeDevices([]int64{7, 9})
	wa.wait(t, []int64{7, 9})
	wb.wait(t, []int64{7, 9})
	b.WakeDevices([]int64{3})
	wa.wait(t, []int64{7, 9, 3})
	wb.wait(t, []int64{7, 9, 3})

	rooms := make(chan string, 2)
	a.OnRoom(func(r string) { rooms <- "a:" + r })
	b.OnRoom(func(r string) { rooms <- "b:" + r })
	a.WakeRoom("lA7bcgVhDxhb1vST6XoQ2g")
	for _, want := range []string{"a:lA7bcgVhDxhb1vST6XoQ2g", "b:lA7bcgVhDxhb1vST6XoQ2g"} {
		select {
		case got := <-rooms:
			if got != want {
				t.Fatalf("room wake-up %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no room wake-up %q", want)
		}
	}

	announced := make(chan string, 1)
	b.OnAnnounce(func(d string) { announced <- d })
	a.Announce("blue.test")
	select {
	case d := <-announced:
		if d != "blue.test" {
			t.Fatalf("announced %q", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("B never heard A's announcement")
	}
	time.Sleep(200 * time.Millisecond)
	wo.mu.Lock()
	defer wo.mu.Unlock()
	if len(wo.got) != 0 {
		t.Fatalf("another provider was woken for %v", wo.got)
	}
}

// Two replicas contend for a destination: one holds it and keeps it past
// several TTLs by renewing; when the holder stops abruptly (its process
// gone, nothing released), the other takes over once the TTL has passed,
// and not before.
func TestLeaseTakenOverAfterHolderDies(t *testing.T) {
	domain := uniqueDomain(t)
	const ttl = 2 * time.Second
	a, b := replica(t, domain, "a", ttl), replica(t, domain, "b", ttl)
	ctx := t.Context()

	heldA, _, ok, err := a.Acquire(ctx, "blue.test")
	if err != nil || !ok {
		t.Fatalf("A could not take a free lease: ok=%v err=%v", ok, err)
	}
	if _, _, ok, err := b.Acquire(ctx, "blue.test"); err != nil || ok {
		t.Fatalf("B took a lease A holds: ok=%v err=%v", ok, err)
	}
	// Other destinations are independent.
	_, relC, ok, err := b.Acquire(ctx, "red.test")
	if err != nil || !ok {
		t.Fatalf("B could not take red.test: ok=%v err=%v", ok, err)
	}
	relC()

	// A renews: after three TTLs B still cannot take it.
	time.Sleep(3 * ttl)
	if heldA.Err() != nil {
		t.Fatal("A lost a lease it was renewing")
	}
	if _, _, ok, _ := b.Acquire(ctx, "blue.test"); ok {
		t.Fatal("B took the lease while A renews it")
	}

	// A dies: its connection closes without releasing anything.
	a.NATSConn().Close()
	died := time.Now()
	for {
		_, _, ok, err := b.Acquire(ctx, "blue.test")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Since(died) > 3*ttl {
			t.Fatal("B never took over the dead holder's lease")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if since := time.Since(died); since < ttl/2 {
		t.Fatalf("B took the lease %v after A died, before A's lease could have expired", since)
	}
	// A, cut off, gives its lease up by its own deadline.
	select {
	case <-heldA.Done():
	case <-time.After(2 * ttl):
		t.Fatal("A still believes it holds the lease after losing NATS for two TTLs")
	}
}

// A replica that releases its lease frees the destination at once.
func TestLeaseReleased(t *testing.T) {
	domain := uniqueDomain(t)
	a, b := replica(t, domain, "a", 0), replica(t, domain, "b", 0)
	held, release, ok, err := a.Acquire(t.Context(), "blue.test")
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	release()
	release() // twice is fine
	if held.Err() == nil {
		t.Fatal("held did not end on release")
	}
	if _, _, ok, err := b.Acquire(t.Context(), "blue.test"); err != nil || !ok {
		t.Fatalf("B could not take a released lease: ok=%v err=%v", ok, err)
	}
}

// The in-process bus wakes its own streams and grants every lease.
func TestLocal(t *testing.T) {
	l := bus.NewLocal()
	w := watch(l)
	l.WakeDevices([]int64{1, 2})
	w.wait(t, []int64{1, 2})
	if _, release, ok, err := l.Acquire(t.Context(), "blue.test"); !ok || err != nil {
		t.Fatal("the local bus refused a lease")
	} else {
		release()
	}
}

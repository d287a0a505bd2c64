package bus_test

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/bus"
	"github.com/switchboard-chat/switchboard/bus/natstest"
)

// NATS is killed and started again: meanwhile nothing crosses and no
// lease can be taken (an error, not a refusal); afterwards the replicas'
// connections and subscriptions are back by themselves, each replica is
// told to resync (hints sent meanwhile are lost), wake-ups cross again, and a lease whose holder kept renewing is still held.
func TestNATSRestart(t *testing.T) {
	srv := natstest.Start(t)
	const ttl = 8 * time.Second
	dial := func(name string) *bus.NATS {
		b, err := bus.DialNATS(bus.NATSOptions{URL: srv.URL(), Domain: "green.test", Name: name, LeaseTTL: ttl, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	a, b := dial("a"), dial("b")
	wb := watch(b)
	resynced := make(chan struct{}, 4)
	b.OnResync(func() { resynced <- struct{}{} })
	b.NATSConn().Flush()
	a.WakeDevices([]int64{1})
	wb.wait(t, []int64{1})
	heldA, _, ok, err := a.Acquire(t.Context(), "blue.test")
	if err != nil || !ok {
		t.Fatalf("A could not take a free lease: ok=%v err=%v", ok, err)
	}

	srv.Stop()
	if _, _, ok, err := b.Acquire(t.Context(), "red.test"); ok || err == nil {
		t.Fatalf("with NATS down, Acquire gave ok=%v err=%v; want an error", ok, err)
	}
	srv.Start()

	// Back well within the TTL: A's lease survived on disk and A renews it.
	deadline := time.Now().Add(10 * time.Second)
	for !a.NATSConn().IsConnected() || !b.NATSConn().IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("the buses did not reconnect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Hints published while B was away are lost: B is told to look at
	// the store for everything.
	select {
	case <-resynced:
	case <-time.After(10 * time.Second):
		t.Fatal("B reconnected without calling its resync")
	}
	b.NATSConn().Flush()
	a.WakeDevices([]int64{2})
	wb.wait(t, []int64{1, 2})
	if heldA.Err() != nil {
		t.Fatal("A gave its lease up over a restart well within the TTL")
	}
	if _, _, ok, err := b.Acquire(t.Context(), "blue.test"); err != nil || ok {
		t.Fatalf("B took blue.test from A after the restart: ok=%v err=%v", ok, err)
	}
	time.Sleep(ttl / 2) // A renews across the restart
	if heldA.Err() != nil {
		t.Fatal("A lost its lease over a restart shorter than the TTL")
	}
	if _, _, ok, err := b.Acquire(t.Context(), "red.test"); err != nil || !ok {
		t.Fatalf("after the restart B could not take a free lease: ok=%v err=%v", ok, err)
	}
}

// testLogger shows the buses' logs with SWITCHBOARD_TEST_LOG set.
func testLogger() *slog.Logger {
	if os.Getenv("SWITCHBOARD_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

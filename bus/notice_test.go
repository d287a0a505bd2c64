package bus_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/bus"
)

// told collects the notices a replica's streams were handed.
func told(b bus.Bus) chan string {
	ch := make(chan string, 16)
	b.OnTell(func(device int64, notice []byte) { ch <- fmt.Sprintf("%d %s", device, notice) })
	return ch
}

func expectTold(t *testing.T, who string, ch chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("%s was told %q, want %q", who, got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s was never told %q", who, want)
	}
}

// A notice for a device (its user added a device; it signed out) told by
// replica A reaches A's own streams and B's, once each, whatever the
// device's stream is on; another provider on the same NATS hears nothing,
// and a notice too large to travel still reaches A's own streams.
func TestNoticesReachEveryReplica(t *testing.T) {
	domain := uniqueDomain(t)
	a, b := replica(t, domain, "a", 0), replica(t, domain, "b", 0)
	other := replica(t, "other."+domain, "c", 0)
	ta, tb, to := told(a), told(b), told(other)
	b.NATSConn().Flush()
	other.NATSConn().Flush()

	a.Tell(42, []byte(`{"close":true}`))
	expectTold(t, "replica A", ta, `42 {"close":true}`)
	expectTold(t, "replica B", tb, `42 {"close":true}`)
	b.Tell(7, []byte(`{"event":{"type":"device.added"}}`))
	expectTold(t, "replica B", tb, `7 {"event":{"type":"device.added"}}`)
	expectTold(t, "replica A", ta, `7 {"event":{"type":"device.added"}}`)

	big := `"` + strings.Repeat("x", bus.MaxNotice) + `"`
	a.Tell(9, []byte(big))
	expectTold(t, "replica A", ta, "9 "+big)
	a.NATSConn().Flush()
	time.Sleep(200 * time.Millisecond)
	select {
	case got := <-tb:
		t.Fatalf("replica B was told %.40q…, which is over the bus's limit", got)
	case got := <-to:
		t.Fatalf("another provider was told %q", got)
	default:
	}
}

// The in-process bus hands a notice straight to the process's streams.
func TestLocalTells(t *testing.T) {
	l := bus.NewLocal()
	l.Tell(1, []byte("x")) // before OnTell: dropped, no panic
	ch := told(l)
	l.Tell(3, []byte(`{"close":true}`))
	expectTold(t, "the process", ch, `3 {"close":true}`)
}

package provider

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

func newTestServer(t *testing.T) *Server {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "provider.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := identity.NewCA("green.test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Domain: "green.test"}, st, ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Requests for rooms that do not exist must not grow the hub's cache:
// anyone signed in can make up room IDs.
func TestUnknownRoomsAreNotCached(t *testing.T) {
	s := newTestServer(t)
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := s.hub.acquire(context.Background(), id); err == nil {
			t.Fatalf("room %q found", id)
		}
	}
	if n := len(s.hub.rooms); n != 0 {
		t.Fatalf("the hub caches %d rooms that do not exist", n)
	}
}

// A stream that gets past the drain check just before Drain, and
// registers just after it closed the open streams, must not stay open.
func TestNoStreamOpensAfterDrain(t *testing.T) {
	s := newTestServer(t)
	s.Drain()
	if s.streams.add(1, &conn{}) {
		t.Fatal("a stream registered after Drain")
	}
}

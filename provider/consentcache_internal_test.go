package provider

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/bus"
	"github.com/switchboard-chat/switchboard/bus/natstest"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// TestAConsentChangeReachesTheOtherReplica: two replicas of green.test
// share a store and NATS, their caches trusting an answer for an hour, so
// only the bus can tell replica B that Bob, a member of the room, blocked
// Alice through replica A. B first answers from its cache (Alice is not
// refused); A stores the block and tells the replicas; once B has heard,
// B refuses Alice's messages to Bob.
func TestAConsentChangeReachesTheOtherReplica(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "green.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := identity.NewCA("green.test")
	if err != nil {
		t.Fatal(err)
	}
	url := natstest.URL(t)
	replica := func(name string) *Server {
		b, err := bus.DialNATS(bus.NATSOptions{URL: url, Domain: "green.test", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		s, err := New(Config{Domain: "green.test", Bus: b, SessionCacheTTL: time.Hour}, st, ca, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := replica("green-a"), replica("green-b")

	bob, err := st.CreateUser(ctx, "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	const room, alice = "!room", "mimi://green.test/u/alice"
	refused := func(s *Server) []int64 {
		t.Helper()
		got, err := s.refusing(ctx, room, alice, []int64{bob.ID})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := refused(b); len(got) != 0 {
		t.Fatalf("before the block, B refuses %v", got)
	}
	if err := st.SetContact(ctx, bob.ID, alice, store.ContactBlocked, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := refused(b); len(got) != 0 {
		t.Fatalf("B answered %v from the store: its cache is not in use, and this test shows nothing", got)
	}

	b.consents.mu.Lock()
	gen := b.consents.gen
	b.consents.mu.Unlock()
	a.consentChanged(1) // what A does once the block is stored
	if got := refused(a); !slices.Equal(got, []int64{bob.ID}) {
		t.Errorf("A, which stored the block, refuses %v, want bob (%d)", got, bob.ID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.consents.mu.Lock()
		heard := b.consents.gen != gen
		b.consents.mu.Unlock()
		if heard {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B did not hear of the consent change within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := refused(b); !slices.Equal(got, []int64{bob.ID}) {
		t.Errorf("B, once told, refuses %v, want bob (%d)", got, bob.ID)
	}
}

// FuzzConsentNotice: whatever another replica (or anything on the bus)
// sends as a device notice, telling a consent notice from the others does
// not panic, and only a notice that says consent_changed true is one.
func FuzzConsentNotice(f *testing.F) {
	f.Add([]byte(`{"consent_changed":true}`))
	f.Add([]byte(`{"consent_changed":false}`))
	f.Add([]byte(`{"close":true}`))
	f.Add([]byte(`{"event":{"type":"device.added","device":"laptop"}}`))
	f.Add([]byte(`null`))
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		if isConsentNotice(data) && !bytes.Contains(data, []byte("true")) {
			t.Errorf("%q taken for a consent notice", data)
		}
	})
}

package storetest

import (
	"testing"

	"github.com/switchboard-chat/switchboard/store"
)

// Discoverability: whether a user may be found by other providers' users
// by handle or by phone number (docs/discovery.md).

// discoverable reads the user's two settings by every lookup and fails
// unless each agrees with want.
func (e *env) discoverable(u store.User, byHandle, byPhone bool) {
	e.t.Helper()
	lookups := []struct {
		what string
		get  func() (store.User, error)
	}{
		{"by ID", func() (store.User, error) { return e.s.UserByID(e.ctx, u.ID) }},
		{"by handle", func() (store.User, error) { return e.s.UserByHandle(e.ctx, u.Handle) }},
	}
	if u.Phone != "" {
		lookups = append(lookups, struct {
			what string
			get  func() (store.User, error)
		}{"by phone", func() (store.User, error) { return e.s.UserByPhone(e.ctx, u.Phone) }})
	}
	for _, l := range lookups {
		got, err := l.get()
		e.ok(err)
		if got.ID != u.ID || got.DiscoverableByHandle != byHandle || got.DiscoverableByPhone != byPhone {
			e.t.Fatalf("%s %s: got %+v, want discoverable by handle %v, by phone %v", u.Handle, l.what, got, byHandle, byPhone)
		}
	}
}

func discoverableSettings(t *testing.T, e *env) {
	alice, err := e.s.CreateUser(e.ctx, "alice", "+441632960001")
	e.ok(err)
	bob := e.user("bob")
	// Nobody is discoverable until they say so.
	if alice.DiscoverableByHandle || alice.DiscoverableByPhone {
		t.Fatalf("CreateUser returned %+v: discoverable before asking", alice)
	}
	e.discoverable(alice, false, false)
	e.discoverable(bob, false, false)

	// Each setting on its own, and the other user untouched.
	e.ok(e.s.SetDiscoverable(e.ctx, alice.ID, false, true))
	e.discoverable(alice, false, true)
	e.discoverable(bob, false, false)
	e.ok(e.s.SetDiscoverable(e.ctx, alice.ID, true, false))
	e.discoverable(alice, true, false)
	// Setting what is already set is not an error (nor "not found").
	e.ok(e.s.SetDiscoverable(e.ctx, alice.ID, true, false))
	e.discoverable(alice, true, false)
	e.ok(e.s.SetDiscoverable(e.ctx, alice.ID, true, true))
	e.discoverable(alice, true, true)
	// A user without a phone may still say so: it has no effect until
	// the account has one, and the store does not judge.
	e.ok(e.s.SetDiscoverable(e.ctx, bob.ID, true, true))
	e.discoverable(bob, true, true)
	// And off again.
	e.ok(e.s.SetDiscoverable(e.ctx, alice.ID, false, false))
	e.discoverable(alice, false, false)
	e.discoverable(bob, true, true)

	is(t, e.s.SetDiscoverable(e.ctx, alice.ID+bob.ID+100, true, true), store.ErrNotFound, "unknown user")
}

func reopenDiscoverable(t *testing.T, open func() *env) {
	e := open()
	alice, err := e.s.CreateUser(e.ctx, "alice", "+441632960001")
	e.ok(err)
	bob := e.user("bob")
	carol := e.user("carol")
	e.ok(e.s.SetDiscoverable(e.ctx, alice.ID, false, true))
	e.ok(e.s.SetDiscoverable(e.ctx, bob.ID, true, false))
	e.ok(e.s.Close())

	e = open()
	e.discoverable(alice, false, true)
	e.discoverable(bob, true, false)
	e.discoverable(carol, false, false)
}

package storetest

import (
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/store"
)

// Third-party reachability: whether, and by which partner providers, a
// user may be reached (docs/reachability.md).

// reachable reads the user's reachability and fails unless it is want.
func (e *env) reachable(u store.User, mode store.ReachMode, partners ...string) {
	e.t.Helper()
	got, err := e.s.Reachability(e.ctx, u.ID)
	e.ok(err)
	if got.Mode != mode || !slices.Equal(got.Partners, partners) {
		e.t.Fatalf("%s: reachability %+v, want %s %q", u.Handle, got, mode, partners)
	}
}

func reachabilitySettings(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	// Nobody is reachable from other providers until they say so.
	e.reachable(alice, store.ReachOff)
	e.reachable(bob, store.ReachOff)

	// Some partners: the list comes back sorted, each domain once, and
	// the other user is untouched.
	e.ok(e.s.SetReachability(e.ctx, alice.ID, store.ReachSome, []string{"red.example", "blue.example", "red.example"}))
	e.reachable(alice, store.ReachSome, "blue.example", "red.example")
	e.reachable(bob, store.ReachOff)
	if r, _ := e.s.Reachability(e.ctx, alice.ID); !r.Allows("blue.example") || r.Allows("green.example") {
		t.Fatalf("%+v: Allows disagrees with the list", r)
	}
	// A new list replaces the old one whole.
	e.ok(e.s.SetReachability(e.ctx, alice.ID, store.ReachSome, []string{"green.example"}))
	e.reachable(alice, store.ReachSome, "green.example")
	// All partners: the list is emptied, and a list given is ignored.
	e.ok(e.s.SetReachability(e.ctx, alice.ID, store.ReachAll, []string{"red.example"}))
	e.reachable(alice, store.ReachAll)
	// Setting what is already set is not an error.
	e.ok(e.s.SetReachability(e.ctx, alice.ID, store.ReachAll, nil))
	e.reachable(alice, store.ReachAll)
	// Off again; and "some" turned back on starts from the new list only.
	e.ok(e.s.SetReachability(e.ctx, alice.ID, store.ReachOff, nil))
	e.reachable(alice, store.ReachOff)
	e.ok(e.s.SetReachability(e.ctx, bob.ID, store.ReachSome, []string{"blue.example"}))
	e.ok(e.s.SetReachability(e.ctx, bob.ID, store.ReachOff, nil))
	e.ok(e.s.SetReachability(e.ctx, bob.ID, store.ReachSome, []string{"red.example"}))
	e.reachable(bob, store.ReachSome, "red.example")

	// A mode that is not one of the three changes nothing.
	if err := e.s.SetReachability(e.ctx, bob.ID, "everyone", nil); err == nil {
		t.Fatal("SetReachability accepted the mode \"everyone\"")
	}
	e.reachable(bob, store.ReachSome, "red.example")

	unknown := alice.ID + bob.ID + 100
	is(t, e.s.SetReachability(e.ctx, unknown, store.ReachAll, nil), store.ErrNotFound, "set for an unknown user")
	_, err := e.s.Reachability(e.ctx, unknown)
	is(t, err, store.ErrNotFound, "an unknown user's reachability")
}

func reopenReachability(t *testing.T, open func() *env) {
	e := open()
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	e.ok(e.s.SetReachability(e.ctx, alice.ID, store.ReachAll, nil))
	e.ok(e.s.SetReachability(e.ctx, bob.ID, store.ReachSome, []string{"green.example", "blue.example"}))
	e.ok(e.s.SetReachability(e.ctx, carol.ID, store.ReachAll, nil))
	e.ok(e.s.SetReachability(e.ctx, carol.ID, store.ReachOff, nil))
	e.ok(e.s.Close())

	e = open()
	e.reachable(alice, store.ReachAll)
	e.reachable(bob, store.ReachSome, "blue.example", "green.example")
	e.reachable(carol, store.ReachOff)
}

package node_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/store"
)

// newPersonWithPhone is newPerson for an account with a phone number.
func newPersonWithPhone(t *testing.T, l *node.Local, i int, handle, phone string) *person {
	t.Helper()
	return addPerson(t, l, i, handle, phone, store.ReachAll)
}

// lookup is what p finds for query.
func (p *person) lookup(query string) []string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got, err := p.c.Lookup(ctx, query)
	if err != nil {
		p.t.Fatalf("%s: lookup %q: %v", p.name, query, err)
	}
	return got
}

// wantFound checks what p finds for each query.
func (p *person) wantFound(want []string, queries ...string) {
	p.t.Helper()
	for _, q := range queries {
		if got := p.lookup(q); !slices.Equal(got, want) {
			p.t.Errorf("%s looked up %q: found %q, want %q", p.name, q, got, want)
		}
	}
}

// TestDiscoveryAcrossProviders: Bob (blue) lets people find him by phone
// number, then by handle too; Alice (green) finds him each way, invites
// him and they chat. Carol (red), who allows nothing, is found neither
// way, and Bob is hidden again once he turns discovery off.
func TestDiscoveryAcrossProviders(t *testing.T) {
	l := startLocal(t, "green.test", "blue.test", "red.test")
	alice := newPerson(t, l, 0, "alice")
	bob := newPersonWithPhone(t, l, 1, "bob", "+41 44 668 18 00")
	carol := newPersonWithPhone(t, l, 2, "carol", "+49 30 901820")
	ctx := context.Background()
	none := []string{}
	bobAt := []string{"bob@blue.test"}
	byPhone := []string{"+41446681800", "+41 44 668 18 00", "0041 44 668 18 00", "tel:+41-44-668-18-00"}
	byHandle := []string{"bob", "BOB", "bob@blue.test"}

	// Nobody is discoverable until they say so.
	if h, p, err := bob.c.Discovery(ctx); err != nil || h || p {
		t.Fatalf("bob's discovery settings before he chose: %v %v %v", h, p, err)
	}
	alice.wantFound(none, append(byPhone, byHandle...)...)

	// Bob allows phone lookups only.
	must(t, "bob allows phone lookups", bob.c.SetDiscovery(ctx, false, true))
	if h, p, err := bob.c.Discovery(ctx); err != nil || h || !p {
		t.Fatalf("bob's discovery settings: %v %v %v", h, p, err)
	}
	alice.wantFound(bobAt, byPhone...)
	alice.wantFound(none, byHandle...)
	// Carol asks from red: the same answer from another provider.
	carol.wantFound(bobAt, "+41 44 668 18 00")

	// And handle lookups too.
	must(t, "bob allows handle lookups", bob.c.SetDiscovery(ctx, true, true))
	alice.wantFound(bobAt, byHandle...)
	alice.wantFound(bobAt, byPhone...)

	// Alice invites whom she found, and they chat.
	found := alice.lookup("+41 44 668 18 00")
	dm, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites "+found[0], alice.c.Invite(ctx, dm, found[0]))
	alice.send(dm, "found you by your number")
	bob.expect(dm, "alice@green.test: found you by your number")
	bob.send(dm, "hi Alice")
	alice.expect(dm, "bob@blue.test: hi Alice")

	// Carol allows nothing: she is not found by phone or by handle, from
	// another provider nor from her own.
	alice.wantFound(none, "+49 30 901820", "+4930901820", "carol", "carol@red.test")
	carol.wantFound(none, "+49 30 901820", "carol")
	// An account that does not exist looks the same.
	alice.wantFound(none, "+44 20 7946 0018", "nobody", "nobody@red.test")

	// A phone number that is not one is the caller's mistake.
	if _, err := alice.c.Lookup(ctx, "+1 555"); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("lookup of +1 555: %v, want bad_request", err)
	}
	// So is a provider that is not a partner.
	if _, err := alice.c.Lookup(ctx, "bob@gray.test"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("lookup of bob@gray.test: %v, want not_found", err)
	}

	// Bob turns discovery off: hidden again, and the room still works.
	must(t, "bob turns discovery off", bob.c.SetDiscovery(ctx, false, false))
	alice.wantFound(none, append(byPhone, byHandle...)...)
	bob.send(dm, "still here")
	alice.expect(dm, "bob@blue.test: hi Alice", "bob@blue.test: still here")

	// Alice has no phone number to be found by.
	if err := alice.c.SetDiscovery(ctx, true, true); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("alice allows phone lookups without a phone: %v, want bad_request", err)
	}
	// By handle she may be found, by the people of her own provider too.
	must(t, "alice allows handle lookups", alice.c.SetDiscovery(ctx, true, false))
	bob.wantFound([]string{"alice@green.test"}, "alice", "alice@green.test")
	alice.wantFound([]string{"alice@green.test"}, "alice")
}

package node_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
)

// TestAFloodOfLookupsStopsAtTheUsersProvider: Alice (green) walks through
// handles as fast as she can. Green lets a user make 5 lookups at once
// (here, with no refill to speak of): after them she is refused
// rate_limited, and her refused lookups never reach blue, so a flood of
// one user's lookups is not passed on to the partners. Carol, on the same
// provider, still finds Bob.
func TestAFloodOfLookupsStopsAtTheUsersProvider(t *testing.T) {
	const burst = 5
	h := startHarnessWith(t, func(cfg *node.Config) {
		cfg.Provider.UserDiscoveryLimit = provider.RateLimit{Every: time.Hour, Burst: burst}
	}, "green.test", "blue.test")
	ctx := context.Background()
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	carol, _ := h.enroll("green.test", "carol", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	must(t, "bob lets people find him by handle", bob.c.SetDiscovery(ctx, true, false))

	queriesAtBlue := func() int {
		return len(h.traffic.all(func(e exchange) bool {
			return e.To == "blue.test" && strings.HasPrefix(e.Path, "/identifierQuery/")
		}))
	}
	answered := 0
	for i := 0; ; i++ {
		_, err := alice.c.Lookup(ctx, "bob")
		if err == nil {
			if answered++; answered > burst {
				t.Fatalf("alice made %d lookups, the burst is %d", answered, burst)
			}
			continue
		}
		var apiErr *client.APIError
		if !errors.Is(err, client.ErrRateLimited) || !errors.As(err, &apiErr) || apiErr.RetryAfter <= 0 {
			t.Fatalf("lookup %d: %v, want rate_limited with a Retry-After", i+1, err)
		}
		break
	}
	if answered != burst {
		t.Errorf("alice was refused after %d lookups, want %d", answered, burst)
	}
	before := queriesAtBlue()
	if before == 0 {
		t.Fatal("alice's answered lookups never reached blue")
	}
	for range 20 {
		if _, err := alice.c.Lookup(ctx, "bob"); !errors.Is(err, client.ErrRateLimited) {
			t.Fatalf("alice's lookup during the refusals: %v, want rate_limited", err)
		}
	}
	if after := queriesAtBlue(); after != before {
		t.Errorf("alice's refused lookups reached blue: %d identifierQuery requests, %d before", after, before)
	}
	if got := carol.lookup("bob"); !slices.Equal(got, []string{"bob@blue.test"}) {
		t.Errorf("carol, during alice's flood, found %q, want bob@blue.test", got)
	}
}

package provider_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/provider"
)

// TestSuspensionReachesCachedSessions: the provider keeps signed-in
// sessions in memory for SessionCacheTTL. The operator suspends Alice from
// another process, which tells the provider nothing: her device, signed in
// and known to the cache, is refused as "suspended" once its entry is
// older than the bound, and Bob's device goes on.
func TestSuspensionReachesCachedSessions(t *testing.T) {
	const bound = 200 * time.Millisecond
	p := newProvider(t, provider.Config{SessionCacheTTL: bound})
	alice, bob := p.newRawDevice("alice", "laptop"), p.newRawDevice("bob", "phone")
	for _, d := range []*rawDevice{alice, bob} {
		if r := p.request("GET", "/v1/me", d.token, "", nil); r.status != http.StatusOK {
			t.Fatalf("%s before the suspension: %d %s", d.name, r.status, r.body)
		}
	}

	ctx := context.Background()
	u, err := p.st.UserByHandle(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.st.SetSuspended(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	// Waiting past the bound is part of the scenario, not a measurement:
	// the next request after it must be refused.
	time.Sleep(bound + 50*time.Millisecond)
	p.expectError(p.request("GET", "/v1/me", alice.token, "", nil), http.StatusForbidden, "suspended")
	if r := p.request("GET", "/v1/me", bob.token, "", nil); r.status != http.StatusOK {
		t.Errorf("bob after alice's suspension: %d %s", r.status, r.body)
	}
}

// TestSignOutEndsTheCachedSession: a token that signed out is refused at
// once by the provider that cached it, and an expired token exactly at its
// expiry, whatever the cache's lifetime.
func TestSignOutEndsTheCachedSession(t *testing.T) {
	p := newProvider(t, provider.Config{SessionCacheTTL: time.Hour, SessionTTL: 300 * time.Millisecond})
	d := p.newRawDevice("alice", "laptop")
	if r := p.request("GET", "/v1/me", d.token, "", nil); r.status != http.StatusOK {
		t.Fatalf("before signing out: %d %s", r.status, r.body)
	}
	if r := p.request("DELETE", "/v1/auth/session", d.token, "", nil); r.status != http.StatusNoContent {
		t.Fatalf("signing out: %d %s", r.status, r.body)
	}
	p.expectError(p.request("GET", "/v1/me", d.token, "", nil), http.StatusUnauthorized, "unauthenticated")

	d.signIn()
	if r := p.request("GET", "/v1/me", d.token, "", nil); r.status != http.StatusOK {
		t.Fatalf("signed in again: %d %s", r.status, r.body)
	}
	time.Sleep(350 * time.Millisecond) // past the token's expiry
	p.expectError(p.request("GET", "/v1/me", d.token, "", nil), http.StatusUnauthorized, "unauthenticated")
}

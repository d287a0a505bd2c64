package provider_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
)

// The client side of the rate limits (docs/ratelimits.md). The limits are
// small and refill fast, so that waiting out a refusal takes a fraction of
// a second; the tests send until the first refusal rather than count on
// timing, and poll for the retry.

// retryUntilOK repeats send, whose refusals take no tokens, until it
// succeeds; a refusal must carry Retry-After.
func retryUntilOK(t *testing.T, p interface{ expectError(response, int, string) }, send func() response) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := send()
		if r.status == http.StatusOK {
			return
		}
		p.expectError(r, http.StatusTooManyRequests, "rate_limited")
		if r.header.Get("Retry-After") != "1" {
			t.Fatalf("Retry-After %q, want 1", r.header.Get("Retry-After"))
		}
		if time.Now().After(deadline) {
			t.Fatal("still refused after 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRateLimitUserMessages(t *testing.T) {
	p := newProvider(t, provider.Config{UserMessageLimit: provider.RateLimit{Every: 300 * time.Millisecond, Burst: 3}})
	alice := p.newRawDevice("alice", "phone")
	g, room := alice.createRoom()
	send := func(i int) response {
		msg, err := g.Encrypt(fmt.Appendf(nil, "message %d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		return alice.submit(room, fmt.Sprintf("cid-%08d", i), mls.Marshal(msg))
	}

	// A burst: the first three get through, then one is refused, and the
	// refusal changes nothing at all.
	accepted := 0
	for i := 0; ; i++ {
		before := p.dump()
		r := send(i)
		if r.status == http.StatusOK {
			accepted++
			if i > 50 {
				t.Fatal("no refusal in a burst of 50")
			}
			continue
		}
		p.expectError(r, http.StatusTooManyRequests, "rate_limited")
		if ra := r.header.Get("Retry-After"); ra != "1" {
			t.Fatalf("Retry-After %q, want 1 (300 ms rounded up)", ra)
		}
		if after := p.dump(); after != before {
			t.Fatalf("a refused message changed the database:\nbefore\n%s\nafter\n%s", before, after)
		}
		if accepted < 3 {
			t.Fatalf("refused after %d messages, the burst is 3", accepted)
		}
		// After the wait, the same message gets through, in the next seq.
		retryUntilOK(t, p, func() response { return send(i) })
		break
	}
	var log struct {
		Messages []json.RawMessage `json:"messages"`
	}
	p.call("GET", "/v1/rooms/"+room+"/messages?limit=1000", alice.token, nil, &log)
	if len(log.Messages) != accepted+1 {
		t.Fatalf("the room log has %d messages, want %d", len(log.Messages), accepted+1)
	}
	if v, _ := p.metric("switchboard_rate_limited_total", `limit="user"`); v < 1 {
		t.Fatalf("switchboard_rate_limited_total{limit=\"user\"} = %v", v)
	}
}

func TestRateLimitDiscovery(t *testing.T) {
	p := newProvider(t, provider.Config{UserDiscoveryLimit: provider.RateLimit{Every: 200 * time.Millisecond, Burst: 5}})
	alice := p.newRawDevice("alice", "phone")
	p.newRawDevice("bob", "phone")
	lookup := func() response {
		body, _ := json.Marshal(map[string]string{"phone": "+41 44 668 18 00"})
		return p.request("POST", "/v1/discovery", alice.token, "application/json", body)
	}
	if v, ok := p.metric("switchboard_rate_limited_total", `limit="discovery_user"`); !ok || v != 0 {
		t.Fatalf("before the burst: %v, %v", v, ok)
	}
	ok := 0
	for {
		r := lookup()
		if r.status == http.StatusOK {
			if ok++; ok > 50 {
				t.Fatal("no refusal in a burst of 50 lookups")
			}
			continue
		}
		p.expectError(r, http.StatusTooManyRequests, "rate_limited")
		break
	}
	if ok < 5 {
		t.Fatalf("refused after %d lookups, the burst is 5", ok)
	}
	// Refused lookups take no tokens: the next one gets through after
	// the wait, however often the caller knocks meanwhile.
	retryUntilOK(t, p, lookup)
	if v, _ := p.metric("switchboard_rate_limited_total", `limit="discovery_user"`); v < 1 {
		t.Fatalf("switchboard_rate_limited_total{limit=\"discovery_user\"} = %v", v)
	}
	if v, _ := p.metric("switchboard_rate_limited_total", `limit="user"`); v != 0 {
		t.Fatalf("lookups counted under the user limit: %v", v)
	}
}

func TestRateLimitDisabled(t *testing.T) {
	p := newProvider(t, provider.Config{UserDiscoveryLimit: provider.RateLimit{Every: -1, Burst: 1}})
	alice := p.newRawDevice("alice", "phone")
	for range 40 {
		p.call("POST", "/v1/discovery", alice.token, map[string]string{"handle": "bob"}, nil)
	}
}

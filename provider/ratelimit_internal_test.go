package provider

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
)

// A partner that asks too fast is refused with 429 rate_limited and a
// Retry-After, counted under discovery_partner, while another partner is
// not held up; after the wait, the partner gets through.
func TestRateLimitPartnerIdentifierQuery(t *testing.T) {
	green, blue, red := newFedNode(t, "green.example"), newFedNode(t, "blue.example"), newFedNode(t, "red.example")
	cfg := green.srv.cfg
	cfg.PartnerDiscoveryLimit = RateLimit{Every: 200 * time.Millisecond, Burst: 4}
	green.srv.limits = newRateLimits(cfg) // before it serves
	endpoint := green.serveFederation(t, loadTrust(t, blue.entry("https://blue.invalid"), red.entry("https://red.invalid")))
	blueCalls, redCalls := blue.peers(t, loadTrust(t, green.entry(endpoint))), red.peers(t, loadTrust(t, green.entry(endpoint)))
	green.addDevice(t, "alice", "+41 44 668 18 00", "phone", 1, false)
	query := mls.Marshal(&federation.IdentifierRequest{QueryElements: []federation.QueryElement{{SearchType: federation.SearchPhone, SearchValue: "+41446681800"}}})
	const path = "/mimi/identifierQuery/green.example"

	ok := 0
	var refused *federation.Response
	for refused == nil {
		resp := post(t, blueCalls, path, query)
		if resp.Status == http.StatusOK {
			if ok++; ok > 50 {
				t.Fatal("no refusal in a burst of 50 queries")
			}
			continue
		}
		refused = resp
	}
	if ok < 4 {
		t.Fatalf("refused after %d queries, the burst is 4", ok)
	}
	wantRefused(t, refused, http.StatusTooManyRequests, "rate_limited")
	if ra := refused.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q, want 1", ra)
	}
	if n := rateLimitedCount(t, green.srv, "discovery_partner"); n < 1 {
		t.Fatalf("discovery_partner refusals counted: %v", n)
	}
	if resp := post(t, redCalls, path, query); resp.Status != http.StatusOK {
		t.Fatalf("red, under its own limit: %d %s", resp.Status, resp.Body)
	}
	// Refusals take no tokens: knocking until the wait is over gets
	// through.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp := post(t, blueCalls, path, query)
		if resp.Status == http.StatusOK {
			break
		}
		wantRefused(t, resp, http.StatusTooManyRequests, "rate_limited")
		if time.Now().After(deadline) {
			t.Fatal("still refused after 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// identifierQuery takes from the partner's general bucket too.
	if n := green.srv.limits.partner.size(); n != 2 {
		t.Fatalf("%d partner buckets, want 2", n)
	}
}

// The follower passes the hub's 429 rate_limited on to the device as such,
// with the hub's Retry-After, instead of hub_unreachable (Classify calls a
// 429 retryable).
func TestHubRateLimitedPassedOn(t *testing.T) {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "rate_limited", "message": "too many messages in this room"}})
	resp := &federation.Response{Domain: "blue.example", Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {"3"}, "Content-Type": {"application/json"}}, Body: body}
	perr := federation.Classify(resp, nil)
	now := time.Now() // after Classify read the header, as in forward
	err := hubRateLimited("blue.example", perr, now)
	var e *Error
	if !errors.As(err, &e) || e.Code != "rate_limited" || e.Status != http.StatusTooManyRequests {
		t.Fatalf("got %v", err)
	}
	if e.retryAfter != 3 {
		t.Fatalf("Retry-After %d, want 3", e.retryAfter)
	}
	other := &federation.Response{Domain: "blue.example", Status: http.StatusServiceUnavailable, Body: []byte("busy")}
	if err := hubRateLimited("blue.example", federation.Classify(other, nil), now); err != nil {
		t.Fatalf("a 503 taken for a rate limit: %v", err)
	}
}

// A lookup at a named partner that is limiting lookups reaches the device
// as rate_limited with the partner's Retry-After (seconds, so it means the
// same whatever the two clocks say), not as partner_unreachable: the app
// waits and asks again.
func TestPartnerRateLimitedPassedOn(t *testing.T) {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "rate_limited", "message": "too many discovery lookups from this partner provider"}})
	resp := &federation.Response{Domain: "blue.example", Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {"4"}, "Content-Type": {"application/json"}}, Body: body}
	perr := federation.Classify(resp, nil)
	err := partnerRateLimited("blue.example", perr, time.Now())
	var e *Error
	if !errors.As(err, &e) || e.Code != "rate_limited" || e.Status != http.StatusTooManyRequests || !strings.Contains(e.Message, "blue.example is limiting lookups") {
		t.Fatalf("got %v", err)
	}
	if e.retryAfter != 4 {
		t.Fatalf("Retry-After %d, want 4", e.retryAfter)
	}
	other := &federation.Response{Domain: "blue.example", Status: http.StatusBadGateway, Body: []byte("down")}
	if err := partnerRateLimited("blue.example", federation.Classify(other, nil), time.Now()); err != nil {
		t.Fatalf("a 502 taken for a rate limit: %v", err)
	}
}

// Buckets that have refilled are swept, so the tables stay bounded by the
// keys active in the last minutes.
func TestRateLimitBucketsAreSwept(t *testing.T) {
	k := newKeyedLimiter("user", "messages", RateLimit{Every: time.Second, Burst: 2})
	now := time.Now()
	for _, key := range []string{"1", "2", "3"} {
		k.bucket(key, now).AllowN(now, 1)
	}
	if k.size() != 3 {
		t.Fatalf("%d buckets", k.size())
	}
	later := now.Add(limiterSweepEvery)
	k.bucket("4", later) // due: sweeps 1-3, which have refilled
	if k.size() != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", k.size())
	}
}

// Zero takes the default; negative disables.
func TestRateLimitConfig(t *testing.T) {
	c := Config{UserMessageLimit: RateLimit{Every: -1}, RoomLimit: RateLimit{Burst: 7}}
	c.fill()
	if !c.UserMessageLimit.disabled() || c.RoomLimit != (RateLimit{Every: defaultRoomLimit.Every, Burst: 7}) ||
		c.PartnerDiscoveryLimit != defaultPartnerDiscoveryLimit || c.UserDiscoveryLimit.disabled() {
		t.Fatalf("%+v", c)
	}
}

// rateLimitedCount reads switchboard_rate_limited_total{limit} from the
// server's registry.
func rateLimitedCount(t *testing.T, s *Server, limit string) float64 {
	t.Helper()
	mfs, err := s.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_rate_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limit" && l.GetValue() == limit {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no switchboard_rate_limited_total{limit=%q}", limit)
	return 0
}

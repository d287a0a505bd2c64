package provider

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
)

// Rate limits (docs/ratelimits.md): token buckets of golang.org/x/time/rate,
// one per key, for
//
//   - messages a local user submits (POST /v1/rooms/{id}/messages), by user;
//   - every federation POST a partner makes that reaches one of the hooked
//     endpoints (keyMaterial, identifierQuery, update, submitMessage,
//     notify), by the partner's authenticated domain;
//   - messages offered to a room this provider hosts, from its own users
//     and from partners' alike, by room;
//   - discovery lookups: POST /v1/discovery by local user, and
//     identifierQuery by partner, much slower than the rest, so that
//     enumerating phone numbers is slow and shows in /metrics.
//
// A refused request is answered 429 rate_limited with a Retry-After header
// and changes nothing: its reservations are cancelled, so it takes no
// tokens, and a client that waits Retry-After seconds gets through.

// RateLimit is one token bucket's shape: Burst requests at once, then one
// more every Every. In Config, a zero field takes the default; a negative
// Every or Burst disables the limit.
type RateLimit struct {
	Every time.Duration
	Burst int
}

func (l *RateLimit) fill(d RateLimit) {
	if l.Every == 0 {
		l.Every = d.Every
	}
	if l.Burst == 0 {
		l.Burst = d.Burst
	}
}

func (l RateLimit) disabled() bool { return l.Every < 0 || l.Burst < 0 }

// The defaults: generous for people and for the busiest partner traffic
// we expect, slow for discovery. Receipts and settings are messages too,
// so a reader sends about as many as the room carries.
var (
	defaultUserMessageLimit      = RateLimit{Every: 20 * time.Millisecond, Burst: 300}  // 50/s per user
	defaultRoomLimit             = RateLimit{Every: 10 * time.Millisecond, Burst: 1000} // 100/s per room
	defaultPartnerLimit          = RateLimit{Every: 2 * time.Millisecond, Burst: 2000}  // 500/s per partner
	defaultUserDiscoveryLimit    = RateLimit{Every: 3 * time.Second, Burst: 50}         // 1 per 3 s per user
	defaultPartnerDiscoveryLimit = RateLimit{Every: time.Second, Burst: 200}            // 1/s per partner
)

// maxLimiterKeys bounds each limit's table of buckets. Buckets that have
// refilled are dropped by the sweep; if the table is still full, an
// arbitrary bucket is dropped, which can only make its key's next request
// more lenient.
const maxLimiterKeys = 100_000

// limiterSweepEvery is how often a table is swept of refilled buckets.
const limiterSweepEvery = time.Minute

// keyedLimiter is one limit: a bucket per key, created on first use.
type keyedLimiter struct {
	name string // the metric's limit label
	what string // for the refusal's message: "messages from this user"
	cfg  RateLimit

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

func newKeyedLimiter(name, what string, cfg RateLimit) *keyedLimiter {
	return &keyedLimiter{name: name, what: what, cfg: cfg, buckets: map[string]*rate.Limiter{}}
}

// bucket returns key's bucket, sweeping the table when due or full.
func (k *keyedLimiter) bucket(key string, now time.Time) *rate.Limiter {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b, ok := k.buckets[key]; ok {
		return b
	}
	if len(k.buckets) >= maxLimiterKeys || now.Sub(k.lastSweep) >= limiterSweepEvery {
		k.sweep(now)
	}
	if len(k.buckets) >= maxLimiterKeys {
		for other := range k.buckets {
			delete(k.buckets, other)
			break
		}
	}
	b := rate.NewLimiter(rate.Every(k.cfg.Every), k.cfg.Burst)
	k.buckets[key] = b
	return b
}

// sweep drops the buckets that are full again: a full bucket is the same
// as no bucket, so nothing is forgotten. The caller holds k.mu.
func (k *keyedLimiter) sweep(now time.Time) {
	k.lastSweep = now
	for key, b := range k.buckets {
		if b.TokensAt(now) >= float64(k.cfg.Burst) {
			delete(k.buckets, key)
		}
	}
}

// size is the number of buckets held, for tests.
func (k *keyedLimiter) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

// rateLimits are a server's limits, made from its Config.
type rateLimits struct {
	user, partner, room, discoveryUser, discoveryPartner *keyedLimiter
}

func newRateLimits(cfg Config) *rateLimits {
	return &rateLimits{
		user:             newKeyedLimiter("user", "messages from this user", cfg.UserMessageLimit),
		partner:          newKeyedLimiter("partner", "requests from this partner provider", cfg.PartnerLimit),
		room:             newKeyedLimiter("room", "messages in this room", cfg.RoomLimit),
		discoveryUser:    newKeyedLimiter("discovery_user", "discovery lookups from this user", cfg.UserDiscoveryLimit),
		discoveryPartner: newKeyedLimiter("discovery_partner", "discovery lookups from this partner provider", cfg.PartnerDiscoveryLimit),
	}
}

// limitKey is one bucket a request must take a token from.
type limitKey struct {
	lim *keyedLimiter
	key string
}

// limit takes one token from each bucket, or none at all: if any bucket is
// empty, every reservation is cancelled, the refusal is counted under the
// first limit that refused, and the answer is 429 rate_limited with a
// Retry-After of the longest wait, in whole seconds rounded up (the HTTP
// adapters write the header, the stream its retry_after). A key "" is
// skipped, as is a disabled limit.
func (s *Server) limit(keys ...limitKey) error {
	now := s.now()
	var (
		taken   []*rate.Reservation
		wait    time.Duration
		refused *keyedLimiter
	)
	for _, k := range keys {
		if k.key == "" || k.lim.cfg.disabled() {
			continue
		}
		r := k.lim.bucket(k.key, now).ReserveN(now, 1)
		taken = append(taken, r)
		if d := r.DelayFrom(now); d > 0 || !r.OK() {
			if refused == nil {
				refused = k.lim
			}
			if !r.OK() {
				d = k.lim.cfg.Every
			}
			wait = max(wait, d)
		}
	}
	if refused == nil {
		return nil
	}
	for i := len(taken) - 1; i >= 0; i-- {
		taken[i].CancelAt(now)
	}
	s.metrics.rateLimited.WithLabelValues(refused.name).Inc()
	return rateLimited(wait, fmt.Sprintf("too many %s", refused.what))
}

// rateLimited is the 429 rate_limited error, with its Retry-After.
func rateLimited(wait time.Duration, msg string) *Error {
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	e := errRateLimited(fmt.Sprintf("%s; try again in %d s", msg, secs))
	e.retryAfter = secs
	return e
}

// userKey and roomKey name buckets.
func userKey(c *caller) string { return strconv.FormatInt(c.user.ID, 10) }

// partnerKey is the authenticated peer's domain; "" (no limit) cannot
// happen behind federation.RequirePartner, which refuses such a request
// before the endpoint runs.
func partnerKey(r *http.Request) string {
	peer, _ := federation.PeerDomain(r)
	return peer
}

// hostedRoomKey is the room ID of a room URI in a federation path, if it
// names a room of this provider; "" otherwise, which hostedRoom refuses.
func (s *Server) hostedRoomKey(raw string) string {
	u, err := identity.ParseURI(raw)
	if err != nil || u.Kind != identity.KindRoom || u.Domain != s.cfg.Domain {
		return ""
	}
	return u.ID
}

// limitPartner is the check at the entry of a federation POST.
func (s *Server) limitPartner(r *http.Request) error {
	return s.limit(limitKey{s.limits.partner, partnerKey(r)})
}

// limitForwarded is the check at the entry of update and submitMessage:
// the partner's bucket and the room's.
func (s *Server) limitForwarded(r *http.Request) error {
	return s.limit(limitKey{s.limits.partner, partnerKey(r)},
		limitKey{s.limits.room, s.hostedRoomKey(r.PathValue("roomId"))})
}

// hubRateLimited passes a hub's 429 rate_limited on to the device, with
// the hub's Retry-After (one second if it gave none). Other answers are
// left to the caller.
func hubRateLimited(hub string, err error, now time.Time) error {
	return passRateLimited(err, now, "the room's hub "+hub+" is limiting messages")
}

// partnerRateLimited is hubRateLimited for a lookup at one partner: the
// partner's 429 reaches the device as rate_limited with the partner's wait
// (carried as seconds, so the two providers' clocks need not agree), not
// as partner_unreachable, so that the app waits instead of giving up.
func partnerRateLimited(partner string, err error, now time.Time) error {
	return passRateLimited(err, now, partner+" is limiting lookups")
}

// passRateLimited turns another provider's 429 rate_limited into this
// provider's, saying what limits; nil for any other error.
func passRateLimited(err error, now time.Time, what string) error {
	var pe *federation.PeerError
	if !errors.As(err, &pe) || pe.Status != http.StatusTooManyRequests || pe.Code != "rate_limited" {
		return nil
	}
	wait := time.Second
	if !pe.RetryAfter.IsZero() {
		wait = pe.RetryAfter.Sub(now)
	}
	e := rateLimited(wait, fmt.Sprintf("%s (%q)", what, pe.Message))
	e.cause = err
	return e
}

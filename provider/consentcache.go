package provider

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"
)

// consentCache keeps, per room and sender, which of the room's local users
// refuse the room's messages (declined the room, or blocked the sender:
// store.Refusing), so that accepting a message costs no consent read. The
// answers change only when a local user declines or accepts a request or
// sets a contact, which every replica hears of:
//
//   - the replica that made the change forgets every cached answer once
//     the change is stored, before it answers;
//   - it tells the other replicas over the bus (a device notice of its
//     own kind, consentNotice), and each forgets everything as the notice
//     arrives;
//   - an answer is trusted for at most ttl (the session cache's), the
//     bound if the notice is lost, and a replica whose bus connection came
//     back forgets everything.
//
// Changes are rare next to messages, so forgetting everything on each is
// cheap. Size is bounded: past maxCachedConsent the cache starts over.
type consentCache struct {
	ttl time.Duration

	mu      sync.Mutex
	entries map[consentKey]consentEntry
	// gen counts forgets: an answer read from the store is kept only if
	// no forget came while it was being read (see sessionCache.gen).
	gen uint64
}

type consentKey struct{ room, blocker string }

type consentEntry struct {
	users, refusing []int64 // the users asked about, and those refusing
	read            time.Time
}

const maxCachedConsent = 100_000

func newConsentCache(ttl time.Duration) *consentCache {
	return &consentCache{ttl: ttl, entries: map[consentKey]consentEntry{}}
}

// get returns the cached answer for exactly these users, if fresh, and the
// generation for put.
func (c *consentCache) get(k consentKey, users []int64, now time.Time) ([]int64, bool, uint64) {
	if c == nil {
		return nil, false, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if ok && now.Sub(e.read) < c.ttl && !now.Before(e.read) && slices.Equal(e.users, users) {
		return e.refusing, true, c.gen
	}
	return nil, false, c.gen
}

func (c *consentCache) put(k consentKey, users, refusing []int64, read time.Time, gen uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.entries[k]; !ok && len(c.entries) >= maxCachedConsent {
		clear(c.entries)
	}
	c.entries[k] = consentEntry{users: slices.Clone(users), refusing: refusing, read: read}
}

func (c *consentCache) forgetAll() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

// refusing is store.Refusing through the cache.
func (s *Server) refusing(ctx context.Context, roomID, blocker string, users []int64) ([]int64, error) {
	k := consentKey{roomID, blocker}
	now := s.now()
	out, ok, gen := s.consents.get(k, users, now)
	if ok {
		return out, nil
	}
	out, err := s.store.Refusing(ctx, roomID, blocker, users)
	if err != nil {
		return nil, err
	}
	s.consents.put(k, users, out, now, gen)
	return out, nil
}

// consentNotice is the bus notice that a local user's consent changed. It
// travels as a device notice (of the user's device that made the change),
// and is taken out before the device's streams see notices.
type consentNotice struct {
	ConsentChanged bool `json:"consent_changed"`
}

// consentChanged drops the consent answers here and on the other
// replicas, after a change of a local user's consent is stored.
func (s *Server) consentChanged(device int64) {
	s.consents.forgetAll()
	if s.consents == nil {
		return
	}
	data, _ := json.Marshal(consentNotice{ConsentChanged: true})
	s.bus.Tell(device, data)
}

// isConsentNotice reports whether a bus notice is a consentNotice.
func isConsentNotice(data []byte) bool {
	var n consentNotice
	return json.Unmarshal(data, &n) == nil && n.ConsentChanged
}

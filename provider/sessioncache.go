package provider

import (
	"sync"
	"time"
)

// sessionCache keeps recently used sessions (token hash → device and user)
// in memory, so that a signed-in request costs no store read. Each entry
// is trusted for at most ttl after it was read from the store, and never
// past the token's expiry:
//
//   - signing out ends the session in the store, then tells every replica
//     through the bus (the notice that closes the device's streams): each
//     one forgets the device's cached sessions as the notice arrives, this
//     replica before the sign-out answers;
//   - a suspension, made by the operator from another process with no
//     notice, is seen once the user's entry is older than ttl;
//   - a replica whose bus connection came back (hints may have been lost)
//     forgets everything.
//
// Size is bounded: past maxCachedSessions the oldest-read half goes.
type sessionCache struct {
	ttl time.Duration

	mu       sync.RWMutex
	entries  map[[32]byte]cachedSession
	byDevice map[int64][][32]byte
	// gen counts forgets. A reader notes it before going to the store,
	// and keeps what it read only if no forget came in between: else a
	// sign-out's notice could pass a read of the still-live session and
	// the stale entry would outlive it.
	gen uint64
}

type cachedSession struct {
	caller  *caller
	read    time.Time // when read from the store
	expires time.Time // the token's expiry
}

// maxCachedSessions bounds the cache: about 300 bytes an entry.
const maxCachedSessions = 100_000

func newSessionCache(ttl time.Duration) *sessionCache {
	return &sessionCache{ttl: ttl, entries: map[[32]byte]cachedSession{}, byDevice: map[int64][][32]byte{}}
}

// get returns the cached caller of a token hash, if fresh, and the
// generation to hand to put after a store read otherwise.
func (c *sessionCache) get(key [32]byte, now time.Time) (*caller, uint64) {
	if c == nil {
		return nil, 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[key]
	if ok && now.Before(e.expires) && now.Sub(e.read) < c.ttl && !now.Before(e.read) {
		return e.caller, c.gen
	}
	return nil, c.gen
}

// put caches what a store read found, unless a forget came since gen.
func (c *sessionCache) put(key [32]byte, cl *caller, read, expires time.Time, gen uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.entries[key]; !ok {
		if len(c.entries) >= maxCachedSessions {
			c.evict(read)
		}
		c.byDevice[cl.device.ID] = append(c.byDevice[cl.device.ID], key)
	}
	c.entries[key] = cachedSession{caller: cl, read: read, expires: expires}
}

// evict drops stale entries and, if that is not enough, every entry read
// before the median age: a flood of sign-ins costs store reads, not memory.
func (c *sessionCache) evict(now time.Time) {
	cut := now.Add(-c.ttl)
	if n := len(c.entries); n > 0 {
		var sum time.Duration
		for _, e := range c.entries {
			sum += now.Sub(e.read) / time.Duration(n)
		}
		if mean := now.Add(-sum); mean.After(cut) {
			cut = mean
		}
	}
	for k, e := range c.entries {
		if !e.read.After(cut) || !now.Before(e.expires) {
			c.drop(k, e.caller.device.ID)
		}
	}
	if len(c.entries) >= maxCachedSessions { // all read at the same instant
		clear(c.entries)
		clear(c.byDevice)
	}
}

func (c *sessionCache) drop(key [32]byte, device int64) {
	delete(c.entries, key)
	keys := c.byDevice[device]
	for i, k := range keys {
		if k == key {
			keys = append(keys[:i], keys[i+1:]...)
			break
		}
	}
	if len(keys) == 0 {
		delete(c.byDevice, device)
	} else {
		c.byDevice[device] = keys
	}
}

// forgetDevice drops the device's cached sessions.
func (c *sessionCache) forgetDevice(device int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, k := range c.byDevice[device] {
		delete(c.entries, k)
	}
	delete(c.byDevice, device)
}

// forgetAll drops every cached session.
func (c *sessionCache) forgetAll() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
	clear(c.byDevice)
}

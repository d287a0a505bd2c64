package provider

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// TestSessionCacheIsBounded: a flood of sign-ins, each a new token, fills
// the cache only up to its bound; the newest entries stay usable.
func TestSessionCacheIsBounded(t *testing.T) {
	c := newSessionCache(time.Hour)
	start := time.Now()
	var last [32]byte
	for i := range maxCachedSessions + 1000 {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		last = sha256.Sum256(b[:])
		now := start.Add(time.Duration(i) * time.Microsecond)
		_, gen := c.get(last, now)
		c.put(last, &caller{device: store.Device{ID: int64(i % 5000)}}, now, now.Add(time.Hour), gen)
	}
	if n := len(c.entries); n > maxCachedSessions {
		t.Errorf("%d sessions cached, want at most %d", n, maxCachedSessions)
	}
	n := 0
	for _, keys := range c.byDevice {
		n += len(keys)
	}
	if n != len(c.entries) {
		t.Errorf("the device index holds %d sessions, the cache %d", n, len(c.entries))
	}
	if cl, _ := c.get(last, start.Add((maxCachedSessions+1000)*time.Microsecond)); cl == nil {
		t.Error("the newest session is not cached")
	}
}

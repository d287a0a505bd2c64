package node_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/node"
)

// TestFollowerDoesNotWaitForNotifiesThatAreNotComing: green, the hub of
// Alice and Bob's room, cannot reach blue (a one-way partition: blue
// refuses green's notifies, as a broken link would lose them), while blue
// reaches green. Blue forwards Bob's messages and green accepts them. The
// first time, blue waits for green's notify, in vain, before answering
// Bob; from then on it answers at once, instead of making each of Bob's
// sends wait as long. Once green's notifies come through again, blue
// waits for them as before, and everyone has every message once.
func TestFollowerDoesNotWaitForNotifiesThatAreNotComing(t *testing.T) {
	var cut atomic.Bool
	h := startHarnessWith(t, func(cfg *node.Config) {
		if cfg.Domain != "blue.test" {
			return
		}
		wrap := cfg.WrapFederation
		cfg.WrapFederation = func(next http.Handler) http.Handler {
			next = wrap(next)
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if cut.Load() && (strings.HasPrefix(r.URL.Path, "/notify/") || strings.HasPrefix(r.URL.Path, "/batch")) {
					http.Error(w, "lost on the way", http.StatusServiceUnavailable)
					return
				}
				next.ServeHTTP(w, r)
			})
		}
	}, "green.test", "blue.test")
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	ctx := context.Background()
	room, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, room, "bob@blue.test"))
	cv := newConversation(t, room, alice, bob)
	cv.say(alice, "hi")
	cv.expect(bob)

	const late = "the hub's notify has not arrived yet"
	cut.Store(true)
	for _, text := range []string{"one", "two", "three"} {
		cv.say(bob, text)
	}
	cv.expect(alice)
	if n := h.countLogged("blue.test", late); n != 1 {
		t.Errorf("blue waited in vain for green's notify %d times: want once, then answers at once", n)
	}

	cut.Store(false)
	cv.say(alice, "back?")
	cv.expect(bob)
	cv.say(bob, "back")
	cv.expect(alice)
	if n := h.countLogged("blue.test", late); n != 1 {
		t.Errorf("blue waited in vain %d times in all: once the notifies came again it should have had its own in time", n)
	}
}

// countLogged counts a provider's log lines that contain s.
func (h *harness) countLogged(domain, s string) int {
	n := 0
	for _, line := range h.logsOf(domain) {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

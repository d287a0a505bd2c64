package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// Batches between providers (docs/federation.md, "Batches"): the hub's
// outbox sends a follower its next notifies in one request.

// twoRooms makes Alice (green) and Bob (blue) two rooms hosted by green,
// each with a first message read, and everything settled.
func twoRooms(t *testing.T, h *harness) (alice, bob *person, rooms []*conversation) {
	t.Helper()
	alice, _ = h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ = h.enroll("blue.test", "bob", "phone", client.Options{})
	ctx := context.Background()
	for i := range 2 {
		room, err := alice.c.CreateRoom(ctx)
		must(t, "alice creates a room", err)
		must(t, "alice invites bob", alice.c.Invite(ctx, room, "bob@blue.test"))
		cv := newConversation(t, room, alice, bob)
		cv.say(alice, fmt.Sprintf("room %d, hello", i))
		cv.expect(bob)
		h.settle("green.test", room)
		rooms = append(rooms, cv)
	}
	return alice, bob, rooms
}

// backlog has Alice send n messages, alternating between the rooms.
func backlog(rooms []*conversation, alice *person, n int) {
	for i := range n {
		rooms[i%len(rooms)].say(alice, fmt.Sprintf("message %d while blue is away", i))
	}
}

// batchesTo returns the batch requests a provider received, decoded, with
// their answers.
func batchesTo(t *testing.T, h *harness, domain string) (reqs []federation.BatchRequest, resps []federation.BatchResponse) {
	t.Helper()
	for _, e := range h.traffic.all(func(e exchange) bool { return e.To == domain && e.Path == "/batch" }) {
		var req federation.BatchRequest
		must(t, "decoding a batch", mls.Unmarshal(e.Body, &req))
		reqs = append(reqs, req)
		var resp federation.BatchResponse
		if e.Status == http.StatusOK {
			must(t, "decoding a batch's answer", mls.Unmarshal(e.RespBody, &resp))
		}
		resps = append(resps, resp)
	}
	return reqs, resps
}

// TestBacklogArrivesInBatches: blue is down while Alice sends 60
// messages into two rooms hosted by green. When blue is back, green's
// outbox sends the backlog in batches; Bob reads every message once, each
// room in order, and the rooms go on as before.
func TestBacklogArrivesInBatches(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test")
	alice, bob, rooms := twoRooms(t, h)
	h.stop("blue.test")
	backlog(rooms, alice, 60)
	h.start("blue.test")
	for _, cv := range rooms {
		cv.expect(bob)
		h.settle("green.test", cv.room)
	}

	reqs, _ := batchesTo(t, h, "blue.test")
	largest := 0
	for _, r := range reqs {
		largest = max(largest, len(r.Entries))
	}
	if largest < 10 {
		t.Errorf("the largest batch to blue carried %d entries, want the backlog in a few large ones (%d batches)", largest, len(reqs))
	}
	green := h.outbox["green.test"]
	if n := green.get("failed", "blue.test"); n != 0 {
		t.Errorf("green dropped %d requests to blue", n)
	}

	// Both ways, as before.
	rooms[0].say(bob, "all 30 here, in order")
	rooms[1].say(bob, "same here")
	rooms[0].say(alice, "good")
	for _, cv := range rooms {
		cv.expect(alice, bob)
	}
}

// olderPartner makes a provider look like one that predates batches: its
// directory lists no batch endpoint, and POST /batch is not found.
func olderPartner(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == federation.WellKnownDirectoryPath:
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var d map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			delete(d, "batch")
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(d)
		case r.URL.Path == "/batch":
			http.NotFound(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// TestOlderPartnerGetsRequestsAlone: blue does not offer batches. Green
// sends it the same backlog one notify at a time, and never a batch.
func TestOlderPartnerGetsRequestsAlone(t *testing.T) {
	h := startHarnessWith(t, func(cfg *node.Config) {
		if cfg.Domain == "blue.test" {
			recorded := cfg.WrapFederation
			cfg.WrapFederation = func(next http.Handler) http.Handler { return recorded(olderPartner(next)) }
		}
	}, "green.test", "blue.test")
	alice, bob, rooms := twoRooms(t, h)
	h.stop("blue.test")
	backlog(rooms, alice, 20)
	h.start("blue.test")
	for _, cv := range rooms {
		cv.expect(bob)
		h.settle("green.test", cv.room)
	}
	if reqs, _ := batchesTo(t, h, "blue.test"); len(reqs) != 0 {
		t.Errorf("green sent %d batches to a partner that does not take them", len(reqs))
	}
	notifies := h.traffic.all(func(e exchange) bool {
		return e.To == "blue.test" && e.Status == http.StatusCreated && e.Path == notifyPath("green.test", rooms[0].room)
	})
	if len(notifies) < 11 { // the first message and its half of the backlog
		t.Errorf("blue took %d notifies of the first room alone, want at least 11", len(notifies))
	}
}

// TestBatchWithRefusedEntries: while blue is away, green's outbox gets,
// among Alice's messages, a notify blue must refuse for good (its body is
// no FanoutMessage); and blue lets green deliver only 5 requests at once,
// then 20 a second. When blue is back, its answers to the batches refuse
// that entry (400) and, past its rate limit, ask green to come back later
// (429). Green drops the one, retries the others from where blue stopped,
// and Bob reads every message once, in order.
func TestBatchWithRefusedEntries(t *testing.T) {
	h := startHarnessWith(t, func(cfg *node.Config) {
		if cfg.Domain == "blue.test" {
			cfg.Provider.PartnerLimit = provider.RateLimit{Every: 50 * time.Millisecond, Burst: 5}
		}
	}, "green.test", "blue.test")
	alice, bob, rooms := twoRooms(t, h)
	h.stop("blue.test")
	backlog(rooms, alice, 10)
	bogus := store.Outbound{Destination: "blue.test", Kind: "notify", Path: notifyPath("green.test", rooms[0].room),
		Body: []byte("not a FanoutMessage"), ID: "bogus-1",
		Header: map[string]string{provider.HeaderRoomSeq: "1000000", provider.HeaderRoomEpoch: "1",
			provider.HeaderSender: "mimi://green.test/d/alice/phone", provider.HeaderRecipients: "-"}}
	must(t, "queueing a bad notify", h.node("green.test").Outbox.Enqueue(context.Background(), []store.Outbound{bogus}))
	backlog(rooms, alice, 20)
	h.start("blue.test")
	for _, cv := range rooms {
		cv.expect(bob)
	}
	green := h.outbox["green.test"]
	waitFor(t, "green's outbox to blue is empty", func() bool {
		_, err := h.node("green.test").Store.NextOutbound(context.Background(), "blue.test")
		return err != nil
	})
	if n := green.get("failed", "blue.test"); n != 1 {
		t.Errorf("green dropped %d requests to blue, want the bad one", n)
	}
	if !h.logged("green.test", "dropped after a permanent failure", "bogus-1") {
		t.Error("green did not log dropping the bad notify")
	}
	var refused, limited int
	_, resps := batchesTo(t, h, "blue.test")
	for _, resp := range resps {
		for _, r := range resp.Results {
			switch r.Status {
			case http.StatusBadRequest:
				refused++
			case http.StatusTooManyRequests:
				limited++
			}
		}
	}
	if refused != 1 || limited == 0 {
		t.Errorf("blue's batch answers refused %d entries and rate-limited %d, want 1 and some", refused, limited)
	}
}

// TestBatchAnswerLostAndHubRestarted: blue applies a whole batch of the
// backlog, but its answer is held back; green stops before it arrives and
// starts again. Its outbox sends the same entries again from its store,
// blue recognises each, and Bob reads every message once, in order.
func TestBatchAnswerLostAndHubRestarted(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test")
	alice, bob, rooms := twoRooms(t, h)
	before, _ := batchesTo(t, h, "blue.test") // a commit and its Welcome went as one
	h.stop("blue.test")
	backlog(rooms, alice, 30)
	var held atomic.Bool
	h.traffic.holdAnswers(func(e exchange) time.Duration {
		if e.To == "blue.test" && e.Path == "/batch" && held.CompareAndSwap(false, true) {
			return 3 * time.Second
		}
		return 0
	})
	h.start("blue.test")
	waitFor(t, "blue applied a batch whose answer is held", func() bool {
		reqs, _ := batchesTo(t, h, "blue.test")
		return len(reqs) == len(before)+1
	})
	h.stop("green.test")
	h.start("green.test")
	for _, cv := range rooms {
		cv.expect(bob)
		h.settle("green.test", cv.room)
	}
	reqs, resps := batchesTo(t, h, "blue.test")
	reqs, resps = reqs[len(before):], resps[len(before):]
	for i, r := range resps[0].Results {
		if r.Status != http.StatusCreated {
			t.Errorf("blue answered entry %d of the held batch %d, want it applied (201)", i, r.Status)
		}
	}
	if len(resps[0].Results) != len(reqs[0].Entries) {
		t.Errorf("blue answered %d of the held batch's %d entries, want all", len(resps[0].Results), len(reqs[0].Entries))
	}
	if len(reqs) < 2 || reqs[1].Entries[0].DeliveryID != reqs[0].Entries[0].DeliveryID {
		t.Errorf("green sent %d batches of the backlog; want the first one's entries sent again after the restart", len(reqs))
	}
	rooms[0].say(alice, "still here")
	rooms[0].expect(bob)
}

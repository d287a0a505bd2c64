package node_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
)

// TestForgedAndBadFederationRequests: Alice (green) hosts a group with
// Bob (blue; his phone, then his laptop too) and Carol and Dave (red).
// Along the way Bob's phone adds his laptop with a commit made before it
// had seen Alice's latest one: the hub answers wrongEpoch, Bob's phone
// catches up and commits again. Then a stranger, an impostor, a suspended
// partner, partners speaking for others' users, replays, stale epochs and
// malformed bodies are each refused with their documented code, and none
// of them changes anything at any provider. The people in the group, who
// go on talking, read exactly what they said and nothing else.
func TestForgedAndBadFederationRequests(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test", "red.test")
	phoneLog := &logSink{}
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{
		Logger: slog.New(slog.NewTextHandler(phoneLog, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	carol, _ := h.enroll("red.test", "carol", "phone", client.Options{})
	dave, _ := h.enroll("red.test", "dave", "phone", client.Options{})
	ctx := context.Background()

	group, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates the group", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, group, "bob@blue.test"))
	must(t, "alice invites carol", alice.c.Invite(ctx, group, "carol@red.test"))
	cv := newConversation(t, group, alice, bob, carol)
	cv.say(alice, "hello")
	cv.expect(bob, carol)
	cv.say(bob, "bob, in the first epoch")
	cv.expect(alice, carol)

	// Bob registers his laptop; before his phone has read anything more,
	// Alice adds Dave, and Bob's phone adds the laptop to the group.
	laptop, _ := h.enroll("blue.test", "bob", "laptop", client.Options{})
	must(t, "alice invites dave", alice.c.Invite(ctx, group, "dave@red.test"))
	must(t, "bob's phone adds his laptop", bob.c.Invite(ctx, group, "bob"))
	laptop.read()
	dave.read()
	cv.joined(laptop)
	cv.joined(dave)
	cv.say(alice, "welcome dave, and bob's laptop")
	cv.expect(bob, carol, dave, laptop)
	h.settle("green.test", group)

	green := h.node("green.test")
	hubRoom := func() (int64, uint64) {
		r, err := green.Store.Room(ctx, string(group))
		must(t, "reading green's room", err)
		return r.LastSeq, r.Epoch
	}
	isTo := func(to, from, kind string) func(exchange) bool {
		return func(e exchange) bool {
			return e.To == to && e.From() == from && strings.HasPrefix(e.Path, "/"+kind+"/")
		}
	}
	submits := h.traffic.all(isTo("green.test", "blue.test", "submitMessage"))
	updates := h.traffic.all(isTo("green.test", "blue.test", "update"))
	notifies := h.traffic.all(isTo("blue.test", "green.test", "notify"))
	if len(submits) != 1 || len(updates) != 2 || len(notifies) == 0 {
		t.Fatalf("blue forwarded %d messages and %d commits to green, and green notified blue %d times; want 1, 2 and some",
			len(submits), len(updates), len(notifies))
	}
	oldMessage, laptopCommit, lastNotify := submits[0], updates[1], notifies[len(notifies)-1]
	bobPhone := "mimi://blue.test/d/bob/phone"
	carolPhone := "mimi://red.test/d/carol/phone"
	fresh := func(sender string) http.Header {
		return http.Header{provider.HeaderSender: {sender}, provider.HeaderClientID: {newID()}}
	}

	t.Run("a commit made in an old epoch is answered wrongEpoch, and the device commits again", func(t *testing.T) {
		var codes []federation.UpdateResponseCode
		for _, u := range updates {
			var resp federation.UpdateRoomResponse
			if err := mls.Unmarshal(u.RespBody, &resp); err != nil {
				t.Fatalf("green's answer to an update (%d): %v", u.Status, err)
			}
			codes = append(codes, resp.ResponseCode)
		}
		if codes[0] != federation.UpdateWrongEpoch || codes[1] != federation.UpdateSuccess {
			t.Errorf("green answered Bob's commits %v, want [wrongEpoch success]", codes)
		}
		if !strings.Contains(phoneLog.String(), "commit lost its epoch") {
			t.Errorf("Bob's phone was not told wrong_epoch; its log:\n%s", phoneLog.String())
		}
	})

	t.Run("unknown certificate", func(t *testing.T) {
		h := h.with(t)
		h.unchanged(group, func() {
			// A provider green has never heard of, with its own CA.
			evil := forger(t, "evil.test", green)
			resp, err := evil.Post(ctx, "green.test", submitPath("green.test", group), oldMessage.Body, fresh("mimi://evil.test/d/mallory/phone"))
			refusedAtHandshake(t, "evil.test", resp, err)
			// Someone with a certificate for blue.test from a CA of their
			// own, not blue's.
			impostor := forger(t, "blue.test", green)
			resp, err = impostor.Post(ctx, "green.test", submitPath("green.test", group), oldMessage.Body, fresh(bobPhone))
			refusedAtHandshake(t, "the impostor of blue.test", resp, err)
		})
		waitFor(t, "green logs why it refused them", func() bool {
			return h.logged("green.test", "refused a partner's TLS handshake", "evil.test", "is not a partner of this provider") &&
				h.logged("green.test", "refused a partner's TLS handshake", "blue.test", "does not chain to its configured CA")
		})
	})

	t.Run("suspended partner", func(t *testing.T) {
		h := h.with(t)
		blue := h.partner("blue.test", "green.test")
		if a, err := blue.do(http.MethodGet, federation.WellKnownDirectoryPath, nil, nil); err != nil || a.Status != http.StatusOK {
			t.Fatalf("blue fetching green's directory: %+v %v", a, err)
		}
		// Green suspends blue while blue has a connection open.
		must(t, "green suspends blue", h.l.Suspend(h.index("green.test"), "blue.test"))
		t.Cleanup(func() { h.l.Suspend(h.index("green.test")) })
		h.unchanged(group, func() {
			a := blue.mustPost(submitPath("green.test", group), oldMessage.Body, fresh(bobPhone))
			expectRefusal(t, "on the open connection", a, http.StatusForbidden, "suspended_partner")
			_, err := blue.post(submitPath("green.test", group), oldMessage.Body, fresh(bobPhone))
			if err == nil {
				t.Error("a new connection from the suspended blue was accepted")
			}
		})
		waitFor(t, "green logs that blue is suspended", func() bool {
			return h.logged("green.test", "refused a partner's TLS handshake", "blue.test is suspended as a partner of this provider")
		})
	})

	t.Run("a partner speaking for another provider's user", func(t *testing.T) {
		h := h.with(t)
		blue := h.partner("blue.test", "green.test")
		var asCarol federation.SubmitMessageRequest
		must(t, "decoding Bob's message", mls.Unmarshal(oldMessage.Body, &asCarol))
		asCarol.SendingURI = "mimi://red.test/u/carol"
		h.unchanged(group, func() {
			a := blue.mustPost(submitPath("green.test", group), mls.Marshal(&asCarol), fresh(carolPhone))
			expectRefusal(t, "blue's submitMessage as Carol's phone", a, http.StatusForbidden, "not_its_user")
			a = blue.mustPost(updatePath("green.test", group), laptopCommit.Body, fresh(carolPhone))
			expectRefusal(t, "blue's update as Carol's phone", a, http.StatusForbidden, "not_its_user")
			// Blue posing as the hub of green's room, to red and to green.
			for _, to := range []string{"red.test", "green.test"} {
				hdr := lastNotify.Header.Clone()
				for _, k := range []string{"From", federation.HeaderRequestID, federation.HeaderTimestamp} {
					hdr.Del(k)
				}
				hdr.Set(provider.HeaderRoomSeq, strconv.FormatInt(1000, 10))
				a = h.partner("blue.test", to).mustPost(notifyPath("green.test", group), lastNotify.Body, hdr)
				expectRefusal(t, "blue's notify to "+to+" for green's room", a, http.StatusForbidden, "not_its_user")
			}
			// Blue's certificate, red's name in From.
			a = blue.mustPost(submitPath("green.test", group), oldMessage.Body, http.Header{
				"From": {"mimi@red.test"}, provider.HeaderSender: {carolPhone}, provider.HeaderClientID: {newID()}})
			expectRefusal(t, "blue's request From: mimi@red.test", a, http.StatusForbidden, "not_its_user")
		})
	})

	t.Run("replayed requests", func(t *testing.T) {
		h := h.with(t)
		hub := h.partner("green.test", "blue.test")
		blue := h.partner("blue.test", "green.test")
		h.unchanged(group, func() {
			// Requests seen after TLS, sent again exactly.
			a := hub.mustPost(lastNotify.Path, lastNotify.Body, lastNotify.Header)
			expectRefusal(t, "green's notify to blue, replayed", a, http.StatusForbidden, "replay")
			a = blue.mustPost(oldMessage.Path, oldMessage.Body, oldMessage.Header)
			expectRefusal(t, "blue's submitMessage to green, replayed", a, http.StatusForbidden, "replay")

			// A fresh stamp, used twice.
			hdr := lastNotify.Header.Clone()
			federation.StampRequest(hdr)
			a = hub.mustPost(lastNotify.Path, lastNotify.Body, hdr)
			if a.Status != http.StatusCreated {
				t.Errorf("green's notify to blue sent again with a fresh stamp (as the outbox retries): %d %s, want 201", a.Status, a.Body)
			}
			a = hub.mustPost(lastNotify.Path, lastNotify.Body, hdr)
			expectRefusal(t, "a request ID used twice", a, http.StatusForbidden, "replay")

			// A timestamp out of the window, and no stamp at all.
			hdr = lastNotify.Header.Clone()
			federation.StampRequest(hdr)
			hdr.Set(federation.HeaderTimestamp, strconv.FormatInt(time.Now().Add(-federation.ReplayWindow-time.Minute).Unix(), 10))
			a = hub.mustPost(lastNotify.Path, lastNotify.Body, hdr)
			expectRefusal(t, "a timestamp six minutes old", a, http.StatusForbidden, "replay")
			hdr.Set(federation.HeaderRequestID, "")
			hdr.Del(federation.HeaderTimestamp)
			a = hub.mustPost(lastNotify.Path, lastNotify.Body, hdr)
			expectRefusal(t, "no stamp", a, http.StatusForbidden, "replay")
		})
	})

	t.Run("stale epochs", func(t *testing.T) {
		h := h.with(t)
		blue := h.partner("blue.test", "green.test")
		seq, epoch := hubRoom()
		h.unchanged(group, func() {
			// Bob's laptop commit, made two epochs ago, as a new one.
			a := blue.mustPost(laptopCommit.Path, laptopCommit.Body, fresh(bobPhone))
			var ur federation.UpdateRoomResponse
			if a.Status != http.StatusOK || mls.Unmarshal(a.Body, &ur) != nil {
				t.Fatalf("green answered a stale update %d %q", a.Status, a.Body)
			}
			if ur.ResponseCode != federation.UpdateWrongEpoch || ur.CurrentEpoch != epoch {
				t.Errorf("green answered a stale update %v in epoch %d, want wrongEpoch in epoch %d", ur.ResponseCode, ur.CurrentEpoch, epoch)
			}
			if got := a.Header.Get(provider.HeaderRoomSeq); got != strconv.FormatInt(seq, 10) {
				t.Errorf("green's answer says the log ends at %s, want %d", got, seq)
			}
			// The same commit with its first Mimi-Client-Id: the first
			// answer, success, again.
			a = blue.mustPost(laptopCommit.Path, laptopCommit.Body, http.Header{
				provider.HeaderSender: {bobPhone}, provider.HeaderClientID: laptopCommit.Header[provider.HeaderClientID]})
			if a.Status != http.StatusOK || mls.Unmarshal(a.Body, &ur) != nil || ur.ResponseCode != federation.UpdateSuccess {
				t.Errorf("green answered a repeat of an accepted update %d %v, want its first answer, success", a.Status, ur.ResponseCode)
			}
			// Bob's first message, from the first epoch, as a new one.
			a = blue.mustPost(oldMessage.Path, oldMessage.Body, fresh(bobPhone))
			var sr federation.SubmitMessageResponse
			if a.Status != http.StatusOK || mls.Unmarshal(a.Body, &sr) != nil {
				t.Fatalf("green answered a stale message %d %q", a.Status, a.Body)
			}
			if sr.StatusCode != federation.SubmitEpochTooOld || sr.CurrentEpoch != epoch {
				t.Errorf("green answered a stale message %v in epoch %d, want epochTooOld in epoch %d", sr.StatusCode, sr.CurrentEpoch, epoch)
			}
		})
	})

	t.Run("malformed bodies", func(t *testing.T) {
		h := h.with(t)
		blue := h.partner("blue.test", "green.test")
		hub := h.partner("green.test", "blue.test")
		garbage := []byte("\x00\x01 this is not a MIMI body")
		seq, epoch := hubRoom()
		notifyHeader := http.Header{provider.HeaderRoomSeq: {strconv.FormatInt(seq+1, 10)},
			provider.HeaderRoomEpoch: {strconv.FormatUint(epoch, 10)}, provider.HeaderSender: {"mimi://green.test/d/alice/phone"},
			provider.HeaderRecipients: {bobPhone}}
		h.unchanged(group, func() {
			for _, c := range []struct {
				what string
				p    *rawPartner
				path string
				body []byte
				hdr  http.Header
			}{
				{"update", blue, updatePath("green.test", group), garbage, fresh(bobPhone)},
				{"update, cut short", blue, updatePath("green.test", group), laptopCommit.Body[:len(laptopCommit.Body)/2], fresh(bobPhone)},
				{"update, empty", blue, updatePath("green.test", group), nil, fresh(bobPhone)},
				{"submitMessage", blue, submitPath("green.test", group), garbage, fresh(bobPhone)},
				{"submitMessage with bytes after it", blue, submitPath("green.test", group), append(append([]byte{}, oldMessage.Body...), 0), fresh(bobPhone)},
				{"keyMaterial", blue, pathOf(partnerPaths.KeyMaterialURL("mimi://green.test/u/alice")), garbage, nil},
				{"notify", hub, notifyPath("green.test", group), garbage, notifyHeader},
				{"notify, cut short", hub, notifyPath("green.test", group), lastNotify.Body[:len(lastNotify.Body)-3], notifyHeader},
			} {
				a := c.p.mustPost(c.path, c.body, c.hdr)
				expectRefusal(t, c.what, a, http.StatusBadRequest, "bad_request")
			}
		})
	})

	// The people in the group noticed nothing: they go on talking, and
	// each reads exactly what the others said.
	cv.say(carol, "anything happen?")
	cv.say(bob, "nothing I saw")
	cv.expect(alice, bob, carol, dave, laptop)
}

// TestSuspendedFollowerKeepsItsQueue: green suspends blue. Bob's messages
// cannot reach the hub, and Bob is told; what Alice says meanwhile waits in
// green's outbox, retried, not dropped. Once green lifts the suspension
// Bob reads it, and Bob's next message goes through.
func TestSuspendedFollowerKeepsItsQueue(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test")
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	ctx := context.Background()
	room, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, room, "bob@blue.test"))
	cv := newConversation(t, room, alice, bob)
	cv.say(alice, "hi")
	cv.expect(bob)
	h.settle("green.test", room)

	must(t, "green suspends blue", h.l.Suspend(h.index("green.test"), "blue.test"))
	retried := h.outbox["green.test"].get("retried", "blue.test")
	h.unchanged(room, func() {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := bob.c.Send(sctx, room, []byte("can you hear me?")); err == nil {
			t.Error("bob's message was accepted while green suspends blue")
		} else {
			t.Logf("bob is told: %v", err)
		}
	})
	cv.say(alice, "said while blue is suspended")
	waitFor(t, "green retries blue", func() bool { return h.outbox["green.test"].get("retried", "blue.test") >= retried+2 })
	if n := h.outbox["green.test"].get("failed", "blue.test"); n > 0 {
		t.Fatalf("green dropped %d entries for the suspended blue", n)
	}

	must(t, "green lifts the suspension", h.l.Suspend(h.index("green.test")))
	cv.expect(bob)
	cv.say(bob, "back")
	cv.expect(alice)
}

// forger is a provider's federation client made by someone green does not
// trust: a certificate for domain from a CA of its own, and a trust file
// of its own that lists green as its partner.
func forger(t *testing.T, domain string, green *node.Node) *federation.Peers {
	t.Helper()
	ca, err := identity.NewCA(domain)
	must(t, "making "+domain+"'s CA", err)
	cert, err := federation.IssueProviderCertificate(ca, domain, time.Now().Add(time.Hour))
	must(t, "issuing "+domain+"'s certificate", err)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: green.CA.Certificate().Raw})
	data, err := json.Marshal(map[string]any{"partners": []map[string]string{
		{"domain": green.Domain, "endpoint": "https://" + green.FederationAddr, "ca_pem": string(caPEM)}}})
	must(t, "writing the forger's trust file", err)
	file := filepath.Join(t.TempDir(), "trust.json")
	must(t, "writing the forger's trust file", os.WriteFile(file, data, 0o644))
	trust, err := federation.LoadTrust(file, nil)
	must(t, "loading the forger's trust file", err)
	peers, err := federation.NewPeers(domain, cert, trust, federation.PeerOptions{Timeout: 5 * time.Second})
	must(t, "the forger's peers", err)
	t.Cleanup(peers.Close)
	return peers
}

// refusedAtHandshake checks that a request got no answer: the TLS
// handshake was refused, which is all TLS can say (docs/federation.md).
func refusedAtHandshake(t *testing.T, who string, resp *federation.Response, err error) {
	t.Helper()
	var pe *federation.PeerError
	if perr := federation.Classify(resp, err); !errors.As(perr, &pe) || pe.Status != 0 {
		t.Errorf("%s's request was answered: %v", who, perr)
		return
	}
	if !strings.Contains(pe.Error(), "bad certificate") {
		t.Logf("%s's request failed without the bad_certificate alert: %v", who, pe)
	}
}

// expectRefusal checks an answer's status and code.
func expectRefusal(t *testing.T, what string, a answer, status int, code string) {
	t.Helper()
	if a.Status != status || a.Code != code {
		t.Errorf("%s: answered %d %q (%s), want %d %s", what, a.Status, a.Code, a.Body, status, code)
	}
}

// newID makes a Mimi-Client-Id.
func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

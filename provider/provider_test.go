package provider_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// Environment: env_test.go.

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestRefusedRequestsChangeNothing sends every request a client can make
// that the provider must refuse, and checks each answer against the error
// contract of docs/api.md (status, stable code, a message, a request ID
// that the log carries) and that the provider's state is exactly what it
// was: every row of its database, and what the devices see over the API
// (their KeyPackage stock, their queues, the rooms' epochs, members and
// logs).
func TestRefusedRequestsChangeNothing(t *testing.T) {
	ctx := testContext(t)
	// A small body limit, so that a too-large body is cheap to make; it
	// still fits the SDK's KeyPackage batches of 12.
	const limit = 64 << 10
	p := newProvider(t, provider.Config{MaxBodyBytes: limit})

	// alice (admin) and bob chat in room R, made with the SDK; mallory,
	// driven by hand, is in R too and hosts a room M of her own.
	alice := p.newSDKDevice(ctx, "alice", "phone")
	bob := p.newSDKDevice(ctx, "bob", "phone")
	mallory := p.newRawDevice("mallory", "phone")
	mallory.uploadKeyPackages(3)
	laptop := p.newRawDevice("mallory", "laptop")
	victor := p.newRawDevice("victor", "phone") // has no KeyPackages

	room, err := alice.CreateRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"bob", "mallory"} {
		if err := alice.Invite(ctx, room, h); err != nil {
			t.Fatalf("invite %s: %v", h, err)
		}
	}
	bob.sync(ctx)
	eventually(t, "bob to join", func() bool { return bob.joined(room) })
	alice.send(ctx, room, "hello")
	R := string(room)

	group, M := mallory.createRoom()
	// Two commits of epoch 0 of M, as two devices racing would make: the
	// first wins, the second is stale.
	first, err := group.Commit(mls.CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	group.ClearPendingCommit()
	second, err := group.Commit(mls.CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	// Application data signed by a member but sent in the clear, which
	// RFC 9420 forbids and the SDK never does.
	gctx := group.Context()
	app, err := mls.SignContent(mallory.suite, mallory.signer, mls.WireFormatPublicMessage, &mls.FramedContent{
		GroupID: group.GroupID(), Epoch: group.Epoch(), Sender: mls.Sender{Type: mls.SenderMember, Leaf: group.OwnLeaf()},
		ContentType: mls.ContentApplication, ApplicationData: []byte("in the clear"),
	}, &gctx)
	if err != nil {
		t.Fatal(err)
	}
	publicApp := mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatPublicMessage,
		Public: &mls.PublicMessage{Content: app.Content, Auth: app.Auth, MembershipTag: make([]byte, mallory.suite.HashSize())}})

	// A valid upload, refused below for how it is sent, never for what it
	// holds: so a refusal that stored it anyway would show.
	goodUpload, _ := json.Marshal(map[string]any{"key_packages": [][]byte{mallory.keyPackage(mallory.cred, mallory.signer)}})
	var many [][]byte
	for len(many)*1500 < 2*limit {
		many = append(many, mallory.keyPackage(mallory.cred, mallory.signer))
	}
	tooLarge, _ := json.Marshal(map[string]any{"key_packages": many})
	if len(tooLarge) <= limit {
		t.Fatalf("the large upload is only %d bytes", len(tooLarge))
	}
	withUnknownField := append(bytes.TrimSuffix(goodUpload, []byte("}")), []byte(`,"colour":"red"}`)...)
	// laptop offers one KeyPackage of its own, then one with the phone's
	// credential and key: the whole upload must be refused, not half of it.
	foreign, _ := json.Marshal(map[string]any{"key_packages": [][]byte{
		laptop.keyPackage(laptop.cred, laptop.signer), laptop.keyPackage(mallory.cred, mallory.signer),
	}})

	usedCode := p.enroll("carol")
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	p.call("POST", "/v1/devices", "", map[string]any{"enrollment_code": usedCode, "device_name": "phone", "auth_key": []byte(pub)}, nil)
	spareCode := p.enroll("mallory")
	register := func(code, name string) func() response {
		return func() response {
			pub, _, _ := ed25519.GenerateKey(rand.Reader)
			body, _ := json.Marshal(map[string]any{"enrollment_code": code, "device_name": name, "auth_key": []byte(pub)})
			return p.request("POST", "/v1/devices", "", "application/json", body)
		}
	}
	post := func(path, token, contentType string, body []byte) func() response {
		return func() response { return p.request("POST", path, token, contentType, body) }
	}
	get := func(path, token string) func() response {
		return func() response { return p.request("GET", path, token, "", nil) }
	}
	submit := func(d *rawDevice, room string, msg []byte) func() response {
		return func() response { return d.submit(room, "cid-"+hex.EncodeToString(mls.RandomBytes(8)), msg) }
	}
	garbage := make([]byte, 200)
	rand.Read(garbage)

	cases := []struct {
		name   string
		setup  func() // runs before the state is recorded
		do     func() response
		status int
		code   string
	}{
		{name: "malformed JSON", do: post("/v1/me/keypackages", mallory.token, "application/json", goodUpload[:len(goodUpload)/2]),
			status: 400, code: "bad_request"},
		{name: "trailing data", do: post("/v1/me/keypackages", mallory.token, "application/json", append(goodUpload, goodUpload...)),
			status: 400, code: "bad_request"},
		{name: "unknown JSON field", do: post("/v1/me/keypackages", mallory.token, "application/json", withUnknownField),
			status: 400, code: "bad_request"},
		{name: "not JSON", do: post("/v1/me/keypackages", mallory.token, "text/plain", goodUpload),
			status: 415, code: "unsupported_media_type"},
		{name: "body over the limit", do: post("/v1/me/keypackages", mallory.token, "application/json", tooLarge),
			status: 413, code: "too_large"},
		{name: "no token", do: post("/v1/me/keypackages", "", "application/json", goodUpload),
			status: 401, code: "unauthenticated"},
		{name: "garbage token", do: post("/v1/me/keypackages", "not-a-token", "application/json", goodUpload),
			status: 401, code: "unauthenticated"},
		{name: "a room the device is not in", do: get("/v1/rooms/"+R, victor.token), status: 404, code: "not_found"},
		{name: "the log of a room the device is not in", do: get("/v1/rooms/"+R+"/messages", victor.token), status: 404, code: "not_found"},
		{name: "posting to a room the device is not in", do: submit(victor, R, publicApp), status: 404, code: "not_found"},
		{name: "an unknown room", do: get("/v1/rooms/AAAAAAAAAAAAAAAAAAAAAA", mallory.token), status: 404, code: "not_found"},
		{name: "a used enrollment code", do: register(usedCode, "laptop"), status: 410, code: "gone"},
		{name: "an unknown enrollment code", do: register("AAAA-BBBB-CCCC-DDDD-EEEE", "laptop"), status: 410, code: "gone"},
		{name: "a second device with the same name", do: register(spareCode, "phone"), status: 409, code: "conflict"},
		{name: "a KeyPackage with another device's credential", do: post("/v1/me/keypackages", laptop.token, "application/json", foreign),
			status: 400, code: "bad_request"},
		{name: "claiming from a user without KeyPackages", do: post("/v1/users/victor/keypackages", mallory.token, "application/json", []byte(`{"cipher_suite":1}`)),
			status: 409, code: "no_key_packages"},
		{name: "an MLS message that does not parse", do: submit(mallory, R, garbage), status: 400, code: "invalid_message"},
		{name: "an application message as a PublicMessage", do: submit(mallory, M, publicApp), status: 400, code: "invalid_message"},
		{name: "a commit for an old epoch",
			setup: func() {
				if r := mallory.submit(M, "first-commit", mls.Marshal(first.Commit)); r.status != 200 {
					t.Fatalf("the first commit: %d %s", r.status, r.body)
				}
			},
			do: submit(mallory, M, mls.Marshal(second.Commit)), status: 409, code: "wrong_epoch"},
	}
	views := func() string {
		return p.dump() + mallory.view(R, M) + laptop.view() + victor.view()
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			if c.setup != nil {
				c.setup()
			}
			before := views()
			p.expectError(c.do(), c.status, c.code)
			if after := views(); after != before {
				t.Errorf("the refused request changed the provider's state:\n%s", diff(before, after))
			}
		})
	}

	// The same answer for a room that exists without you as for one that
	// does not, so that room IDs cannot be probed.
	var hidden, unknown apiError
	json.Unmarshal(p.request("GET", "/v1/rooms/"+R, victor.token, "", nil).body, &hidden)
	json.Unmarshal(p.request("GET", "/v1/rooms/"+M+"x", victor.token, "", nil).body, &unknown)
	if strings.ReplaceAll(hidden.Error.Message, R, "ID") != strings.ReplaceAll(unknown.Error.Message, M+"x", "ID") {
		t.Errorf("a hidden room says %q, an unknown one %q", hidden.Error.Message, unknown.Error.Message)
	}

	// A non-admin removing another user, through the SDK: refused by the
	// room policy, and the room is as it was.
	t.Run("a_non-admin_removing_another_user", func(t *testing.T) {
		before := views()
		err := bob.Remove(ctx, room, "alice")
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 403 || ae.Code != "forbidden" || ae.Message == "" || ae.RequestID == "" {
			t.Fatalf("bob removing alice: %v", err)
		}
		if !bytes.Contains(p.logs.Bytes(), []byte("request_id="+ae.RequestID)) {
			t.Errorf("request %s is not in the provider's log", ae.RequestID)
		}
		if after := views(); after != before {
			t.Errorf("the refused commit changed the provider's state:\n%s", diff(before, after))
		}
		// And the room still works for both.
		bob.sync(ctx)
		bob.send(ctx, room, "sorry")
		alice.sync(ctx)
		expectMessages(t, alice, room, []string{"bob: sorry"})
		expectMessages(t, bob, room, []string{"alice: hello"})
	})

	// A refused registration does not use up its code.
	p.expectError(register(spareCode, "phone")(), 409, "conflict")
	if r := register(spareCode, "tablet")(); r.status != 201 {
		t.Fatalf("registering with the spare code after a conflict: %d %s", r.status, r.body)
	}
}

// TestExpiredSessionIsUnauthenticated: a token past the provider's
// SessionTTL is refused like an unknown one, changes nothing, and signing
// in again works.
func TestExpiredSessionIsUnauthenticated(t *testing.T) {
	// Long enough for the device to register and get its credential on
	// a slow machine (under -race) before its first session runs out.
	const ttl = 2 * time.Second
	p := newProvider(t, provider.Config{SessionTTL: ttl})
	d := p.newRawDevice("alice", "phone")
	kp, _ := json.Marshal(map[string]any{"key_packages": [][]byte{d.keyPackage(d.cred, d.signer)}})
	old := d.token
	eventually(t, "the session to expire", func() bool {
		return p.request("GET", "/v1/me", old, "", nil).status == 401
	})
	before := p.dump()
	p.expectError(p.request("POST", "/v1/me/keypackages", old, "application/json", kp), 401, "unauthenticated")
	if after := p.dump(); after != before {
		t.Errorf("the refused upload changed the provider's state:\n%s", diff(before, after))
	}
	d.signIn()
	var stock struct {
		Available map[string]int `json:"available"`
	}
	p.call("GET", "/v1/me/keypackages", d.token, nil, &stock)
	if len(stock.Available) != 0 {
		t.Fatalf("stock %v after a refused upload", stock.Available)
	}
}

// TestRestartMidConversation stops the provider and starts it again on
// the same data directory (a new store, server and listener) twice in
// the middle of a three-person conversation: once with messages queued for
// a device that has not fetched them, once right after a commit, while
// another device streams throughout. Nothing the provider acknowledged is
// lost, nothing shows twice, each device sees the room's order, and the
// room goes on, commits included.
func TestRestartMidConversation(t *testing.T) {
	ctx := testContext(t)
	p := newProvider(t, provider.Config{})
	alice := p.newSDKDevice(ctx, "alice", "phone")
	bob := p.newSDKDevice(ctx, "bob", "phone")
	carol := p.newSDKDevice(ctx, "carol", "phone")
	room, err := alice.CreateRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"bob", "carol"} {
		if err := alice.Invite(ctx, room, h); err != nil {
			t.Fatal(err)
		}
	}
	// bob streams over the WebSocket and must ride out the restarts;
	// alice and carol fetch over HTTP when they choose.
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- bob.Run(runCtx) }()
	defer func() {
		stopRun()
		if err := <-runDone; !errors.Is(err, context.Canceled) {
			t.Errorf("bob's Run: %v", err)
		}
	}()
	carol.sync(ctx)
	eventually(t, "bob and carol to join", func() bool { return bob.joined(room) && carol.joined(room) })

	// want[d] is what d must read: everything sent while d was in the
	// room, except d's own, in the order the provider accepted it.
	devices := map[string]*sdkDevice{"alice": alice, "bob": bob, "carol": carol}
	want := map[string][]string{}
	say := func(from, body string) {
		devices[from].send(ctx, room, body)
		for h := range devices {
			if h != from {
				want[h] = append(want[h], from+": "+body)
			}
		}
	}
	say("alice", "are we all here?")
	say("bob", "yes")
	say("carol", "me too")
	expectMessages(t, bob, room, want["bob"])
	alice.sync(ctx)
	// Queued for alice and carol but not fetched when the provider stops.
	say("bob", "one before the restart")
	say("alice", "and one from me")

	p.restart()

	carol.sync(ctx)
	alice.sync(ctx)
	expectMessages(t, carol, room, want["carol"])
	expectMessages(t, alice, room, want["alice"])
	expectMessages(t, bob, room, want["bob"])
	say("carol", "after the restart")

	// A commit: dave joins. Then the provider restarts at once.
	dave := p.newSDKDevice(ctx, "dave", "phone")
	if err := alice.Invite(ctx, room, "dave"); err != nil {
		t.Fatal(err)
	}
	devices["dave"] = dave

	p.restart()

	dave.sync(ctx)
	eventually(t, "dave to join", func() bool { return dave.joined(room) })
	carol.sync(ctx)
	say("dave", "hi, I am new")
	say("carol", "welcome dave")
	say("bob", "welcome")
	// One more commit after the restart, judged by the room state and
	// roles the new server loaded from the store: the admin removes carol.
	if err := alice.Remove(ctx, room, "carol"); err != nil {
		t.Fatal(err)
	}
	delete(devices, "carol")
	say("alice", "carol has left")
	for _, d := range []*sdkDevice{alice, carol, dave} {
		d.sync(ctx)
	}
	for h, d := range map[string]*sdkDevice{"alice": alice, "bob": bob, "carol": carol, "dave": dave} {
		expectMessages(t, d, room, want[h])
	}
	epoch, _ := alice.Epoch(room)
	rs, err := p.st.Room(ctx, string(room))
	if err != nil || rs.Epoch != epoch {
		t.Fatalf("the provider has the room in epoch %d (%v), alice in %d", rs.Epoch, err, epoch)
	}
	for _, d := range []*sdkDevice{bob, dave} {
		eventually(t, d.User()+" in alice's epoch", func() bool { e, _ := d.Epoch(room); return e == epoch })
	}
}

// TestNoPlaintextAtTheProvider: people chat with a random marker in every
// message; afterwards no byte of the provider's data directory (database,
// WAL, shared memory, CA files), nor of its debug-level log, contains
// the marker. To show that the search can fail, a second marker goes
// where the provider legitimately keeps it in the clear (a device name),
// and it is found in both.
func TestNoPlaintextAtTheProvider(t *testing.T) {
	ctx := testContext(t)
	p := newProvider(t, provider.Config{})
	secret := "PLAINTEXT-" + hex.EncodeToString(mls.RandomBytes(12))
	control := "ctl" + hex.EncodeToString(mls.RandomBytes(8))

	alice := p.newSDKDevice(ctx, "alice", "phone")
	bob := p.newSDKDevice(ctx, "bob", control)
	carol := p.newSDKDevice(ctx, "carol", "phone")
	room, err := alice.CreateRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"bob", "carol"} {
		if err := alice.Invite(ctx, room, h); err != nil {
			t.Fatal(err)
		}
	}
	bob.sync(ctx)
	carol.sync(ctx)
	bodies := []string{
		secret,
		"the code is " + secret + ", keep it",
		strings.Repeat(secret+" ", 200), // long enough to span pages and padding blocks
	}
	for _, b := range bodies {
		alice.send(ctx, room, b)
		bob.send(ctx, room, "re: "+b)
	}
	// A commit after the messages, so the log holds both kinds.
	if err := alice.Remove(ctx, room, "carol"); err != nil {
		t.Fatal(err)
	}
	bob.sync(ctx)
	alice.sync(ctx)
	var fromAlice []string
	for _, b := range bodies {
		fromAlice = append(fromAlice, "alice: "+b)
	}
	expectMessages(t, bob, room, fromAlice)
	if len(alice.messages(room)) != len(bodies) {
		t.Fatalf("alice got %d messages", len(alice.messages(room)))
	}

	scan := func(when string) {
		t.Helper()
		files := map[string][]byte{"log": p.logs.Bytes()}
		filepath.WalkDir(p.dir, func(path string, e os.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if !e.IsDir() {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				files[filepath.Base(path)] = data
			}
			return nil
		})
		if _, ok := files["provider.db"]; !ok {
			t.Fatalf("%s: no provider.db among %d files", when, len(files))
		}
		var foundControl []string
		for name, data := range files {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s: the message marker is in %s", when, name)
			}
			if bytes.Contains(data, []byte(control)) {
				foundControl = append(foundControl, name)
			}
		}
		if !containsString(foundControl, "log") || len(foundControl) < 2 {
			t.Errorf("%s: the device name marker was found only in %v: the search cannot be trusted", when, foundControl)
		}
		t.Logf("%s: searched %d files and %d bytes of log; device name found in %v", when, len(files)-1, len(files["log"]), foundControl)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "provider.db-wal")); err != nil {
		t.Errorf("no WAL while running: %v", err)
	}
	scan("running")
	p.stop()
	scan("stopped")
	p.start()
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestOperationsEndpoints: /healthz, /readyz (503 once draining) and the
// documented /metrics series.
func TestOperationsEndpoints(t *testing.T) {
	ctx := testContext(t)
	p := newProvider(t, provider.Config{})
	if r := p.request("GET", "/healthz", "", "", nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	if r := p.request("GET", "/readyz", "", "", nil); r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	// Traffic, so that every series has samples: a chat over the stream,
	// and one refused request.
	alice := p.newSDKDevice(ctx, "alice", "phone")
	bob := p.newSDKDevice(ctx, "bob", "phone")
	room, _ := alice.CreateRoom(ctx)
	if err := alice.Invite(ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go bob.Run(runCtx)
	eventually(t, "bob's stream", func() bool { v, _ := p.metric("switchboard_streams_open"); return v == 1 })
	alice.send(ctx, room, "hi")
	expectMessages(t, bob, room, []string{"alice: hi"})
	p.request("GET", "/v1/me", "bad", "", nil)

	series := []struct {
		name   string
		labels []string
		min    float64
	}{
		{"switchboard_requests_total", []string{`handler="submit"`, `code="ok"`}, 2},
		{"switchboard_requests_total", []string{`handler="me"`, `code="unauthenticated"`}, 1}, // errors by code
		{"switchboard_messages_accepted_total", []string{`kind="commit"`}, 1},
		{"switchboard_messages_accepted_total", []string{`kind="welcome"`}, 1},
		{"switchboard_messages_accepted_total", []string{`kind="application"`}, 1},
		{"switchboard_deliveries_sent_total", nil, 2},
		{"switchboard_streams_open", nil, 1},
		{"switchboard_submit_seconds_count", nil, 2},
	}
	for _, s := range series {
		v, ok := p.metric(s.name, s.labels...)
		if !ok || v < s.min {
			t.Errorf("%s%v = %v (present: %v), want at least %v", s.name, s.labels, v, ok, s.min)
		}
	}
	// docs/api.md also promises queue depths; there is no such series yet
	// (reported, not tested).

	code := p.enroll("carol")
	p.srv.Drain()
	r := p.request("GET", "/readyz", "", "", nil)
	p.expectError(r, 503, "unavailable")
	// Draining refuses all new work, not only signed-in requests: a new
	// device neither registers nor signs in, and its code stays unused.
	before := p.dump()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	reg, _ := json.Marshal(map[string]any{"enrollment_code": code, "device_name": "phone", "auth_key": []byte(pub)})
	p.expectError(p.request("POST", "/v1/devices", "", "application/json", reg), 503, "unavailable")
	ch, _ := json.Marshal(map[string]any{"auth_key": []byte(pub)})
	p.expectError(p.request("POST", "/v1/auth/challenge", "", "application/json", ch), 503, "unavailable")
	if after := p.dump(); after != before {
		t.Errorf("requests refused while draining changed the provider's state:\n%s", diff(before, after))
	}
	if r := p.request("GET", "/healthz", "", "", nil); r.status != 200 {
		t.Fatalf("healthz while draining: %d", r.status)
	}
	eventually(t, "the stream to close", func() bool { v, _ := p.metric("switchboard_streams_open"); return v == 0 })
}

// gatedStore is the real store with a gate in front of Submit: while the
// gate is set, Submit waits, so that a test can hold a request in flight.
type gatedStore struct {
	store.Store
	mu      sync.Mutex
	hold    bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) Submit(ctx context.Context, s store.Submission) (store.SubmitResult, error) {
	g.mu.Lock()
	hold := g.hold
	g.hold = false
	g.mu.Unlock()
	if hold {
		close(g.entered)
		<-g.release
	}
	return g.Store.Submit(ctx, s)
}

// holdNext makes the next Submit wait until the returned release is
// called; entered is closed when it starts waiting.
func (g *gatedStore) holdNext() (entered <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold, g.entered, g.release = true, make(chan struct{}), make(chan struct{})
	return g.entered, func() { close(g.release) }
}

// TestGracefulShutdown drains the provider while a device streams and a
// message is being submitted: the stream closes, new work is refused with
// 503, the submit in flight completes and is acknowledged, and after the
// provider comes back the streaming device gets it, once.
func TestGracefulShutdown(t *testing.T) {
	ctx := testContext(t)
	var gate *gatedStore
	p := newProviderWith(t, provider.Config{}, func(s store.Store) store.Store {
		gate = &gatedStore{Store: s}
		return gate
	})
	alice := p.newSDKDevice(ctx, "alice", "phone")
	bob := p.newSDKDevice(ctx, "bob", "phone")
	room, _ := alice.CreateRoom(ctx)
	if err := alice.Invite(ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go bob.Run(runCtx)
	eventually(t, "bob's stream", func() bool { v, _ := p.metric("switchboard_streams_open"); return v == 1 })
	alice.send(ctx, room, "one")
	alice.send(ctx, room, "two")
	expectMessages(t, bob, room, []string{"alice: one", "alice: two"})

	entered, release := gate.holdNext()
	sent := make(chan error, 1)
	go func() {
		_, err := alice.Send(ctx, room, []byte("in flight"))
		sent <- err
	}()
	<-entered
	p.srv.Drain()
	eventually(t, "bob's stream to close", func() bool { v, _ := p.metric("switchboard_streams_open"); return v == 0 })
	p.expectError(p.request("GET", "/v1/me", "", "", nil), 503, "unavailable")
	p.expectError(p.request("GET", "/readyz", "", "", nil), 503, "unavailable")
	// bob keeps trying to reconnect and is refused: still no stream.
	if v, _ := p.metric("switchboard_streams_open"); v != 0 {
		t.Fatalf("%v streams open while draining", v)
	}
	// The operator's shutdown goes on as `switchboard serve` does it:
	// the listener closes at once, and the server waits for the request
	// in flight, which the store now lets through.
	stopped := make(chan struct{})
	go func() { p.stop(); close(stopped) }()
	eventually(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", p.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	release()
	if err := <-sent; err != nil {
		t.Fatalf("the submit in flight during the shutdown: %v", err)
	}
	<-stopped
	p.start()
	alice.send(ctx, room, "after the restart")
	expectMessages(t, bob, room, []string{"alice: one", "alice: two", "alice: in flight", "alice: after the restart"})
}

// diff shows the lines of b that are not in a, and the other way round.
func diff(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	in := func(list []string, s string) bool { return containsString(list, s) }
	var out strings.Builder
	for _, l := range as {
		if !in(bs, l) {
			out.WriteString("- " + l + "\n")
		}
	}
	for _, l := range bs {
		if !in(as, l) {
			out.WriteString("+ " + l + "\n")
		}
	}
	return out.String()
}

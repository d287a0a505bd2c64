package provider_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
)

// The scenarios of this file are attacks by people who hold an account
// (docs/security.md): a member of a room, or one of their devices, sends
// what a well-behaved SDK never would. Each is refused with its documented
// code and leaves every table of the provider as it was.

// attackRoom is a room mallory's phone hosts here, with her laptop and
// victor added by her first commit: leaf 0 is the phone (the room's
// admin), leaf 1 the laptop, leaf 2 victor.
type attackRoom struct {
	p                     *testProvider
	phone, laptop, victor *rawDevice
	group                 *mls.Group
	id                    string
	phoneLeaf, laptopLeaf mls.LeafIndex
	victorLeaf            mls.LeafIndex
	views                 func() string
}

func newAttackRoom(t *testing.T) *attackRoom {
	t.Helper()
	p := newProvider(t, provider.Config{})
	a := &attackRoom{p: p, phone: p.newRawDevice("mallory", "phone"), laptop: p.newRawDevice("mallory", "laptop"),
		victor: p.newRawDevice("victor", "phone")}
	a.laptop.uploadKeyPackages(1)
	a.victor.uploadKeyPackages(1)
	a.group, a.id = a.phone.createRoom()
	res, err := a.group.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{
		{Type: mls.ProposalAdd, Add: a.phone.claim("mallory")[0]},
		{Type: mls.ProposalAdd, Add: a.phone.claim("victor")[0]},
	}, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	p.call("POST", "/v1/rooms/"+a.id+"/messages", a.phone.token, map[string]any{
		"client_id": "add-laptop-and-victor", "message": mls.Marshal(res.Commit), "welcome": mls.Marshal(res.Welcome)}, nil)
	if _, err := a.group.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	a.phoneLeaf, a.laptopLeaf, a.victorLeaf = 0, 1, 2
	a.views = func() string {
		return p.dump() + a.phone.view(a.id) + a.laptop.view(a.id) + a.victor.view(a.id)
	}
	return a
}

// proposal frames p as a PublicMessage of the room's current epoch that
// claims to come from leaf sender, signed with signer (which may not be
// that leaf's key). The membership tag is noise: only members know the
// membership key, so the hub cannot check it and does not rely on it.
func (a *attackRoom) proposal(t *testing.T, signer *mls.SignaturePrivateKey, sender mls.LeafIndex, p *mls.Proposal) []byte {
	t.Helper()
	gctx := a.group.Context()
	ac, err := mls.SignContent(a.phone.suite, signer, mls.WireFormatPublicMessage, &mls.FramedContent{
		GroupID: a.group.GroupID(), Epoch: a.group.Epoch(), Sender: mls.Sender{Type: mls.SenderMember, Leaf: sender},
		ContentType: mls.ContentProposal, Proposal: p,
	}, &gctx)
	if err != nil {
		t.Fatal(err)
	}
	return mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatPublicMessage,
		Public: &mls.PublicMessage{Content: ac.Content, Auth: ac.Auth, MembershipTag: mls.RandomBytes(a.phone.suite.HashSize())}})
}

// TestMemberCannotSendAsAnotherMember: victor, a plain member, wants the
// admin's rights. He signs a proposal as if from the admin's leaf with his
// own key, then sends one the admin really signed (as if captured) with
// his own token; mallory's laptop sends her phone's signed proposal with
// the laptop's token. The hub checks every handshake message's signature
// against the leaf it names and that leaf against the device whose token
// sent it, so each is refused and nothing changes. The genuine proposal,
// sent by the phone, is then accepted: the refusals were for who sent it.
func TestMemberCannotSendAsAnotherMember(t *testing.T) {
	a := newAttackRoom(t)
	removeLaptop := &mls.Proposal{Type: mls.ProposalRemove, Remove: a.laptopLeaf}
	forged := a.proposal(t, a.victor.signer, a.phoneLeaf, removeLaptop)
	genuine := a.proposal(t, a.phone.signer, a.phoneLeaf, removeLaptop)

	cases := []struct {
		name   string
		by     *rawDevice
		msg    []byte
		status int
		code   string
	}{
		{"a proposal claiming the admin's leaf, signed with victor's key", a.victor, forged, 400, "invalid_message"},
		{"the admin's signed proposal, sent with victor's token", a.victor, genuine, 403, "forbidden"},
		{"the phone's signed proposal, sent with the laptop's token", a.laptop, genuine, 403, "forbidden"},
		{"victor's forged proposal, sent with the phone's token", a.phone, forged, 400, "invalid_message"},
	}
	for i, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			before := a.views()
			a.p.expectError(c.by.submit(a.id, "attack-"+strconv.Itoa(i)+"-as-another", c.msg), c.status, c.code)
			if after := a.views(); after != before {
				t.Errorf("the refused message changed the provider's state:\n%s", diff(before, after))
			}
		})
	}
	if r := a.phone.submit(a.id, "the-real-proposal", genuine); r.status != 200 {
		t.Fatalf("the admin's own proposal, from her phone: %d %s", r.status, r.body)
	}
}

// TestOneDevicesTokenActsOnlyForThatDevice: mallory's laptop token is
// used against her phone. Signing in needs the device's own key; what the
// laptop's token acknowledges or signs out is the laptop's alone.
func TestOneDevicesTokenActsOnlyForThatDevice(t *testing.T) {
	a := newAttackRoom(t)
	p := a.p
	phonePub := a.phone.authKey.Public().(ed25519.PublicKey)

	t.Run("a challenge for the phone's key, answered with the laptop's", func(t *testing.T) {
		var ch struct {
			Challenge []byte `json:"challenge"`
		}
		p.call("POST", "/v1/auth/challenge", "", map[string]any{"auth_key": []byte(phonePub)}, &ch)
		sig := ed25519.Sign(a.laptop.authKey, provider.SignInMessage(domain, ch.Challenge))
		body, _ := json.Marshal(map[string]any{"auth_key": []byte(phonePub), "challenge": ch.Challenge, "signature": sig})
		before := a.views()
		p.expectError(p.request("POST", "/v1/auth/session", "", "application/json", body), 401, "unauthenticated")
		if after := a.views(); after != before {
			t.Errorf("the refused sign-in changed the provider's state:\n%s", diff(before, after))
		}
	})

	t.Run("the laptop acknowledging everything leaves the phone's queue", func(t *testing.T) {
		phoneBefore, victorBefore := a.phone.view(a.id), a.victor.view(a.id)
		p.call("POST", "/v1/inbox/ack", a.laptop.token, map[string]any{"cursor": 1 << 40}, nil)
		if after := a.phone.view(a.id); after != phoneBefore {
			t.Errorf("the laptop's ack changed what the phone sees:\n%s", diff(phoneBefore, after))
		}
		if after := a.victor.view(a.id); after != victorBefore {
			t.Errorf("the laptop's ack changed what victor sees:\n%s", diff(victorBefore, after))
		}
	})

	t.Run("the laptop signing out leaves the phone signed in", func(t *testing.T) {
		p.call("DELETE", "/v1/auth/session", a.laptop.token, nil, nil)
		p.expectError(p.request("GET", "/v1/me", a.laptop.token, "", nil), 401, "unauthenticated")
		if r := p.request("GET", "/v1/me", a.phone.token, "", nil); r.status != 200 {
			t.Fatalf("the phone after the laptop signed out: %d %s", r.status, r.body)
		}
	})
}

// TestDeeplyNestedJSONIsRefused: bodies nested far deeper than any
// request needs, within the size limit, to an endpoint that needs no
// account and to one that does. encoding/json stops at its depth limit
// long before the stack is at risk: bad_request, nothing stored.
func TestDeeplyNestedJSONIsRefused(t *testing.T) {
	p := newProvider(t, provider.Config{})
	mallory := p.newRawDevice("mallory", "phone")
	const depth = 100_000 // 200 KB: under the default 1 MiB body limit
	arrays := `{"key_packages":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
	objects := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
	for _, c := range []struct {
		name, path, token, body string
	}{
		{"arrays, uploading KeyPackages", "/v1/me/keypackages", mallory.token, arrays},
		{"objects, uploading KeyPackages", "/v1/me/keypackages", mallory.token, objects},
		{"arrays, registering a device", "/v1/devices", "", `{"enrollment_code":` + arrays[len(`{"key_packages":`):]},
		{"objects, asking for a challenge", "/v1/auth/challenge", "", objects},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			before := p.dump() + mallory.view()
			p.expectError(p.request("POST", c.path, c.token, "application/json", []byte(c.body)), 400, "bad_request")
			if after := p.dump() + mallory.view(); after != before {
				t.Errorf("the refused body changed the provider's state:\n%s", diff(before, after))
			}
		})
	}
}

// TestKeyPackageOfAWelcomeUsedAgain: mallory claimed one of victor's
// KeyPackages and added him to her room with it. She then adds him to a
// second room with the very same KeyPackage instead of claiming a fresh
// one (which is where blocks and the claim limits apply). RFC 9420 §16.8:
// a KeyPackage other than a last-resort one is used once, so the hub
// refuses the commit (key_package_used) and victor's view is unchanged;
// with a fresh claim she can add him again.
func TestKeyPackageOfAWelcomeUsedAgain(t *testing.T) {
	p := newProvider(t, provider.Config{})
	mallory := p.newRawDevice("mallory", "phone")
	victor := p.newRawDevice("victor", "phone")
	victor.uploadKeyPackages(2)
	kp := mallory.claim("victor")[0]

	add := func(clientID string) (string, response) {
		g, room := mallory.createRoom()
		res, err := g.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalAdd, Add: kp}}, InlineTree: true})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]any{"client_id": clientID, "message": mls.Marshal(res.Commit), "welcome": mls.Marshal(res.Welcome)})
		return room, p.request("POST", "/v1/rooms/"+room+"/messages", mallory.token, "application/json", body)
	}
	if _, r := add("add-victor-first"); r.status != 200 {
		t.Fatalf("adding victor with a claimed KeyPackage: %d %s", r.status, r.body)
	}
	before := victor.view()
	second, r := add("add-victor-again")
	p.expectError(r, 409, "key_package_used")
	if after := victor.view(); after != before {
		t.Errorf("the refused Welcome changed victor's view:\n%s", diff(before, after))
	}
	if r := p.request("GET", "/v1/rooms/"+second, victor.token, "", nil); r.status != 404 {
		t.Errorf("victor sees the second room: %d %s", r.status, r.body)
	}
	// A fresh claim adds him.
	kp = mallory.claim("victor")[0]
	if _, r := add("add-victor-fresh"); r.status != 200 {
		t.Fatalf("adding victor with a fresh KeyPackage: %d %s", r.status, r.body)
	}
}

// TestSlowBodyIsCutOff: a client sends its headers, then its body a
// byte at a time and stops. Once BodyTimeout has passed the provider
// answers bad_request and closes the connection, instead of holding it
// (and a goroutine) for as long as the client likes. A body that arrives
// whole, however slowly, within the time is served as usual.
func TestSlowBodyIsCutOff(t *testing.T) {
	p := newProvider(t, provider.Config{BodyTimeout: time.Second})
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	body, _ := json.Marshal(map[string]any{"auth_key": []byte(pub)})
	before := p.dump()

	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/auth/challenge HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", p.addr, len(body))
	conn.Write(body[:3])
	// Not a timed assertion: a bound so that a provider that never cuts
	// the client off fails the test rather than hanging it.
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the provider did not answer the stalled body: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("the stalled body was answered %d, want 400", resp.StatusCode)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the answer the connection is still open (read: %v)", err)
	}
	if after := p.dump(); after != before {
		t.Errorf("the stalled request changed the provider's state:\n%s", diff(before, after))
	}

	// A whole body, sent in pieces, is served.
	conn2, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	fmt.Fprintf(conn2, "POST /v1/auth/challenge HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", p.addr, len(body))
	for _, b := range body {
		conn2.Write([]byte{b})
	}
	conn2.SetReadDeadline(time.Now().Add(time.Minute))
	resp, err = http.ReadResponse(bufio.NewReader(conn2), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a whole body sent byte by byte: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestKeyPackageNotBoundToItsProviderIsNotAdded: mallory adds to her room
// KeyPackages she made herself, with credentials that no trusted CA
// issued: one naming a user of red.example, which is no partner, and one
// naming victor of this very provider, from an impostor CA for
// green.test. The hub verifies every added leaf's credential against
// this provider's CA or the named partner's: forbidden, nothing stored,
// and no Welcome reaches victor.
func TestKeyPackageNotBoundToItsProviderIsNotAdded(t *testing.T) {
	p := newProvider(t, provider.Config{})
	mallory := p.newRawDevice("mallory", "phone")
	victor := p.newRawDevice("victor", "phone")
	group, room := mallory.createRoom()
	for _, c := range []struct{ name, ca, handle string }{
		{"a user of a provider that is no partner", "red.example", "carol"},
		{"a user of this provider, from an impostor CA", domain, "victor"},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			ca, err := identity.NewCA(c.ca)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := mallory.suite.GenerateSignatureKey()
			if err != nil {
				t.Fatal(err)
			}
			cred, err := ca.IssueDevice(mallory.suite, signer.PublicKey(), c.handle, "phone", time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			kp, err := mls.NewKeyPackage(mallory.suite, signer, cred, mls.KeyPackageOptions{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := group.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalAdd, Add: kp.KeyPackage}}, InlineTree: true})
			if err != nil {
				t.Fatal(err)
			}
			group.ClearPendingCommit()
			body, _ := json.Marshal(map[string]any{"client_id": "add-unbound-" + c.handle, "message": mls.Marshal(res.Commit), "welcome": mls.Marshal(res.Welcome)})
			before := p.dump() + mallory.view(room) + victor.view()
			p.expectError(p.request("POST", "/v1/rooms/"+room+"/messages", mallory.token, "application/json", body), 403, "forbidden")
			if after := p.dump() + mallory.view(room) + victor.view(); after != before {
				t.Errorf("the refused commit changed the provider's state:\n%s", diff(before, after))
			}
		})
	}
}

// TestRoomsRacingForOneKeyPackage: mallory claimed one of victor's
// KeyPackages and sends eight commits adding him with it, each to a room
// of her own, all at the same instant. The hub checks each Welcome's
// KeyPackages before it writes, and eight checks can all pass before any
// write; the store's mark is the check that counts, so exactly one room
// gets him and the seven others are refused with key_package_used, their
// rooms unmoved. Victor's phone has one Welcome.
func TestRoomsRacingForOneKeyPackage(t *testing.T) {
	const n = 8
	p := newProvider(t, provider.Config{})
	mallory := p.newRawDevice("mallory", "phone")
	victor := p.newRawDevice("victor", "phone")
	victor.uploadKeyPackages(2)
	kp := mallory.claim("victor")[0]

	rooms := make([]string, n)
	bodies := make([][]byte, n)
	for i := range rooms {
		g, room := mallory.createRoom()
		res, err := g.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalAdd, Add: kp}}, InlineTree: true})
		if err != nil {
			t.Fatal(err)
		}
		rooms[i] = room
		bodies[i], _ = json.Marshal(map[string]any{"client_id": "add-victor", "message": mls.Marshal(res.Commit), "welcome": mls.Marshal(res.Welcome)})
	}
	type answer struct {
		status int
		code   string
		err    error
	}
	answers := make([]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range rooms {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", p.url+"/v1/rooms/"+rooms[i]+"/messages", bytes.NewReader(bodies[i]))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+mallory.token)
			<-start
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			var e struct {
				Error struct{ Code string } `json:"error"`
			}
			json.NewDecoder(resp.Body).Decode(&e)
			answers[i] = answer{status: resp.StatusCode, code: e.Error.Code}
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, a := range answers {
		var room struct {
			Epoch uint64 `json:"epoch"`
		}
		p.call("GET", "/v1/rooms/"+rooms[i], mallory.token, nil, &room)
		switch {
		case a.err != nil:
			t.Fatalf("room %d: %v", i, a.err)
		case a.status == 200:
			won++
			if room.Epoch != 1 {
				t.Errorf("room %d accepted the commit but is in epoch %d", i, room.Epoch)
			}
		case a.status == 409 && a.code == "key_package_used":
			if room.Epoch != 0 {
				t.Errorf("room %d refused the commit but moved to epoch %d", i, room.Epoch)
			}
		default:
			t.Errorf("room %d answered %d %s, want 200 or 409 key_package_used", i, a.status, a.code)
		}
	}
	if won != 1 {
		t.Fatalf("%d rooms added victor with one KeyPackage, want exactly one", won)
	}
	welcomes := 0
	for _, room := range rooms {
		if r := p.request("GET", "/v1/rooms/"+room, victor.token, "", nil); r.status == 200 {
			welcomes++
		}
	}
	if welcomes != 1 {
		t.Errorf("victor is in %d of the rooms, want 1", welcomes)
	}
}

package provider

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// TestFederationConsentEndpoints: a partner's user asks alice for consent
// (a message request), cancels, asks again once alice blocked them (an
// answer like any other, and nothing kept), and grants and revokes their
// own consent for alice; keyMaterial for alice is noConsent to someone
// she blocked. Bad entries change nothing.
func TestFederationConsentEndpoints(t *testing.T) {
	green, blue := newFedNode(t, "green.example"), newFedNode(t, "blue.example")
	endpoint := green.serveFederation(t, loadTrust(t, blue.entry("https://blue.invalid")))
	bluePeers := blue.peers(t, loadTrust(t, green.entry(endpoint)))
	green.addDevice(t, "alice", "", "phone", 2, false)
	ctx := context.Background()
	aliceUser, err := green.st.UserByHandle(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	const alice, bob, carol = "mimi://green.example/u/alice", "mimi://blue.example/u/bob", "mimi://blue.example/u/carol"
	esc := func(s string) string { return strings.NewReplacer(":", "%3A", "/", "%2F").Replace(s) }
	entry := func(op federation.ConsentOperation, requester, target, room string) []byte {
		return mls.Marshal(&federation.ConsentEntry{ConsentOperation: op, RequesterURI: federation.IdentifierURI(requester),
			TargetURI: federation.IdentifierURI(target), RoomID: federation.IdentifierURI(room)})
	}
	created := func(path string, body []byte) {
		t.Helper()
		if resp := post(t, bluePeers, path, body); resp.Status != http.StatusCreated {
			t.Fatalf("%s: %d %s", path, resp.Status, resp.Body)
		}
	}
	requests := func() []string {
		t.Helper()
		rs, err := green.st.Requests(ctx, aliceUser.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.Peer+" "+r.RoomID)
		}
		return out
	}
	contact := func(peer string) store.ContactState {
		t.Helper()
		st, err := green.st.Contact(ctx, aliceUser.ID, peer)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	ask := "/mimi/requestConsent/" + esc(alice)
	update := "/mimi/updateConsent/" + esc(alice)

	// Bob asks, for a room and without one: two requests.
	created(ask, entry(federation.ConsentRequest, bob, alice, "mimi://blue.example/r/tea"))
	created(ask, entry(federation.ConsentRequest, bob, alice, ""))
	if got, want := requests(), []string{bob + " tea", bob + " "}; !slices.Equal(got, want) {
		t.Fatalf("alice's requests %q, want %q", got, want)
	}
	// He cancels one; a cancel of nothing is answered the same.
	created(ask, entry(federation.ConsentCancel, bob, alice, "mimi://blue.example/r/tea"))
	created(ask, entry(federation.ConsentCancel, bob, alice, "mimi://blue.example/r/tea"))
	if got, want := requests(), []string{bob + " "}; !slices.Equal(got, want) {
		t.Fatalf("after the cancel, alice's requests %q, want %q", got, want)
	}
	// A room that is not a room URI is refused and changes nothing.
	wantRefused(t, post(t, bluePeers, ask, entry(federation.ConsentRequest, bob, alice, "mimi://blue.example/u/tea")), http.StatusBadRequest, "bad_request")
	wantRefused(t, post(t, bluePeers, update, entry(federation.ConsentGrant, alice, bob, "mimi://blue.example/u/tea")), http.StatusBadRequest, "bad_request")
	if got := requests(); len(got) != 1 || contact(bob) != store.ContactNone {
		t.Fatalf("a refused entry changed alice's requests %q or contact %q", got, contact(bob))
	}

	// Alice blocks carol: carol's request is answered 201 like any other
	// and dropped.
	if err := green.st.SetContact(ctx, aliceUser.ID, carol, store.ContactBlocked, time.Now()); err != nil {
		t.Fatal(err)
	}
	created(ask, entry(federation.ConsentRequest, carol, alice, "mimi://blue.example/r/cake"))
	if got := requests(); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, carol) }) {
		t.Errorf("a blocked requester's request was kept: %q", got)
	}
	// Her grant does not lift the block, nor does her revoke.
	created(update, entry(federation.ConsentGrant, alice, carol, ""))
	created(update, entry(federation.ConsentRevoke, alice, carol, ""))
	if st := contact(carol); st != store.ContactBlocked {
		t.Errorf("carol's grant and revoke left her %q, want blocked", st)
	}
	// keyMaterial: noConsent for carol, nothing claimed.
	before, _ := green.st.CountKeyPackages(ctx, green.deviceID(t, "alice", "phone"), uint16(mls.X25519AES128GCMSHA256Ed25519))
	resp := post(t, bluePeers, "/mimi/keyMaterial/"+esc(alice), mls.Marshal(blue.keyMaterialRequest(t, "carol", alice)))
	var km federation.KeyMaterialResponse
	if err := mls.Unmarshal(resp.Body, &km); resp.Status != http.StatusOK || err != nil || km.UserStatus != federation.KeyMaterialNoConsent || len(km.Clients) != 0 {
		t.Errorf("keyMaterial for a blocked requester: %d %+v %v, want noConsent", resp.Status, km, err)
	}
	if after, _ := green.st.CountKeyPackages(ctx, green.deviceID(t, "alice", "phone"), uint16(mls.X25519AES128GCMSHA256Ed25519)); after != before {
		t.Errorf("%d KeyPackages claimed for a blocked requester", before-after)
	}

	// Bob grants: he is alice's contact, and his pending request is gone.
	created(update, entry(federation.ConsentGrant, alice, bob, ""))
	if st := contact(bob); st != store.ContactAccepted {
		t.Errorf("after bob's grant, he is %q", st)
	}
	if got := requests(); len(got) != 0 {
		t.Errorf("after bob's grant, alice's requests %q", got)
	}
	// A new request of his is not needed and not kept.
	created(ask, entry(federation.ConsentRequest, bob, alice, ""))
	if got := requests(); len(got) != 0 {
		t.Errorf("a request of an accepted contact was kept: %q", got)
	}
	// He revokes: the acceptance is gone.
	created(update, entry(federation.ConsentRevoke, alice, bob, ""))
	if st := contact(bob); st != store.ContactNone {
		t.Errorf("after bob's revoke, he is %q", st)
	}
}

// deviceID finds one of a node's devices.
func (n *fedNode) deviceID(t *testing.T, handle, name string) int64 {
	t.Helper()
	u, err := n.st.UserByHandle(context.Background(), handle)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := n.st.DevicesOfUser(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Name == name {
			return d.ID
		}
	}
	t.Fatalf("no device %s of %s", name, handle)
	return 0
}

package provider_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
)

// The hub franks a message whose AAD carries a franking tag: the sender's
// answer, the log and a retry all give the same frank and acceptance
// time, and the frank verifies with the key GET /v1/provider publishes,
// also after a restart; messages without a tag get no frank.
func TestHubFranksTaggedMessages(t *testing.T) {
	p := newProvider(t, provider.Config{})
	alice := p.newRawDevice("alice", "phone")
	g, room := alice.createRoom()

	msg := content.Text("franked hello")
	if err := msg.SetExtension(content.SenderURIKey, "mimi://"+domain+"/u/alice"); err != nil {
		t.Fatal(err)
	}
	body, err := msg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tag := federation.FrankingTag(msg.Salt[:], body)
	franked, err := g.Encrypt(body, federation.FrankAAD(tag))
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		Seq      int64  `json:"seq"`
		Frank    []byte `json:"frank"`
		Accepted uint64 `json:"accepted_timestamp"`
	}
	var first, again answer
	r := alice.submit(room, "franked-0001", mls.Marshal(franked))
	if r.status != 200 || json.Unmarshal(r.body, &first) != nil || len(first.Frank) == 0 || first.Accepted == 0 {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	// A retry gets the first answer, frank and time included.
	r = alice.submit(room, "franked-0001", mls.Marshal(franked))
	if json.Unmarshal(r.body, &again) != nil || !bytes.Equal(again.Frank, first.Frank) || again.Accepted != first.Accepted || again.Seq != first.Seq {
		t.Fatalf("retry: %s, first %+v", r.body, first)
	}

	verify := func(when string) {
		t.Helper()
		var prov struct {
			Keys map[string][]byte `json:"franking_keys"`
		}
		p.call("GET", "/v1/provider", "", nil, &prov)
		f, err := federation.ParseFrank(first.Frank)
		if err != nil {
			t.Fatal(err)
		}
		ctx := federation.ServerFrankingContext{SenderURI: "mimi://" + domain + "/u/alice",
			RoomURI: federation.IdentifierURI("mimi://" + domain + "/r/" + room), AcceptedTimestamp: first.Accepted}
		if err := federation.VerifyFrank(f, prov.Keys["ed25519"], ctx); err != nil {
			t.Fatalf("%s: the frank does not verify with the published key: %v", when, err)
		}
		ctx.SenderURI = "mimi://" + domain + "/u/mallory"
		if err := federation.VerifyFrank(f, prov.Keys["ed25519"], ctx); err == nil {
			t.Fatalf("%s: the frank verifies for another sender", when)
		}
	}
	verify("at once")

	// Untagged and non-Safe-AAD messages are accepted without a frank.
	plain, err := g.Encrypt([]byte("not content"), nil)
	if err != nil {
		t.Fatal(err)
	}
	odd, err := g.Encrypt([]byte("not content"), []byte("some other AAD"))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range []*mls.MLSMessage{plain, odd} {
		var a answer
		r := alice.submit(room, "unfranked-000"+string(rune('1'+i)), mls.Marshal(m))
		if r.status != 200 || json.Unmarshal(r.body, &a) != nil || a.Frank != nil || a.Accepted == 0 {
			t.Fatalf("message %d without a tag: %d %s", i, r.status, r.body)
		}
	}

	// The log carries the same frank and time.
	var log struct {
		Messages []struct {
			Seq      int64  `json:"seq"`
			Frank    []byte `json:"frank"`
			Accepted uint64 `json:"accepted_timestamp"`
		} `json:"messages"`
	}
	p.call("GET", "/v1/rooms/"+room+"/messages?after=0&limit=10", alice.token, nil, &log)
	found := false
	for _, m := range log.Messages {
		if m.Seq == first.Seq {
			found = bytes.Equal(m.Frank, first.Frank) && m.Accepted == first.Accepted
		}
	}
	if !found {
		t.Fatalf("the log does not carry the frank: %+v", log)
	}

	// The hub's keys survive a restart: old franks still verify.
	p.restart()
	verify("after a restart")
}

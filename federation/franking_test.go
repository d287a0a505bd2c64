package federation_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
)

// The franking construction: a frank made by the hub verifies for its
// context only, and a Safe AAD carries the tag and survives other items.

func TestFrankVerifiesForItsContextOnly(t *testing.T) {
	for _, id := range mls.SupportedSuites {
		suite, err := mls.SuiteFor(id)
		if err != nil {
			t.Fatal(err)
		}
		key, err := suite.GenerateSignatureKey()
		if err != nil {
			t.Fatal(err)
		}
		hubKey := bytes.Repeat([]byte{7}, 32)
		content := []byte("the content")
		tag := federation.FrankingTag([]byte("0123456789abcdef"), content)
		ctx := federation.ServerFrankingContext{SenderURI: "mimi://green.example/u/alice", RoomURI: "mimi://green.example/r/abc", AcceptedTimestamp: 1767225600123}
		f, err := federation.MakeFrank(suite, id, key, hubKey, tag, ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := federation.VerifyFrank(f, key.PublicKey(), ctx); err != nil {
			t.Fatalf("suite %v: the hub's own frank: %v", id, err)
		}
		if sf := federation.ServerFrank(hubKey, tag, ctx); sf != f.ServerFrank {
			t.Fatalf("suite %v: the server frank is not HMAC(hub_key, tag || context)", id)
		}
		for name, other := range map[string]federation.ServerFrankingContext{
			"sender": {SenderURI: "mimi://green.example/u/mallory", RoomURI: ctx.RoomURI, AcceptedTimestamp: ctx.AcceptedTimestamp},
			"room":   {SenderURI: ctx.SenderURI, RoomURI: "mimi://green.example/r/xyz", AcceptedTimestamp: ctx.AcceptedTimestamp},
			"time":   {SenderURI: ctx.SenderURI, RoomURI: ctx.RoomURI, AcceptedTimestamp: ctx.AcceptedTimestamp + 1},
		} {
			if err := federation.VerifyFrank(f, key.PublicKey(), other); !errors.Is(err, federation.ErrFrank) {
				t.Errorf("suite %v: another %s verifies: %v", id, name, err)
			}
		}
		changed := *f
		changed.ServerFrank[0] ^= 1
		if err := federation.VerifyFrank(&changed, key.PublicKey(), ctx); !errors.Is(err, federation.ErrFrank) {
			t.Errorf("suite %v: a changed server frank verifies: %v", id, err)
		}
		back, err := federation.ParseFrank(mls.Marshal(f))
		if err != nil || !bytes.Equal(mls.Marshal(back), mls.Marshal(f)) {
			t.Fatalf("suite %v: the frank does not round-trip: %v", id, err)
		}
	}
}

func TestSafeAADCarriesTheFrankingTag(t *testing.T) {
	tag := federation.FrankingTag([]byte("salt"), []byte("content"))
	got, ok, err := federation.FrankingTagOf(federation.FrankAAD(tag))
	if err != nil || !ok || got != tag {
		t.Fatalf("FrankAAD's tag: %x %v %v", got, ok, err)
	}
	// Among other components, in order.
	aad := federation.MarshalSafeAAD([]federation.SafeAADItem{{Component: 3, Data: []byte("x")}, {Component: federation.FrankAADComponent, Data: tag[:]}, {Component: 0x100}})
	if got, ok, err := federation.FrankingTagOf(aad); err != nil || !ok || got != tag {
		t.Fatalf("the tag among other items: %x %v %v", got, ok, err)
	}
	// None: no AAD, or a Safe AAD without frank_aad.
	for _, aad := range [][]byte{nil, federation.MarshalSafeAAD(nil), federation.MarshalSafeAAD([]federation.SafeAADItem{{Component: 1}})} {
		if _, ok, err := federation.FrankingTagOf(aad); ok || err != nil {
			t.Errorf("FrankingTagOf(%x) = %v, %v; want none", aad, ok, err)
		}
	}
	for name, aad := range map[string][]byte{
		"short tag":  federation.MarshalSafeAAD([]federation.SafeAADItem{{Component: federation.FrankAADComponent, Data: tag[:31]}}),
		"unordered":  federation.MarshalSafeAAD([]federation.SafeAADItem{{Component: 0x30}, {Component: 0x20, Data: tag[:]}}),
		"repeated":   federation.MarshalSafeAAD([]federation.SafeAADItem{{Component: 0x20, Data: tag[:]}, {Component: 0x20, Data: tag[:]}}),
		"trailing":   append(federation.FrankAAD(tag), 0),
		"not at all": []byte("hello"),
	} {
		if _, _, err := federation.FrankingTagOf(aad); !errors.Is(err, federation.ErrSafeAAD) {
			t.Errorf("%s: %v, want ErrSafeAAD", name, err)
		}
	}
}

// FuzzSafeAAD: the Safe AAD decoder never panics, and what it accepts
// re-encodes to the same bytes (the encoding is canonical).
func FuzzSafeAAD(f *testing.F) {
	tag := federation.FrankingTag([]byte("salt"), []byte("content"))
	f.Add(federation.FrankAAD(tag))
	f.Add(federation.MarshalSafeAAD([]federation.SafeAADItem{{Component: 1, Data: []byte("a")}, {Component: 0x20, Data: tag[:]}}))
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{4, 0, 0x20, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := federation.ParseSafeAAD(data)
		_, _, _ = federation.FrankingTagOf(data)
		if err != nil {
			return
		}
		if got := federation.MarshalSafeAAD(items); !bytes.Equal(got, data) {
			t.Fatalf("accepted input re-encodes differently:\n in  %x\n out %x", data, got)
		}
	})
}

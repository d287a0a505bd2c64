package federation_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
)

// Every decoder must refuse malformed input with an error, never a panic,
// and whatever it accepts must re-encode to exactly the bytes it read: the
// encoding is canonical, and a follower deduplicates notify bodies by their
// bytes, so two encodings of one value would be a bug.

// seed adds the encodings of the test values of type T, plus a few scraps.
func seed[T any](f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 0, 0, 0})
	for _, c := range values(f) {
		if _, ok := c.v.(T); ok {
			f.Add(mls.Marshal(c.v))
		}
	}
}

func fuzzRoundTrip(t *testing.T, data []byte, v wireValue) {
	if err := mls.Unmarshal(data, v); err != nil {
		return
	}
	if got := mls.Marshal(v); !bytes.Equal(got, data) {
		t.Fatalf("accepted input re-encodes differently:\n in  %x\n out %x", data, got)
	}
}

func FuzzKeyMaterialRequest(f *testing.F) {
	seed[*federation.KeyMaterialRequest](f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(federation.KeyMaterialRequest)
		fuzzRoundTrip(t, data, m)
		_ = m.Verify() // must not panic on whatever decoded
	})
}

func FuzzKeyMaterialResponse(f *testing.F) {
	seed[*federation.KeyMaterialResponse](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.KeyMaterialResponse)) })
}

func FuzzClientKeyMaterial(f *testing.F) {
	seed[*federation.ClientKeyMaterial](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.ClientKeyMaterial)) })
}

func FuzzUpdateRequest(f *testing.F) {
	seed[*federation.UpdateRequest](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.UpdateRequest)) })
}

func FuzzUpdateRoomResponse(f *testing.F) {
	seed[*federation.UpdateRoomResponse](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.UpdateRoomResponse)) })
}

func FuzzSubmitMessageRequest(f *testing.F) {
	seed[*federation.SubmitMessageRequest](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.SubmitMessageRequest)) })
}

func FuzzSubmitMessageResponse(f *testing.F) {
	seed[*federation.SubmitMessageResponse](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.SubmitMessageResponse)) })
}

func FuzzFanoutMessage(f *testing.F) {
	seed[*federation.FanoutMessage](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.FanoutMessage)) })
}

// FuzzSplitFanout checks a whole notify body: accepted bodies join again to
// the same bytes.
func FuzzSplitFanout(f *testing.F) {
	seed[*federation.FanoutMessage](f)
	var body []byte
	for _, c := range values(f) {
		if m, ok := c.v.(*federation.FanoutMessage); ok {
			body = append(body, mls.Marshal(m)...)
		}
	}
	f.Add(body)
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, err := federation.SplitFanout(data)
		if err != nil {
			return
		}
		if got := federation.MarshalFanout(msgs...); !bytes.Equal(got, data) {
			t.Fatalf("accepted body re-encodes differently:\n in  %x\n out %x", data, got)
		}
	})
}

func FuzzGroupInfoRequest(f *testing.F) {
	seed[*federation.GroupInfoRequest](f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(federation.GroupInfoRequest)
		fuzzRoundTrip(t, data, m)
		_ = m.Verify()
	})
}

func FuzzGroupInfoResponse(f *testing.F) {
	seed[*federation.GroupInfoResponse](f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(federation.GroupInfoResponse)
		fuzzRoundTrip(t, data, m)
		_ = m.Verify()
	})
}

func FuzzGroupInfoRatchetTreeTBE(f *testing.F) {
	seed[*federation.GroupInfoRatchetTreeTBE](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.GroupInfoRatchetTreeTBE)) })
}

func FuzzConsentEntry(f *testing.F) {
	seed[*federation.ConsentEntry](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.ConsentEntry)) })
}

func FuzzConsentScope(f *testing.F) {
	seed[*federation.ConsentScope](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.ConsentScope)) })
}

func FuzzIdentifierRequest(f *testing.F) {
	seed[*federation.IdentifierRequest](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.IdentifierRequest)) })
}

func FuzzIdentifierResponse(f *testing.F) {
	seed[*federation.IdentifierResponse](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.IdentifierResponse)) })
}

func FuzzAbuseReport(f *testing.F) {
	seed[*federation.AbuseReport](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.AbuseReport)) })
}

// FuzzBatchRequest: the body of POST /batch. Whatever decodes names
// paths and delivery IDs a request could carry alone.
func FuzzBatchRequest(f *testing.F) {
	seed[*federation.BatchRequest](f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(federation.BatchRequest)
		fuzzRoundTrip(t, data, m)
		if mls.Unmarshal(data, m) != nil {
			return
		}
		for _, e := range m.Entries {
			if !strings.HasPrefix(e.Path, "/") || e.DeliveryID == "" {
				t.Fatalf("accepted entry %v", e)
			}
		}
	})
}

func FuzzBatchResponse(f *testing.F) {
	seed[*federation.BatchResponse](f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(federation.BatchResponse)) })
}

// FuzzDirectory: a directory that parses survives a JSON round trip, and
// its URL methods never panic.
func FuzzDirectory(f *testing.F) {
	d, err := federation.NewDirectory("https://mimi.example.com/v1")
	if err != nil {
		f.Fatal(err)
	}
	js, _ := json.Marshal(d)
	f.Add(js)
	f.Add([]byte(`{"notify": "https://x.example/{roomId}/{a}{b}"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := federation.ParseDirectory(data)
		if err != nil {
			return
		}
		js, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		again, err := federation.ParseDirectory(js)
		if err != nil || !reflect.DeepEqual(again, d) {
			t.Fatalf("directory does not survive a round trip: %v", err)
		}
		_, _ = d.NotifyURL("mimi://a.example/r/x")
		_, _ = d.RequestConsentURL("mimi://b.example/u/bob")
	})
}

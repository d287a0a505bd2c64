package provider

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
)

// FuzzReportRequest feeds the report endpoint's decoder arbitrary bodies,
// as a broken or hostile device could send them: it must never panic,
// refuse with a client error (never a 5xx), and what it accepts must be a
// report the federation can carry unchanged.
func FuzzReportRequest(f *testing.F) {
	frank := mls.Marshal(&federation.Frank{FrankingSignatureCiphersuite: 1, FrankingIntegritySignature: []byte{1, 2}})
	good, _ := json.Marshal(map[string]any{"alleged_abuser": "alice@green.example", "note": "spam",
		"messages": []map[string]any{{"content": []byte{0x87}, "frank": frank, "accepted_timestamp": 5}}})
	f.Add(good)
	f.Add([]byte(`{"alleged_abuser": "mimi://green.example/u/alice", "messages": []}`))
	f.Add([]byte(`{"alleged_abuser": "bob", "reason": 3, "messages": [{"content": "AA==", "frank": "AA=="}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	reporter := identity.UserURI("blue.example", "bob")
	f.Fuzz(func(t *testing.T, body []byte) {
		rep, err := parseReportRequest(body, "blue.example", reporter)
		if err != nil {
			e, ok := err.(*Error)
			if !ok || e.Status >= 500 {
				t.Fatalf("refusal %v is not a client error", err)
			}
			return
		}
		var back federation.AbuseReport
		enc := mls.Marshal(rep)
		if err := mls.Unmarshal(enc, &back); err != nil {
			t.Fatalf("an accepted report does not decode as MIMI: %v", err)
		}
		if !bytes.Equal(mls.Marshal(&back), enc) || len(back.Messages) == 0 {
			t.Fatalf("the report changed on the wire")
		}
	})
}

package federation

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzTrustFile feeds the trust configuration loader whatever an operator
// (or an editor gone wrong) could leave in the file. Loading must never
// panic; a refused file is an ErrTrustConfig with its stable code; an
// accepted one lists each partner once, and suspending a partner through
// SetPartnerSuspended gives a file that loads again to the same partners.
// Suspending a partner the file does not list changes nothing.
func FuzzTrustFile(f *testing.F) {
	blue, red := newTestProvider(f, "blue.example"), newTestProvider(f, "red.example")
	pinned := partnerJSON{Domain: "red.example", Endpoint: "https://203.0.113.7:8444", PinSHA256: PinSHA256(red.cert.Leaf), Suspended: true}
	for _, ps := range [][]partnerJSON{{blue.entry(f)}, {blue.entry(f), pinned}, {pinned}, {}} {
		data, err := json.Marshal(trustFile{Partners: ps})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"partners":[{"domain":"blue.example","endpoint":"http://blue.example"}]}`))
	f.Add([]byte(`{"partners":[{"domain":"blue.example","endpoint":"https://b","pin_sha256":"AAAA"}]}`))
	f.Add([]byte(`{"partners":[{"domain":"x","endpoint":"https://x","ca_pem":"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"}]}`))
	f.Add([]byte(`{"partners":[]} {}`))
	f.Add([]byte(`{"unknown":1}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "trust.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		tr, err := LoadTrust(path, nil)
		if err != nil {
			var te *TrustError
			if !errors.Is(err, ErrTrustConfig) || !errors.As(err, &te) || te.Code() == "" {
				t.Fatalf("refusal %v is not an ErrTrustConfig TrustError", err)
			}
			// An edit of a refused file is refused, and leaves it alone.
			if SetPartnerSuspended(path, "blue.example", true) == nil {
				t.Fatal("a refused file was edited")
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
				t.Fatal("a refused edit changed the file")
			}
			return
		}
		partners := tr.Partners()
		seen := map[string]bool{}
		for _, p := range partners {
			if seen[p.Domain] {
				t.Fatalf("%s listed twice", p.Domain)
			}
			seen[p.Domain] = true
		}
		if err := SetPartnerSuspended(path, "nobody.example", true); !errors.Is(err, ErrUnknownPartner) {
			t.Fatalf("suspending an unlisted partner: %v", err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
			t.Fatal("a refused edit changed the file")
		}
		if len(partners) == 0 {
			return
		}
		d := partners[0].Domain
		if err := SetPartnerSuspended(path, d, true); err != nil {
			t.Fatalf("suspend %s of an accepted file: %v", d, err)
		}
		again, err := LoadTrust(path, nil)
		if err != nil {
			t.Fatalf("the edited file no longer loads: %v", err)
		}
		after := again.Partners()
		if len(after) != len(partners) {
			t.Fatalf("the edit changed the partners: %d, then %d", len(partners), len(after))
		}
		if _, err := again.Partner(d); !errors.Is(err, ErrSuspendedPartner) {
			t.Fatalf("%s is not suspended after the edit: %v", d, err)
		}
	})
}

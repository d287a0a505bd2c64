package federation

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// SetPartnerSuspended suspends one partner and leaves everything else of
// the file as it was; a running Trust sees it on reload.
func TestSetPartnerSuspended(t *testing.T) {
	blue, red := newTestProvider(t, "blue.example"), newTestProvider(t, "red.example")
	path := filepath.Join(t.TempDir(), "trust.json")
	redPinned := partnerJSON{Domain: "red.example", Endpoint: "https://203.0.113.7:8444", PinSHA256: PinSHA256(red.cert.Leaf)}
	writeTrust(t, path, blue.entry(t), redPinned)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	tr, err := LoadTrust(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetPartnerSuspended(path, "blue.example", true); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Partner("blue.example"); err != nil {
		t.Fatalf("blue is suspended before the reload: %v", err)
	}
	if err := tr.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Partner("blue.example"); !errors.Is(err, ErrSuspendedPartner) {
		t.Fatalf("blue after the reload: %v, want suspended", err)
	}
	p, err := tr.Partner("red.example")
	if err != nil || len(p.Pin) != 32 || p.Endpoint != redPinned.Endpoint {
		t.Fatalf("red changed: %+v, %v", p, err)
	}
	if b, _ := tr.cur.Load().partner("blue.example"); b == nil || b.caPEM != blue.entry(t).CAPEM {
		t.Fatal("blue's CA was not kept")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("the file's mode: %v, %v", fi.Mode(), err)
	}

	before, _ := os.ReadFile(path)
	if err := SetPartnerSuspended(path, "green.example", true); !errors.Is(err, ErrUnknownPartner) {
		t.Fatalf("an unknown partner: %v", err)
	}
	if err := SetPartnerSuspended(filepath.Join(t.TempDir(), "none.json"), "blue.example", true); !errors.Is(err, ErrTrustConfig) {
		t.Fatalf("a missing file: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("a refused change rewrote the file")
	}
	// And back.
	if err := SetPartnerSuspended(path, "blue.example", false); err != nil {
		t.Fatal(err)
	}
	if err := tr.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Partner("blue.example"); err != nil {
		t.Fatalf("blue after lifting the suspension: %v", err)
	}
}

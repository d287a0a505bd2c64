package identity_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/switchboard-chat/switchboard/identity"
)

// FuzzLoadCA reads whatever a data directory's ca.pem and ca-key.pem
// could hold (a CA brought from elsewhere, a truncated copy, the files
// swapped). Never a panic; a refusal is ErrCA; an accepted CA saves to
// the same PEM that loads again to a CA of the same domain.
func FuzzLoadCA(f *testing.F) {
	ca, err := identity.NewCA("green.example")
	if err != nil {
		f.Fatal(err)
	}
	certPEM, keyPEM, err := ca.PEM()
	if err != nil {
		f.Fatal(err)
	}
	other, _ := identity.NewCA("blue.example")
	_, otherKey, _ := other.PEM()
	f.Add(certPEM, keyPEM)
	f.Add(certPEM, otherKey)
	f.Add(keyPEM, certPEM)
	f.Add(certPEM[:len(certPEM)/2], keyPEM)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		ca, err := identity.LoadCA(certPEM, keyPEM)
		if err != nil {
			if !errors.Is(err, identity.ErrCA) {
				t.Fatalf("LoadCA refused with %v, not ErrCA", err)
			}
			return
		}
		c2, k2, err := ca.PEM()
		if err != nil {
			t.Fatalf("a loaded CA does not save: %v", err)
		}
		again, err := identity.LoadCA(c2, k2)
		if err != nil || again.Domain() != ca.Domain() {
			t.Fatalf("a saved CA does not load again: %v", err)
		}
		if c3, _, _ := again.PEM(); !bytes.Equal(c3, c2) {
			t.Fatal("the CA certificate changed on a round trip")
		}
	})
}

package identity_test

import (
	"errors"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
)

// FuzzParseURI: whatever ParseURI accepts is canonical, so it prints back to
// exactly the input and validates; whatever it refuses, it refuses with
// ErrInvalidURI, never a panic.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"mimi://a.example", "mimi://a.example/u/alice", "mimi://a.example/d/alice/phone",
		"mimi://example.com/d/SvPfLlwBQi-6oddVRrkqpw/04c7", "mimi://hub.example/r/Rl33FWLCYWOwxHrYnpWDQg",
		"mimi://a.example/p/crazykoala75", "mimi://a.example/g/TII9t5viBrXiXc", "mimi://a.example/t/engineering",
		"mimi://A.example/u/x", "mimi://a.example/u/..", "mimi://192.0.2.1", "mimi://a.example/", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := identity.ParseURI(s)
		if err != nil {
			if !errors.Is(err, identity.ErrInvalidURI) {
				t.Fatalf("ParseURI(%q): %v is not ErrInvalidURI", s, err)
			}
			return
		}
		if got := u.String(); got != s {
			t.Fatalf("ParseURI(%q).String() = %q", s, got)
		}
		if err := u.Validate(); err != nil {
			t.Fatalf("ParseURI(%q) accepted what Validate refuses: %v", s, err)
		}
		if u.Kind == identity.KindDevice && u.UserOf().Validate() != nil {
			t.Fatalf("device %q has an invalid user URI", s)
		}
	})
}

// FuzzVerify feeds arbitrary certificate bytes to Verify: it must return an
// *identity.Error, never panic, and accept nothing but a credential the
// trusted CA issued for the key.
func FuzzVerify(f *testing.F) {
	green := newCA(f, "green.example")
	v := verifier(f, green)
	s := suite(f, mls.X25519AES128GCMSHA256Ed25519)
	key := signer(f, s)
	cred := issue(f, green, s, key.PublicKey(), "alice", "phone")
	f.Add(cred.Certificates[0], cred.Certificates[1])
	f.Add(cred.Certificates[0], []byte{})
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00}, []byte{})
	withPhone, err := green.IssueDeviceWithPhone(s, key.PublicKey(), "alice", "phone", "+41446681800", time.Now().Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(withPhone.Certificates[0], withPhone.Certificates[1])
	now := time.Now()
	f.Fuzz(func(t *testing.T, leaf, ca []byte) {
		c := mls.Credential{Type: mls.CredentialX509, Certificates: [][]byte{leaf}}
		if len(ca) > 0 {
			c.Certificates = append(c.Certificates, ca)
		}
		d, err := v.Verify(s, c, key.PublicKey(), now)
		if err != nil {
			var e *identity.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *identity.Error", err, err)
			}
			return
		}
		if d.URI.String() != "mimi://green.example/d/alice/phone" {
			t.Fatalf("accepted a credential for %s", d.URI)
		}
		if d.Phone != "" && d.Phone != "+41446681800" {
			t.Fatalf("accepted a credential with phone %q", d.Phone)
		}
	})
}

// FuzzParsePhoneURI: whatever ParsePhoneURI accepts prints back to the
// input through PhoneURI and is a number the CA would issue; whatever it
// refuses, it refuses with ErrNames.
func FuzzParsePhoneURI(f *testing.F) {
	for _, s := range []string{"tel:+15555550123", "tel:+41446681800", "tel:+12", "tel:+", "tel:0446681800",
		"tel:+41-44-668-18-00", "tel:+4144;ext=1", "TEL:+15555550123", "tel:+1234567890123456", "tel:+0123", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := identity.ParsePhoneURI(s)
		if err != nil {
			if !errors.Is(err, identity.ErrNames) {
				t.Fatalf("ParsePhoneURI(%q): %v is not ErrNames", s, err)
			}
			return
		}
		if identity.PhoneURI(p) != s {
			t.Fatalf("ParsePhoneURI(%q) = %q does not print back", s, p)
		}
		if err := identity.CheckPhone(p); err != nil {
			t.Fatalf("ParsePhoneURI(%q) accepted what CheckPhone refuses: %v", s, err)
		}
	})
}

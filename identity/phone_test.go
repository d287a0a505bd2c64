package identity_test

import (
	"crypto"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
)

// Alice on green.example verified +41 44 668 18 00 and chose to be found by
// it: green's CA puts the number in her device certificate, and anyone who
// trusts green reads it from her credential.
func TestPhoneInDeviceCredential(t *testing.T) {
	green, blue := newCA(t, "green.example"), newCA(t, "blue.example")
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	key := signer(t, s)
	cred, err := green.IssueDeviceWithPhone(s, key.PublicKey(), "alice", "phone", "+41446681800", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cred.Certificates[0])
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, u := range leaf.URIs {
		uris = append(uris, u.String())
	}
	if got := strings.Join(uris, " "); got != "mimi://green.example/d/alice/phone mimi://green.example/u/alice tel:+41446681800" {
		t.Errorf("URIs %s", got)
	}

	d, err := verifier(t, green, blue).Verify(s, cred, key.PublicKey(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if d.Phone != "+41446681800" || d.URI.String() != "mimi://green.example/d/alice/phone" {
		t.Errorf("verified %s with phone %q", d.URI, d.Phone)
	}
	// Only the leaf, without the CA, verifies the same way.
	cred.Certificates = cred.Certificates[:1]
	if d, err := verifier(t, green).Verify(s, cred, key.PublicKey(), time.Now()); err != nil || d.Phone != "+41446681800" {
		t.Errorf("leaf alone: %v, phone %q", err, d.Phone)
	}

	// Without a number the certificate is what IssueDevice makes.
	plain, err := green.IssueDeviceWithPhone(s, key.PublicKey(), "alice", "phone", "", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := verifier(t, green).Verify(s, plain, key.PublicKey(), time.Now()); err != nil || d.Phone != "" {
		t.Errorf("no phone: %v, phone %q", err, d.Phone)
	}

	// The CA refuses to write a number that is not E.164.
	for _, bad := range []string{"0446681800", "+41 44 668 18 00", "+0446681800", "+1234567890123456", "+1", "tel:+41446681800"} {
		if _, err := green.IssueDeviceWithPhone(s, key.PublicKey(), "alice", "phone", bad, time.Now().Add(time.Hour)); !errors.Is(err, identity.ErrCA) {
			t.Errorf("phone %q: %v, want ErrCA", bad, err)
		}
	}
}

// A provider vouches for numbers only in certificates its own CA signs for
// its own users: the tel URI does not loosen who may sign a device URI.
func TestPhoneDoesNotLoosenWhoSigns(t *testing.T) {
	green, blue := newCA(t, "green.example"), newCA(t, "blue.example")
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	key := signer(t, s)
	pub := key.PublicKey()
	withPhone := append(alicePhone(), "tel:+41446681800")

	// blue signs a certificate for green's Alice with a number.
	forged := forge(t, blue, crypto.PublicKey(edKey(pub)), withPhone, nil)
	_, err := verifier(t, green, blue).Verify(s, forged, pub, time.Now())
	wantErr(t, err, identity.ErrWrongProvider, "is signed by provider blue.example, not by green.example")
	_, err = verifier(t, green).Verify(s, forged, pub, time.Now())
	wantErr(t, err, identity.ErrUntrusted, "is not signed by the CA of green.example")

	// blue's CA configured as green's anchor by mistake: its name
	// constraints still refuse a green device URI, phone or not.
	misconfigured, err := identity.NewVerifier(map[string]*x509.Certificate{"green.example": blue.Certificate()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = misconfigured.Verify(s, forged, pub, time.Now())
	wantErr(t, err, identity.ErrUntrusted, "the CA of green.example may not sign URIs of that domain")

	// A phone certificate must be signed by the CA itself: a chain through
	// another certificate, even one in the credential, is not followed.
	other := newCA(t, "green.example") // a second CA claiming green
	viaOther := forge(t, other, crypto.PublicKey(edKey(pub)), withPhone, nil)
	viaOther.Certificates = append(viaOther.Certificates, green.Certificate().Raw)
	_, err = verifier(t, green).Verify(s, viaOther, pub, time.Now())
	wantErr(t, err, identity.ErrUntrusted, "is not signed by the CA of green.example")

	// An expired phone certificate is expired.
	old := forge(t, green, crypto.PublicKey(edKey(pub)), withPhone, nil)
	_, err = verifier(t, green).Verify(s, old, pub, time.Now().Add(2*time.Hour))
	wantErr(t, err, identity.ErrExpired, "expired at")
}

// Numbers in any but the canonical tel:+DIGITS form are refused, as are
// two numbers, so a member has at most one number with one spelling.
func TestMalformedPhoneRefused(t *testing.T) {
	green := newCA(t, "green.example")
	v := verifier(t, green)
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	pub := signer(t, s).PublicKey()
	ek := edKey(pub)
	for _, tc := range []struct{ tel, msg string }{
		{"tel:41446681800", `must start with "+"`},
		{"tel:+41-44-668-18-00", `has character "-"`},
		{"tel:+41446681800;ext=12", "want 2 to 15 digits"},
		{"tel:+4144;ext=12", `has character ";"`},
		{"tel:+0446681800", "does not start with 0"},
		{"tel:+1234567890123456", "want 2 to 15 digits"},
		{"tel:+", "want 2 to 15 digits"},
		{"tel:6681800;phone-context=+41-44", `must start with "+"`},
	} {
		t.Run(tc.tel, func(t *testing.T) {
			_, err := v.Verify(s, forge(t, green, ek, append(alicePhone(), tc.tel), nil), pub, time.Now())
			wantErr(t, err, identity.ErrNames, tc.msg)
		})
	}
	_, err := v.Verify(s, forge(t, green, ek, []string{alicePhone()[0], "tel:+41446681800", "tel:+41446681801"}, nil), pub, time.Now())
	wantErr(t, err, identity.ErrNames, "0 user URIs")
	_, err = v.Verify(s, forge(t, green, ek, append(alicePhone(), "tel:+41446681800", "tel:+41446681801"), nil), pub, time.Now())
	wantErr(t, err, identity.ErrNames, "has 4 URIs")
	_, err = v.Verify(s, forge(t, green, ek, append(alicePhone(), "mimi://green.example/u/bob"), nil), pub, time.Now())
	wantErr(t, err, identity.ErrNames, "2 user URIs")
}

func TestParsePhoneURI(t *testing.T) {
	for s, want := range map[string]string{"tel:+15555550123": "+15555550123", "tel:+41446681800": "+41446681800", "tel:+12": "+12"} {
		if got, err := identity.ParsePhoneURI(s); err != nil || got != want {
			t.Errorf("ParsePhoneURI(%q) = %q, %v", s, got, err)
		}
		if identity.PhoneURI(want) != s {
			t.Errorf("PhoneURI(%q) = %q", want, identity.PhoneURI(want))
		}
	}
	for _, s := range []string{"", "tel:", "+15555550123", "TEL:+15555550123", "tel:+1 555 555 0123", "tel:+1555555012x", "sip:+15555550123", "tel:+1555\x00"} {
		if _, err := identity.ParsePhoneURI(s); !errors.Is(err, identity.ErrNames) {
			t.Errorf("ParsePhoneURI(%q): %v, want ErrNames", s, err)
		}
	}
}

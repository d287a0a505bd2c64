package identity_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
)

// The scenarios: two providers, green.example and blue.example, each with
// its own CA. Alice's phone is on green.

func newCA(t testing.TB, domain string) *identity.CA {
	t.Helper()
	ca, err := identity.NewCA(domain)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func suite(t testing.TB, id mls.CipherSuite) *mls.Suite {
	t.Helper()
	s, err := mls.SuiteFor(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signer(t testing.TB, s *mls.Suite) *mls.SignaturePrivateKey {
	t.Helper()
	k, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func verifier(t testing.TB, cas ...*identity.CA) *identity.Verifier {
	t.Helper()
	anchors := map[string]*x509.Certificate{}
	for _, ca := range cas {
		anchors[ca.Domain()] = ca.Certificate()
	}
	v, err := identity.NewVerifier(anchors)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func issue(t testing.TB, ca *identity.CA, s *mls.Suite, key []byte, user, device string) mls.Credential {
	t.Helper()
	cred, err := ca.IssueDevice(s, key, user, device, time.Now().Add(identity.DefaultDeviceValidity))
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// wantErr checks that err is of kind and its message says msg.
func wantErr(t *testing.T, err, kind error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q is not %v", err, kind)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not say %q", err, msg)
	}
}

func TestIssueAndVerifyEverySuite(t *testing.T) {
	green := newCA(t, "green.example")
	v := verifier(t, green, newCA(t, "blue.example"))
	for _, id := range mls.SupportedSuites {
		t.Run(id.String(), func(t *testing.T) {
			s := suite(t, id)
			key := signer(t, s)
			cred := issue(t, green, s, key.PublicKey(), "alice", "phone")

			if cred.Type != mls.CredentialX509 || len(cred.Certificates) != 2 || !bytes.Equal(cred.Certificates[1], green.Certificate().Raw) {
				t.Fatalf("credential is not [device, CA]: type %v, %d certificates", cred.Type, len(cred.Certificates))
			}
			d, err := v.Verify(s, cred, key.PublicKey(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if d.URI.String() != "mimi://green.example/d/alice/phone" || d.User.String() != "mimi://green.example/u/alice" {
				t.Errorf("verified %s of %s", d.URI, d.User)
			}
			if d.NotAfter.Before(time.Now().Add(identity.DefaultDeviceValidity - time.Minute)) {
				t.Errorf("NotAfter %v", d.NotAfter)
			}

			// RFC 9420 lets a chain omit the CA the peer already has.
			leafOnly := mls.Credential{Type: mls.CredentialX509, Certificates: cred.Certificates[:1]}
			if _, err := v.Verify(s, leafOnly, key.PublicKey(), time.Now()); err != nil {
				t.Errorf("leaf-only chain: %v", err)
			}

			// The credential survives the MLS wire format.
			var back mls.Credential
			if err := mls.Unmarshal(mls.Marshal(&cred), &back); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(s, back, key.PublicKey(), time.Now()); err != nil {
				t.Errorf("after MLS round trip: %v", err)
			}
		})
	}
}

// TestDeviceCertificateShape checks the certificate against the profile in
// docs/identity.md, as a peer's generic X.509 tooling would see it.
func TestDeviceCertificateShape(t *testing.T) {
	green := newCA(t, "green.example")
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	key := signer(t, s)
	cred := issue(t, green, s, key.PublicKey(), "alice", "phone")
	leaf, err := x509.ParseCertificate(cred.Certificates[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid || leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("IsCA %v, BasicConstraintsValid %v, KeyUsage %v", leaf.IsCA, leaf.BasicConstraintsValid, leaf.KeyUsage)
	}
	if len(leaf.RawSubject) != 2 { // an empty SEQUENCE
		t.Errorf("subject %q, want empty", leaf.Subject)
	}
	var uris []string
	for _, u := range leaf.URIs {
		uris = append(uris, u.String())
	}
	if strings.Join(uris, " ") != "mimi://green.example/d/alice/phone mimi://green.example/u/alice" {
		t.Errorf("URIs %v", uris)
	}
	sanCritical := false
	for _, e := range leaf.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
			sanCritical = e.Critical
		}
	}
	if !sanCritical {
		t.Error("subjectAltName is not critical")
	}
	if err := leaf.CheckSignatureFrom(green.Certificate()); err != nil {
		t.Error(err)
	}
	if leaf.SerialNumber.BitLen() < 100 {
		t.Errorf("serial %v does not look random", leaf.SerialNumber)
	}

	ca := green.Certificate()
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 || !ca.MaxPathLenZero || ca.Subject.Organization[0] != "green.example" {
		t.Errorf("CA: IsCA %v KeyUsage %v MaxPathLenZero %v Subject %v", ca.IsCA, ca.KeyUsage, ca.MaxPathLenZero, ca.Subject)
	}
	if len(ca.URIs) != 1 || ca.URIs[0].String() != "mimi://green.example" {
		t.Errorf("CA URIs %v", ca.URIs)
	}
	if len(ca.PermittedURIDomains) != 1 || ca.PermittedURIDomains[0] != "green.example" || !ca.PermittedDNSDomainsCritical {
		t.Errorf("CA name constraints: permitted %v (critical %v)", ca.PermittedURIDomains, ca.PermittedDNSDomainsCritical)
	}
	if life := ca.NotAfter.Sub(ca.NotBefore); life < identity.CAValidity {
		t.Errorf("CA valid for %v", life)
	}
}

func TestAnotherSignatureKeyFails(t *testing.T) {
	green := newCA(t, "green.example")
	v := verifier(t, green)
	for _, id := range []mls.CipherSuite{mls.X25519AES128GCMSHA256Ed25519, mls.P256AES128GCMSHA256P256} {
		s := suite(t, id)
		cred := issue(t, green, s, signer(t, s).PublicKey(), "alice", "phone")
		_, err := v.Verify(s, cred, signer(t, s).PublicKey(), time.Now())
		wantErr(t, err, identity.ErrKeyMismatch,
			"identity: credential for mimi://green.example/d/alice/phone: certificate key does not match the MLS signature key")
	}

	// A P-256 credential in an Ed25519 group: the key types differ.
	p256 := suite(t, mls.P256AES128GCMSHA256P256)
	cred := issue(t, green, p256, signer(t, p256).PublicKey(), "alice", "phone")
	ed := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	_, err := v.Verify(ed, cred, signer(t, ed).PublicKey(), time.Now())
	wantErr(t, err, identity.ErrKeyMismatch, "certificate has an ECDSA P-256 key but suite 0x0001 signs with Ed25519")

	// A leaf whose MLS key is not even a key of the suite.
	_, err = v.Verify(ed, cred, []byte{1, 2, 3}, time.Now())
	wantErr(t, err, identity.ErrBadKey, "not an Ed25519 key for suite 0x0001")
}

// forge signs a certificate for device URIs of any domain with ca's key, as a
// rogue or buggy provider could; tmpl edits the template first.
func forge(t *testing.T, ca *identity.CA, pub crypto.PublicKey, uris []string, edit func(*x509.Certificate)) mls.Credential {
	t.Helper()
	_, keyPEM, err := ca.PEM()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Certificate(), pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return mls.Credential{Type: mls.CredentialX509, Certificates: [][]byte{der, ca.Certificate().Raw}}
}

func alicePhone() []string {
	return []string{"mimi://green.example/d/alice/phone", "mimi://green.example/u/alice"}
}

func TestCredentialFromAnotherProviderFails(t *testing.T) {
	green, blue := newCA(t, "green.example"), newCA(t, "blue.example")
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	key := signer(t, s)
	pub := key.PublicKey()
	// blue.example's CA signs a credential claiming to be green's Alice.
	forged := forge(t, blue, crypto.PublicKey(edKey(pub)), alicePhone(), nil)

	// A verifier that knows both providers says who really signed it.
	_, err := verifier(t, green, blue).Verify(s, forged, pub, time.Now())
	wantErr(t, err, identity.ErrWrongProvider,
		"credential for mimi://green.example/d/alice/phone is signed by provider blue.example, not by green.example")

	// One that knows only green names the issuer the certificate claims.
	_, err = verifier(t, green).Verify(s, forged, pub, time.Now())
	wantErr(t, err, identity.ErrUnknownProvider,
		"credential for mimi://green.example/d/alice/phone is signed by an unknown provider blue.example")

	// One that knows only blue has no anchor for the domain claimed.
	_, err = verifier(t, blue).Verify(s, forged, pub, time.Now())
	wantErr(t, err, identity.ErrUnknownProvider,
		"credential for mimi://green.example/d/alice/phone is signed by an unknown provider green.example")

	// Even if blue's CA were configured as green's anchor by mistake, its
	// name constraints refuse a green device URI.
	misconfigured, err := identity.NewVerifier(map[string]*x509.Certificate{"green.example": blue.Certificate()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = misconfigured.Verify(s, forged, pub, time.Now())
	wantErr(t, err, identity.ErrUntrusted, "not permitted")

	// Alice's genuine credential still verifies with every verifier that
	// knows green.
	if _, err := verifier(t, blue, green).Verify(s, issue(t, green, s, pub, "alice", "phone"), pub, time.Now()); err != nil {
		t.Error(err)
	}
}

func TestExpiredFails(t *testing.T) {
	green := newCA(t, "green.example")
	v := verifier(t, green)
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	key := signer(t, s)
	notAfter := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	cred, err := green.IssueDevice(s, key.PublicKey(), "alice", "phone", notAfter)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(s, cred, key.PublicKey(), notAfter.Add(-time.Minute)); err != nil {
		t.Errorf("a minute before expiry: %v", err)
	}
	_, err = v.Verify(s, cred, key.PublicKey(), notAfter.Add(time.Second))
	wantErr(t, err, identity.ErrExpired,
		"credential for mimi://green.example/d/alice/phone expired at "+notAfter.UTC().Format(time.RFC3339))
	_, err = v.Verify(s, cred, key.PublicKey(), time.Now().Add(-2*time.Hour))
	wantErr(t, err, identity.ErrExpired, "is not valid until")
}

func TestBasicCredentialFails(t *testing.T) {
	v := verifier(t, newCA(t, "green.example"))
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	basic := mls.Credential{Type: mls.CredentialBasic, Identity: []byte("alice")}
	_, err := v.Verify(s, basic, signer(t, s).PublicKey(), time.Now())
	wantErr(t, err, identity.ErrNotX509,
		`identity: basic credential "alice": members must present an X.509 credential from their provider`)
}

func TestMalformedCredentials(t *testing.T) {
	green := newCA(t, "green.example")
	v := verifier(t, green)
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	pub := signer(t, s).PublicKey()
	ek := edKey(pub)
	for _, tc := range []struct {
		name string
		cred mls.Credential
		kind error
		msg  string
	}{
		{"no certificates", mls.Credential{Type: mls.CredentialX509}, identity.ErrMalformed, "with 0 certificates"},
		{"too many", mls.Credential{Type: mls.CredentialX509, Certificates: make([][]byte, 5)}, identity.ErrMalformed, "with 5 certificates"},
		{"garbage", mls.Credential{Type: mls.CredentialX509, Certificates: [][]byte{{0x30, 0}}}, identity.ErrMalformed, "certificate 0"},
		{"only a user URI", forge(t, green, ek, alicePhone()[1:], nil), identity.ErrNames, "has 1 URIs"},
		{"two device URIs", forge(t, green, ek, []string{alicePhone()[0], "mimi://green.example/d/alice/laptop"}, nil), identity.ErrNames, "2 device URIs and 0 user URIs"},
		{"users disagree", forge(t, green, ek, []string{alicePhone()[0], "mimi://green.example/u/bob"}, nil), identity.ErrNames,
			"names device mimi://green.example/d/alice/phone but user mimi://green.example/u/bob"},
		{"domains disagree", forge(t, green, ek, []string{alicePhone()[0], "mimi://blue.example/u/alice"}, nil), identity.ErrNames, "but user mimi://blue.example/u/alice"},
		{"room URI", forge(t, green, ek, []string{alicePhone()[0], "mimi://green.example/r/lobby"}, nil), identity.ErrNames, "a room URI"},
		{"non-canonical URI", forge(t, green, ek, []string{"mimi://Green.example/d/alice/phone", alicePhone()[1]}, nil), identity.ErrNames, "must be lower case"},
		{"extra DNS name", forge(t, green, ek, alicePhone(), func(c *x509.Certificate) { c.DNSNames = []string{"green.example"} }), identity.ErrNames, "not URIs"},
		{"CA as leaf", forge(t, green, ek, alicePhone(), func(c *x509.Certificate) { c.IsCA = true; c.KeyUsage |= x509.KeyUsageCertSign }),
			identity.ErrMalformed, "is a CA certificate"},
		{"no signing usage", forge(t, green, ek, alicePhone(), func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement }),
			identity.ErrMalformed, "does not allow digital signatures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(s, tc.cred, pub, time.Now())
			wantErr(t, err, tc.kind, tc.msg)
		})
	}
	// A well-formed forgery by green itself verifies: the checks above fail
	// on shape, not on the forge helper.
	if _, err := v.Verify(s, forge(t, green, ek, alicePhone(), nil), pub, time.Now()); err != nil {
		t.Error(err)
	}
}

func TestCAPEMRoundTrip(t *testing.T) {
	green := newCA(t, "green.example")
	certPEM, keyPEM, err := green.PEM()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := identity.LoadCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Domain() != "green.example" || !loaded.Certificate().Equal(green.Certificate()) {
		t.Fatalf("loaded CA for %s", loaded.Domain())
	}
	// The restored CA issues credentials that verify against the original
	// certificate, as peers have it.
	s := suite(t, mls.P384AES256GCMSHA384P384)
	key := signer(t, s)
	if _, err := verifier(t, green).Verify(s, issue(t, loaded, s, key.PublicKey(), "alice", "phone"), key.PublicKey(), time.Now()); err != nil {
		t.Error(err)
	}
	c2, k2, err := loaded.PEM()
	if err != nil || !bytes.Equal(c2, certPEM) || !bytes.Equal(k2, keyPEM) {
		t.Errorf("PEM after LoadCA differs (%v)", err)
	}

	_, blueKey, err := newCA(t, "blue.example").PEM()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		cert, key []byte
		msg       string
	}{
		{"key of another CA", certPEM, blueKey, "does not belong to the certificate"},
		{"no certificate", nil, keyPEM, "no CERTIFICATE PEM block"},
		{"key as certificate", keyPEM, keyPEM, "no CERTIFICATE PEM block"},
		{"no key", certPEM, []byte("junk"), "no PRIVATE KEY"},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), keyPEM, "parse certificate"},
	} {
		_, err := identity.LoadCA(tc.cert, tc.key)
		wantErr(t, err, identity.ErrCA, tc.msg)
	}
}

func TestIssueDeviceRefuses(t *testing.T) {
	green := newCA(t, "green.example")
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	pub := signer(t, s).PublicKey()
	later := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name, user, device string
		key                []byte
		notAfter           time.Time
		kind               error
		msg                string
	}{
		{"bad user", "al ice", "phone", pub, later, identity.ErrInvalidURI, `user has character " "`},
		{"no device", "alice", "", pub, later, identity.ErrInvalidURI, "device is empty"},
		{"device with slash", "alice", "a/b", pub, later, identity.ErrInvalidURI, `device has character "/"`},
		{"bad key", "alice", "phone", pub[:31], later, identity.ErrBadKey, "not an Ed25519 key"},
		{"P-256 key in Ed25519 suite", "alice", "phone", signer(t, suite(t, mls.P256AES128GCMSHA256P256)).PublicKey(), later, identity.ErrBadKey, "not an Ed25519 key"},
		{"past", "alice", "phone", pub, time.Now().Add(-time.Second), identity.ErrCA, "is not in the future"},
		{"outlives CA", "alice", "phone", pub, time.Now().Add(identity.CAValidity + time.Hour), identity.ErrCA, "after the CA expires"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := green.IssueDevice(s, tc.key, tc.user, tc.device, tc.notAfter)
			wantErr(t, err, tc.kind, tc.msg)
		})
	}
	for _, d := range []string{"", "Green.example", "green.example.", "192.0.2.1"} {
		_, err := identity.NewCA(d)
		wantErr(t, err, identity.ErrCA, "provider domain")
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	green := newCA(t, "green.example")
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	leaf, err := x509.ParseCertificate(issue(t, green, s, signer(t, s).PublicKey(), "alice", "phone").Certificates[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, anchors := range []map[string]*x509.Certificate{
		{"Green.example": green.Certificate()},
		{"green.example": nil},
		{"green.example": leaf},
	} {
		if _, err := identity.NewVerifier(anchors); !errors.Is(err, identity.ErrCA) {
			t.Errorf("NewVerifier(%v) = %v", anchors, err)
		}
	}
}

func edKey(raw []byte) ed25519.PublicKey { return ed25519.PublicKey(raw) }

// A Verifier remembers a credential that verified, for the same signature
// key and within the certificates' validity only: another key, a tampered
// certificate or a time past expiry is checked in full again.
func TestVerifiedCredentialRemembered(t *testing.T) {
	green := newCA(t, "green.example")
	v := verifier(t, green)
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	key := signer(t, s)
	cred := issue(t, green, s, key.PublicKey(), "alice", "phone")
	first, err := v.Verify(s, cred, key.PublicKey(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	again, err := v.Verify(s, cred, key.PublicKey(), time.Now())
	if err != nil || again.URI != first.URI || again.Certificate != first.Certificate {
		t.Fatalf("verified again: %+v, %v; want the remembered %+v", again, err, first)
	}
	_, err = v.Verify(s, cred, signer(t, s).PublicKey(), time.Now())
	wantErr(t, err, identity.ErrKeyMismatch, "certificate key does not match the MLS signature key")

	tampered := cred
	tampered.Certificates = [][]byte{append([]byte(nil), cred.Certificates[0]...)}
	tampered.Certificates[0][len(tampered.Certificates[0])-1] ^= 1 // the signature's last byte
	if _, err := v.Verify(s, tampered, key.PublicKey(), time.Now()); err == nil {
		t.Error("a certificate with a changed signature verified")
	}
	_, err = v.Verify(s, cred, key.PublicKey(), first.NotAfter.Add(time.Second))
	wantErr(t, err, identity.ErrExpired, "expired at")
}

// BenchmarkVerify measures one credential check: in full (a Verifier that
// has not seen the credential: parse, names, key, chain) and remembered.
func BenchmarkVerify(b *testing.B) {
	green := newCA(b, "green.example")
	s := suite(b, mls.X25519AES128GCMSHA256Ed25519)
	key := signer(b, s)
	cred := issue(b, green, s, key.PublicKey(), "alice", "phone")
	anchors := map[string]*x509.Certificate{"green.example": green.Certificate()}
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			v, _ := identity.NewVerifier(anchors)
			if _, err := v.Verify(s, cred, key.PublicKey(), time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		v := verifier(b, green)
		for b.Loop() {
			if _, err := v.Verify(s, cred, key.PublicKey(), time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

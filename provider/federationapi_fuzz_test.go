package provider

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
)

// FuzzFederationAPI sends whatever body a partner's provider could send to
// every POST of green.example's federation API, through its real handler
// (the partner check, the replay guard, the endpoints) as blue.example,
// authenticated by its certificate. green hosts alice's room and has bob
// with KeyPackages. It must never fail inside (500); a refusal is a JSON
// error with a code; and a refused request leaves every row of the
// database as it was.
func FuzzFederationAPI(f *testing.F) {
	e := newAPIFuzzEnv(f)
	blue := newFedNode(f, "blue.example")
	green := &fedNode{domain: "green.example", ca: e.srv.ca}
	data, err := json.Marshal(map[string]any{"partners": []trustEntry{green.entry("https://green.example"), blue.entry("https://blue.example")}})
	if err != nil {
		f.Fatal(err)
	}
	trustFile := filepath.Join(f.TempDir(), "trust.json")
	if err := os.WriteFile(trustFile, data, 0o600); err != nil {
		f.Fatal(err)
	}
	trust, err := federation.LoadTrust(trustFile, nil)
	if err != nil {
		f.Fatal(err)
	}
	h := e.srv.FederationHandler(trust)
	leaf, err := x509.ParseCertificate(blue.cert.Certificate[0])
	if err != nil {
		f.Fatal(err)
	}
	roomURI := url.PathEscape(e.roomURI)
	bob := identity.UserURI("green.example", "bob").String()
	alice := identity.UserURI("green.example", "alice").String()
	paths := []string{
		"/keyMaterial/" + url.PathEscape(alice),
		"/keyMaterial/" + url.PathEscape(bob),
		"/identifierQuery/green.example",
		"/update/" + roomURI,
		"/submitMessage/" + roomURI,
		"/groupInfo/" + roomURI,
		"/notify/" + roomURI,
		"/requestConsent/" + url.PathEscape(alice),
		"/updateConsent/" + url.PathEscape(alice),
		"/reportAbuse/" + roomURI,
		e.srv.fedPath(e.srv.directory.Batch),
	}
	// blue's bob-seeker signs a real KeyMaterialRequest for bob.
	suite, signer, cred := blue.credential(f, "carol", "desk")
	kmr := &federation.KeyMaterialRequest{Protocol: federation.ProtocolMLS10,
		RequestingUser: federation.IdentifierURI(identity.UserURI("blue.example", "carol").String()),
		TargetUser:     federation.IdentifierURI(bob), AcceptableCiphersuites: []mls.CipherSuite{suite.ID}, RequesterCredential: cred}
	if err := kmr.Sign(suite, signer); err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(1), mls.Marshal(kmr))
	for i := range paths {
		f.Add(uint8(i), []byte{})
		f.Add(uint8(i), []byte{0, 1, 0, 0})
		f.Add(uint8(i), []byte(`{"error":1}`))
	}
	f.Add(uint8(6), e.fanout)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
		federation.StampRequest(r.Header)
		r.Header.Set("Content-Type", federation.ContentType)
		before := e.dump(t)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code < 400 {
			return
		}
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable && w.Code != http.StatusBadGateway {
			t.Fatalf("POST %s failed inside: %d %s", path, w.Code, w.Body)
		}
		var eb struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" {
			t.Fatalf("POST %s: refusal %d is not a JSON error with a code: %s", path, w.Code, w.Body)
		}
		if e.dump(t) != before {
			t.Fatalf("POST %s: the refusal %d %s changed the database", path, w.Code, w.Body)
		}
	})
}

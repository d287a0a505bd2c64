package provider

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// The federation scenarios run green.example's federation API on a
// loopback port with real mutual TLS, on a real SQLite store, and call it
// as other providers do, with federation.Peers. Each provider has its own
// CA, provider certificate and trust file.

// fedNode is one provider of the scenarios: its CA and TLS certificate,
// and for green, the server.
type fedNode struct {
	domain string
	ca     *identity.CA
	cert   tls.Certificate
	st     *sqlite.Store
	srv    *Server
}

func newFedNode(t testing.TB, domain string) *fedNode {
	t.Helper()
	ca, err := identity.NewCA(domain)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := federation.IssueProviderCertificate(ca, domain, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "provider.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := New(Config{Domain: domain, FederationURL: "https://fed." + domain + "/mimi"}, st, ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fedNode{domain: domain, ca: ca, cert: cert, st: st, srv: srv}
}

// trustEntry is one partner of a trust file.
type trustEntry struct {
	Domain   string `json:"domain"`
	Endpoint string `json:"endpoint"`
	CAPEM    string `json:"ca_pem,omitempty"`
	Pin      string `json:"pin_sha256,omitempty"`
}

func (n *fedNode) entry(endpoint string) trustEntry {
	return trustEntry{Domain: n.domain, Endpoint: endpoint,
		CAPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: n.ca.Certificate().Raw}))}
}

// loadTrust writes a trust file in a temporary directory and loads it.
func loadTrust(t *testing.T, partners ...trustEntry) *federation.Trust {
	t.Helper()
	data, err := json.Marshal(map[string]any{"partners": partners})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := federation.LoadTrust(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// serveFederation serves n's federation API over mutual TLS on a loopback
// port and returns its https base URL.
func (n *fedNode) serveFederation(t *testing.T, trust *federation.Trust) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: n.srv.FederationHandler(trust), ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: federation.ServerTLSConfig(n.cert, trust)}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })
	return "https://" + ln.Addr().String()
}

// addDevice makes the device of the user (and the user, with phone, on
// first use) in n's store, with fresh KeyPackages and a last-resort one if
// lastResort.
func (n *fedNode) addDevice(t testing.TB, handle, phone, device string, fresh int, lastResort bool) {
	t.Helper()
	n.addDeviceWithLifetime(t, handle, phone, device, fresh, lastResort, nil)
}

// addDeviceWithLifetime is addDevice with the KeyPackages' lifetime given
// (nil: the default, valid now).
func (n *fedNode) addDeviceWithLifetime(t testing.TB, handle, phone, device string, fresh int, lastResort bool, life *mls.Lifetime) {
	t.Helper()
	ctx := context.Background()
	var code string
	if u, err := n.st.UserByHandle(ctx, handle); err == nil {
		if code, err = AddEnrollment(ctx, n.st, u.ID, 0); err != nil {
			t.Fatal(err)
		}
	} else if u, code, err = AddUser(ctx, n.st, handle, phone, 0); err != nil {
		t.Fatal(err)
	} else if err = n.st.SetReachability(ctx, u.ID, store.ReachAll, nil); err != nil {
		// Reachable by every partner, as if the user had said so.
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	d, err := n.st.RegisterDevice(ctx, hashSecret(normalizeCode(code)), device, pub, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	suite, signer, cred := n.credential(t, handle, device)
	var rows []store.KeyPackage
	for i := range fresh + 1 {
		last := i == fresh
		if last && !lastResort {
			break
		}
		kp, err := mls.NewKeyPackage(suite, signer, cred, mls.KeyPackageOptions{LastResort: last, Lifetime: life})
		if err != nil {
			t.Fatal(err)
		}
		data := mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp.KeyPackage})
		rows = append(rows, store.KeyPackage{Ref: kp.KeyPackage.Ref(suite), DeviceID: d.ID, Suite: uint16(suite.ID), Data: data, LastResort: last})
	}
	if err := n.st.AddKeyPackages(ctx, rows); err != nil {
		t.Fatal(err)
	}
}

// credential issues a device credential of n's CA for a fresh key.
func (n *fedNode) credential(t testing.TB, handle, device string) (*mls.Suite, *mls.SignaturePrivateKey, mls.Credential) {
	t.Helper()
	suite, err := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := suite.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	cred, err := n.ca.IssueDevice(suite, signer.PublicKey(), handle, device, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return suite, signer, cred
}

// keyMaterialRequest is a request by user of n for target, signed by one
// of the user's devices.
func (n *fedNode) keyMaterialRequest(t *testing.T, user, target string) *federation.KeyMaterialRequest {
	t.Helper()
	suite, signer, cred := n.credential(t, user, "desk")
	req := &federation.KeyMaterialRequest{
		Protocol:               federation.ProtocolMLS10,
		RequestingUser:         federation.IdentifierURI(identity.UserURI(n.domain, user).String()),
		TargetUser:             federation.IdentifierURI(target),
		AcceptableCiphersuites: []mls.CipherSuite{suite.ID},
		RequesterCredential:    cred,
	}
	if err := req.Sign(suite, signer); err != nil {
		t.Fatal(err)
	}
	return req
}

// peers is n's calling side, trusting green at endpoint.
func (n *fedNode) peers(t *testing.T, trust *federation.Trust) *federation.Peers {
	t.Helper()
	p, err := federation.NewPeers(n.domain, n.cert, trust, federation.PeerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// post sends body to green's endpoint path and returns the answer, failing
// the test if there is none.
func post(t *testing.T, p *federation.Peers, path string, body []byte) *federation.Response {
	t.Helper()
	resp, err := p.Post(context.Background(), "green.example", path, body, nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

// wantRefused checks a JSON error answer.
func wantRefused(t *testing.T, resp *federation.Response, status int, code string) {
	t.Helper()
	err := federation.Classify(resp, nil)
	var pe *federation.PeerError
	if !errors.As(err, &pe) || pe.Status != status || pe.Code != code {
		t.Fatalf("want %d %s, got %v (%s)", status, code, err, resp.Body)
	}
}

func TestFederationKeyMaterialAndIdentifierQuery(t *testing.T) {
	green, blue, red := newFedNode(t, "green.example"), newFedNode(t, "blue.example"), newFedNode(t, "red.example")
	pinned, gray := newFedNode(t, "pinned.example"), newFedNode(t, "gray.example")
	pinLeaf, err := x509.ParseCertificate(pinned.cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	greenTrust := loadTrust(t, blue.entry("https://blue.invalid"), red.entry("https://red.invalid"),
		trustEntry{Domain: pinned.domain, Endpoint: "https://pinned.invalid", Pin: federation.PinSHA256(pinLeaf)})
	endpoint := green.serveFederation(t, greenTrust)
	callers := map[string]*federation.Peers{}
	for _, n := range []*fedNode{blue, red, pinned, gray} {
		callers[n.domain] = n.peers(t, loadTrust(t, green.entry(endpoint)))
	}

	// alice has two devices: two fresh KeyPackages and a last-resort one
	// on her phone, one fresh and none in reserve on her laptop.
	green.addDevice(t, "alice", "+41 44 668 18 00", "phone", 2, true)
	green.addDevice(t, "alice", "", "laptop", 1, false)
	alice := federation.IdentifierURI("mimi://green.example/u/alice")
	kmPath := "/mimi/keyMaterial/" + "mimi%3A%2F%2Fgreen.example%2Fu%2Falice"

	t.Run("directory", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: federation.ClientTLSConfig(blue.cert, loadTrust(t, green.entry(endpoint)), "green.example")}}
		resp, err := c.Get(endpoint + federation.WellKnownDirectoryPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		d, err := federation.ParseDirectory(data)
		if err != nil {
			t.Fatalf("%v: %s", err, data)
		}
		u, err := d.KeyMaterialURL(alice)
		if want := "https://fed.green.example" + kmPath; err != nil || u != want {
			t.Fatalf("keyMaterial URL %q, %v; want %q", u, err, want)
		}
	})

	claim := func(t *testing.T) federation.KeyMaterialResponse {
		t.Helper()
		resp := post(t, callers["blue.example"], kmPath, mls.Marshal(blue.keyMaterialRequest(t, "bob", string(alice))))
		if resp.Status != http.StatusOK {
			t.Fatalf("status %d: %s", resp.Status, resp.Body)
		}
		var km federation.KeyMaterialResponse
		if err := mls.Unmarshal(resp.Body, &km); err != nil {
			t.Fatal(err)
		}
		return km
	}
	refs := map[string]string{} // every KeyPackage handed out, by ref
	check := func(t *testing.T, km federation.KeyMaterialResponse, user federation.KeyMaterialUserCode, clients map[string]federation.KeyMaterialClientCode, lastResortOK bool) {
		t.Helper()
		if km.UserStatus != user || km.UserURI != alice || len(km.Clients) != len(clients) {
			t.Fatalf("got %v for %s with %d clients, want %v with %d", km.UserStatus, km.UserURI, len(km.Clients), user, len(clients))
		}
		suite, _ := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
		for _, c := range km.Clients {
			want, ok := clients[string(c.ClientURI)]
			if !ok || c.ClientStatus != want {
				t.Fatalf("client %s: %v, want %v", c.ClientURI, c.ClientStatus, want)
			}
			if c.ClientStatus != federation.ClientKeyMaterialSuccess {
				continue
			}
			_, last := c.KeyPackage.Extensions.Find(mls.ExtLastResort)
			ref := string(c.KeyPackage.Ref(suite))
			if prev, seen := refs[ref]; seen && !(last && lastResortOK) {
				t.Fatalf("KeyPackage of %s handed out twice (first to %s)", c.ClientURI, prev)
			}
			refs[ref] = string(c.ClientURI)
			// The store remembers the ref, to route the Welcome.
			if _, err := green.st.KeyPackageDevice(context.Background(), []byte(ref)); err != nil {
				t.Fatalf("the store cannot route a Welcome for %s's KeyPackage: %v", c.ClientURI, err)
			}
		}
	}
	phone, laptop := "mimi://green.example/d/alice/phone", "mimi://green.example/d/alice/laptop"
	ok, exhausted := federation.ClientKeyMaterialSuccess, federation.ClientKeyMaterialExhausted

	t.Run("keyMaterial hands each KeyPackage out once", func(t *testing.T) {
		check(t, claim(t), federation.KeyMaterialSuccess, map[string]federation.KeyMaterialClientCode{phone: ok, laptop: ok}, false)
		check(t, claim(t), federation.KeyMaterialPartialSuccess, map[string]federation.KeyMaterialClientCode{phone: ok, laptop: exhausted}, false)
		// The phone's fresh ones are used up: its last-resort one now,
		// and again.
		for range 2 {
			check(t, claim(t), federation.KeyMaterialPartialSuccess, map[string]federation.KeyMaterialClientCode{phone: ok, laptop: exhausted}, true)
		}
	})

	t.Run("a signed request is answered once", func(t *testing.T) {
		body := mls.Marshal(blue.keyMaterialRequest(t, "bob", string(alice)))
		if resp := post(t, callers["blue.example"], kmPath, body); resp.Status != http.StatusOK {
			t.Fatalf("first: %d %s", resp.Status, resp.Body)
		}
		// The same signed body again, with fresh transport stamps.
		wantRefused(t, post(t, callers["blue.example"], kmPath, body), http.StatusForbidden, "replay")
	})

	t.Run("expired KeyPackages are never handed out", func(t *testing.T) {
		past := &mls.Lifetime{NotBefore: 1, NotAfter: uint64(time.Now().Add(-time.Hour).Unix())}
		green.addDeviceWithLifetime(t, "erin", "", "phone", 2, true, past)
		erin := "mimi://green.example/u/erin"
		resp := post(t, callers["blue.example"], "/mimi/keyMaterial/"+url.PathEscape(erin), mls.Marshal(blue.keyMaterialRequest(t, "bob", erin)))
		var km federation.KeyMaterialResponse
		if err := mls.Unmarshal(resp.Body, &km); err != nil || len(km.Clients) != 1 || km.Clients[0].ClientStatus != federation.ClientKeyMaterialExhausted {
			t.Fatalf("%d %v: %+v", resp.Status, err, km)
		}
	})

	t.Run("keyMaterial for an unknown user", func(t *testing.T) {
		resp := post(t, callers["blue.example"], "/mimi/keyMaterial/mimi%3A%2F%2Fgreen.example%2Fu%2Fnobody",
			mls.Marshal(blue.keyMaterialRequest(t, "bob", "mimi://green.example/u/nobody")))
		var km federation.KeyMaterialResponse
		if err := mls.Unmarshal(resp.Body, &km); err != nil || km.UserStatus != federation.KeyMaterialUserUnknown || len(km.Clients) != 0 {
			t.Fatalf("%d %v %v: %x", resp.Status, err, km.UserStatus, resp.Body)
		}
	})

	t.Run("a partner may not ask in another's user's name", func(t *testing.T) {
		resp := post(t, callers["red.example"], kmPath, mls.Marshal(blue.keyMaterialRequest(t, "bob", string(alice))))
		wantRefused(t, resp, http.StatusForbidden, "not_its_user")
	})

	t.Run("a forged signature is refused", func(t *testing.T) {
		req := blue.keyMaterialRequest(t, "bob", string(alice))
		req.Signature[0] ^= 1
		wantRefused(t, post(t, callers["blue.example"], kmPath, mls.Marshal(req)), http.StatusForbidden, "invalid_signature")
	})

	t.Run("a credential that is not the requester's is refused", func(t *testing.T) {
		// Well signed, in bob's name, but with the key of a credential
		// that red's CA issued, or blue's CA issued to carol: the
		// credential must be bob's, from blue's CA.
		for _, n := range []*fedNode{red, blue} {
			req := blue.keyMaterialRequest(t, "bob", string(alice))
			suite, signer, cred := n.credential(t, "carol", "desk")
			req.RequesterCredential, req.RequesterSignatureKey = cred, nil
			if err := req.Sign(suite, signer); err != nil {
				t.Fatal(err)
			}
			wantRefused(t, post(t, callers["blue.example"], kmPath, mls.Marshal(req)), http.StatusForbidden, "untrusted_credential")
		}
	})

	t.Run("a pinned partner's users' credentials cannot be verified", func(t *testing.T) {
		resp := post(t, callers["pinned.example"], kmPath, mls.Marshal(pinned.keyMaterialRequest(t, "pat", string(alice))))
		wantRefused(t, resp, http.StatusForbidden, "untrusted_credential")
	})

	t.Run("a malformed body is a 400", func(t *testing.T) {
		wantRefused(t, post(t, callers["blue.example"], kmPath, []byte{1, 2, 3}), http.StatusBadRequest, "bad_request")
	})

	t.Run("an unknown provider is refused at the handshake", func(t *testing.T) {
		resp, err := callers["gray.example"].Post(context.Background(), "green.example", kmPath,
			mls.Marshal(gray.keyMaterialRequest(t, "gus", string(alice))), nil)
		var pe *federation.PeerError
		if err == nil || !errors.As(federation.Classify(resp, err), &pe) || pe.Status != 0 {
			t.Fatalf("got %v, %v; want a refused connection", resp, err)
		}
	})

	query := func(t *testing.T, typ federation.SearchIdentifierType, value string) federation.IdentifierResponse {
		t.Helper()
		req := federation.IdentifierRequest{QueryElements: []federation.QueryElement{{SearchType: typ, SearchValue: value}}}
		resp := post(t, callers["blue.example"], "/mimi/identifierQuery/green.example", mls.Marshal(&req))
		var out federation.IdentifierResponse
		if resp.Status != http.StatusOK {
			t.Fatalf("status %d: %s", resp.Status, resp.Body)
		}
		if err := mls.Unmarshal(resp.Body, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Run("identifierQuery", func(t *testing.T) {
		// Only users who allow it are found (docs/discovery.md, and
		// TestDiscoveryFederationSide for those who do not).
		if u, err := green.st.UserByHandle(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		} else if err := green.st.SetDiscoverable(context.Background(), u.ID, true, true); err != nil {
			t.Fatal(err)
		}
		for _, q := range []struct {
			typ   federation.SearchIdentifierType
			value string
			code  federation.IdentifierQueryCode
		}{
			{federation.SearchHandle, "alice", federation.IdentifierSuccess},
			{federation.SearchHandle, "Alice", federation.IdentifierSuccess},
			{federation.SearchPhone, "+41446681800", federation.IdentifierSuccess},
			{federation.SearchPhone, "+41 44 668 18 00", federation.IdentifierSuccess},
			{federation.SearchHandle, "mallory", federation.IdentifierNotFound},
			{federation.SearchPhone, "+41446681801", federation.IdentifierNotFound},
			{federation.SearchPhone, "not a number", federation.IdentifierNotFound},
			{federation.SearchEmail, "alice@example.com", federation.IdentifierUnsupportedField},
		} {
			got := query(t, q.typ, q.value)
			if got.ResponseCode != q.code {
				t.Errorf("%v %q: %v, want %v", q.typ, q.value, got.ResponseCode, q.code)
			}
			if q.code == federation.IdentifierSuccess && (len(got.URIs) != 1 || got.URIs[0] != alice) {
				t.Errorf("%v %q: URIs %v", q.typ, q.value, got.URIs)
			} else if q.code != federation.IdentifierSuccess && len(got.URIs) != 0 {
				t.Errorf("%v %q: URIs %v with %v", q.typ, q.value, got.URIs, got.ResponseCode)
			}
		}
		wantRefused(t, post(t, callers["blue.example"], "/mimi/identifierQuery/blue.example",
			mls.Marshal(&federation.IdentifierRequest{QueryElements: []federation.QueryElement{{SearchType: federation.SearchHandle, SearchValue: "alice"}}})),
			http.StatusNotFound, "not_found")
	})

	t.Run("a replayed request is refused", func(t *testing.T) {
		hdr := http.Header{}
		federation.StampRequest(hdr)
		req := federation.IdentifierRequest{QueryElements: []federation.QueryElement{{SearchType: federation.SearchHandle, SearchValue: "alice"}}}
		// Peers stamps every attempt afresh, so a replay needs a raw
		// client: the same stamp twice over one mTLS client.
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: federation.ClientTLSConfig(blue.cert, loadTrust(t, green.entry(endpoint)), "green.example")}}
		for i, want := range []int{http.StatusOK, http.StatusForbidden} {
			r, _ := http.NewRequest("POST", endpoint+"/mimi/identifierQuery/green.example", bytes.NewReader(mls.Marshal(&req)))
			r.Header = hdr.Clone()
			resp, err := c.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("attempt %d: status %d, want %d", i+1, resp.StatusCode, want)
			}
		}
	})
}

// TestFederationConsentAbuseAndGroupInfoAreServed: the endpoints whose full
// behaviour comes later are served and check who speaks for whom. Blue's
// user asks consent to reach alice; blue grants consent for its user to
// be reached by alice; red cannot ask in blue's user's name; an abuse
// report or a GroupInfo request for a room green does not host gets a clear
// answer.
func TestFederationConsentAbuseAndGroupInfoAreServed(t *testing.T) {
	green, blue := newFedNode(t, "green.example"), newFedNode(t, "blue.example")
	red := newFedNode(t, "red.example")
	endpoint := green.serveFederation(t, loadTrust(t, blue.entry("https://blue.invalid"), red.entry("https://red.invalid")))
	bluePeers := blue.peers(t, loadTrust(t, green.entry(endpoint)))
	redPeers := red.peers(t, loadTrust(t, green.entry(endpoint)))
	green.addDevice(t, "alice", "", "phone", 1, false)
	alice := "mimi://green.example/u/alice"
	bob := "mimi://blue.example/u/bob"
	esc := func(s string) string { return strings.NewReplacer(":", "%3A", "/", "%2F").Replace(s) }

	ask := mls.Marshal(&federation.ConsentEntry{ConsentOperation: federation.ConsentRequest,
		RequesterURI: federation.IdentifierURI(bob), TargetURI: federation.IdentifierURI(alice)})
	if resp := post(t, bluePeers, "/mimi/requestConsent/"+esc(alice), ask); resp.Status != http.StatusCreated {
		t.Fatalf("requestConsent: %d %s", resp.Status, resp.Body)
	}
	wantRefused(t, post(t, redPeers, "/mimi/requestConsent/"+esc(alice), ask), http.StatusForbidden, "not_its_user")
	grant := mls.Marshal(&federation.ConsentEntry{ConsentOperation: federation.ConsentGrant,
		RequesterURI: federation.IdentifierURI(alice), TargetURI: federation.IdentifierURI(bob)})
	if resp := post(t, bluePeers, "/mimi/updateConsent/"+esc(alice), grant); resp.Status != http.StatusCreated {
		t.Fatalf("updateConsent: %d %s", resp.Status, resp.Body)
	}
	wantRefused(t, post(t, bluePeers, "/mimi/updateConsent/"+esc(alice), ask), http.StatusBadRequest, "bad_request")

	room := "mimi://green.example/r/no-such-room"
	report := mls.Marshal(&federation.AbuseReport{ReportingUser: federation.IdentifierURI(bob), AllegedAbuserURI: federation.IdentifierURI(alice)})
	wantRefused(t, post(t, bluePeers, "/mimi/reportAbuse/"+esc(room), report), http.StatusNotFound, "not_found")
	wantRefused(t, post(t, redPeers, "/mimi/reportAbuse/"+esc(room), report), http.StatusForbidden, "not_its_user")

	suite, signer, cred := blue.credential(t, "bob", "phone")
	gi := &federation.GroupInfoRequest{Protocol: federation.ProtocolMLS10, CipherSuite: suite.ID,
		RequestingCredential: cred, GroupInfoPublicKey: make([]byte, 32)}
	if err := gi.Sign(suite, signer); err != nil {
		t.Fatal(err)
	}
	resp := post(t, bluePeers, "/mimi/groupInfo/"+esc(room), mls.Marshal(gi))
	var answer federation.GroupInfoResponse
	if err := mls.Unmarshal(resp.Body, &answer); resp.Status != http.StatusOK || err != nil || answer.Status != federation.GroupInfoNoSuchRoom {
		t.Fatalf("groupInfo: %d %+v %v", resp.Status, answer, err)
	}
}

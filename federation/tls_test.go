package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
)

// testProvider is one provider's identity: its CA and its TLS certificate.
type testProvider struct {
	domain string
	ca     *identity.CA
	cert   tls.Certificate
}

func newTestProvider(t testing.TB, domain string) *testProvider {
	t.Helper()
	ca, err := identity.NewCA(domain)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := IssueProviderCertificate(ca, domain, time.Now().Add(DefaultProviderCertValidity))
	if err != nil {
		t.Fatal(err)
	}
	return &testProvider{domain: domain, ca: ca, cert: cert}
}

func (p *testProvider) caPEM(t testing.TB) string {
	t.Helper()
	certPEM, _, err := p.ca.PEM()
	if err != nil {
		t.Fatal(err)
	}
	return string(certPEM)
}

// entry is p's entry in a trust file, trusted by CA.
func (p *testProvider) entry(t testing.TB) partnerJSON {
	return partnerJSON{Domain: p.domain, Endpoint: "https://" + p.domain + ":8444", CAPEM: p.caPEM(t)}
}

// writeTrust writes a trust file atomically (rename), so a Watch running
// concurrently never reads half of it.
func writeTrust(t testing.TB, path string, partners ...partnerJSON) {
	t.Helper()
	data, err := json.MarshalIndent(trustFile{Partners: partners}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, data)
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer for logs written from server goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fedServer is a provider's federation endpoint on loopback: its trust file,
// its Trust, and a handler that answers with the authenticated peer.
type fedServer struct {
	*testProvider
	path  string
	trust *Trust
	srv   *httptest.Server
	log   *syncBuffer // the Trust's slog output
	errs  *syncBuffer // http.Server's ErrorLog: handshake failures
}

func startFedServer(t *testing.T, p *testProvider, partners ...partnerJSON) *fedServer {
	t.Helper()
	f := &fedServer{testProvider: p, path: filepath.Join(t.TempDir(), "trust.json"), log: new(syncBuffer), errs: new(syncBuffer)}
	writeTrust(t, f.path, partners...)
	var err error
	f.trust, err = LoadTrust(f.path, slog.New(slog.NewTextHandler(f.log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(RequirePartner(f.trust, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := PeerDomain(r)
		if err != nil {
			t.Errorf("PeerDomain behind RequirePartner: %v", err)
		}
		io.WriteString(w, peer)
	})))
	f.srv.TLS = ServerTLSConfig(p.cert, f.trust)
	f.srv.Config.ErrorLog = log.New(f.errs, "", 0)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// dialer is a provider's client side: its trust file and Trust.
type dialer struct {
	*testProvider
	trust *Trust
}

func newDialer(t *testing.T, p *testProvider, partners ...partnerJSON) *dialer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trust.json")
	writeTrust(t, path, partners...)
	tr, err := LoadTrust(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &dialer{testProvider: p, trust: tr}
}

// client returns an HTTP client of d that dials partner, keeping
// connections alive.
func (d *dialer) client(t *testing.T, partner string) *http.Client {
	tr := &http.Transport{TLSClientConfig: ClientTLSConfig(d.cert, d.trust, partner)}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// result is what one request did.
type result struct {
	status int
	body   string
	reused bool // whether it went over a connection opened before
	err    error
}

func get(c *http.Client, u string) result {
	var res result
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { res.reused = i.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", u, nil)
	resp, err := c.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	res.status, res.body = resp.StatusCode, string(b)
	return res
}

// errorCode returns the code of a JSON error body, or "".
func errorCode(body string) string {
	var e struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal([]byte(body), &e)
	return e.Error.Code
}

// eventually polls cond until it holds or a few seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

func TestIssueProviderCertificate(t *testing.T) {
	green := newTestProvider(t, "green.example")
	leaf := green.cert.Leaf
	if got := leaf.DNSNames; len(got) != 1 || got[0] != "green.example" {
		t.Errorf("DNSNames = %v", got)
	}
	if got := leaf.URIs; len(got) != 1 || got[0].String() != "mimi://green.example" {
		t.Errorf("URIs = %v", got)
	}
	if got := leaf.ExtKeyUsage; len(got) != 2 || got[0] != x509.ExtKeyUsageServerAuth || got[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ExtKeyUsage = %v", got)
	}
	if leaf.IsCA || leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("IsCA %v, key %v: want an ECDSA end-entity certificate", leaf.IsCA, leaf.PublicKeyAlgorithm)
	}
	// It verifies to the CA with its name constraints, for both uses.
	roots := x509.NewCertPool()
	roots.AddCert(green.ca.Certificate())
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "green.example", KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("verify for %v: %v", u, err)
		}
	}
	if len(green.cert.Certificate) != 2 || !bytes.Equal(green.cert.Certificate[1], green.ca.Certificate().Raw) {
		t.Error("the chain is not [leaf, CA]")
	}

	if _, err := IssueProviderCertificate(green.ca, "blue.example", time.Now().Add(time.Hour)); err == nil {
		t.Error("green's CA issued a TLS certificate for blue.example")
	}
	if _, err := IssueProviderCertificate(green.ca, "green.example", time.Now().Add(-time.Hour)); !errors.Is(err, identity.ErrCA) {
		t.Errorf("expired notAfter: err = %v, want identity.ErrCA", err)
	}
	if _, err := green.ca.SignCertificate(&x509.Certificate{IsCA: true, BasicConstraintsValid: true, NotAfter: time.Now().Add(time.Hour)},
		green.cert.Leaf.PublicKey); !errors.Is(err, identity.ErrCA) {
		t.Errorf("SignCertificate of a CA template: err = %v, want identity.ErrCA", err)
	}
}

// A partner connects and is accepted; handlers see who it is.
func TestPartnerAccepted(t *testing.T) {
	green, blue := newTestProvider(t, "green.example"), newTestProvider(t, "blue.example")
	gs := startFedServer(t, green, blue.entry(t))
	bc := newDialer(t, blue, green.entry(t)).client(t, "green.example")
	res := get(bc, gs.srv.URL)
	if res.err != nil || res.status != 200 || res.body != "blue.example" {
		t.Fatalf("blue → green: %+v, want 200 blue.example", res)
	}
}

// An unknown provider, or one whose certificate comes from a CA other than
// the configured one, is refused at the handshake, with the reason in the
// server's logs.
func TestUnknownRefusedAtHandshake(t *testing.T) {
	green, blue, red := newTestProvider(t, "green.example"), newTestProvider(t, "blue.example"), newTestProvider(t, "red.example")
	gs := startFedServer(t, green, blue.entry(t))

	res := get(newDialer(t, red, green.entry(t)).client(t, "green.example"), gs.srv.URL)
	if res.err == nil || !strings.Contains(res.err.Error(), "bad certificate") {
		t.Fatalf("red → green: %+v, want a bad_certificate alert", res)
	}
	eventually(t, "green's logs say why", func() bool {
		return strings.Contains(gs.errs.String(), "TLS handshake error") &&
			strings.Contains(gs.errs.String(), "red.example is not a partner of this provider") &&
			strings.Contains(gs.log.String(), "refused a partner's TLS handshake")
	})

	// An impostor: a CA of its own for blue.example, not blue's.
	impostor := newTestProvider(t, "blue.example")
	res = get(newDialer(t, impostor, green.entry(t)).client(t, "green.example"), gs.srv.URL)
	if res.err == nil {
		t.Fatalf("impostor blue → green: %+v, want refused", res)
	}
	eventually(t, "green's logs say why", func() bool {
		return strings.Contains(gs.errs.String(), "the certificate of blue.example does not chain to its configured CA")
	})
}

// A pinned partner is accepted; a wrong pin is refused.
func TestPinnedPartner(t *testing.T) {
	green, blue, red := newTestProvider(t, "green.example"), newTestProvider(t, "blue.example"), newTestProvider(t, "red.example")
	pinned := partnerJSON{Domain: "blue.example", Endpoint: "https://127.0.0.1:8444", PinSHA256: PinSHA256(blue.cert.Leaf)}
	gs := startFedServer(t, green, pinned)
	bc := newDialer(t, blue, green.entry(t)).client(t, "green.example")
	if res := get(bc, gs.srv.URL); res.status != 200 || res.body != "blue.example" {
		t.Fatalf("pinned blue → green: %+v", res)
	}

	pinned.PinSHA256 = PinSHA256(red.cert.Leaf)
	writeTrust(t, gs.path, pinned)
	if err := gs.trust.Reload(); err != nil {
		t.Fatal(err)
	}
	bc = newDialer(t, blue, green.entry(t)).client(t, "green.example")
	if res := get(bc, gs.srv.URL); res.err == nil {
		t.Fatalf("blue with the wrong pin → green: %+v, want refused", res)
	}
	eventually(t, "green's logs say why", func() bool {
		return strings.Contains(gs.errs.String(), "does not match its configured pin_sha256")
	})

	// Pin and CA together must both hold.
	both := blue.entry(t)
	both.PinSHA256 = PinSHA256(blue.cert.Leaf)
	writeTrust(t, gs.path, both)
	if err := gs.trust.Reload(); err != nil {
		t.Fatal(err)
	}
	if res := get(bc, gs.srv.URL); res.status != 200 {
		t.Fatalf("blue with pin and CA → green: %+v", res)
	}
}

// Suspending, removing and re-adding a partner take effect without a
// restart, on the connection the partner already has open too.
func TestSuspendRemoveReadd(t *testing.T) {
	green, blue := newTestProvider(t, "green.example"), newTestProvider(t, "blue.example")
	gs := startFedServer(t, green, blue.entry(t))
	bc := newDialer(t, blue, green.entry(t)).client(t, "green.example")

	if res := get(bc, gs.srv.URL); res.status != 200 {
		t.Fatalf("first request: %+v", res)
	}

	// Suspend, picked up by Watch.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go gs.trust.Watch(ctx, 10*time.Millisecond)
	suspended := blue.entry(t)
	suspended.Suspended = true
	writeTrust(t, gs.path, suspended)
	eventually(t, "Watch applies the suspension", func() bool {
		_, err := gs.trust.Partner("blue.example")
		return errors.Is(err, ErrSuspendedPartner)
	})
	res := get(bc, gs.srv.URL)
	if !res.reused || res.status != 403 || errorCode(res.body) != "suspended_partner" {
		t.Fatalf("request on the open connection after suspension: %+v, want reused, 403 suspended_partner", res)
	}
	// The refusal closed the connection; a new one is refused at the
	// handshake.
	if res := get(bc, gs.srv.URL); res.err == nil || res.reused {
		t.Fatalf("request after suspension on a new connection: %+v, want refused", res)
	}

	// Resume, then remove with Reload, again on an open connection.
	writeTrust(t, gs.path, blue.entry(t))
	eventually(t, "Watch lifts the suspension", func() bool {
		_, err := gs.trust.Partner("blue.example")
		return err == nil
	})
	cancel()
	if res := get(bc, gs.srv.URL); res.status != 200 {
		t.Fatalf("after resuming: %+v", res)
	}
	writeTrust(t, gs.path)
	if err := gs.trust.Reload(); err != nil {
		t.Fatal(err)
	}
	res = get(bc, gs.srv.URL)
	if !res.reused || res.status != 403 || errorCode(res.body) != "unknown_partner" {
		t.Fatalf("request on the open connection after removal: %+v, want reused, 403 unknown_partner", res)
	}
	if res := get(bc, gs.srv.URL); res.err == nil {
		t.Fatalf("request after removal on a new connection: %+v, want refused", res)
	}

	// Re-add.
	writeTrust(t, gs.path, blue.entry(t))
	if err := gs.trust.Reload(); err != nil {
		t.Fatal(err)
	}
	if res := get(bc, gs.srv.URL); res.status != 200 || res.body != "blue.example" {
		t.Fatalf("after re-adding: %+v", res)
	}

	log := gs.log.String()
	for _, want := range []string{"federation partner suspended", "federation partner resumed", "federation partner removed", "federation partner added"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
}

// Replacing a partner's CA applies to connections opened before the change:
// RequirePartner checks the chain again.
func TestCAChangeAppliesToOpenConnection(t *testing.T) {
	green, blue := newTestProvider(t, "green.example"), newTestProvider(t, "blue.example")
	gs := startFedServer(t, green, blue.entry(t))
	bc := newDialer(t, blue, green.entry(t)).client(t, "green.example")
	if res := get(bc, gs.srv.URL); res.status != 200 {
		t.Fatalf("first request: %+v", res)
	}
	rolled := newTestProvider(t, "blue.example")
	writeTrust(t, gs.path, rolled.entry(t))
	if err := gs.trust.Reload(); err != nil {
		t.Fatal(err)
	}
	if res := get(bc, gs.srv.URL); !res.reused || res.status != 403 || errorCode(res.body) != "untrusted_certificate" {
		t.Fatalf("after the CA changed: %+v, want reused, 403 untrusted_certificate", res)
	}
	if !strings.Contains(gs.log.String(), "federation partner changed") {
		t.Errorf("the change is not logged:\n%s", gs.log)
	}
}

// The client checks that the server is the partner it dialled: a server
// presenting another partner's certificate is refused, as is a partner that
// is suspended.
func TestClientChecksServer(t *testing.T) {
	green, blue, red := newTestProvider(t, "green.example"), newTestProvider(t, "blue.example"), newTestProvider(t, "red.example")
	// red answers at the address blue believes is green's.
	rs := startFedServer(t, red, blue.entry(t))
	bd := newDialer(t, blue, green.entry(t), red.entry(t))
	res := get(bd.client(t, "green.example"), rs.srv.URL)
	if !errors.Is(res.err, ErrUntrustedCertificate) || !strings.Contains(res.err.Error(), "the server for green.example presented a certificate of red.example") {
		t.Fatalf("blue → red posing as green: %+v, want ErrUntrustedCertificate", res)
	}
	// The same server dialled as red is fine.
	if res := get(bd.client(t, "red.example"), rs.srv.URL); res.status != 200 {
		t.Fatalf("blue → red: %+v", res)
	}

	suspended := red.entry(t)
	suspended.Suspended = true
	bd = newDialer(t, blue, suspended)
	if res := get(bd.client(t, "red.example"), rs.srv.URL); !errors.Is(res.err, ErrSuspendedPartner) {
		t.Fatalf("blue → suspended red: %+v, want ErrSuspendedPartner", res)
	}
	bd = newDialer(t, blue)
	if res := get(bd.client(t, "red.example"), rs.srv.URL); !errors.Is(res.err, ErrUnknownPartner) {
		t.Fatalf("blue → unlisted red: %+v, want ErrUnknownPartner", res)
	}
}

// Certificates of the right CA but not made for provider TLS are refused:
// a device credential (no extended key usage, which crypto/x509 would take
// as "any"), and a provider certificate without client authentication.
func TestWrongKindOfCertificate(t *testing.T) {
	green, blue := newTestProvider(t, "green.example"), newTestProvider(t, "blue.example")
	gs := startFedServer(t, green, blue.entry(t))

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	suite, err := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := blue.ca.IssueDevice(suite, pub, "mallory", "laptop", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	device := &testProvider{domain: "blue.example", ca: blue.ca, cert: tls.Certificate{Certificate: cred.Certificates, PrivateKey: priv}}
	res := get(newDialer(t, device, green.entry(t)).client(t, "green.example"), gs.srv.URL)
	if res.err == nil {
		t.Fatalf("a device credential as client certificate: %+v, want refused", res)
	}
	eventually(t, "green's logs say why", func() bool {
		return strings.Contains(gs.errs.String(), "the client certificate names no provider")
	})

	serverOnly, err := blue.ca.SignCertificate(&x509.Certificate{
		DNSNames: []string{"blue.example"}, URIs: []*url.URL{{Scheme: "mimi", Host: "blue.example"}},
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, pub)
	if err != nil {
		t.Fatal(err)
	}
	so := &testProvider{domain: "blue.example", ca: blue.ca, cert: tls.Certificate{Certificate: [][]byte{serverOnly.Raw}, PrivateKey: priv}}
	if res := get(newDialer(t, so, green.entry(t)).client(t, "green.example"), gs.srv.URL); res.err == nil {
		t.Fatalf("a server-only certificate as client certificate: %+v, want refused", res)
	}
	eventually(t, "green's logs say why", func() bool {
		return strings.Contains(gs.errs.String(), "is not for TLS client authentication")
	})
}

// RequirePartner refuses a From header naming another provider, and a
// request that did not come over mutual TLS.
func TestRequirePartnerFromAndPlainHTTP(t *testing.T) {
	green, blue := newTestProvider(t, "green.example"), newTestProvider(t, "blue.example")
	gs := startFedServer(t, green, blue.entry(t))
	bc := newDialer(t, blue, green.entry(t)).client(t, "green.example")
	for from, want := range map[string]int{"mimi@blue.example": 200, "mimi@red.example": 403, "": 200} {
		req, _ := http.NewRequest("GET", gs.srv.URL, nil)
		if from != "" {
			req.Header.Set("From", from)
		}
		resp, err := bc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == 403 && errorCode(string(body)) != "not_its_user" {
			t.Errorf("From %q: %d %s, want %d", from, resp.StatusCode, body, want)
		}
	}

	rec := httptest.NewRecorder()
	RequirePartner(gs.trust, http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 401 || errorCode(rec.Body.String()) != "unauthenticated" {
		t.Errorf("plain HTTP: %d %s, want 401 unauthenticated", rec.Code, rec.Body)
	}
	if _, err := PeerDomain(httptest.NewRequest("GET", "/", nil)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("PeerDomain without RequirePartner: %v, want ErrUnauthenticated", err)
	}
}

// BenchmarkVerifyPeer measures the check RequirePartner makes per request.
func BenchmarkVerifyPeer(b *testing.B) {
	blue := newTestProvider(b, "blue.example")
	cfg, err := parseTrust([]byte(`{"partners":[` + mustJSON(b, blue.entry(b)) + `]}`))
	if err != nil {
		b.Fatal(err)
	}
	certs := []*x509.Certificate{blue.cert.Leaf, blue.ca.Certificate()}
	now := time.Now()
	for b.Loop() {
		if _, err := cfg.verifyPeer(certs, x509.ExtKeyUsageClientAuth, "", now); err != nil {
			b.Fatal(err)
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package federation

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/identity"
)

func TestLoadTrust(t *testing.T) {
	blue, red := newTestProvider(t, "blue.example"), newTestProvider(t, "red.example")
	path := filepath.Join(t.TempDir(), "trust.json")
	redPinned := partnerJSON{Domain: "red.example", Endpoint: "https://203.0.113.7:8444", PinSHA256: PinSHA256(red.cert.Leaf), Suspended: true}
	writeTrust(t, path, blue.entry(t), redPinned)
	tr, err := LoadTrust(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tr.Partner("blue.example")
	if err != nil || p.Domain != "blue.example" || len(p.CAs) != 1 || p.Pin != nil || p.Endpoint != "https://blue.example:8444" {
		t.Errorf("Partner(blue) = %+v, %v", p, err)
	}
	p, err = tr.Partner("red.example")
	if !errors.Is(err, ErrSuspendedPartner) || p.Domain != "red.example" || len(p.Pin) != 32 {
		t.Errorf("Partner(red) = %+v, %v; want red with ErrSuspendedPartner", p, err)
	}
	_, err = tr.Partner("green.example")
	var te *TrustError
	if !errors.Is(err, ErrUnknownPartner) || !errors.As(err, &te) || te.Code() != "unknown_partner" || te.Status() != 403 {
		t.Errorf("Partner(green) error = %v, want an unknown_partner TrustError", err)
	}
	if got := tr.Partners(); len(got) != 2 || got[0].Domain != "blue.example" || got[1].Domain != "red.example" {
		t.Errorf("Partners() = %v", got)
	}

	// A partner rolling its CA lists both; either is accepted.
	rolled := newTestProvider(t, "blue.example")
	two := blue.entry(t)
	two.CAPEM += rolled.caPEM(t)
	writeTrust(t, path, two)
	if err := tr.Reload(); err != nil {
		t.Fatal(err)
	}
	cfg := tr.cur.Load()
	for _, p := range []*testProvider{blue, rolled} {
		if _, err := cfg.verifyPeer([]*x509.Certificate{p.cert.Leaf}, x509.ExtKeyUsageClientAuth, "", time.Now()); err != nil {
			t.Errorf("with two CAs, a certificate of one: %v", err)
		}
	}
}

func TestTrustFileErrors(t *testing.T) {
	blue, red := newTestProvider(t, "blue.example"), newTestProvider(t, "red.example")
	good := blue.entry(t)
	with := func(f func(*partnerJSON)) string {
		p := good
		f(&p)
		return `{"partners":[` + mustJSON(t, p) + `]}`
	}
	_, keyPEM, _ := blue.ca.PEM()
	for name, c := range map[string]struct{ file, want string }{
		"not JSON":         {`{"partners": [`, "not a trust configuration"},
		"unknown field":    {`{"partners": [], "partner": []}`, "unknown field"},
		"misspelt field":   {strings.Replace(with(func(*partnerJSON) {}), `"suspended"`, `"suspend"`, 1), "unknown field"},
		"trailing data":    {`{"partners": []} {}`, "data after the JSON object"},
		"bad domain":       {with(func(p *partnerJSON) { p.Domain = "Blue.Example" }), "lower case"},
		"no endpoint":      {with(func(p *partnerJSON) { p.Endpoint = "" }), "endpoint is missing"},
		"http endpoint":    {with(func(p *partnerJSON) { p.Endpoint = "http://blue.example" }), "want an https:// URL"},
		"no CA or pin":     {with(func(p *partnerJSON) { p.CAPEM = "" }), "give ca_pem or pin_sha256"},
		"bad pin":          {with(func(p *partnerJSON) { p.PinSHA256 = "c2hvcnQ=" }), "pin_sha256"},
		"private key":      {with(func(p *partnerJSON) { p.CAPEM += string(keyPEM) }), `"PRIVATE KEY" PEM block`},
		"not PEM":          {with(func(p *partnerJSON) { p.CAPEM = "hello" }), "not a PEM block"},
		"leaf, not CA":     {with(func(p *partnerJSON) { p.CAPEM = pemCert(blue.cert.Leaf.Raw) }), "not a CA certificate"},
		"another's CA":     {with(func(p *partnerJSON) { p.CAPEM = red.caPEM(t) }), "is the CA of red.example, not of blue.example"},
		"listed twice":     {`{"partners":[` + mustJSON(t, good) + `,` + mustJSON(t, good) + `]}`, "blue.example is listed twice"},
		"domain in errors": {with(func(p *partnerJSON) { p.Endpoint = "ftp://x" }), "partners[0] (blue.example)"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "trust.json")
			writeFile(t, path, []byte(c.file))
			_, err := LoadTrust(path, nil)
			if !errors.Is(err, ErrTrustConfig) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want ErrTrustConfig mentioning %q", err, c.want)
			}
		})
	}
	if _, err := LoadTrust(filepath.Join(t.TempDir(), "missing.json"), nil); !errors.Is(err, ErrTrustConfig) {
		t.Errorf("missing file: %v", err)
	}
}

// A bad new file keeps the old configuration, and says so in the log once.
func TestBadReloadKeepsConfiguration(t *testing.T) {
	blue := newTestProvider(t, "blue.example")
	path := filepath.Join(t.TempDir(), "trust.json")
	writeTrust(t, path, blue.entry(t))
	logs := new(syncBuffer)
	tr, err := LoadTrust(path, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, []byte(`{"partners": [{"domain": "blue.example"`))
	if err := tr.Reload(); !errors.Is(err, ErrTrustConfig) {
		t.Fatalf("Reload of a truncated file: %v", err)
	}
	if _, err := tr.Partner("blue.example"); err != nil {
		t.Errorf("after a bad reload, blue: %v", err)
	}
	// Watch sees the same bad file on every tick and logs it once.
	tr.mu.Lock()
	for range 3 {
		tr.reload(true)
	}
	tr.mu.Unlock()
	if n := strings.Count(logs.String(), "keeping the previous configuration"); n != 1 {
		t.Errorf("the bad file was logged %d times, want 1:\n%s", n, logs)
	}
	// Undone, then made again: news again.
	writeTrust(t, path, blue.entry(t))
	tr.mu.Lock()
	tr.reload(true)
	tr.mu.Unlock()
	writeFile(t, path, []byte(`{"partners": [{"domain": "blue.example"`))
	tr.mu.Lock()
	tr.reload(true)
	tr.mu.Unlock()
	if n := strings.Count(logs.String(), "keeping the previous configuration"); n != 2 {
		t.Errorf("the bad file made again was logged %d times in all, want 2:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("not logged as an error:\n%s", logs)
	}
}

func TestCheckSpeaksFor(t *testing.T) {
	for _, c := range []struct {
		peer, uri string
		want      error
	}{
		{"blue.example", "mimi://blue.example/u/bob", nil},
		{"blue.example", "mimi://blue.example/d/bob/phone", nil},
		{"blue.example", "mimi://blue.example/p/crazykoala75", nil},
		{"blue.example", "mimi://blue.example", nil},
		{"blue.example", "mimi://green.example/u/alice", ErrNotItsUser},
		{"blue.example", "mimi://green.example/d/alice/phone", ErrNotItsUser},
		{"blue.example", "mimi://sub.blue.example/u/bob", ErrNotItsUser},
		{"blue.example", "mimi://green.example", ErrNotItsUser},
	} {
		uri, err := identity.ParseURI(c.uri)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckSpeaksFor(c.peer, uri); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("CheckSpeaksFor(%s, %s) = %v, want %v", c.peer, c.uri, err, c.want)
		}
	}
	room, _ := identity.ParseURI("mimi://blue.example/r/lobby")
	if err := CheckSpeaksFor("blue.example", room); err == nil || errors.Is(err, ErrNotItsUser) {
		t.Errorf("a room URI: %v, want a programming error", err)
	}
	if err := CheckSpeaksFor("blue.example", identity.URI{Kind: identity.KindUser, Domain: "blue.example"}); !errors.Is(err, identity.ErrInvalidURI) {
		t.Errorf("an invalid URI: %v", err)
	}
	err := CheckSpeaksFor("blue.example", identity.UserURI("green.example", "alice"))
	var te *TrustError
	if !errors.As(err, &te) || te.Code() != "not_its_user" || te.Msg != "blue.example may speak only for its own users, not for mimi://green.example/u/alice" {
		t.Errorf("message: %v", err)
	}
}

func TestReplayGuard(t *testing.T) {
	g := NewReplayGuard(0, 0)
	now := time.Unix(1_800_000_000, 0)
	id := func(n int) string { return "request-" + strconv.Itoa(1_000_000_000+n) }
	if err := g.Check("blue.example", id(1), now, now); err != nil {
		t.Fatal(err)
	}
	if err := g.Check("blue.example", id(1), now.Add(time.Second), now.Add(time.Second)); !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "seen before") {
		t.Errorf("duplicate: %v", err)
	}
	// The same ID from another partner is another request.
	if err := g.Check("red.example", id(1), now, now); err != nil {
		t.Errorf("same ID, other partner: %v", err)
	}
	if err := g.Check("blue.example", id(2), now.Add(-ReplayWindow-time.Second), now); !errors.Is(err, ErrReplay) {
		t.Errorf("too old: %v", err)
	}
	if err := g.Check("blue.example", id(3), now.Add(ReplayWindow+time.Second), now); !errors.Is(err, ErrReplay) {
		t.Errorf("too new: %v", err)
	}
	if err := g.Check("blue.example", id(4), now.Add(ReplayWindow), now); err != nil {
		t.Errorf("at the edge of the window: %v", err)
	}
	if err := g.Check("blue.example", "short", now, now); !errors.Is(err, ErrReplay) {
		t.Errorf("short ID: %v", err)
	}
	if err := g.Check("blue.example", "bad id with spaces!", now, now); !errors.Is(err, ErrReplay) {
		t.Errorf("bad ID: %v", err)
	}
	// IDs leave memory with their timestamps leaving the window; a replay
	// of one is then refused as stale.
	later := now.Add(2*ReplayWindow + time.Second)
	if err := g.Check("blue.example", id(5), later, later); err != nil {
		t.Fatal(err)
	}
	if n := g.Len("blue.example"); n != 1 {
		t.Errorf("after the window, %d IDs remembered, want 1", n)
	}
	if err := g.Check("blue.example", id(1), now, later); !errors.Is(err, ErrReplay) {
		t.Errorf("replay after the window: %v", err)
	}
}

func TestReplayGuardBounded(t *testing.T) {
	const max = 100
	g := NewReplayGuard(ReplayWindow, max)
	now := time.Unix(1_800_000_000, 0)
	id := func(n int) string { return "request-" + strconv.Itoa(1_000_000_000+n) }
	// A flood within one window, one request a millisecond.
	for i := range 10 * max {
		ts := now.Add(time.Duration(i) * time.Millisecond)
		if err := g.Check("blue.example", id(i), ts, ts); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if n := g.Len("blue.example"); n > max {
			t.Fatalf("%d IDs remembered, more than %d", n, max)
		}
	}
	last := now.Add(10 * max * time.Millisecond)
	// A forgotten ID is still refused: its timestamp is at or below the
	// floor.
	if err := g.Check("blue.example", id(0), now, last); !errors.Is(err, ErrReplay) {
		t.Errorf("replay of a forgotten ID: %v", err)
	}
	// So is a new request stamped as old; a fresh one passes.
	if err := g.Check("blue.example", id(-1), now.Add(time.Millisecond), last); !errors.Is(err, ErrReplay) {
		t.Errorf("new request older than the floor: %v", err)
	}
	if err := g.Check("blue.example", id(-2), last, last); err != nil {
		t.Errorf("fresh request after the flood: %v", err)
	}
	// A remembered ID is refused as a duplicate.
	if err := g.Check("blue.example", id(10*max-1), last, last); !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "seen before") {
		t.Errorf("replay of a remembered ID: %v", err)
	}
}

func TestReplayGuardRequest(t *testing.T) {
	g := NewReplayGuard(0, 0)
	req := func(stamp bool, mutate func(h http.Header)) *http.Request {
		r := httptest.NewRequest("POST", "/", nil)
		if stamp {
			StampRequest(r.Header)
		}
		if mutate != nil {
			mutate(r.Header)
		}
		return r.WithContext(ContextWithPeer(r.Context(), "blue.example"))
	}
	r := req(true, nil)
	if err := g.CheckRequest(r); err != nil {
		t.Fatalf("a stamped request: %v", err)
	}
	if err := g.CheckRequest(r); !errors.Is(err, ErrReplay) {
		t.Errorf("the same request again: %v", err)
	}
	if err := g.CheckRequest(req(true, nil)); err != nil {
		t.Errorf("a second stamped request: %v", err)
	}
	for name, mutate := range map[string]func(http.Header){
		"no ID":             func(h http.Header) { h.Del(HeaderRequestID) },
		"no timestamp":      func(h http.Header) { h.Del(HeaderTimestamp) },
		"RFC 3339 stamp":    func(h http.Header) { h.Set(HeaderTimestamp, time.Now().Format(time.RFC3339)) },
		"old stamp":         func(h http.Header) { h.Set(HeaderTimestamp, strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)) },
		"future stamp":      func(h http.Header) { h.Set(HeaderTimestamp, strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)) },
		"signed stamp (+n)": func(h http.Header) { h.Set(HeaderTimestamp, "+"+h.Get(HeaderTimestamp)) },
	} {
		err := g.CheckRequest(req(true, mutate))
		var te *TrustError
		if !errors.Is(err, ErrReplay) || !errors.As(err, &te) || te.Code() != "replay" {
			t.Errorf("%s: %v, want a replay TrustError", name, err)
		}
	}
	if err := g.CheckRequest(httptest.NewRequest("POST", "/", nil)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("without an authenticated peer: %v", err)
	}
}

func pemCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// Issue 11: providers whose clocks are minutes apart still talk. A
// partner 20 minutes ahead of this provider's clock or 20 minutes behind
// it is accepted (the guard's window once was 5 minutes, which refused
// providers only 3 minutes off the true time either way); one more than
// ReplayWindow off is refused with a message that says which way and
// by how much, and points at the clocks.
func TestReplayGuardToleratesClockSkew(t *testing.T) {
	if ReplayWindow < 30*time.Minute {
		t.Fatalf("ReplayWindow is %v; docs/reliability.md promises 30 minutes of skew between providers", ReplayWindow)
	}
	g := NewReplayGuard(0, 0)
	now := time.Unix(1_800_000_000, 0)
	for i, skew := range []time.Duration{20 * time.Minute, -20 * time.Minute, 29 * time.Minute, -29 * time.Minute} {
		id := "skewed-request-" + strconv.Itoa(1_000_000+i)
		if err := g.Check("blue.example", id, now.Add(skew), now); err != nil {
			t.Errorf("a partner whose clock is %v off: %v", skew, err)
		}
		// And a replay of it is still refused.
		if err := g.Check("blue.example", id, now.Add(skew), now.Add(time.Minute)); !errors.Is(err, ErrReplay) {
			t.Errorf("a replay from a partner whose clock is %v off: %v", skew, err)
		}
	}
	for _, c := range []struct {
		skew time.Duration
		want string
	}{
		{2 * time.Hour, "2h0m0s ahead of this provider's clock"},
		{-31 * time.Minute, "31m0s behind this provider's clock"},
	} {
		err := g.Check("blue.example", "far-off-request-"+c.skew.String(), now.Add(c.skew), now)
		if !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "clocks") {
			t.Errorf("a partner whose clock is %v off: %v; want ErrReplay saying %q", c.skew, err, c.want)
		}
	}
}

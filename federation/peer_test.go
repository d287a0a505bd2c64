package federation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// peerEnv is green.example calling blue.example, over real mutual TLS on
// loopback (kind "peers") or in process (kind "loopback"). red.example is a
// provider that green does not list; blue and red both list green. The
// tests below run each scenario over both, which is what keeps Loopback
// honest.
type peerEnv struct {
	t                *testing.T
	kind             string
	green, blue, red *testProvider

	greenPath, bluePath   string // the trust files
	greenTrust, blueTrust *Trust
	blueEntry             partnerJSON // blue as green's trust file lists it

	tr      Transport // green's
	peers   *Peers    // green's, when kind is "peers"
	blueSrv *httptest.Server

	handler atomic.Pointer[http.HandlerFunc] // what blue serves
	reached atomic.Int32                     // requests that reached blue's or red's handler
	dials   atomic.Int32                     // connections green opened
}

var transportKinds = []string{"peers", "loopback"}

// forEachTransport runs test as a subtest over each kind of Transport.
func forEachTransport(t *testing.T, opts PeerOptions, test func(t *testing.T, e *peerEnv)) {
	for _, kind := range transportKinds {
		t.Run(kind, func(t *testing.T) { test(t, newPeerEnv(t, kind, opts)) })
	}
}

func newPeerEnv(t *testing.T, kind string, opts PeerOptions) *peerEnv {
	t.Helper()
	e := &peerEnv{t: t, kind: kind,
		green: newTestProvider(t, "green.example"), blue: newTestProvider(t, "blue.example"), red: newTestProvider(t, "red.example")}
	e.serve(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	dir := t.TempDir()
	e.bluePath = filepath.Join(dir, "blue-trust.json")
	e.blueTrust = loadTrustFile(t, e.bluePath, e.green.entry(t))
	redTrust := loadTrustFile(t, filepath.Join(dir, "red-trust.json"), e.green.entry(t))
	dispatch := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.reached.Add(1)
		(*e.handler.Load())(w, r)
	})

	e.blueEntry = e.blue.entry(t)
	switch kind {
	case "peers":
		e.blueSrv = startTLSServer(t, e.blue, e.blueTrust, dispatch)
		e.blueEntry.Endpoint = e.blueSrv.URL
	case "loopback":
		// The endpoint is not used: the net routes by domain.
		e.blueEntry.Endpoint = "https://fed.blue.example"
	}
	e.greenPath = filepath.Join(dir, "green-trust.json")
	e.greenTrust = loadTrustFile(t, e.greenPath, e.blueEntry)

	switch kind {
	case "peers":
		opts.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			e.dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		p, err := NewPeers("green.example", e.green.cert, e.greenTrust, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		e.tr, e.peers = p, p
	case "loopback":
		n := NewLoopbackNet()
		n.Handle("blue.example", e.blueTrust, dispatch)
		// Red is there to be called, so that only green's trust
		// configuration stops the call.
		n.Handle("red.example", redTrust, dispatch)
		e.tr = n.Peer("green.example", e.greenTrust, opts)
	}
	return e
}

func loadTrustFile(t *testing.T, path string, partners ...partnerJSON) *Trust {
	t.Helper()
	writeTrust(t, path, partners...)
	tr, err := LoadTrust(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// startTLSServer serves h as p's federation endpoint on loopback, behind
// RequirePartner with p's trust configuration.
func startTLSServer(t *testing.T, p *testProvider, trust *Trust, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(RequirePartner(trust, h))
	srv.TLS = ServerTLSConfig(p.cert, trust)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected in some tests
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// serve makes h blue's (and red's) handler.
func (e *peerEnv) serve(h http.HandlerFunc) { e.handler.Store(&h) }

// setGreenTrust rewrites green's trust file and reloads it.
func (e *peerEnv) setGreenTrust(partners ...partnerJSON) {
	e.t.Helper()
	writeTrust(e.t, e.greenPath, partners...)
	if err := e.greenTrust.Reload(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *peerEnv) setBlueTrust(partners ...partnerJSON) {
	e.t.Helper()
	writeTrust(e.t, e.bluePath, partners...)
	if err := e.blueTrust.Reload(); err != nil {
		e.t.Fatal(err)
	}
}

// post sends a request from green to domain with a few seconds' deadline.
func (e *peerEnv) post(domain, path string, body []byte, hdr http.Header) (*Response, error) {
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
	defer cancel()
	return e.tr.Post(ctx, domain, path, body, hdr)
}

// mustPost posts and wants an answer of status want.
func (e *peerEnv) mustPost(path string, want int) *Response {
	e.t.Helper()
	resp, err := e.post("blue.example", path, []byte("body"), nil)
	if err != nil {
		e.t.Fatalf("Post %s: %v", path, err)
	}
	if resp.Status != want {
		e.t.Fatalf("Post %s: status %d, want %d (body %q)", path, resp.Status, want, resp.Body)
	}
	return resp
}

// asPeerError wants err to be a *PeerError.
func asPeerError(t *testing.T, err error) *PeerError {
	t.Helper()
	var pe *PeerError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want a *PeerError", err, err)
	}
	return pe
}

// A request reaches the partner with the headers MIMI and our trust code
// expect, the partner sees who called, and the answer comes back whole.
// Over the network, a second request reuses the connection.
func TestPeerPostReachesPartner(t *testing.T) {
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		guard := NewReplayGuard(0, 0)
		var mu sync.Mutex
		var seen []*http.Request
		var bodies []string
		e.serve(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			seen, bodies = append(seen, r), append(bodies, string(body))
			mu.Unlock()
			if err := guard.CheckRequest(r); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			peer, err := PeerDomain(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			w.Header().Set("X-Peer", peer)
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "accepted")
		})

		hdr := http.Header{"X-Extra": {"1"}, "From": {"mimi@blue.example"}, HeaderRequestID: {"forged-forged-forged"}}
		for i := range 2 {
			resp, err := e.post("blue.example", "/mimi/v1/notify/!room", []byte("fanout bytes"), hdr)
			if err != nil {
				t.Fatalf("Post %d: %v", i, err)
			}
			if resp.Status != http.StatusCreated || string(resp.Body) != "accepted" || resp.Header.Get("X-Peer") != "green.example" || resp.Domain != "blue.example" {
				t.Errorf("Post %d: %+v, body %q", i, resp, resp.Body)
			}
			if err := Classify(resp, nil); err != nil {
				t.Errorf("Classify(201) = %v", err)
			}
		}

		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 2 {
			t.Fatalf("the partner saw %d requests, want 2", len(seen))
		}
		for i, r := range seen {
			for _, c := range []struct{ name, got, want string }{
				{"method", r.Method, http.MethodPost},
				{"path", r.URL.Path, "/mimi/v1/notify/!room"},
				{"Host", r.Host, "blue.example"},
				{"From", r.Header.Get("From"), "mimi@green.example"},
				{"Content-Type", r.Header.Get("Content-Type"), ContentType},
				{"X-Extra", r.Header.Get("X-Extra"), "1"},
				{"body", bodies[i], "fanout bytes"},
			} {
				if c.got != c.want {
					t.Errorf("request %d: %s = %q, want %q", i, c.name, c.got, c.want)
				}
			}
			if id := r.Header.Get(HeaderRequestID); id == "forged-forged-forged" || !validRequestID(id) {
				t.Errorf("request %d: %s = %q, want a fresh stamp", i, HeaderRequestID, id)
			}
		}
		if seen[0].Header.Get(HeaderRequestID) == seen[1].Header.Get(HeaderRequestID) {
			t.Error("two requests carried the same request ID")
		}
		if e.kind == "peers" && e.dials.Load() != 1 {
			t.Errorf("%d connections for two requests, want 1 (keep-alive)", e.dials.Load())
		}
		// Over TLS, partners speak HTTP/2: requests at once share one
		// connection.
		if e.kind == "peers" && seen[0].ProtoMajor != 2 {
			t.Errorf("the partner was reached over %s, want HTTP/2", seen[0].Proto)
		}

		// The caller may label the body itself.
		e.serve(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Header.Get("Content-Type")) })
		resp, err := e.post("blue.example", "/x", nil, http.Header{"Content-Type": {"application/json"}})
		if err != nil || string(resp.Body) != "application/json" {
			t.Errorf("with a Content-Type of the caller's: %v, %q", err, resp.Body)
		}
	})
}

// A partner green does not list is refused before anything is sent, and
// so is a path that is not one.
func TestPeerUnknownPartnerFailsWithoutDialing(t *testing.T) {
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		_, err := e.post("red.example", "/mimi/v1/notify/r", []byte("x"), nil)
		if !errors.Is(err, ErrUnknownPartner) {
			t.Fatalf("Post to red.example: err = %v, want ErrUnknownPartner", err)
		}
		var te *TrustError
		if !errors.As(err, &te) || te.Domain != "red.example" {
			t.Errorf("err = %v, want a *TrustError for red.example inside", err)
		}
		pe := asPeerError(t, err)
		if pe.Code != "unknown_partner" || pe.Permanent || errors.Is(err, ErrPermanent) || Classify(nil, err) != err {
			t.Errorf("PeerError %+v: want code unknown_partner, retryable, unchanged by Classify", pe)
		}

		for _, path := range []string{"mimi/v1/notify", "//evil.example/x", "/a b"} {
			_, err := e.post("blue.example", path, nil, nil)
			if !errors.Is(err, ErrPermanent) {
				t.Errorf("Post to path %q: err = %v, want permanent", path, err)
			}
		}
		if n, d := e.reached.Load(), e.dials.Load(); n != 0 || d != 0 {
			t.Errorf("%d requests reached a handler over %d connections, want none", n, d)
		}
	})
}

// Suspending the partner in the trust file makes the next request fail at
// once, though a connection to it is open; resuming it works again, over a
// new connection.
func TestPeerSuspendedPartnerFailsFast(t *testing.T) {
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		e.mustPost("/a", http.StatusCreated)

		suspended := e.blueEntry
		suspended.Suspended = true
		e.setGreenTrust(suspended)
		start := time.Now()
		_, err := e.post("blue.example", "/b", []byte("x"), nil)
		if !errors.Is(err, ErrSuspendedPartner) {
			t.Fatalf("Post to a suspended partner: err = %v, want ErrSuspendedPartner", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("refusing took %v", d)
		}
		if pe := asPeerError(t, err); pe.Code != "suspended_partner" || pe.Permanent {
			t.Errorf("PeerError %+v: want suspended_partner, retryable (the suspension may be lifted)", pe)
		}
		if n := e.reached.Load(); n != 1 {
			t.Errorf("%d requests reached blue, want only the first", n)
		}

		e.setGreenTrust(e.blueEntry)
		e.mustPost("/c", http.StatusCreated)
		if e.kind == "peers" && e.dials.Load() != 2 {
			t.Errorf("%d connections, want 2: the suspended partner's must not be reused", e.dials.Load())
		}
	})
}

// A changed endpoint, CA or pin replaces the partner's client: the next
// request goes where the trust file now says, over a new connection.
func TestPeersRebuildOnTrustChange(t *testing.T) {
	e := newPeerEnv(t, "peers", PeerOptions{})
	var hits [2]atomic.Int32
	e.serve(func(w http.ResponseWriter, r *http.Request) { hits[0].Add(1) })
	second := startTLSServer(t, e.blue, e.blueTrust, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits[1].Add(1) }))

	e.mustPost("/1", http.StatusOK)
	e.mustPost("/2", http.StatusOK)
	if d := e.dials.Load(); d != 1 {
		t.Fatalf("%d connections, want 1", d)
	}

	moved := e.blueEntry
	moved.Endpoint = second.URL
	e.setGreenTrust(moved)
	e.mustPost("/3", http.StatusOK)
	if hits[0].Load() != 2 || hits[1].Load() != 1 || e.dials.Load() != 2 {
		t.Errorf("after the endpoint moved: hits %d and %d, %d connections; want 2, 1, 2", hits[0].Load(), hits[1].Load(), e.dials.Load())
	}

	pinned := moved
	pinned.PinSHA256 = PinSHA256(e.blue.cert.Leaf)
	e.setGreenTrust(pinned)
	e.mustPost("/4", http.StatusOK)
	if e.dials.Load() != 3 {
		t.Errorf("after a pin was added: %d connections, want 3", e.dials.Load())
	}

	// An unchanged entry in a reloaded file keeps the connection.
	e.setGreenTrust(pinned, e.red.entry(t))
	e.mustPost("/5", http.StatusOK)
	if e.dials.Load() != 3 {
		t.Errorf("after an unrelated change: %d connections, want still 3", e.dials.Load())
	}

	// A pin that is not blue's key: the handshake fails, retryably.
	wrong := moved
	wrong.PinSHA256 = PinSHA256(e.red.cert.Leaf)
	e.setGreenTrust(wrong)
	_, err := e.post("blue.example", "/6", nil, nil)
	if !errors.Is(err, ErrUntrustedCertificate) || errors.Is(err, ErrPermanent) {
		t.Errorf("with a wrong pin: err = %v, want ErrUntrustedCertificate, retryable", err)
	}
}

// The partner refusing us (it suspended green) is a 403 with its code, and
// retryable: the suspension can be lifted without the request changing.
func TestPeerPartnerRefusesUs(t *testing.T) {
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		e.mustPost("/open", http.StatusCreated) // over the network, a connection is now open
		g := e.green.entry(t)
		g.Suspended = true
		e.setBlueTrust(g)

		resp, err := e.post("blue.example", "/again", []byte("x"), nil)
		if err != nil {
			t.Fatalf("Post: %v", err)
		}
		cerr := Classify(resp, err)
		pe := asPeerError(t, cerr)
		if pe.Status != http.StatusForbidden || pe.Code != "suspended_partner" || pe.Permanent || pe.Domain != "blue.example" {
			t.Errorf("Classify = %+v, want a retryable 403 suspended_partner from blue.example", pe)
		}
		if !strings.Contains(pe.Message, "green.example is suspended") {
			t.Errorf("Message = %q", pe.Message)
		}
	})
}

// Answers classify the same way over both transports.
func TestPeerClassifiesAnswers(t *testing.T) {
	retryAt := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	answers := map[string]func(w http.ResponseWriter){
		"/created":  func(w http.ResponseWriter) { w.WriteHeader(http.StatusCreated) },
		"/empty200": func(w http.ResponseWriter) {},
		"/busy": func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "120")
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		},
		"/slowdown": func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", retryAt.Format(http.TimeFormat))
			w.WriteHeader(http.StatusTooManyRequests)
		},
		"/toosoon": func(w http.ResponseWriter) { w.WriteHeader(http.StatusTooEarly) },
		"/timeout": func(w http.ResponseWriter) { w.WriteHeader(http.StatusRequestTimeout) },
		"/crash":   func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) },
		// A partner whose disk is full (docs/reliability.md).
		"/full": func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "30")
			writeJSONError(w, http.StatusInsufficientStorage, "storage_full", "the provider's storage is full")
		},
		"/redirect": func(w http.ResponseWriter) { w.Header().Set("Location", "/elsewhere"); w.WriteHeader(http.StatusFound) },
		"/bad": func(w http.ResponseWriter) {
			writeJSONError(w, http.StatusBadRequest, "bad_message", "the fanout message is truncated\nFAKE LOG LINE")
		},
		"/gone":       func(w http.ResponseWriter) { http.Error(w, "no such room", http.StatusNotFound) },
		"/notitsuser": func(w http.ResponseWriter) { writeJSONError(w, http.StatusForbidden, "not_its_user", "no") },
		"/replay":     func(w http.ResponseWriter) { writeJSONError(w, http.StatusForbidden, "replay", "stale") },
	}
	tests := []struct {
		path       string
		status     int
		ok         bool
		permanent  bool
		code, msg  string
		retryAfter time.Duration // from now, roughly; or exactly retryAt if -1
	}{
		{path: "/created", status: 201, ok: true},
		{path: "/empty200", status: 200, ok: true},
		{path: "/busy", status: 503, msg: "overloaded", retryAfter: 120 * time.Second},
		{path: "/slowdown", status: 429, retryAfter: -1},
		{path: "/toosoon", status: 425},
		{path: "/timeout", status: 408},
		{path: "/crash", status: 500},
		{path: "/full", status: 507, code: "storage_full", msg: "the provider's storage is full", retryAfter: 30 * time.Second},
		{path: "/redirect", status: 302},
		{path: "/bad", status: 400, permanent: true, code: "bad_message", msg: "the fanout message is truncated\nFAKE LOG LINE"},
		{path: "/gone", status: 404, permanent: true, msg: "no such room"},
		{path: "/notitsuser", status: 403, permanent: true, code: "not_its_user", msg: "no"},
		{path: "/replay", status: 403, code: "replay", msg: "stale"},
	}
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		e.serve(func(w http.ResponseWriter, r *http.Request) { answers[r.URL.Path](w) })
		for _, tc := range tests {
			resp, err := e.post("blue.example", tc.path, []byte("x"), nil)
			if err != nil {
				t.Errorf("%s: Post: %v", tc.path, err)
				continue
			}
			if resp.Status != tc.status {
				t.Errorf("%s: status %d, want %d", tc.path, resp.Status, tc.status)
			}
			cerr := Classify(resp, nil)
			if tc.ok {
				if cerr != nil {
					t.Errorf("%s: Classify = %v, want nil", tc.path, cerr)
				}
				continue
			}
			pe := asPeerError(t, cerr)
			if pe.Permanent != tc.permanent || errors.Is(cerr, ErrPermanent) != tc.permanent {
				t.Errorf("%s: %v: permanent %v, want %v", tc.path, cerr, pe.Permanent, tc.permanent)
			}
			if pe.Status != tc.status || pe.Code != tc.code || pe.Message != tc.msg || pe.Domain != "blue.example" {
				t.Errorf("%s: %+v, want status %d code %q message %q", tc.path, pe, tc.status, tc.code, tc.msg)
			}
			switch {
			case tc.retryAfter == -1:
				if !pe.RetryAfter.Equal(retryAt) {
					t.Errorf("%s: RetryAfter %v, want %v", tc.path, pe.RetryAfter, retryAt)
				}
			case tc.retryAfter > 0:
				if d := time.Until(pe.RetryAfter); d < tc.retryAfter-5*time.Second || d > tc.retryAfter {
					t.Errorf("%s: RetryAfter in %v, want about %v", tc.path, d, tc.retryAfter)
				}
			case !pe.RetryAfter.IsZero():
				t.Errorf("%s: RetryAfter %v, want none", tc.path, pe.RetryAfter)
			}
			if strings.Contains(cerr.Error(), "\nFAKE") {
				t.Errorf("%s: the partner's message reaches Error() unquoted: %s", tc.path, cerr)
			}
		}
	})
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"0", now},
		{" 30 ", now.Add(30 * time.Second)},
		{"-5", time.Time{}},
		{"1.5", time.Time{}},
		{"soon", time.Time{}},
		{"99999999999999999999999", now.Add(maxRetryAfter)},
		{"Sun, 01 Mar 2026 12:05:00 GMT", now.Add(5 * time.Minute)},
		{"Sunday, 01-Mar-26 12:05:00 GMT", now.Add(5 * time.Minute)}, // RFC 850, which HTTP dates still allow
		{"Sun, 01 Mar 2026 11:00:00 GMT", now.Add(-time.Hour)},       // past: retry whenever
		{"Fri, 01 Mar 2030 12:00:00 GMT", now.Add(maxRetryAfter)},
	} {
		if got := parseRetryAfter(tc.in, now); !got.Equal(tc.want) {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A partner that never answers costs the caller its deadline, no more: the
// context's, or PeerOptions.Timeout when that is sooner. The partner's
// handler sees the request abandoned.
func TestPeerHangingPartnerTimesOut(t *testing.T) {
	forEachTransport(t, PeerOptions{Timeout: 300 * time.Millisecond}, func(t *testing.T, e *peerEnv) {
		var abandoned atomic.Int32
		e.serve(func(w http.ResponseWriter, r *http.Request) {
			// net/http notices a client hanging up only once the body has
			// been read: a real receiver reads it first anyway.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			abandoned.Add(1)
			// Hang up without an answer, as a server that gives up on a
			// request does: answering now could still reach a client in
			// the instant it closes the connection, and count as an answer.
			panic(http.ErrAbortHandler)
		})
		for _, ctxTimeout := range []time.Duration{100 * time.Millisecond, time.Hour} {
			start := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), ctxTimeout)
			_, err := e.tr.Post(ctx, "blue.example", "/hang", []byte("x"), nil)
			took := time.Since(start)
			cancel()
			pe := asPeerError(t, err)
			if pe.Code != CodeTimeout || pe.Permanent || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("ctx %v: err = %v, want a retryable timeout", ctxTimeout, err)
			}
			if want := min(ctxTimeout, 300*time.Millisecond); took < want || took > want+3*time.Second {
				t.Errorf("ctx %v: gave up after %v, want about %v", ctxTimeout, took, want)
			}
		}
		eventually(t, "the partner's handlers see the requests abandoned", func() bool { return abandoned.Load() == 2 })
	})
}

// An answer over MaxResponseBody is an error, not a truncated body.
func TestPeerResponseBodyBound(t *testing.T) {
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		e.serve(func(w http.ResponseWriter, r *http.Request) {
			n := MaxResponseBody
			if r.URL.Path == "/over" {
				n++
			}
			w.Write(bytes.Repeat([]byte{'x'}, n))
		})
		resp, err := e.post("blue.example", "/limit", nil, nil)
		if err != nil || len(resp.Body) != MaxResponseBody {
			t.Errorf("an answer of exactly the limit: err %v", err)
		}
		_, err = e.post("blue.example", "/over", nil, nil)
		if pe := asPeerError(t, err); pe.Code != CodeResponseTooLarge || !errors.Is(err, ErrPermanent) || pe.Status != 200 {
			t.Errorf("an answer over the limit: %v, want a permanent response_too_large", err)
		}
	})
}

// peerReceiver is blue's side of delivery: it checks the replay stamp,
// de-duplicates by the authenticated partner and the delivery ID with
// SeenInbound on a real store, and answers 201 (for a repeat too, as MIMI
// asks). fault, if set, decides an answer instead.
type peerReceiver struct {
	st    store.Store
	guard *ReplayGuard
	fault func(id string, attempt int) (status int, retryAfter string, applyFirst bool)

	mu       sync.Mutex
	applied  []string
	attempts map[string]int
	arrivals []time.Time
}

func newPeerReceiver(t *testing.T) *peerReceiver {
	return &peerReceiver{st: openStore(t, filepath.Join(t.TempDir(), "blue.db")), guard: NewReplayGuard(0, 0), attempts: map[string]int{}}
}

func (rc *peerReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := rc.guard.CheckRequest(r); err != nil {
		writeTrustError(w, err)
		return
	}
	peer, _ := PeerDomain(r)
	id := r.Header.Get(HeaderDeliveryID)
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.attempts[id]++
	attempt := rc.attempts[id]
	rc.arrivals = append(rc.arrivals, time.Now())
	rc.mu.Unlock()
	if id == "" || string(body) != "body of "+id {
		http.Error(w, "bad delivery", http.StatusBadRequest)
		return
	}

	status, retryAfter, applyFirst := http.StatusCreated, "", false
	if rc.fault != nil {
		status, retryAfter, applyFirst = rc.fault(id, attempt)
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	if status != http.StatusCreated && !applyFirst {
		w.WriteHeader(status)
		return
	}
	seen, err := rc.st.SeenInbound(r.Context(), peer, id, time.Now())
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if !seen {
		rc.mu.Lock()
		rc.applied = append(rc.applied, id)
		rc.mu.Unlock()
	}
	w.WriteHeader(status) // a lost answer, when applyFirst
}

func (rc *peerReceiver) appliedIDs() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.applied)
}

// peerEntries are n outbox entries for blue, "d1".."dn".
func peerEntries(n int) []store.Outbound {
	var out []store.Outbound
	for i := 1; i <= n; i++ {
		id := fmt.Sprint("d", i)
		out = append(out, store.Outbound{Destination: "blue.example", Kind: "notify", Path: "/mimi/v1/notify/!room", Body: []byte("body of " + id), ID: id})
	}
	return out
}

// The real Outbox on SQLite delivers through OutboxSender: every entry
// arrives once and in order though the first answers are 503s and one
// answer is lost after the entry was applied; a 400 drops its entry and
// the rest go on.
func TestOutboxSenderEndToEnd(t *testing.T) {
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		rcv := newPeerReceiver(t)
		var total atomic.Int32
		rcv.fault = func(id string, attempt int) (int, string, bool) {
			switch n := total.Add(1); {
			case n <= 3: // blue is still starting
				return http.StatusServiceUnavailable, "0", false
			case id == "d5" && attempt == 1: // applied, but the answer is lost
				return http.StatusBadGateway, "", true
			case id == "d8":
				return http.StatusBadRequest, "", false
			}
			return http.StatusCreated, "", false
		}
		e.serve(rcv.ServeHTTP)

		var send Sender
		switch tr := e.tr.(type) {
		case *Peers:
			send = tr.OutboxSender()
		case *Loopback:
			send = tr.OutboxSender()
		}
		st := openStore(t, filepath.Join(t.TempDir(), "green.db"))
		out := peerEntries(12)
		if err := st.EnqueueOutbound(t.Context(), out); err != nil {
			t.Fatal(err)
		}
		o := NewOutbox(st, send, OutboxOptions{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, RequestTimeout: 5 * time.Second})
		start(t, o)
		waitFor(t, "every entry delivered or dropped", func() bool { return empty(t, st, "blue.example") })

		want := slices.DeleteFunc(ids(out), func(id string) bool { return id == "d8" })
		if got := rcv.appliedIDs(); !slices.Equal(got, want) {
			t.Errorf("blue applied %v, want %v", got, want)
		}
		rcv.mu.Lock()
		attempts := rcv.attempts["d1"] + rcv.attempts["d5"] + rcv.attempts["d8"]
		rcv.mu.Unlock()
		if attempts != 4+2+1 {
			t.Errorf("d1, d5 and d8 took %d attempts, want 4+2+1", attempts)
		}
		if s := o.Stats(); s.Sent != 11 || s.Failed != 1 || s.Retried != 4 {
			t.Errorf("outbox stats %+v, want 11 sent, 1 failed, 4 retried", s)
		}
	})
}

// The Outbox waits as long as the partner's Retry-After asks, capped by
// its MaxBackoff.
func TestOutboxHonoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name            string
		retryAfter      string
		maxBackoff      time.Duration
		atLeast, atMost time.Duration
	}{
		{"asked", "1", 10 * time.Second, 800 * time.Millisecond, 5 * time.Second},
		{"capped", "3600", 50 * time.Millisecond, 0, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
				rcv := newPeerReceiver(t)
				rcv.fault = func(id string, attempt int) (int, string, bool) {
					if attempt == 1 {
						return http.StatusServiceUnavailable, tc.retryAfter, false
					}
					return http.StatusCreated, "", false
				}
				e.serve(rcv.ServeHTTP)
				st := openStore(t, filepath.Join(t.TempDir(), "green.db"))
				if err := st.EnqueueOutbound(t.Context(), peerEntries(1)); err != nil {
					t.Fatal(err)
				}
				o := NewOutbox(st, TransportSender(e.tr), OutboxOptions{MinBackoff: time.Millisecond, MaxBackoff: tc.maxBackoff})
				start(t, o)
				waitFor(t, "the entry delivered", func() bool { return empty(t, st, "blue.example") })
				rcv.mu.Lock()
				defer rcv.mu.Unlock()
				if len(rcv.arrivals) != 2 {
					t.Fatalf("%d attempts, want 2", len(rcv.arrivals))
				}
				if gap := rcv.arrivals[1].Sub(rcv.arrivals[0]); gap < tc.atLeast || gap > tc.atMost {
					t.Errorf("retried after %v, want between %v and %v", gap, tc.atLeast, tc.atMost)
				}
			})
		})
	}
}

// What only the in-process form can do wrong: a handler that panics, a
// provider that is not on the net, a handler still writing after the
// caller gave up.
func TestLoopbackFailures(t *testing.T) {
	e := newPeerEnv(t, "loopback", PeerOptions{})
	e.serve(func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	_, err := e.post("blue.example", "/x", nil, nil)
	if pe := asPeerError(t, err); pe.Code != CodeUnreachable || pe.Permanent {
		t.Errorf("a panicking handler: %v, want a retryable unreachable", err)
	}

	release := make(chan struct{})
	e.serve(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("X-Late", "1")
		w.Write([]byte("late"))
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	_, err = e.tr.Post(ctx, "blue.example", "/x", nil, nil)
	cancel()
	close(release) // the handler writes after Post returned; the race detector watches
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a timeout", err)
	}

	n := NewLoopbackNet()
	_, err = n.Peer("green.example", nil, PeerOptions{}).Post(t.Context(), "blue.example", "/x", nil, nil)
	if pe := asPeerError(t, err); pe.Code != CodeUnreachable || pe.Permanent {
		t.Errorf("a provider not on the net: %v, want a retryable unreachable", err)
	}
}

func TestNewPeersChecksCertificate(t *testing.T) {
	blue := newTestProvider(t, "blue.example")
	tr := loadTrustFile(t, filepath.Join(t.TempDir(), "trust.json"))
	if _, err := NewPeers("green.example", blue.cert, tr, PeerOptions{}); err == nil {
		t.Error("NewPeers accepted blue's certificate for green.example")
	}
	cert := blue.cert
	cert.Leaf = nil // as tls.LoadX509KeyPair may leave it
	if _, err := NewPeers("blue.example", cert, tr, PeerOptions{}); err != nil {
		t.Errorf("NewPeers with its own certificate: %v", err)
	}
}

func TestTransportSenderRefusesBadDeliveryID(t *testing.T) {
	e := newPeerEnv(t, "loopback", PeerOptions{})
	send := TransportSender(e.tr)
	for _, id := range []string{"", "has space", "line\nbreak", strings.Repeat("x", 257)} {
		err := send(t.Context(), "blue.example", store.OutboundEntry{Outbound: store.Outbound{Destination: "blue.example", Path: "/x", ID: id}})
		if !errors.Is(err, ErrPermanent) {
			t.Errorf("delivery ID %q: err = %v, want permanent", id, err)
		}
	}
	if e.reached.Load() != 0 {
		t.Error("a request with a bad delivery ID was sent")
	}
}

// A path from the partner's directory reaches its ServeMux pattern intact:
// the percent-encoded room URI is sent exactly as given, and a path that
// needs escaping is refused rather than escaped behind the caller's back.
func TestPeerSendsDirectoryPathAsGiven(t *testing.T) {
	dir, err := NewDirectory("https://fed.blue.example/v1")
	if err != nil {
		t.Fatal(err)
	}
	notify, err := dir.NotifyURL("mimi://blue.example/r/clubhouse")
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(notify, "https://fed.blue.example")
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /v1/notify/{roomId}", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.PathValue("roomId"))
		})
		e.serve(mux.ServeHTTP)
		resp, err := e.post("blue.example", path, []byte("fanout"), nil)
		if err != nil || resp.Status != http.StatusOK || string(resp.Body) != "mimi://blue.example/r/clubhouse" {
			t.Errorf("Post %s: %v, %+v", path, err, resp)
		}
		if _, err := e.post("blue.example", "/v1/notify/mimi://blue.example/r/club house", nil, nil); !errors.Is(err, ErrPermanent) {
			t.Errorf("an unescaped path: err = %v, want permanent", err)
		}
	})
}

// TestPeersPresentARenewedCertificate: green renews its certificate while
// running; its next connection to blue presents the new one, and a
// certificate naming another provider is refused.
func TestPeersPresentARenewedCertificate(t *testing.T) {
	e := newPeerEnv(t, "peers", PeerOptions{})
	var seen atomic.Pointer[string]
	e.serve(func(w http.ResponseWriter, r *http.Request) {
		serial := r.TLS.PeerCertificates[0].SerialNumber.String()
		seen.Store(&serial)
		w.WriteHeader(http.StatusCreated)
	})
	post := func() string {
		t.Helper()
		resp, err := e.peers.Post(context.Background(), "blue.example", "/notify/x", nil, nil)
		if err := Classify(resp, err); err != nil {
			t.Fatal(err)
		}
		return *seen.Load()
	}
	first := post()
	renewed, err := IssueProviderCertificate(e.green.ca, "green.example", time.Now().Add(DefaultProviderCertValidity))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.peers.SetCertificate(renewed); err != nil {
		t.Fatal(err)
	}
	e.peers.Close() // drop the connection made with the old certificate
	if second := post(); second == first || second != renewed.Leaf.SerialNumber.String() {
		t.Fatalf("after renewal blue saw certificate %s (the old one was %s)", second, first)
	}
	if err := e.peers.SetCertificate(e.red.cert); err == nil {
		t.Fatal("a certificate of red.example was accepted as green's")
	}
}

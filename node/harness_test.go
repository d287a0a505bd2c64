package node_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// What the scenarios of outage_test.go, refusals_test.go and
// plaintext_test.go share, beside federation_test.go's people: providers
// on loopback whose logs, federation traffic (as the receiver reads it,
// after TLS) and outbox events are kept for the test to look at, with an
// outbox that retries within a fraction of a second.

// Outbox backoff for the tests: a partner that comes back is retried
// within a quarter of a second, not the default minutes.
const (
	testMinBackoff = 20 * time.Millisecond
	testMaxBackoff = 250 * time.Millisecond
)

// harness is several providers on loopback, as startLocal makes them, with
// everything they log, receive from partners and do in their outboxes
// recorded.
type harness struct {
	t       *testing.T
	l       *node.Local
	dir     string
	domains []string
	logs    *logSink
	traffic *recorder
	outbox  map[string]*outboxCounts // by the sending provider's domain
}

// with returns the harness failing t rather than the test that started
// it, for use in subtests.
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

func startHarness(t *testing.T, domains ...string) *harness {
	t.Helper()
	return startHarnessWith(t, nil, domains...)
}

// startHarnessWith is startHarness with configure applied to each node's
// configuration last.
func startHarnessWith(t *testing.T, configure func(*node.Config), domains ...string) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), domains: domains, logs: &logSink{}, traffic: &recorder{},
		outbox: map[string]*outboxCounts{}}
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		h.logs.echo = os.Stderr
	}
	for _, d := range domains {
		h.outbox[d] = &outboxCounts{n: map[string]map[string]int{}}
	}
	opts := node.LocalOptions{
		// JSON: a []byte that reached a log would be base64 there, which
		// the plaintext search looks for too.
		Logger: slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Configure: func(cfg *node.Config) {
			cfg.Outbox.MinBackoff, cfg.Outbox.MaxBackoff = testMinBackoff, testMaxBackoff
			cfg.Outbox.Metrics = h.outbox[cfg.Domain]
			cfg.WrapFederation = h.traffic.wrap(cfg.Domain)
			if configure != nil {
				configure(cfg)
			}
		},
	}
	l, err := node.StartLocal(h.dir, domains, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	h.l = l
	return h
}

// index returns the position of a provider in the harness.
func (h *harness) index(domain string) int {
	i := slices.Index(h.domains, domain)
	if i < 0 {
		h.t.Fatalf("no provider %s", domain)
	}
	return i
}

// node returns a running provider.
func (h *harness) node(domain string) *node.Node {
	h.t.Helper()
	n := h.l.Node(h.index(domain))
	if n == nil {
		h.t.Fatalf("%s is not running", domain)
	}
	return n
}

func (h *harness) dataDir(domain string) string { return filepath.Join(h.dir, domain) }

func (h *harness) stop(domain string) {
	h.t.Helper()
	must(h.t, "stopping "+domain, h.l.Stop(h.index(domain)))
}

func (h *harness) start(domain string) {
	h.t.Helper()
	must(h.t, "starting "+domain, h.l.Start(h.index(domain)))
}

// enroll registers a device for handle on a provider (making the user
// first if needed) and returns it as a person, with the directory its
// state is kept in.
func (h *harness) enroll(domain, handle, device string, opts client.Options) (*person, string) {
	h.t.Helper()
	n := h.node(domain)
	ctx := context.Background()
	var code string
	if u, err := n.Store.UserByHandle(ctx, handle); errors.Is(err, store.ErrNotFound) {
		var u store.User
		u, code, err = provider.AddUser(ctx, n.Store, handle, "", time.Hour)
		must(h.t, "adding "+handle, err)
		// Reachable by every partner, as if they had turned it on.
		must(h.t, "setting "+handle+"'s reachability", n.Store.SetReachability(ctx, u.ID, store.ReachAll, nil))
	} else {
		must(h.t, "finding "+handle, err)
		code, err = provider.AddEnrollment(ctx, n.Store, u.ID, time.Hour)
		must(h.t, "enrolling another device of "+handle, err)
	}
	dir := h.t.TempDir()
	c, err := client.Register(ctx, n.ClientURL, code, device, dir, opts)
	if err != nil {
		h.t.Fatalf("registering %s's %s on %s: %v", handle, device, domain, err)
	}
	p := &person{t: h.t, name: handle + "@" + domain, c: c}
	h.t.Cleanup(func() { p.c.Close() })
	return p, dir
}

// roomState is one provider's view of a room, for comparing before and
// after a request that must change nothing.
type roomState struct {
	LastSeq int64
	Epoch   uint64
	Version int64
}

// state reads every running provider's record of a room (absent: none)
// and the destinations its outbox still has entries for.
func (h *harness) state(room client.RoomID) string {
	h.t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for i, d := range h.domains {
		n := h.l.Node(i)
		if n == nil {
			fmt.Fprintf(&b, "%s: stopped\n", d)
			continue
		}
		r, err := n.Store.Room(ctx, string(room))
		switch {
		case errors.Is(err, store.ErrNotFound):
			fmt.Fprintf(&b, "%s: no copy", d)
		case err != nil:
			h.t.Fatalf("%s: reading room %s: %v", d, room, err)
		default:
			fmt.Fprintf(&b, "%s: %+v", d, roomState{r.LastSeq, r.Epoch, r.Version})
		}
		dests, err := n.Store.OutboundDestinations(ctx)
		must(h.t, d+": outbox destinations", err)
		fmt.Fprintf(&b, " outbox to %v\n", dests)
	}
	return b.String()
}

// settle waits until every provider's outbox is empty and every running
// follower's copy of the room has all of the hub's log: after that, the
// room changes only if someone makes it.
func (h *harness) settle(hub string, room client.RoomID) {
	h.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		want, err := h.node(hub).Store.Room(ctx, string(room))
		must(h.t, "reading the hub's room", err)
		done := true
		for i := range h.domains {
			n := h.l.Node(i)
			if n == nil {
				continue
			}
			if dests, err := n.Store.OutboundDestinations(ctx); err != nil || len(dests) > 0 {
				done = false
			}
			if r, err := n.Store.Room(ctx, string(room)); err == nil && r.LastSeq != want.LastSeq {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the providers did not settle:\n%s", h.state(room))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unchanged runs f, which must change nothing in the room at any running
// provider: not its log, epoch or version, nor any outbox.
func (h *harness) unchanged(room client.RoomID, f func()) {
	h.t.Helper()
	before := h.state(room)
	f()
	if after := h.state(room); after != before {
		h.t.Errorf("the providers changed:\nbefore:\n%safter:\n%s", before, after)
	}
}

// conversation is what was said in a room, in the hub's order (each Send
// returned before the next was made), and from which message on each
// device was there to read it.
type conversation struct {
	t     *testing.T
	room  client.RoomID
	said  []said
	since map[*person]int
}

type said struct {
	by   *person
	line string // as person.messages gives it
}

func newConversation(t *testing.T, room client.RoomID, people ...*person) *conversation {
	cv := &conversation{t: t, room: room, since: map[*person]int{}}
	for _, p := range people {
		cv.since[p] = 0
	}
	return cv
}

// joined notes that p is in the room from the next message on.
func (cv *conversation) joined(p *person) { cv.since[p] = len(cv.said) }

func (cv *conversation) say(p *person, text string) {
	cv.t.Helper()
	p.send(cv.room, text)
	cv.said = append(cv.said, said{p, p.name + ": " + text})
}

// heard notes a message sent without say (by the client API directly).
func (cv *conversation) heard(p *person, text string) {
	cv.said = append(cv.said, said{p, p.name + ": " + text})
}

// readBy is what p should have read: everything said since it joined,
// except by itself.
func (cv *conversation) readBy(p *person) []string {
	from, ok := cv.since[p]
	if !ok {
		cv.t.Fatalf("%s is not in the conversation", p.name)
	}
	var out []string
	for _, s := range cv.said[from:] {
		if s.by != p {
			out = append(out, s.line)
		}
	}
	return out
}

// expect waits until each of people has read exactly what it should.
func (cv *conversation) expect(people ...*person) {
	cv.t.Helper()
	for _, p := range people {
		p.expect(cv.room, cv.readBy(p)...)
	}
}

// logsOf returns what a provider logged, one JSON record a line.
func (h *harness) logsOf(domain string) []string {
	var out []string
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, `"provider":"`+domain+`"`) {
			out = append(out, line)
		}
	}
	return out
}

// logged reports whether a provider logged a line containing every one of
// parts.
func (h *harness) logged(domain string, parts ...string) bool {
	for _, line := range h.logsOf(domain) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds, failing the test after 15 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logSink keeps log output in memory, safe for concurrent writers.
type logSink struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	echo io.Writer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.echo != nil {
		s.echo.Write(p)
	}
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *logSink) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf.Bytes())
}

// outboxCounts counts one provider's outbox events by destination; it is
// the federation.OutboxMetrics of that provider's node.
type outboxCounts struct {
	mu sync.Mutex
	n  map[string]map[string]int // event -> destination -> count
}

func (c *outboxCounts) add(event, dest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[event] == nil {
		c.n[event] = map[string]int{}
	}
	c.n[event][dest]++
}

func (c *outboxCounts) Queued(dest string)  { c.add("queued", dest) }
func (c *outboxCounts) Sent(dest string)    { c.add("sent", dest) }
func (c *outboxCounts) Retried(dest string) { c.add("retried", dest) }
func (c *outboxCounts) Failed(dest string)  { c.add("failed", dest) }

func (c *outboxCounts) get(event, dest string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[event][dest]
}

var _ federation.OutboxMetrics = (*outboxCounts)(nil)

// exchange is one federation request as its receiver read it, after TLS,
// and the answer it gave.
type exchange struct {
	To         string // the receiving provider
	Method     string
	Path       string // as sent, percent-encoded
	Header     http.Header
	Body       []byte
	Status     int
	RespHeader http.Header
	RespBody   []byte
}

// From is the provider the request says it came from.
func (e exchange) From() string { return strings.TrimPrefix(e.Header.Get("From"), "mimi@") }

// recorder keeps every federation exchange of the providers it wraps.
type recorder struct {
	mu sync.Mutex
	ex []exchange
	// hold, if set, says how long to hold back the answer of an exchange.
	hold func(exchange) time.Duration
}

// holdAnswers makes the providers hold back their answers as hold says
// (nil: answer at once).
func (rec *recorder) holdAnswers(hold func(exchange) time.Duration) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.hold = hold
}

// wrap is node.Config.WrapFederation for provider domain.
func (rec *recorder) wrap(domain string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "reading the body", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			cw := &capturingWriter{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(cw, r)
			e := exchange{To: domain, Method: r.Method, Path: r.URL.EscapedPath(), Header: r.Header.Clone(),
				Body: body, Status: cw.status, RespHeader: w.Header().Clone(), RespBody: cw.body.Bytes()}
			rec.mu.Lock()
			rec.ex = append(rec.ex, e)
			hold := rec.hold
			rec.mu.Unlock()
			// The answer is still in the server's buffer: holding the
			// handler holds it back, after the request took effect.
			if hold != nil {
				time.Sleep(hold(e))
			}
		})
	}
}

// all returns the exchanges that match, in the order they finished.
func (rec *recorder) all(match func(exchange) bool) []exchange {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []exchange
	for _, e := range rec.ex {
		if match == nil || match(e) {
			out = append(out, e)
		}
	}
	return out
}

// capturingWriter passes a response on and keeps a copy.
type capturingWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *capturingWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *capturingWriter) Write(p []byte) (int, error) {
	w.body.Write(p)
	return w.ResponseWriter.Write(p)
}

// ---- Speaking to a provider's federation API directly ----

// partnerPaths lays out partners' endpoints as Switchboard providers do:
// federation.NewDirectory's paths under the endpoint in the trust file.
var partnerPaths = func() *federation.Directory {
	d, err := federation.NewDirectory("https://partner.invalid")
	if err != nil {
		panic(err)
	}
	return d
}()

func pathOf(u string, err error) string {
	if err != nil {
		panic(err)
	}
	return strings.TrimPrefix(u, "https://partner.invalid")
}

func roomURI(hub string, room client.RoomID) federation.IdentifierURI {
	return federation.IdentifierURI("mimi://" + hub + "/r/" + string(room))
}

func notifyPath(hub string, room client.RoomID) string {
	return pathOf(partnerPaths.NotifyURL(roomURI(hub, room)))
}

func updatePath(hub string, room client.RoomID) string {
	return pathOf(partnerPaths.UpdateURL(roomURI(hub, room)))
}

func submitPath(hub string, room client.RoomID) string {
	return pathOf(partnerPaths.SubmitMessageURL(roomURI(hub, room)))
}

// rawPartner sends hand-made federation requests to one provider over
// mutual TLS with a given certificate: a partner's real one, or a forger's.
type rawPartner struct {
	t        *testing.T
	from, to string
	endpoint string
	hc       *http.Client
}

// partner speaks to provider to as provider from, with from's own
// certificate from its data directory and its trust file.
func (h *harness) partner(from, to string) *rawPartner {
	h.t.Helper()
	n := h.node(from)
	cert, err := node.LoadOrIssueProviderCert(h.dataDir(from), n.CA, from, time.Now())
	must(h.t, "loading "+from+"'s certificate", err)
	return newRawPartner(h.t, from, to, "https://"+h.node(to).FederationAddr, cert, n.Trust)
}

func newRawPartner(t *testing.T, from, to, endpoint string, cert tls.Certificate, trust *federation.Trust) *rawPartner {
	tr := &http.Transport{TLSClientConfig: federation.ClientTLSConfig(cert, trust, to), DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &rawPartner{t: t, from: from, to: to, endpoint: endpoint, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// answer is a provider's answer to a raw request.
type answer struct {
	Status int
	Code   string // of a JSON error body
	Header http.Header
	Body   []byte
}

// post sends body to path with hdr. Unless hdr carries a request ID of its
// own (empty: none), the request is stamped afresh; From is the partner's
// unless hdr names another.
func (p *rawPartner) post(path string, body []byte, hdr http.Header) (answer, error) {
	return p.do(http.MethodPost, path, body, hdr)
}

func (p *rawPartner) do(method, path string, body []byte, hdr http.Header) (answer, error) {
	req, err := http.NewRequest(method, p.endpoint+path, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header = hdr.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get("From") == "" {
		req.Header.Set("From", "mimi@"+p.from)
	}
	// A request ID given empty means: send no stamp at all.
	if id, ok := req.Header[federation.HeaderRequestID]; !ok {
		federation.StampRequest(req.Header)
	} else if len(id) == 0 || id[0] == "" {
		req.Header.Del(federation.HeaderRequestID)
	}
	req.Header.Set("Content-Type", federation.ContentType)
	req.Host = p.to
	resp, err := p.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{Status: resp.StatusCode, Header: resp.Header, Body: data}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil {
		a.Code = e.Error.Code
	}
	return a, nil
}

// mustPost is post for a request that must be answered (with whatever
// status).
func (p *rawPartner) mustPost(path string, body []byte, hdr http.Header) answer {
	p.t.Helper()
	a, err := p.post(path, body, hdr)
	if err != nil {
		p.t.Fatalf("%s -> %s %s: %v", p.from, p.to, path, err)
	}
	return a
}

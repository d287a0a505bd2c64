package federation

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/store"
)

// This file is the calling side of federation: how a provider sends a
// request to a partner. Transport is the one interface; Peers is the remote
// implementation (HTTPS with mutual TLS), Loopback the in-process one (the
// partner's handler called directly). Both stamp the same headers, apply
// the same limits and report failures as the same *PeerError, so code
// tested over Loopback behaves the same over the network.

// Transport sends one federation request: a POST of body to path at the
// partner domain. It returns the partner's answer whatever its status —
// Classify turns a status into an error — and an error, always a
// *PeerError, only when there is no answer to classify: the partner is not
// an active partner, cannot be reached, did not answer in time, or answered
// with more than MaxResponseBody bytes.
//
// hdr adds request headers, such as HeaderDeliveryID; a Content-Type in it
// replaces ContentType. The headers that say who is calling (From, Host)
// and the replay-protection stamp (HeaderRequestID, HeaderTimestamp) are
// the transport's: whatever hdr says for them is replaced.
type Transport interface {
	Post(ctx context.Context, domain, path string, body []byte, hdr http.Header) (*Response, error)
}

// Response is a partner's answer.
type Response struct {
	Domain string // the partner that answered
	Status int
	Header http.Header
	Body   []byte // at most MaxResponseBody bytes
}

const (
	// ContentType is the media type of request bodies unless the caller
	// sets another. MIMI bodies are structures in the TLS presentation
	// language, and draft-ietf-mimi-protocol registers no media type for
	// them; rather than invent an unregistered one (other implementations
	// could not know it), we label them as the opaque bytes they are.
	// Receivers must not rely on it: the path says what the body is.
	ContentType = "application/octet-stream"

	// MaxResponseBody bounds the answer read from a partner, so a broken or
	// hostile partner cannot make us buffer without limit. 4 MiB is far
	// above any MIMI response (the largest, a KeyMaterialResponse for a
	// user with many devices, is tens of kilobytes).
	MaxResponseBody = 4 << 20

	// HeaderDeliveryID carries an outbox entry's delivery ID
	// (store.Outbound.ID): the same on every retry of the entry, so the
	// receiver applies it once (store.Store.SeenInbound, keyed by the
	// authenticated partner and this ID) and answers a repeat with success.
	// MIMI de-duplicates notify by comparing bodies byte for byte and
	// notes that an explicit transaction ID may be better; this is that ID.
	HeaderDeliveryID = "Mimi-Delivery-Id"

	// DefaultPeerTimeout bounds a request whose context has no earlier
	// deadline.
	DefaultPeerTimeout = 30 * time.Second

	// DefaultPingAfter is PeerOptions.PingAfter's default: a dead
	// connection is closed within 20 seconds of its last sign of life.
	DefaultPingAfter = 10 * time.Second
)

// Codes of *PeerError for failures without an HTTP answer. The codes of a
// refused answer are the partner's own, from its JSON error body.
const (
	CodeTimeout          = "timeout"            // no answer before the deadline
	CodeCanceled         = "canceled"           // the caller gave up
	CodeUnreachable      = "unreachable"        // no connection, or it broke before an answer
	CodeResponseTooLarge = "response_too_large" // an answer over MaxResponseBody
	CodeBadRequest       = "bad_request"        // we could not even form the request
)

// PeerError is a failed federation request: no answer (Status 0, Code one
// of the Code constants above or the code of the *TrustError that stopped
// it), or an answer that is not 2xx (Status, and Code and Message from the
// partner's JSON error body when it sent one).
//
// Permanent says that retrying the same request cannot succeed; errors.Is
// then matches ErrPermanent, which is what tells the Outbox to drop an
// entry. RetryAfter, when not zero, is when the partner asked to be tried
// again (its Retry-After header).
type PeerError struct {
	Domain     string
	Status     int
	Code       string
	Message    string // the partner's text: show it quoted, never trust it
	RetryAfter time.Time
	Permanent  bool
	Err        error // the cause, such as a *TrustError or a net error; nil for an answer
}

// Error describes the failure on one line; text from the partner is quoted
// so it cannot forge log lines.
func (e *PeerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "federation: %s: ", quoteDomain(e.Domain))
	if e.Status != 0 {
		fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
		if e.Code != "" {
			fmt.Fprintf(&b, ", code %q", e.Code)
		}
		if e.Message != "" {
			fmt.Fprintf(&b, ": %q", e.Message)
		}
	} else {
		b.WriteString(e.Code)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if !e.RetryAfter.IsZero() {
		b.WriteString(", retry after " + e.RetryAfter.UTC().Format(time.RFC3339))
	}
	if e.Permanent {
		b.WriteString(" (permanent)")
	}
	return b.String()
}

// Unwrap lets errors.Is see ErrPermanent when the failure is permanent, and
// the cause (a *TrustError, context.DeadlineExceeded, ...) when there is
// one.
func (e *PeerError) Unwrap() []error {
	var errs []error
	if e.Permanent {
		errs = append(errs, ErrPermanent)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// retryableRefusals are the codes of RequirePartner's refusals that are
// about the relationship between the providers, not about the request:
// the partner has not added us yet, has suspended us, has a stale copy of
// our CA, or found our clock or our request IDs wanting. Each is fixed on
// one side or the other without touching the request, and dropping every
// queued message to a partner for the length of a suspension would lose
// them, so they are retried in spite of being 4xx. not_its_user is not
// here: it is the request that speaks for someone else.
var retryableRefusals = map[string]bool{
	"unknown_partner":       true,
	"suspended_partner":     true,
	"untrusted_certificate": true,
	"replay":                true,
	"unauthenticated":       true,
}

// maxErrorMessage bounds the partner's message kept in a PeerError: it goes
// into logs and the outbox's LastError column.
const maxErrorMessage = 512

// Classify turns the result of Transport.Post into nil for a 2xx answer
// and a *PeerError otherwise:
//
//   - an error from Post is returned as it is (it is already a
//     *PeerError), or wrapped as a retryable one;
//   - 408, 425, 429 and 5xx are retryable, as is any other status that is
//     not 4xx (a 3xx means a misconfigured endpoint, which the partner or
//     our trust file can fix; we never follow redirects);
//   - any other 4xx is permanent: the partner understood and refused the
//     request, and sending it again cannot change that — except the trust
//     refusals of RequirePartner (401/403 with code unknown_partner,
//     suspended_partner, untrusted_certificate, replay or unauthenticated),
//     which are retryable because they are about the providers'
//     configuration or clocks, not the request.
//
// Code and Message come from a JSON error body as RequirePartner writes it,
// {"error": {"code": ..., "message": ...}}; otherwise Message is the start
// of a text body. MIMI's binary error bodies are for the caller, who
// has resp. RetryAfter is parsed from Retry-After, in seconds or as an HTTP
// date.
func Classify(resp *Response, err error) error {
	if err != nil {
		var pe *PeerError
		if errors.As(err, &pe) {
			return err
		}
		domain := ""
		if resp != nil {
			domain = resp.Domain
		}
		return transportError(domain, err)
	}
	if resp == nil {
		return &PeerError{Code: CodeUnreachable, Err: errors.New("no response")}
	}
	if resp.Status >= 200 && resp.Status <= 299 {
		return nil
	}
	e := &PeerError{Domain: resp.Domain, Status: resp.Status}
	e.Code, e.Message = errorBody(resp)
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), clock.Now())
	switch s := resp.Status; {
	case s == http.StatusRequestTimeout, s == http.StatusTooEarly, s == http.StatusTooManyRequests:
	case (s == http.StatusUnauthorized || s == http.StatusForbidden) && retryableRefusals[e.Code]:
	case s >= 400 && s <= 499:
		e.Permanent = true
	}
	return e
}

// errorBody reads the code and message of an error answer.
func errorBody(resp *Response) (code, msg string) {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case mt == "application/json":
		var b struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(resp.Body, &b) == nil {
			return truncate(b.Error.Code, 64), truncate(b.Error.Message, maxErrorMessage)
		}
	case strings.HasPrefix(mt, "text/"):
		return "", truncate(strings.TrimSpace(string(resp.Body)), maxErrorMessage)
	}
	return "", ""
}

// truncate cuts s to at most n bytes, on a character boundary: a partner's
// UTF-8 message cut inside a character would no longer be UTF-8.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// maxRetryAfter bounds what Retry-After may ask, so a typo in a partner's
// proxy configuration cannot park a queue for years. (The Outbox caps the
// wait at its MaxBackoff in any case.)
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3): a number
// of seconds or an HTTP date. It returns zero for none or nonsense.
func parseRetryAfter(v string, now time.Time) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return time.Time{}
		}
		if secs > uint64(maxRetryAfter/time.Second) {
			return now.Add(maxRetryAfter)
		}
		return now.Add(time.Duration(secs) * time.Second)
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return time.Time{}
	}
	if t.After(now.Add(maxRetryAfter)) {
		return now.Add(maxRetryAfter)
	}
	return t
}

// transportError classifies a failure without an answer. All are
// retryable except a request we could not form: trust refusals included,
// for the reason given at retryableRefusals.
func transportError(domain string, err error) *PeerError {
	e := &PeerError{Domain: domain, Code: CodeUnreachable, Err: err}
	var te *TrustError
	var ne net.Error
	switch {
	case errors.As(err, &te):
		e.Code = te.Code()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		e.Code = CodeTimeout
	case errors.Is(err, context.Canceled):
		e.Code = CodeCanceled
	}
	return e
}

// requestURL joins a partner's endpoint and a request path. The path must
// be absolute, must not start with "//", which would name another host, and
// must be escaped already: it is sent exactly as given, since MIMI paths
// carry percent-encoded URIs that re-escaping would change.
func requestURL(domain, endpoint, path string) (string, *PeerError) {
	bad := func(err error) (string, *PeerError) {
		return "", &PeerError{Domain: domain, Code: CodeBadRequest, Permanent: true, Err: err}
	}
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
		return bad(fmt.Errorf("request path %q does not start with a single /", path))
	}
	if pu, err := url.ParseRequestURI(path); err != nil {
		return bad(err)
	} else if pu.RequestURI() != path {
		return bad(fmt.Errorf("request path %q is not escaped (want %q)", path, pu.RequestURI()))
	}
	u := strings.TrimSuffix(endpoint, "/") + path
	if _, err := url.ParseRequestURI(u); err != nil {
		return bad(err)
	}
	return u, nil
}

// requestHeader is the header of every attempt, remote or in-process: the
// caller's headers, then ours. MIMI names the calling provider in From
// (mimi@DOMAIN) and the called one in Host (draft-ietf-mimi-protocol
// §"Transport layer"); RequirePartner checks that From matches the
// certificate. The stamp is fresh for every attempt, as ReplayGuard needs.
func requestHeader(self string, hdr http.Header) http.Header {
	h := hdr.Clone()
	if h == nil {
		h = http.Header{}
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", ContentType)
	}
	h.Set("From", "mimi@"+self)
	h.Del("Host")
	StampRequest(h)
	return h
}

// PeerOptions tune Peers and Loopback. Zero values take the defaults.
type PeerOptions struct {
	// Timeout bounds each request whose context has no earlier deadline
	// (default DefaultPeerTimeout), so a partner that accepts a connection
	// and never answers cannot hold a caller for ever.
	Timeout time.Duration
	// Logger receives one line when a partner's client is made, rebuilt
	// or dropped; nil discards them.
	Logger *slog.Logger
	// PingAfter is how long a connection to a partner may be silent while
	// requests wait on it before it is checked with a ping, and how long
	// the ping may go unanswered before the connection is closed (default
	// DefaultPingAfter). A connection that the network lost without
	// telling either end (a NAT or a load balancer forgot it) would
	// otherwise take every request for as long as the kernel keeps it,
	// each waiting out its deadline.
	PingAfter time.Duration
	// DialContext, if set, replaces the dialer of Peers' connections: for
	// tests that count or break connections. Loopback does not dial.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (o PeerOptions) withDefaults() PeerOptions {
	if o.Timeout <= 0 {
		o.Timeout = DefaultPeerTimeout
	}
	if o.PingAfter <= 0 {
		o.PingAfter = DefaultPingAfter
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Peers is the remote Transport: HTTPS with mutual TLS to each partner's
// endpoint, as the trust configuration lists it. It keeps one HTTP client
// per partner, with keep-alive connections, made when first needed. Every
// request looks the partner up in the trust configuration first, so an
// unknown or suspended partner fails at once, without a connection; when
// the partner's endpoint, CA or pin has changed since its client was made,
// the client is replaced and its connections are closed, so nothing more
// is sent over a connection authenticated under the old configuration.
// Peers is safe for concurrent use.
type Peers struct {
	self  string
	cert  atomic.Pointer[tls.Certificate] // SetCertificate renews it
	trust *Trust
	opts  PeerOptions
	log   *slog.Logger

	mu      sync.Mutex
	clients map[string]*peerClient
}

// peerClient is the HTTP client of one partner and the configuration it
// was made for.
type peerClient struct {
	endpoint string
	caPEM    string
	pin      string
	tr       *http.Transport
	client   *http.Client
}

// NewPeers returns the Transport of provider self, which presents cert (from
// IssueProviderCertificate) to partners and authenticates them with trust.
// It fails if cert does not name self, because partners would refuse every
// request: RequirePartner checks that From: mimi@SELF matches it.
func NewPeers(self string, cert tls.Certificate, trust *Trust, opts PeerOptions) (*Peers, error) {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return nil, errors.New("federation: NewPeers: the certificate is empty")
		}
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("federation: NewPeers: %w", err)
		}
	}
	if d, err := certDomain(leaf); err != nil || d != self {
		return nil, fmt.Errorf("federation: NewPeers: the certificate does not name %s", quoteDomain(self))
	}
	opts = opts.withDefaults()
	p := &Peers{self: self, trust: trust, opts: opts,
		log: opts.Logger.With("component", "peers"), clients: map[string]*peerClient{}}
	p.cert.Store(&cert)
	return p, nil
}

// SetCertificate replaces the certificate presented to partners, as when
// the provider renews it: new connections present the new one (open ones
// keep theirs, which stays valid as long as renewal comes before expiry).
// It must name the same provider.
func (p *Peers) SetCertificate(cert tls.Certificate) error {
	leaf := cert.Leaf
	if leaf == nil && len(cert.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	if leaf == nil {
		return errors.New("federation: SetCertificate: the certificate does not parse")
	}
	if d, err := certDomain(leaf); err != nil || d != p.self {
		return fmt.Errorf("federation: SetCertificate: the certificate does not name %s", quoteDomain(p.self))
	}
	p.cert.Store(&cert)
	return nil
}

// Post sends a request to domain; see Transport.
func (p *Peers) Post(ctx context.Context, domain, path string, body []byte, hdr http.Header) (*Response, error) {
	return p.do(ctx, http.MethodPost, domain, path, body, hdr)
}

// Getter is a Transport that can also GET, such as a partner's directory.
type Getter interface {
	Get(ctx context.Context, domain, path string) (*Response, error)
}

// Get fetches path from domain over the same mutually authenticated
// connection as Post: for example the partner's directory, whose
// franking keys a report's verifier needs (docs/abuse.md).
func (p *Peers) Get(ctx context.Context, domain, path string) (*Response, error) {
	return p.do(ctx, http.MethodGet, domain, path, nil, nil)
}

func (p *Peers) do(ctx context.Context, method, domain, path string, body []byte, hdr http.Header) (*Response, error) {
	c, err := p.client(domain)
	if err != nil {
		return nil, transportError(domain, err)
	}
	u, perr := requestURL(domain, c.endpoint, path)
	if perr != nil {
		return nil, perr
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, &PeerError{Domain: domain, Code: CodeBadRequest, Permanent: true, Err: err}
	}
	req.Header = requestHeader(p.self, hdr)
	// The endpoint may name a load balancer or an address; Host names the
	// provider, as MIMI asks (the port is ignored by the receiver).
	req.Host = domain
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, transportError(domain, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody+1))
	if err != nil {
		return nil, transportError(domain, err)
	}
	return finishResponse(domain, resp.StatusCode, resp.Header, data)
}

// clientTLS is ClientTLSConfig with the current certificate picked per
// handshake, so a renewed one is presented from then on.
func (p *Peers) clientTLS(domain string) *tls.Config {
	tc := ClientTLSConfig(*p.cert.Load(), p.trust, domain)
	tc.Certificates = nil
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return p.cert.Load(), nil }
	return tc
}

// finishResponse applies the response body limit, the same for Peers and
// Loopback. An answer over the limit is an error rather than a truncated
// body, which a caller could mistake for a whole one; it is permanent
// because the partner would answer the same request the same way.
func finishResponse(domain string, status int, h http.Header, body []byte) (*Response, error) {
	if len(body) > MaxResponseBody {
		return nil, &PeerError{Domain: domain, Status: status, Code: CodeResponseTooLarge, Permanent: true,
			Err: fmt.Errorf("the answer is larger than %d bytes", MaxResponseBody)}
	}
	return &Response{Domain: domain, Status: status, Header: h, Body: body}, nil
}

// client returns domain's client, making or replacing it as its trust
// entry requires, or the *TrustError refusing domain.
func (p *Peers) client(domain string) (*peerClient, error) {
	ps, err := p.trust.cur.Load().partner(domain)
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.clients[domain]
	if err != nil {
		if old != nil {
			delete(p.clients, domain)
			old.tr.CloseIdleConnections()
			p.log.Info("federation: dropped the client of a partner no longer active", "partner", domain, "err", err)
		}
		return nil, err
	}
	pin := string(ps.Pin)
	if old != nil && old.endpoint == ps.Endpoint && old.caPEM == ps.caPEM && old.pin == pin {
		return old, nil
	}
	if old != nil {
		// In-flight requests on the old transport finish; their
		// connections are then idle in a transport nobody uses, and
		// IdleConnTimeout closes them.
		old.tr.CloseIdleConnections()
		p.log.Info("federation: partner's endpoint, CA or pin changed: new client", "partner", domain, "endpoint", ps.Endpoint)
	} else {
		p.log.Debug("federation: new client", "partner", domain, "endpoint", ps.Endpoint)
	}
	c := &peerClient{endpoint: ps.Endpoint, caPEM: ps.caPEM, pin: pin, tr: p.newTransport(domain)}
	c.client = &http.Client{
		Transport: c.tr,
		// A redirect would send the request somewhere the trust file does
		// not say, and re-send a body that may have been applied; the 3xx
		// is returned to Classify instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p.clients[domain] = c
	return c, nil
}

func (p *Peers) newTransport(domain string) *http.Transport {
	dial := p.opts.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return &http.Transport{
		// No Proxy: federation goes straight to the partner; an
		// environment's HTTP_PROXY is meant for other traffic.
		DialContext:         dial,
		TLSClientConfig:     p.clientTLS(domain),
		TLSHandshakeTimeout: 10 * time.Second,
		// With a custom TLS configuration net/http offers HTTP/2 only when
		// asked; a hub's fan-out to a busy partner profits from it.
		ForceAttemptHTTP2: true,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: p.opts.PingAfter,
			PingTimeout:     p.opts.PingAfter,
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		// Bodies are MLS ciphertext, which does not compress, and
		// compressing secrets beside attacker-chosen data is how CRIME
		// and BREACH worked.
		DisableCompression: true,
	}
}

// Close closes the idle connections of every partner's client. Requests
// still in flight finish; later Posts make new connections.
func (p *Peers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d, c := range p.clients {
		c.tr.CloseIdleConnections()
		delete(p.clients, d)
	}
}

// OutboxSender returns the Sender that delivers Outbox entries to
// partners through p: alone (TransportSender), or in batches to partners
// that take them (Batcher).
func (p *Peers) OutboxSender() *Batcher { return NewBatcher(p, p.opts.Logger) }

// TransportSender returns a SendFunc that POSTs each outbox entry through
// t: e.Body to e.Path at the destination, with e.ID in HeaderDeliveryID so
// the receiver applies a retried entry once. The result is Classify's, so
// the Outbox retries what is retryable (after the partner's Retry-After,
// if it gave one) and drops what is permanent. An ID that cannot travel in
// a header is permanent too.
func TransportSender(t Transport) SendFunc {
	return func(ctx context.Context, dest string, e store.OutboundEntry) error {
		if !validDeliveryID(e.ID) {
			return &PeerError{Domain: dest, Code: CodeBadRequest, Permanent: true,
				Err: fmt.Errorf("delivery ID %q: want 1 to 256 printable ASCII characters without spaces", e.ID)}
		}
		hdr := http.Header{}
		for k, v := range e.Header {
			hdr.Set(k, v)
		}
		// The delivery ID is the outbox's own, whatever the entry says.
		hdr.Set(HeaderDeliveryID, e.ID)
		resp, err := t.Post(ctx, dest, e.Path, e.Body, hdr)
		return Classify(resp, err)
	}
}

// validDeliveryID reports whether id can be sent as HeaderDeliveryID
// unchanged: visible ASCII, so no receiver's header parsing alters it.
func validDeliveryID(id string) bool {
	if len(id) == 0 || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// LoopbackNet is a set of providers' federation APIs in one process, for
// tests and the demo: Handle registers a provider's handler, and
// LoopbackNet.Peer gives a provider the Loopback Transport that calls the
// others' handlers directly, with no sockets and no TLS. It is safe for
// concurrent use.
type LoopbackNet struct {
	mu    sync.RWMutex
	hosts map[string]loopbackHost
}

type loopbackHost struct {
	trust *Trust
	h     http.Handler
}

// NewLoopbackNet returns an empty LoopbackNet.
func NewLoopbackNet() *LoopbackNet {
	return &LoopbackNet{hosts: map[string]loopbackHost{}}
}

// Handle makes h serve domain's federation API, in place of any handler
// before. h is what would sit behind RequirePartner: its requests carry the
// caller's domain for PeerDomain, and r.TLS is nil. trust, if not nil, is
// domain's trust configuration, and is checked as RequirePartner would
// check it, without the certificates: a caller it does not list as an
// active partner is refused with the same JSON 403.
func (n *LoopbackNet) Handle(domain string, trust *Trust, h http.Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hosts[domain] = loopbackHost{trust: trust, h: h}
}

// Remove takes domain off the net: requests to it then fail as
// unreachable, as to a provider that is down.
func (n *LoopbackNet) Remove(domain string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.hosts, domain)
}

// Peer returns provider self's Transport on n. trust, if not nil, is self's
// trust configuration: as with Peers, a request to a partner it does not
// list as active fails at once with the *TrustError. Of opts, Timeout and
// Logger apply.
func (n *LoopbackNet) Peer(self string, trust *Trust, opts PeerOptions) *Loopback {
	return &Loopback{net: n, self: self, trust: trust, opts: opts.withDefaults()}
}

// Loopback is the in-process Transport of one provider on a LoopbackNet.
// It does what Peers does except the network: it checks the trust
// configurations of both ends, stamps the same headers (From, Host,
// HeaderRequestID, HeaderTimestamp, Content-Type), runs the partner's
// handler on a request of its own with the caller's domain for PeerDomain,
// honours the context and Timeout (the handler's context is cancelled, as
// when a client hangs up), bounds the answer by MaxResponseBody, and
// reports failures as the same *PeerError. A handler that panics is an
// unreachable partner, as net/http would make it.
type Loopback struct {
	net   *LoopbackNet
	self  string
	trust *Trust
	opts  PeerOptions
}

// Post sends a request to domain's handler; see Transport.
func (l *Loopback) Post(ctx context.Context, domain, path string, body []byte, hdr http.Header) (*Response, error) {
	return l.do(ctx, http.MethodPost, domain, path, body, hdr)
}

// Get fetches path from domain's handler, as Peers.Get does.
func (l *Loopback) Get(ctx context.Context, domain, path string) (*Response, error) {
	return l.do(ctx, http.MethodGet, domain, path, nil, nil)
}

func (l *Loopback) do(ctx context.Context, method, domain, path string, body []byte, hdr http.Header) (*Response, error) {
	if l.trust != nil {
		if _, err := l.trust.cur.Load().partner(domain); err != nil {
			return nil, transportError(domain, err)
		}
	}
	u, perr := requestURL(domain, "https://"+domain, path)
	if perr != nil {
		return nil, perr
	}
	l.net.mu.RLock()
	host, ok := l.net.hosts[domain]
	l.net.mu.RUnlock()
	if !ok {
		return nil, transportError(domain, fmt.Errorf("no provider %s on the loopback net", quoteDomain(domain)))
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	// The handler gets its own copy of the body, as over the network: it
	// may still be reading after we have returned.
	req, err := http.NewRequestWithContext(ContextWithPeer(ctx, l.self), method, u, bytes.NewReader(bytes.Clone(body)))
	if err != nil {
		return nil, &PeerError{Domain: domain, Code: CodeBadRequest, Permanent: true, Err: err}
	}
	req.Header = requestHeader(l.self, hdr)
	req.Host = domain
	req.RequestURI = path
	req.RemoteAddr = "loopback"

	w := &loopbackWriter{header: http.Header{}}
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		if host.trust != nil {
			// RequirePartner without the certificate: the From header is
			// ours, so only the listing can refuse.
			if _, err := host.trust.cur.Load().partner(l.self); err != nil {
				w.Header().Set("Connection", "close")
				writeTrustError(w, err)
				return
			}
		}
		host.h.ServeHTTP(w, req)
	}()
	select {
	case p := <-done:
		if p != nil && ctx.Err() != nil {
			// A handler that aborts once its request is abandoned
			// (panic(http.ErrAbortHandler)) is reporting our deadline.
			return nil, transportError(domain, ctx.Err())
		}
		if p != nil {
			return nil, transportError(domain, fmt.Errorf("the handler panicked: %v", p))
		}
	case <-ctx.Done():
		return nil, transportError(domain, ctx.Err())
	}
	status, h, data := w.result()
	return finishResponse(domain, status, h, data)
}

// OutboxSender returns the Sender that delivers Outbox entries through
// l, as Peers.OutboxSender does over the network.
func (l *Loopback) OutboxSender() *Batcher { return NewBatcher(l, l.opts.Logger) }

// loopbackWriter records a handler's answer as a client would receive it:
// the header as it was when the status was written, and at most one byte
// more than MaxResponseBody of body, which is enough to tell it is too
// large.
type loopbackWriter struct {
	mu     sync.Mutex
	header http.Header
	sent   http.Header // the header as sent, once the status is written
	status int
	body   []byte
}

func (w *loopbackWriter) Header() http.Header { return w.header }

func (w *loopbackWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeader(code)
}

func (w *loopbackWriter) writeHeader(code int) {
	// 1xx answers are interim; net/http sends them and waits for the final
	// one.
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
	w.sent = w.header.Clone()
}

func (w *loopbackWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == 0 {
		// As net/http does: sniff a missing Content-Type from the start
		// of the body.
		if _, ok := w.header["Content-Type"]; !ok {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.writeHeader(http.StatusOK)
	}
	if room := MaxResponseBody + 1 - len(w.body); room > 0 {
		w.body = append(w.body, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (w *loopbackWriter) result() (int, http.Header, []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == 0 {
		w.writeHeader(http.StatusOK)
	}
	return w.status, w.sent, w.body
}

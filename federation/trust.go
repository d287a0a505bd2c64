package federation

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/identity"
)

// The kinds of trust error. Every refusal this file and tls.go make is a
// *TrustError whose Kind is one of these, so callers test with errors.Is and
// the HTTP layer maps them to stable codes. New kinds are only ever appended.
var (
	// ErrUnknownPartner: a provider that the trust configuration does not
	// list.
	ErrUnknownPartner = errors.New("unknown partner")
	// ErrSuspendedPartner: a partner listed with "suspended": true.
	ErrSuspendedPartner = errors.New("suspended partner")
	// ErrUntrustedCertificate: a listed partner's certificate that does not
	// verify against its configured CA or pin, has the wrong names or key
	// usage, or is expired.
	ErrUntrustedCertificate = errors.New("untrusted certificate")
	// ErrNotItsUser: a partner that claims to speak for a user, device or
	// provider of another domain.
	ErrNotItsUser = errors.New("not the partner's own user")
	// ErrReplay: a request whose Mimi-Request-Id was seen before, whose
	// Mimi-Timestamp is outside the window, or which lacks either header.
	ErrReplay = errors.New("replayed or stale request")
	// ErrUnauthenticated: a request that did not come over mutual TLS, or
	// that RequirePartner did not authenticate.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrTrustConfig: a trust configuration file that cannot be read or is
	// invalid.
	ErrTrustConfig = errors.New("invalid trust configuration")
)

// trustCodes maps each kind to its stable API code and HTTP status. A
// partner that is refused is told why in terms it can act on; everything is
// 403 except a missing client certificate, which is a failure to
// authenticate at all.
var trustCodes = map[error]struct {
	code   string
	status int
}{
	ErrUnknownPartner:       {"unknown_partner", http.StatusForbidden},
	ErrSuspendedPartner:     {"suspended_partner", http.StatusForbidden},
	ErrUntrustedCertificate: {"untrusted_certificate", http.StatusForbidden},
	ErrNotItsUser:           {"not_its_user", http.StatusForbidden},
	ErrReplay:               {"replay", http.StatusForbidden},
	ErrUnauthenticated:      {"unauthenticated", http.StatusUnauthorized},
	ErrTrustConfig:          {"internal", http.StatusInternalServerError},
}

// TrustError is the error type of trust decisions: a Kind from the list
// above, the partner domain concerned when known, and a message that is safe
// to send to the partner. Err, the underlying cause (a crypto/x509 error,
// say), is for the log.
type TrustError struct {
	Kind   error
	Domain string
	Msg    string
	Err    error
}

func trustErr(kind error, domain string, cause error, format string, args ...any) *TrustError {
	return &TrustError{Kind: kind, Domain: domain, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// Error returns "federation: ", the message and the cause, if any.
func (e *TrustError) Error() string {
	s := "federation: " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap lets errors.Is and errors.As see both the kind and the cause.
func (e *TrustError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// Code returns the stable API code of the error's kind, such as
// "unknown_partner".
func (e *TrustError) Code() string {
	if c, ok := trustCodes[e.Kind]; ok {
		return c.code
	}
	return "internal"
}

// Status returns the HTTP status for the error's kind.
func (e *TrustError) Status() int {
	if c, ok := trustCodes[e.Kind]; ok {
		return c.status
	}
	return http.StatusInternalServerError
}

// Partner is one partner provider as the trust configuration describes it.
// The slices are shared with the configuration and must not be modified.
type Partner struct {
	// Domain is the partner's provider domain: what its certificate names.
	Domain string
	// Endpoint is the https:// base URL of its federation API. It says where
	// to connect, not who answers: the server is authenticated as Domain
	// whatever host or address the endpoint names.
	Endpoint string
	// CAs are the certificates the partner's certificates must chain to.
	// More than one lets a partner roll its CA: list old and new together,
	// then drop the old one.
	CAs []*x509.Certificate
	// Pin, if not nil, is the SHA-256 of the partner's leaf certificate's
	// SubjectPublicKeyInfo, which that certificate must match.
	Pin []byte
	// Suspended partners are refused, but their configuration is kept so
	// lifting the suspension is a one-word change.
	Suspended bool
}

// PinSHA256 returns the pin of a certificate as the trust file spells it:
// the standard base64 encoding of the SHA-256 of its SubjectPublicKeyInfo
// (the form of HPKP's pin-sha256, and what "openssl x509 -in cert.pem
// -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256
// -binary | base64" prints). Pinning the
// key rather than the whole certificate lets a partner renew its
// certificate on the same key without asking everyone to reconfigure.
func PinSHA256(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// trustFile is the JSON form of the trust configuration.
type trustFile struct {
	Partners []partnerJSON `json:"partners"`
}

type partnerJSON struct {
	Domain    string `json:"domain"`
	Endpoint  string `json:"endpoint"`
	CAPEM     string `json:"ca_pem,omitempty"`
	PinSHA256 string `json:"pin_sha256,omitempty"`
	Suspended bool   `json:"suspended"`
}

// maxTrustFile bounds what LoadTrust and Watch read. A CA certificate is
// under 2 KB, so this is room for thousands of partners while keeping a
// mistaken path (a log file, /dev/zero) from eating memory.
const maxTrustFile = 16 << 20

// partnerState is a partner with what verification needs, made once per
// configuration.
type partnerState struct {
	Partner
	roots *x509.CertPool // nil when the partner is pinned only
	caPEM string         // as configured, to tell a changed CA from an unchanged one
}

// trustConfig is one immutable version of the configuration. Reload swaps
// in a new one atomically, so a handshake sees either the old or the new
// configuration, never half of each.
type trustConfig struct {
	partners map[string]*partnerState
	sum      [sha256.Size]byte // of the file it was parsed from
}

// Trust is the current trust configuration, loaded from a file and
// reloaded when the file changes. It is safe for concurrent use: lookups
// read an immutable snapshot without locking, and reloads replace it.
type Trust struct {
	path string
	log  *slog.Logger
	cur  atomic.Pointer[trustConfig]

	mu      sync.Mutex // serialises reloads; guards the fields below
	badSum  [sha256.Size]byte
	lastErr string // the last reload error logged, so Watch does not repeat it every tick
}

// LoadTrust reads the trust configuration at path. The file is JSON:
//
//	{"partners": [
//	  {"domain": "blue.example", "endpoint": "https://fed.blue.example",
//	   "ca_pem": "-----BEGIN CERTIFICATE-----\n...", "suspended": false},
//	  {"domain": "red.example", "endpoint": "https://203.0.113.7:8444",
//	   "pin_sha256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="}
//	]}
//
// Each partner has a valid lower-case domain, listed once; an https://
// endpoint; and ca_pem (one or more CA certificates in PEM), pin_sha256 (see
// PinSHA256), or both, in which case its certificate must satisfy both.
// Unknown fields are refused, so a misspelt "suspended" cannot silently
// leave a partner active. log receives what each reload changes; nil
// discards it.
func LoadTrust(path string, log *slog.Logger) (*Trust, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Trust{path: path, log: log}
	data, err := readTrustFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := parseTrust(data)
	if err != nil {
		return nil, trustErr(ErrTrustConfig, "", err, "%s", path)
	}
	t.cur.Store(cfg)
	return t, nil
}

func readTrustFile(path string) ([]byte, error) {
	f, err := os.Open(path) // #nosec G304 -- the trust file named in the operator's configuration
	if err != nil {
		return nil, trustErr(ErrTrustConfig, "", err, "read trust configuration")
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTrustFile+1))
	if err != nil {
		return nil, trustErr(ErrTrustConfig, "", err, "read trust configuration %s", path)
	}
	if len(data) > maxTrustFile {
		return nil, trustErr(ErrTrustConfig, "", nil, "trust configuration %s is larger than %d bytes", path, maxTrustFile)
	}
	return data, nil
}

// parseTrust parses and validates a trust file.
func parseTrust(data []byte) (*trustConfig, error) {
	var f trustFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a trust configuration: %v", err)
	}
	// More() would let a stray "}" or "]" pass: only the end may follow.
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not a trust configuration: data after the JSON object")
	}
	cfg := &trustConfig{partners: make(map[string]*partnerState, len(f.Partners)), sum: sha256.Sum256(data)}
	for i, pj := range f.Partners {
		p, err := parsePartner(pj)
		if err != nil {
			if pj.Domain != "" {
				return nil, fmt.Errorf("partners[%d] (%s): %v", i, pj.Domain, err)
			}
			return nil, fmt.Errorf("partners[%d]: %v", i, err)
		}
		if cfg.partners[p.Domain] != nil {
			return nil, fmt.Errorf("partners[%d]: %s is listed twice", i, p.Domain)
		}
		cfg.partners[p.Domain] = p
	}
	return cfg, nil
}

func parsePartner(pj partnerJSON) (*partnerState, error) {
	if err := identity.ProviderURI(pj.Domain).Validate(); err != nil {
		return nil, fmt.Errorf("domain: %v", err)
	}
	u, err := url.Parse(pj.Endpoint)
	switch {
	case pj.Endpoint == "":
		return nil, errors.New("endpoint is missing")
	case err != nil:
		return nil, fmt.Errorf("endpoint: %v", err)
	case u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("endpoint %q: want an https:// URL (federation is mutual TLS only)", pj.Endpoint)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("endpoint %q: no user, query or fragment", pj.Endpoint)
	}
	p := &partnerState{Partner: Partner{Domain: pj.Domain, Endpoint: pj.Endpoint, Suspended: pj.Suspended}, caPEM: pj.CAPEM}
	if pj.CAPEM == "" && pj.PinSHA256 == "" {
		return nil, errors.New("give ca_pem or pin_sha256: without one, nothing authenticates the partner")
	}
	if pj.PinSHA256 != "" {
		pin, err := base64.StdEncoding.DecodeString(pj.PinSHA256)
		if err != nil || len(pin) != sha256.Size {
			return nil, errors.New("pin_sha256: want the standard base64 of a 32-byte SHA-256")
		}
		p.Pin = pin
	}
	if pj.CAPEM != "" {
		cas, err := parseCAs(pj.Domain, pj.CAPEM)
		if err != nil {
			return nil, fmt.Errorf("ca_pem: %v", err)
		}
		p.CAs = cas
		p.roots = x509.NewCertPool()
		for _, c := range cas {
			p.roots.AddCert(c)
		}
	}
	return p, nil
}

// parseCAs reads one or more CA certificates. Anything else in the text is
// refused rather than skipped: a pasted private key or a truncated block is
// a mistake the operator must hear about.
func parseCAs(domain, text string) ([]*x509.Certificate, error) {
	var cas []*x509.Certificate
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a %q PEM block; only CERTIFICATE blocks belong here", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", len(cas)+1, err)
		}
		// The same test identity.NewVerifier applies, so a partner's CA
		// here can also anchor its users' MLS credentials.
		if !c.BasicConstraintsValid || !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return nil, fmt.Errorf("certificate %d is not a CA certificate allowed to sign certificates", len(cas)+1)
		}
		// A CA that names a provider must name this one: a CA copied into
		// the wrong entry would otherwise let one partner pass for another.
		for _, u := range c.URIs {
			if id, err := identity.ParseURI(u.String()); err == nil && id.Kind == identity.KindProvider && id.Domain != domain {
				return nil, fmt.Errorf("certificate %d is the CA of %s, not of %s", len(cas)+1, id.Domain, domain)
			}
		}
		cas = append(cas, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("text that is not a PEM block")
	}
	if len(cas) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return cas, nil
}

// Reload reads the file again and, if it is valid, makes it the current
// configuration and logs what changed. If the file is unreadable or invalid
// Reload logs and returns the error and the previous configuration stays in
// force: a typo must not cut off every partner.
func (t *Trust) Reload() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reload(false)
}

// Watch checks the file every interval until ctx is done and reloads it
// when its content changes. It compares SHA-256 hashes of the content
// rather than modification times: the file is small, and a hash cannot miss
// a rewrite within the file system's timestamp granularity or be fooled by
// a tool that preserves mtimes. A bad file is logged once, not every tick.
func (t *Trust) Watch(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.mu.Lock()
			t.reload(true) // #nosec G104 -- reload logs its own errors
			t.mu.Unlock()
		}
	}
}

// reload is Reload with t.mu held. With onlyIfChanged it skips a file whose
// content is the current configuration's or the last bad file's.
func (t *Trust) reload(onlyIfChanged bool) error {
	data, err := readTrustFile(t.path)
	if err != nil {
		return t.failed(err)
	}
	sum := sha256.Sum256(data)
	old := t.cur.Load()
	if onlyIfChanged {
		if sum == old.sum {
			// Back to the configuration in force (a bad edit undone): a
			// later bad file, even the same one, is news again.
			t.badSum, t.lastErr = [sha256.Size]byte{}, ""
			return nil
		}
		if sum == t.badSum {
			return nil
		}
	}
	cfg, err := parseTrust(data)
	if err != nil {
		t.badSum = sum
		return t.failed(trustErr(ErrTrustConfig, "", err, "%s", t.path))
	}
	t.badSum, t.lastErr = [sha256.Size]byte{}, ""
	t.cur.Store(cfg)
	t.logChanges(old, cfg)
	return nil
}

func (t *Trust) failed(err error) error {
	if msg := err.Error(); msg != t.lastErr {
		t.lastErr = msg
		t.log.Error("federation trust: keeping the previous configuration", "path", t.path, "err", err)
	}
	return err
}

// logChanges logs one line per partner whose entry changed, so an operator
// can see in the log exactly when a suspension took effect.
func (t *Trust) logChanges(old, cur *trustConfig) {
	for _, d := range slices.Sorted(maps.Keys(cur.partners)) {
		n, o := cur.partners[d], old.partners[d]
		switch {
		case o == nil:
			t.log.Info("federation partner added", "domain", d, "suspended", n.Suspended, "endpoint", n.Endpoint)
		case !o.Suspended && n.Suspended:
			t.log.Info("federation partner suspended", "domain", d)
		case o.Suspended && !n.Suspended:
			t.log.Info("federation partner resumed", "domain", d)
		}
		if o == nil {
			continue
		}
		var changed []string
		if o.Endpoint != n.Endpoint {
			changed = append(changed, "endpoint")
		}
		if o.caPEM != n.caPEM {
			changed = append(changed, "ca_pem")
		}
		if !bytes.Equal(o.Pin, n.Pin) {
			changed = append(changed, "pin_sha256")
		}
		if len(changed) > 0 {
			t.log.Info("federation partner changed", "domain", d, "fields", changed)
		}
	}
	for _, d := range slices.Sorted(maps.Keys(old.partners)) {
		if cur.partners[d] == nil {
			t.log.Info("federation partner removed", "domain", d)
		}
	}
}

// Partner returns the partner domain. It fails with ErrUnknownPartner if the
// configuration does not list it, and with ErrSuspendedPartner — returning
// the partner too, for its endpoint — if it is suspended.
func (t *Trust) Partner(domain string) (Partner, error) {
	p, err := t.cur.Load().partner(domain)
	if p == nil {
		return Partner{}, err
	}
	return p.Partner, err
}

func (c *trustConfig) partner(domain string) (*partnerState, error) {
	p := c.partners[domain]
	if p == nil {
		return nil, trustErr(ErrUnknownPartner, domain, nil, "%s is not a partner of this provider", quoteDomain(domain))
	}
	if p.Suspended {
		return p, trustErr(ErrSuspendedPartner, domain, nil, "%s is suspended as a partner of this provider", domain)
	}
	return p, nil
}

// Partners returns every configured partner, suspended ones included,
// sorted by domain.
func (t *Trust) Partners() []Partner {
	cfg := t.cur.Load()
	out := make([]Partner, 0, len(cfg.partners))
	for _, d := range slices.Sorted(maps.Keys(cfg.partners)) {
		out = append(out, cfg.partners[d].Partner)
	}
	return out
}

// quoteDomain prints a domain taken from a peer's certificate or request
// for a message: as is when valid, quoted and shortened otherwise, so
// hostile text cannot forge log lines.
func quoteDomain(d string) string {
	if identity.ProviderURI(d).Validate() == nil {
		return d
	}
	if len(d) > 80 {
		d = d[:80]
	}
	return strconv.Quote(d)
}

// CheckSpeaksFor enforces that a provider speaks only for its own users: a
// request from peerDomain (PeerDomain's answer) may act as uri — name it as
// the sender, the actor of a proposal, the owner of a KeyPackage — only if
// uri is a user, pseudonym or device of peerDomain, or peerDomain itself.
// Otherwise it fails with ErrNotItsUser.
//
// It applies where the peer originates an action. A hub that relays
// another provider's user's message to a follower (notify, fanout) is
// forwarding, not speaking for that user; there the MLS signature, not the
// TLS peer, authenticates the sender. A room, group or team URI names no
// one who speaks, so passing one is a programming error.
func CheckSpeaksFor(peerDomain string, uri identity.URI) error {
	if err := uri.Validate(); err != nil {
		return err
	}
	switch uri.Kind {
	case identity.KindProvider, identity.KindUser, identity.KindPseudonym, identity.KindDevice:
	default:
		return fmt.Errorf("federation: CheckSpeaksFor: a %v URI (%s) names no actor", uri.Kind, uri)
	}
	if uri.Domain != peerDomain {
		return trustErr(ErrNotItsUser, peerDomain, nil, "%s may speak only for its own users, not for %s", quoteDomain(peerDomain), uri)
	}
	return nil
}

// Replay protection. Mutual TLS already stops a network attacker from
// replaying a request; these headers stop whoever sees requests after TLS is
// terminated — a load balancer's logs, a proxy that accepts TLS 1.3 early
// data, which is replayable by design — from replaying one later.
const (
	// HeaderRequestID carries a fresh random nonce per request attempt:
	// 16 to 128 characters of A–Z a–z 0–9 "-" "_" "." (StampRequest makes
	// 22 base64url characters, 128 bits). It is not an idempotency key: a
	// retry carries a new one, and the body's own IDs make it idempotent.
	HeaderRequestID = "Mimi-Request-Id"
	// HeaderTimestamp carries when the request was made, in decimal Unix
	// seconds.
	HeaderTimestamp = "Mimi-Timestamp"
	// ReplayWindow is how far a request's timestamp may be from the
	// receiver's clock, either way. It is also the clock skew tolerated
	// between two providers (docs/reliability.md, "Clock skew"): 30
	// minutes, so that each may be 15 minutes off the true time. (It was 5
	// minutes, which refused every request between providers whose
	// clocks were 3 minutes off either way.)
	ReplayWindow = 30 * time.Minute
	// DefaultReplayMemory is a sensible number of request IDs to remember
	// per partner: 65536 covers 18 requests a second sustained across the
	// hour-long window; a partner that sends more fills it, and the guard
	// then forgets its oldest IDs early and refuses what is stamped before
	// them (requests minutes old, which a retry restamps).
	DefaultReplayMemory = 1 << 16
)

// ReplayGuard remembers the request IDs each partner used within the
// window and refuses a request whose ID it has seen, or whose timestamp is
// too far from now. It is safe for concurrent use.
//
// Memory is bounded: an ID is forgotten once its timestamp leaves the
// window (a replay of it is then refused as stale), and when a partner has
// max IDs in memory the oldest is forgotten early and every request stamped
// at or before it is refused from then on, since it might be a replay of
// what was forgotten. So a flood makes the guard stricter, never leakier; a
// sender refused that way retries with a fresh timestamp.
type ReplayGuard struct {
	window time.Duration
	max    int

	mu    sync.Mutex
	peers map[string]*replayLog
}

// NewReplayGuard returns a guard with the given window (ReplayWindow if
// zero) that remembers at most max IDs per partner (DefaultReplayMemory if
// zero).
func NewReplayGuard(window time.Duration, max int) *ReplayGuard {
	if window <= 0 {
		window = ReplayWindow
	}
	if max <= 0 {
		max = DefaultReplayMemory
	}
	return &ReplayGuard{window: window, max: max, peers: make(map[string]*replayLog)}
}

// replayLog is one partner's remembered IDs: a set, and a min-heap by
// timestamp to forget the oldest first.
type replayLog struct {
	seen  map[string]struct{}
	heap  replayHeap
	floor int64 // Unix nanoseconds; requests stamped at or before are refused
	has   bool  // whether floor is set
}

type replayEntry struct {
	id string
	ts int64 // Unix nanoseconds
}

type replayHeap []replayEntry

func (h replayHeap) Len() int           { return len(h) }
func (h replayHeap) Less(i, j int) bool { return h[i].ts < h[j].ts }
func (h replayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *replayHeap) Push(x any)        { *h = append(*h, x.(replayEntry)) }
func (h *replayHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// Check records request id from partner, stamped ts, at time now, and fails
// with ErrReplay if id was seen before within the window or ts is more than
// the window away from now. partner must be the authenticated peer, so the
// guard's memory is bounded by the number of partners.
func (g *ReplayGuard) Check(partner, id string, ts, now time.Time) error {
	if !validRequestID(id) {
		return trustErr(ErrReplay, partner, nil, "%s must be 16 to 128 characters of A-Z a-z 0-9 '-' '_' '.'", HeaderRequestID)
	}
	if d := now.Sub(ts); d > g.window || d < -g.window {
		way := "behind"
		if d < 0 {
			way, d = "ahead of", -d
		}
		return trustErr(ErrReplay, partner, nil, "%s %d is %v %s this provider's clock, more than the %v allowed (is one of the clocks wrong?)",
			HeaderTimestamp, ts.Unix(), d.Round(time.Second), way, g.window)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.peers[partner]
	if l == nil {
		l = &replayLog{seen: make(map[string]struct{})}
		g.peers[partner] = l
	}
	// Forget IDs whose timestamps have left the window: a replay of one is
	// refused as stale above.
	cutoff := now.Add(-g.window).UnixNano()
	for len(l.heap) > 0 && l.heap[0].ts < cutoff {
		delete(l.seen, heap.Pop(&l.heap).(replayEntry).id)
	}
	if _, dup := l.seen[id]; dup {
		return trustErr(ErrReplay, partner, nil, "%s %s was seen before", HeaderRequestID, id)
	}
	t := ts.UnixNano()
	if l.has && t <= l.floor {
		return trustErr(ErrReplay, partner, nil, "too many requests from %s to remember: %s %d is too old to check; retry with a fresh timestamp",
			partner, HeaderTimestamp, ts.Unix())
	}
	for len(l.heap) >= g.max {
		e := heap.Pop(&l.heap).(replayEntry)
		delete(l.seen, e.id)
		l.floor, l.has = max(l.floor, e.ts), true
	}
	l.seen[id] = struct{}{}
	heap.Push(&l.heap, replayEntry{id: id, ts: t})
	return nil
}

// CheckRequest checks r's HeaderRequestID and HeaderTimestamp with Check,
// for the partner RequirePartner authenticated. A request without them fails
// with ErrReplay.
func (g *ReplayGuard) CheckRequest(r *http.Request) error {
	peer, err := PeerDomain(r)
	if err != nil {
		return err
	}
	id := r.Header.Get(HeaderRequestID)
	if id == "" {
		return trustErr(ErrReplay, peer, nil, "the %s header is missing", HeaderRequestID)
	}
	raw := r.Header.Get(HeaderTimestamp)
	secs, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || secs < 0 || strings.HasPrefix(raw, "+") {
		return trustErr(ErrReplay, peer, nil, "the %s header must be decimal Unix seconds", HeaderTimestamp)
	}
	return g.Check(peer, id, time.Unix(secs, 0), clock.Now())
}

// Len returns how many request IDs the guard remembers for partner.
func (g *ReplayGuard) Len(partner string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l := g.peers[partner]; l != nil {
		return len(l.seen)
	}
	return 0
}

func validRequestID(id string) bool {
	if len(id) < 16 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Package provider is one Switchboard messaging provider: accounts and
// devices, the KeyPackage directory, the rooms it hosts as their hub, every
// device's durable delivery queue, and the client API (/v1, docs/api.md)
// with its WebSocket stream. It never sees plaintext: it routes MLS
// messages, and reads only the public handshake messages it must check.
package provider

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/switchboard-chat/switchboard/bus"
	"github.com/switchboard-chat/switchboard/clock"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// Config is a provider's configuration. Zero values get the defaults of
// DefaultConfig.
type Config struct {
	// Domain names the provider in MIMI URIs (mimi://DOMAIN/...).
	Domain string
	// MaxBodyBytes bounds every request body, except a commit's.
	MaxBodyBytes int64
	// MaxCommitBytes bounds the body of a request that carries a commit or
	// a Welcome: the client API's POST /v1/rooms/{id}/messages and the
	// federation's update and notify. A commit that adds members carries
	// a Welcome with the room's whole ratchet tree, about 1 KB a member
	// (more as base64 in JSON), so its size grows with the room; every
	// other message on those endpoints is still held to MaxBodyBytes.
	MaxCommitBytes int64
	// KeyPackageLowWatermark: below this many fresh KeyPackages a device
	// is told to upload more.
	KeyPackageLowWatermark int
	// SessionTTL and ChallengeTTL bound sign-in tokens and challenges.
	SessionTTL   time.Duration
	ChallengeTTL time.Duration
	// SessionCacheTTL is how long a signed-in session read from the store
	// is trusted without reading it again (docs/api.md): the bound on
	// how late an operator's suspension, or a sign-out whose notice the
	// bus lost, takes effect. The hub's consent answers are cached as
	// long (docs/consent.md). Negative: no caches.
	SessionCacheTTL time.Duration
	// EnrollmentTTL bounds enrollment codes.
	EnrollmentTTL time.Duration
	// QueueRetention is how long undelivered messages wait for a device
	// that does not come back.
	QueueRetention time.Duration
	// CredentialTTL is the validity of issued MLS credentials.
	CredentialTTL time.Duration
	// FederationURL is the https base URL of the federation API, under
	// which the directory (federation.NewDirectory) places the MIMI
	// endpoints: "https://fed.example.com/mimi" gives
	// https://fed.example.com/mimi/keyMaterial/{targetUser}. Defaults to
	// https://DOMAIN.
	FederationURL string
	// MaxAttachmentBytes bounds an attachment (docs/attachments.md): an
	// upload's encrypted body, and one fetched from a partner for a
	// device.
	MaxAttachmentBytes int64
	// AttachmentRetention is how long an uploaded attachment is kept.
	AttachmentRetention time.Duration
	// BodyTimeout bounds the time to receive a request's whole body, so
	// that a client sending it byte by byte cannot hold a connection (and
	// its goroutine) for good; the server's ReadHeaderTimeout bounds the
	// headers the same way. Long enough for the largest attachment on a
	// slow link.
	BodyTimeout time.Duration
	// Connections bounds the client API's open connections, in all and
	// per source address (connlimit.go), where the listener is wrapped
	// with LimitListener.
	Connections ConnLimits
	// The rate limits (docs/ratelimits.md), each a token bucket per key:
	// messages a local user submits; messages offered to a room hosted
	// here, from any source; federation POSTs of one partner; discovery
	// lookups of a local user and identifierQuery requests of a partner.
	// A zero field takes the default; a negative Every or Burst disables
	// that limit.
	UserMessageLimit      RateLimit
	RoomLimit             RateLimit
	PartnerLimit          RateLimit
	UserDiscoveryLimit    RateLimit
	PartnerDiscoveryLimit RateLimit
	// Bus carries wake-ups between the replicas of this provider (a
	// message accepted by one wakes the device's stream on another). Nil
	// is the in-process bus of a provider run as one process.
	Bus bus.Bus
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Domain:                 "localhost",
		MaxBodyBytes:           1 << 20,
		MaxCommitBytes:         16 << 20,
		KeyPackageLowWatermark: 10,
		SessionTTL:             30 * 24 * time.Hour,
		ChallengeTTL:           2 * time.Minute,
		SessionCacheTTL:        time.Second,
		EnrollmentTTL:          7 * 24 * time.Hour,
		QueueRetention:         30 * 24 * time.Hour,
		CredentialTTL:          365 * 24 * time.Hour,
		MaxAttachmentBytes:     25 << 20,
		AttachmentRetention:    30 * 24 * time.Hour,
		BodyTimeout:            2 * time.Minute,
		UserMessageLimit:       defaultUserMessageLimit,
		RoomLimit:              defaultRoomLimit,
		PartnerLimit:           defaultPartnerLimit,
		UserDiscoveryLimit:     defaultUserDiscoveryLimit,
		PartnerDiscoveryLimit:  defaultPartnerDiscoveryLimit,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.Domain == "" {
		c.Domain = d.Domain
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxCommitBytes <= 0 {
		c.MaxCommitBytes = d.MaxCommitBytes
	}
	c.MaxCommitBytes = max(c.MaxCommitBytes, c.MaxBodyBytes)
	if c.KeyPackageLowWatermark <= 0 {
		c.KeyPackageLowWatermark = d.KeyPackageLowWatermark
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = d.SessionTTL
	}
	if c.ChallengeTTL <= 0 {
		c.ChallengeTTL = d.ChallengeTTL
	}
	if c.SessionCacheTTL == 0 {
		c.SessionCacheTTL = d.SessionCacheTTL
	}
	if c.EnrollmentTTL <= 0 {
		c.EnrollmentTTL = d.EnrollmentTTL
	}
	if c.QueueRetention <= 0 {
		c.QueueRetention = d.QueueRetention
	}
	if c.CredentialTTL <= 0 {
		c.CredentialTTL = d.CredentialTTL
	}
	if c.MaxAttachmentBytes <= 0 {
		c.MaxAttachmentBytes = d.MaxAttachmentBytes
	}
	if c.AttachmentRetention <= 0 {
		c.AttachmentRetention = d.AttachmentRetention
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = d.BodyTimeout
	}
	c.Connections.fill(ConnLimits{Total: defaultConnTotal, PerSource: defaultConnPerSource})
	if c.FederationURL == "" {
		c.FederationURL = "https://" + c.Domain
	}
	c.UserMessageLimit.fill(d.UserMessageLimit)
	c.RoomLimit.fill(d.RoomLimit)
	c.PartnerLimit.fill(d.PartnerLimit)
	c.UserDiscoveryLimit.fill(d.UserDiscoveryLimit)
	c.PartnerDiscoveryLimit.fill(d.PartnerDiscoveryLimit)
}

// Server is one provider. Create it with New; serve Handler over HTTP(S).
type Server struct {
	cfg Config
	// refuseConn answers a request on a connection past a limit.
	refuseConn http.Handler
	store      store.Store
	ca         *identity.CA
	verifier   *identity.Verifier
	log        *slog.Logger
	metrics    *metrics
	registry   *prometheus.Registry
	now        func() time.Time

	challenges *challenges
	// sessions caches signed-in sessions, consents the hub's consent
	// answers (nil: no cache).
	sessions *sessionCache
	consents *consentCache
	hub      *hub
	streams  *streams
	// bus wakes streams here and on the other replicas (bus.Local when
	// the provider is one process).
	bus bus.Bus

	// fed connects rooms to partner providers (EnableFederation); nil
	// without federation. partners checks their users' credentials; seqs
	// wakes a follower waiting for the hub's notify.
	fed      *Federation
	partners partnerVerifiers
	seqs     seqWaiters

	// limits are the rate limits of Config (ratelimit.go).
	limits *rateLimits

	// directory is the federation API's directory, made from
	// Config.FederationURL; fedOrigin is its scheme and host, which the
	// endpoints' ServeMux patterns leave out.
	directory *federation.Directory
	fedOrigin string

	// franking holds the hub's franking keys and partners' public ones.
	franking frankingKeys

	mux      *http.ServeMux
	mu       sync.Mutex
	draining bool
}

// New makes a provider over st, issuing credentials with ca. Metrics go to
// a registry of the server's own, served at /metrics.
func New(cfg Config, st store.Store, ca *identity.CA, log *slog.Logger) (*Server, error) {
	cfg.fill()
	if ca == nil {
		return nil, errors.New("provider: no credential authority")
	}
	if ca.Domain() != cfg.Domain {
		return nil, fmt.Errorf("provider: CA is for %q, the provider is %q", ca.Domain(), cfg.Domain)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	verifier, err := identity.NewVerifier(map[string]*x509.Certificate{cfg.Domain: ca.Certificate()})
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	// Checked here, so that a bad URL fails at start and
	// FederationHandler cannot fail.
	dir, err := federation.NewDirectory(cfg.FederationURL)
	if err != nil {
		return nil, fmt.Errorf("provider: FederationURL: %w", err)
	}
	fu, _ := url.Parse(cfg.FederationURL) // NewDirectory parsed it
	reg := prometheus.NewRegistry()
	s := &Server{
		directory:  dir,
		fedOrigin:  fu.Scheme + "://" + fu.Host,
		cfg:        cfg,
		verifier:   verifier,
		store:      st,
		ca:         ca,
		log:        log,
		metrics:    newMetrics(reg),
		registry:   reg,
		now:        clock.Now,
		challenges: newChallenges(),
		streams:    newStreams(),
		limits:     newRateLimits(cfg),
		bus:        cfg.Bus,
	}
	if s.bus == nil {
		s.bus = bus.NewLocal()
	}
	if cfg.SessionCacheTTL > 0 {
		s.sessions = newSessionCache(cfg.SessionCacheTTL)
		s.consents = newConsentCache(cfg.SessionCacheTTL)
	}
	s.bus.OnDevices(s.streams.notifyAll)
	s.bus.OnRoom(func(room string) { s.seqs.reached(room, 0) })
	s.bus.OnTell(s.onNotice)
	s.bus.OnResync(func() {
		// A sign-out's or a consent change's notice may be among the lost.
		s.sessions.forgetAll()
		s.consents.forgetAll()
		s.streams.wakeAll()
		s.seqs.reachedAll()
	})
	s.hub = newHub(s)
	s.routes()
	return s, nil
}

// Handler returns the provider's HTTP handler.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.overLimit(w, r) {
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// Drain makes the server refuse new work with 503 while in-flight requests
// finish, and closes every stream so devices reconnect elsewhere.
func (s *Server) Drain() {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.streams.closeAll()
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// Maintain runs periodic chores until ctx ends: trimming queues of devices
// that never came back, forgetting expired challenges, deleting
// attachments older than AttachmentRetention, and forgetting partners'
// request IDs after a day.
func (s *Server) Maintain(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.store.TrimQueues(ctx, s.now().Add(-s.cfg.QueueRetention))
			if err != nil {
				s.log.Error("trimming queues", "err", err)
			} else if n > 0 {
				s.log.Info("trimmed queues", "entries", n)
			}
			s.challenges.expire(s.now())
			s.trimAttachments(ctx)
			// Inbound IDs guard against replayed keyMaterial requests
			// within a minute (keyMaterialReplayBucket); a day keeps them
			// far longer than any retry, then they go.
			if n, err := s.store.TrimInbound(ctx, s.now().Add(-inboundRetention)); err != nil {
				s.log.Error("trimming inbound request IDs", "err", err)
			} else if n > 0 {
				s.log.Info("trimmed inbound request IDs", "ids", n)
			}
		}
	}
}

// inboundRetention is how long the IDs of partners' requests are kept.
const inboundRetention = 24 * time.Hour

func (s *Server) routes() {
	m := http.NewServeMux()
	m.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
	m.Handle("GET /readyz", s.serve("readyz", s.readyz))
	m.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))

	m.Handle("GET /v1/provider", s.serve("provider", s.getProvider))
	m.Handle("POST /v1/devices", s.serve("register", s.register))
	m.Handle("POST /v1/auth/challenge", s.serve("challenge", s.challenge))
	m.Handle("POST /v1/auth/session", s.serve("session", s.signIn))
	m.Handle("DELETE /v1/auth/session", s.authed("signout", s.signOut))
	m.Handle("GET /v1/me", s.authed("me", s.me))
	m.Handle("GET /v1/me/devices", s.authed("devices", s.myDevices))
	m.Handle("GET /v1/me/notices", s.authed("notices", s.notices))
	m.Handle("POST /v1/me/enrollments", s.authed("enroll", s.enroll))
	m.Handle("GET /v1/me/discovery", s.authed("discovery_settings", s.getDiscovery))
	m.Handle("PUT /v1/me/discovery", s.authed("set_discovery", s.setDiscovery))
	m.Handle("GET /v1/me/reachability", s.authed("reachability_settings", s.getReachability))
	m.Handle("PUT /v1/me/reachability", s.authed("set_reachability", s.setReachability))
	m.Handle("POST /v1/discovery", s.authed("discover", s.discover))
	m.Handle("GET /v1/requests", s.authed("requests", s.listRequests))
	m.Handle("POST /v1/requests/accept", s.authed("accept_request", s.acceptRequest))
	m.Handle("POST /v1/requests/decline", s.authed("decline_request", s.declineRequest))
	m.Handle("GET /v1/contacts", s.authed("contacts", s.listContacts))
	m.Handle("PUT /v1/contacts/{peer}", s.authed("set_contact", s.setContact))
	m.Handle("POST /v1/me/credentials", s.authed("credential", s.issueCredential))
	m.Handle("POST /v1/me/keypackages", s.authed("upload_key_packages", s.uploadKeyPackages))
	m.Handle("GET /v1/me/keypackages", s.authed("key_package_count", s.countKeyPackages))
	m.Handle("POST /v1/users/{handle}/keypackages", s.authed("claim_key_packages", s.claimKeyPackages))
	m.Handle("POST /v1/rooms", s.authed("create_room", s.createRoom))
	m.Handle("GET /v1/rooms/{id}", s.authed("room", s.getRoom))
	m.Handle("GET /v1/rooms/{id}/tree", s.authed("room_tree", s.getRoomTree))
	m.Handle("POST /v1/rooms/{id}/messages", s.authed("submit", s.submit))
	m.Handle("POST /v1/rooms/{id}/reports", s.authed("report", s.report))
	m.Handle("GET /v1/rooms/{id}/messages", s.authed("room_log", s.roomLog))
	m.Handle("GET /v1/stream", s.authed("stream", s.stream))
	m.Handle("GET /v1/inbox", s.authed("inbox", s.inbox))
	m.Handle("POST /v1/inbox/ack", s.authed("ack", s.ack))
	m.Handle("POST /v1/attachments", s.authed("upload_attachment", s.uploadAttachment))
	m.Handle("GET /v1/attachments/download", s.authed("download_attachment", s.downloadAttachment))
	s.mux = m
	s.refuseConn = s.serve("connection_limit", func(w http.ResponseWriter, r *http.Request) error {
		over, _ := r.Context().Value(overLimitKey{}).(string)
		return errTooManyConnections(over, s.cfg.Connections)
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.isDraining() {
		return errUnavailable("the provider is shutting down")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.store.UserByID(ctx, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return errUnavailable("the store is not reachable")
	}
	w.Write([]byte("ready\n"))
	return nil
}

func (s *Server) getProvider(w http.ResponseWriter, r *http.Request) error {
	suites := make([]uint16, 0, len(mls.SupportedSuites))
	for _, id := range mls.SupportedSuites {
		suites = append(suites, uint16(id))
	}
	// The partners' CAs, for devices to check partner users'
	// credentials with (docs/api.md): active partners that list a CA.
	type partner struct {
		Domain        string `json:"domain"`
		CACertificate []byte `json:"ca_certificate"`
	}
	partners := []partner{}
	if t := s.trustConfig(); t != nil {
		for _, p := range t.Partners() {
			if !p.Suspended && len(p.CAs) > 0 {
				partners = append(partners, partner{Domain: p.Domain, CACertificate: p.CAs[len(p.CAs)-1].Raw})
			}
		}
	}
	keys, err := s.frankingPublicKeys(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"domain":         s.cfg.Domain,
		"ca_certificate": s.ca.Certificate().Raw,
		"cipher_suites":  suites,
		"partners":       partners,
		// The hub's franking signature keys by scheme (docs/abuse.md).
		"franking_keys": keys,
	})
	return nil
}

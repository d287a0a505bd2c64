// Package node runs one whole Switchboard provider: its store and CA from a
// data directory, the client API on one listener, and, when configured,
// the federation API on another with mutual TLS, the transport to its
// partners and the durable outbox that fans the rooms it hosts out to
// them. `switchboard serve` runs one node; `switchboard demo` and the
// cross-provider tests run several in one process, each exactly as serve
// would.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/switchboard-chat/switchboard/bus"
	"github.com/switchboard-chat/switchboard/clock"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

const (
	// TrustWatchInterval is how often the trust file is re-read.
	TrustWatchInterval = 30 * time.Second
	// providerCertCheckInterval is how often a running node checks
	// whether its federation certificate is due for renewal.
	providerCertCheckInterval = 12 * time.Hour
	// DefaultDrainTimeout bounds how long Close waits for requests in
	// flight, unless Config.DrainTimeout says otherwise.
	DefaultDrainTimeout = 30 * time.Second
)

// Config is one node's configuration.
type Config struct {
	// Domain names the provider; DataDir holds its store and keys.
	Domain  string
	DataDir string
	// StoreDSN chooses the store: "" or "sqlite" for the embedded
	// default in DataDir, a postgres:// URL for a PostgreSQL database
	// shared by replicas (docs/deploy.md).
	StoreDSN string
	// Listen is the client API's address ("127.0.0.1:0" picks a port);
	// ClientTLS, if set, serves it over TLS.
	Listen    string
	ClientTLS *tls.Config
	// Provider tunes the provider; its Domain and FederationURL are
	// taken from this Config.
	Provider provider.Config
	// FederationListen is the federation API's address; empty means no
	// federation. FederationURL is the base URL published in the
	// directory (default https://DOMAIN); TrustFile lists the partners.
	FederationListen string
	FederationURL    string
	TrustFile        string
	// Outbox tunes the retries of the hub's notify requests.
	Outbox federation.OutboxOptions
	// PeerTimeout bounds each request to a partner (default
	// federation.DefaultPeerTimeout).
	PeerTimeout time.Duration
	Logger      *slog.Logger
	// WrapFederation, if set, wraps the federation API's handler, as
	// tests do to see what partners send once TLS is off.
	WrapFederation func(http.Handler) http.Handler
	// Bus is the NATS server(s) the provider's replicas share
	// ("nats://127.0.0.1:4222"); "" runs the provider as one process,
	// with in-process wake-ups. BusName names this replica on it
	// (default random); BusLeaseTTL is the outbox leases' lifetime
	// (default bus.DefaultLeaseTTL, the same on every replica).
	Bus         string
	BusName     string
	BusLeaseTTL time.Duration
	// DrainTimeout bounds how long Close waits for the requests and
	// streams' sends in flight before it stops the rest regardless
	// (default DefaultDrainTimeout). A service manager's stop timeout
	// should be longer, or it kills the node mid-drain.
	DrainTimeout time.Duration
	// Timeouts of the listeners (docs/deploy.md, "Timeouts"); zero takes
	// the default. A request's body has Provider.BodyTimeout.
	Timeouts Timeouts
}

// Timeouts bound what a client or partner can hold of a listener. The
// client API has no ReadTimeout or WriteTimeout of the server's: its
// streams are long-lived and an attachment may take minutes on a slow
// link, so it bounds headers, bodies (provider.Config.BodyTimeout) and
// idle keep-alives; its streams ping every 30 s and close a device that
// does not answer.
type Timeouts struct {
	// ReadHeader bounds the time to send a request's headers, on both
	// listeners (default 10 s).
	ReadHeader time.Duration
	// Idle closes a keep-alive connection left idle, on both listeners
	// (default 2 min).
	Idle time.Duration
	// FederationRead and FederationWrite bound a whole federation
	// request and its answer (default 60 s each).
	FederationRead  time.Duration
	FederationWrite time.Duration
}

// DefaultTimeouts are the Timeouts a zero field takes.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Idle: 2 * time.Minute,
	FederationRead: 60 * time.Second, FederationWrite: 60 * time.Second}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.ReadHeader, &d.ReadHeader}, {&t.Idle, &d.Idle}, {&t.FederationRead, &d.FederationRead}, {&t.FederationWrite, &d.FederationWrite},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

// Node is a running provider.
type Node struct {
	Domain string
	Store  store.Store
	CA     *identity.CA
	Server *provider.Server
	// Trust and Outbox are nil without federation.
	Trust  *federation.Trust
	Outbox *federation.Outbox
	// Bus is the NATS bus when Config.Bus is set, else nil.
	Bus *bus.NATS
	// ClientURL is the client API's base URL, FederationAddr the
	// federation listener's address ("" without federation).
	ClientURL      string
	FederationAddr string

	log       *slog.Logger
	cancel    context.CancelFunc
	api, fed  *http.Server
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	drain     time.Duration // Config.DrainTimeout
}

// Start opens the data directory and serves. Close stops it.
func Start(cfg Config) (n *Node, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, ca, err := OpenDataDirStore(cfg.DataDir, cfg.Domain, cfg.StoreDSN)
	if err != nil {
		return nil, err
	}
	for _, w := range TightenKeyFiles(cfg.DataDir) {
		log.Warn("key file permissions: " + w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = &Node{Domain: cfg.Domain, Store: st, CA: ca, log: log, cancel: cancel, drain: cfg.DrainTimeout}
	defer func() {
		if err != nil {
			n.Close() // #nosec G104 -- on an error path: the first error is the one returned
		}
	}()
	pcfg := cfg.Provider
	pcfg.Domain, pcfg.FederationURL = cfg.Domain, cfg.FederationURL
	if cfg.Bus != "" {
		// NATS unreachable now is not fatal: the bus connects when it
		// can, and the provider serves from the store meanwhile.
		if n.Bus, err = bus.DialNATS(bus.NATSOptions{URL: cfg.Bus, Domain: cfg.Domain, Name: cfg.BusName, LeaseTTL: cfg.BusLeaseTTL, Logger: log}); err != nil {
			return nil, err
		}
		pcfg.Bus = n.Bus
	}
	if n.Server, err = provider.New(pcfg, st, ca, log); err != nil {
		return nil, err
	}

	var fln net.Listener
	if cfg.FederationListen != "" {
		if fln, err = n.startFederation(ctx, cfg); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		if fln != nil {
			fln.Close()
		}
		return nil, err
	}
	// Under TLS, so that unfinished handshakes count too.
	ln = n.Server.LimitListener(ln)
	scheme := "http"
	if cfg.ClientTLS != nil {
		ln, scheme = tls.NewListener(ln, cfg.ClientTLS), "https"
	}
	n.ClientURL = scheme + "://" + ln.Addr().String()
	// A keep-alive connection left idle is closed after a while: each
	// holds a goroutine and buffers, and devices keep their stream (a
	// connection of its own) for what they wait on.
	to := cfg.Timeouts.withDefaults()
	n.api = &http.Server{Handler: n.Server.Handler(), ReadHeaderTimeout: to.ReadHeader, IdleTimeout: to.Idle,
		ConnContext: n.Server.ConnContext}
	n.serve(n.api, ln, "the client API")
	if fln != nil {
		n.serve(n.fed, fln, "the federation listener")
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.Server.Maintain(ctx, time.Hour)
	}()
	return n, nil
}

func (n *Node) serve(srv *http.Server, ln net.Listener, what string) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			n.log.Error(what+" stopped", "err", err)
		}
	}()
}

// startFederation loads the trust file, obtains the provider certificate,
// connects the provider to its partners and returns the federation
// listener. Until ctx ends it watches the trust file and renews the
// certificate.
func (n *Node) startFederation(ctx context.Context, cfg Config) (net.Listener, error) {
	trust, err := federation.LoadTrust(cfg.TrustFile, n.log)
	if err != nil {
		return nil, fmt.Errorf("trust_file: %w", err)
	}
	n.Trust = trust
	var cert atomic.Pointer[tls.Certificate]
	renew := func() error {
		c, err := LoadOrIssueProviderCert(cfg.DataDir, n.CA, cfg.Domain, clock.Now())
		if err != nil {
			return err
		}
		cert.Store(&c)
		return nil
	}
	if err := renew(); err != nil {
		return nil, err
	}
	peers, err := federation.NewPeers(cfg.Domain, *cert.Load(), trust, federation.PeerOptions{Timeout: cfg.PeerTimeout, Logger: n.log})
	if err != nil {
		return nil, err
	}
	// The listener and the partner connections present the same
	// certificate, renewed together.
	renewListener := renew
	renew = func() error {
		if err := renewListener(); err != nil {
			return err
		}
		return peers.SetCertificate(*cert.Load())
	}
	oo := cfg.Outbox
	if oo.Logger == nil {
		oo.Logger = n.log
	}
	if oo.Metrics == nil {
		oo.Metrics = n.Server.OutboxMetrics()
	}
	if n.Bus != nil {
		oo.Cluster = n.Bus
	}
	n.Outbox = federation.NewOutbox(n.Store, peers.OutboxSender(), oo)
	if n.Bus != nil {
		n.Bus.OnAnnounce(n.Outbox.WakeLocal)
	}
	n.Server.EnableFederation(provider.Federation{Trust: trust, Transport: peers, Outbox: n.Outbox})

	tc := federation.ServerTLSConfig(*cert.Load(), trust)
	// The certificate is renewed while the provider runs: handshakes take
	// the current one.
	tc.Certificates = nil
	tc.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert.Load(), nil }
	ln, err := net.Listen("tcp", cfg.FederationListen)
	if err != nil {
		return nil, err
	}
	n.FederationAddr = ln.Addr().String()
	h := n.Server.FederationHandler(trust)
	if cfg.WrapFederation != nil {
		h = cfg.WrapFederation(h)
	}
	to := cfg.Timeouts.withDefaults()
	n.fed = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: to.ReadHeader,
		// Partners are trusted, not infallible: bound slow bodies and
		// idle connections so a stuck partner cannot hold descriptors.
		ReadTimeout:  to.FederationRead,
		WriteTimeout: to.FederationWrite,
		IdleTimeout:  to.Idle,
		// Refused handshakes are logged here with the partner's address
		// (the reason goes to the trust's log as well).
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		trust.Watch(ctx, TrustWatchInterval)
	}()
	go func() {
		defer n.wg.Done()
		if err := n.Outbox.Run(ctx); err != nil {
			n.log.Error("federation outbox stopped", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(providerCertCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := renew(); err != nil {
					n.log.Error("renewing the federation certificate", "err", err)
				}
			}
		}
	}()
	return tls.NewListener(ln, tc), nil
}

// Close stops the node gracefully: new requests are refused, streams
// closed, requests in flight finish (up to Config.DrainTimeout), the outbox stops
// (what it has not delivered stays queued in the store), and the store is
// closed.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		if n.Server != nil {
			n.Server.Drain()
		}
		drain := n.drain
		if drain <= 0 {
			drain = DefaultDrainTimeout
		}
		sctx, cancel := context.WithTimeout(context.Background(), drain)
		defer cancel()
		for _, srv := range []*http.Server{n.fed, n.api} {
			if srv != nil {
				if err := srv.Shutdown(sctx); err != nil {
					n.closeErr = errors.Join(n.closeErr, err)
				}
			}
		}
		if n.Server != nil {
			// Shutdown does not wait for the streams (hijacked
			// connections), whose devices' sends in flight must be
			// stored and answered before the store closes.
			if err := n.Server.StreamsDone(sctx); err != nil {
				n.closeErr = errors.Join(n.closeErr, err)
			}
		}
		n.cancel()
		n.wg.Wait()
		// The outbox has stopped and released its leases.
		if n.Bus != nil {
			n.closeErr = errors.Join(n.closeErr, n.Bus.Close())
		}
		n.closeErr = errors.Join(n.closeErr, n.Store.Close())
	})
	return n.closeErr
}

// Abort stops the node the way a crash would, for tests of replicas:
// its NATS connection is cut first, so it releases no lease (they expire
// on their own), then listeners and connections are closed at once, with
// nothing drained, and the streams dropped. Only the store is closed
// properly, since in a test its process lives on.
func (n *Node) Abort() {
	n.closeOnce.Do(func() {
		if n.Bus != nil {
			n.Bus.NATSConn().Close()
		}
		for _, srv := range []*http.Server{n.fed, n.api} {
			if srv != nil {
				srv.Close() // #nosec G104 -- shutting down: nothing is left to do with a failed close
			}
		}
		// WebSockets are hijacked connections, which Close leaves open.
		n.Server.Drain()
		n.cancel()
		n.wg.Wait()
		if n.Bus != nil {
			n.Bus.Close() // #nosec G104 -- shutting down: nothing is left to do with a failed close
		}
		n.closeErr = n.Store.Close()
	})
}

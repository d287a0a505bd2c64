package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/crashpoint"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
)

func init() {
	commands["serve"] = command{summary: "run a provider (defaults: SQLite in ./switchboard-data, http://127.0.0.1:8080)", run: runServe}
}

// serveConfig is the provider's configuration: defaults, then the config
// file (JSON), then flags.
type serveConfig struct {
	Listen  string `json:"listen"`
	Domain  string `json:"domain"`
	DataDir string `json:"data_dir"`
	// Store chooses the storage engine: "" or "sqlite" (the default, in
	// the data directory) or a postgres:// URL shared by replicas.
	Store string `json:"store"`
	// TLS: a certificate and key, or self-signed to generate a pair in the
	// data directory. Without either, the provider serves plain HTTP and
	// only on a loopback address.
	TLSCert       string `json:"tls_cert"`
	TLSKey        string `json:"tls_key"`
	TLSSelfSigned bool   `json:"tls_self_signed"`
	MaxBodyBytes  int64  `json:"max_body_bytes"`
	// MaxCommitBytes bounds a request carrying a commit and its Welcome,
	// which grows with the room (provider.Config.MaxCommitBytes).
	MaxCommitBytes int64 `json:"max_commit_bytes"`
	LowWatermark   int   `json:"key_package_low_watermark"`
	RetentionDays  int   `json:"queue_retention_days"`
	// Attachments (docs/attachments.md): the largest upload, in bytes, and
	// how many days uploads are kept.
	MaxAttachmentBytes      int64 `json:"max_attachment_bytes"`
	AttachmentRetentionDays int   `json:"attachment_retention_days"`
	// Federation, off unless federation_listen is set: the MIMI API for
	// partner providers on a listener of its own, with mutual TLS
	// (docs/federation.md). FederationURL is the https base URL partners
	// reach it at, as published in the directory (default
	// https://DOMAIN); TrustFile lists the partners.
	FederationListen string `json:"federation_listen"`
	FederationURL    string `json:"federation_url"`
	TrustFile        string `json:"trust_file"`
	// Bus, for a provider run as several replicas (docs/deploy.md): the
	// NATS server(s) they share, e.g. "nats://127.0.0.1:4222". Empty:
	// one process, wake-ups in-process.
	Bus string `json:"bus"`
	// replica is --replica: a flag only, since every replica reads the
	// same file.
	replica string
	// pprof is --pprof: the loopback address of the runtime profiles,
	// for measuring a running provider (docs/performance.md).
	pprof string
	// BusLeaseTTLSeconds is how long a replica's lease on a federation
	// destination lives unrenewed (0: bus.DefaultLeaseTTL): after a
	// replica dies, its partners wait about this long before another
	// replica sends to them. It must be the same on every replica, which
	// the shared configuration file ensures.
	BusLeaseTTLSeconds int `json:"bus_lease_ttl_seconds"`
	// RateLimits change the rate limits' defaults or switch limits off
	// (docs/ratelimits.md).
	RateLimits rateLimitsConfig `json:"rate_limits"`
	// DrainTimeoutSeconds bounds a graceful stop (SIGTERM, SIGINT): how
	// long requests and streamed sends in flight get to finish before the
	// provider stops regardless (0: node.DefaultDrainTimeout, 30 s).
	DrainTimeoutSeconds int `json:"drain_timeout_seconds"`
	// ConnectionLimits bound the client API's open connections, in all
	// and per source address (docs/ratelimits.md, "Connections").
	ConnectionLimits connectionLimitsConfig `json:"connection_limits"`
	// Timeouts of the listeners and of a request's body (docs/deploy.md,
	// "Timeouts").
	Timeouts timeoutsConfig `json:"timeouts"`
}

// connectionLimitsConfig is connection_limits: a missing or 0 field keeps
// the default, -1 switches that limit off.
type connectionLimitsConfig struct {
	Total     int `json:"total"`
	PerSource int `json:"per_source"`
}

func (c connectionLimitsConfig) check() error {
	if c.Total < -1 || c.PerSource < -1 {
		return errors.New("connection_limits: a limit is a number of connections, or -1 for none")
	}
	return nil
}

// timeoutsConfig is timeouts, in seconds; a missing or 0 field keeps the
// default (node.DefaultTimeouts, provider's BodyTimeout).
type timeoutsConfig struct {
	ReadHeader      int `json:"read_header_seconds"`
	Body            int `json:"body_seconds"`
	Idle            int `json:"idle_seconds"`
	FederationRead  int `json:"federation_read_seconds"`
	FederationWrite int `json:"federation_write_seconds"`
}

func (t timeoutsConfig) check() error {
	if t.ReadHeader < 0 || t.Body < 0 || t.Idle < 0 || t.FederationRead < 0 || t.FederationWrite < 0 {
		return errors.New("timeouts must not be negative")
	}
	if max(t.ReadHeader, t.Body, t.Idle, t.FederationRead, t.FederationWrite) > maxTimeoutSeconds {
		return fmt.Errorf("timeouts must be at most %d seconds (a day)", maxTimeoutSeconds)
	}
	return nil
}

func (t timeoutsConfig) node() node.Timeouts {
	s := func(n int) time.Duration { return time.Duration(n) * time.Second }
	return node.Timeouts{ReadHeader: s(t.ReadHeader), Idle: s(t.Idle), FederationRead: s(t.FederationRead), FederationWrite: s(t.FederationWrite)}
}

// Upper bounds of fields that become durations: far above any sensible
// setting, and far below where a time.Duration wraps around.
const (
	maxRetentionDays   = 36500 // a hundred years
	maxLeaseTTLSeconds = 86400 // a day
	maxTimeoutSeconds  = 86400 // a day
)

func defaultServeConfig() serveConfig {
	return serveConfig{Listen: "127.0.0.1:8080", Domain: "localhost", DataDir: "switchboard-data"}
}

// decodeServeConfig reads a configuration file over cfg: fields it names
// replace cfg's, unknown fields (a typo would be silently ignored) and
// anything after the object are refused.
func decodeServeConfig(data []byte, cfg *serveConfig) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return err
	}
	// More() would let a stray "}" or "]" pass: only the end may follow.
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the configuration object")
	}
	return nil
}

func (c *serveConfig) check() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen %q: %v", c.Listen, err)
	}
	if _, err := identity.ParseURI("mimi://" + c.Domain); err != nil {
		return fmt.Errorf("domain %q: %v", c.Domain, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls_cert and tls_key go together")
	}
	tls := c.TLSCert != "" || c.TLSSelfSigned
	if ip := net.ParseIP(host); !tls && (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return fmt.Errorf("listen %q is not a loopback address: configure TLS (tls_cert and tls_key, or tls_self_signed)", c.Listen)
	}
	if c.Store != "" && c.Store != "sqlite" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		return errors.New(`store must be "sqlite" or a postgres:// URL`)
	}
	if c.MaxBodyBytes < 0 || c.MaxCommitBytes < 0 || c.LowWatermark < 0 || c.RetentionDays < 0 || c.MaxAttachmentBytes < 0 || c.AttachmentRetentionDays < 0 || c.DrainTimeoutSeconds < 0 {
		return errors.New("limits must not be negative")
	}
	if c.DrainTimeoutSeconds > maxTimeoutSeconds {
		return fmt.Errorf("drain_timeout_seconds must be at most %d (a day)", maxTimeoutSeconds)
	}
	// Days become a time.Duration, which holds about 292 years: more
	// would wrap around to a short or negative retention.
	if c.RetentionDays > maxRetentionDays || c.AttachmentRetentionDays > maxRetentionDays {
		return fmt.Errorf("retention days must be at most %d", maxRetentionDays)
	}
	if err := c.RateLimits.check(); err != nil {
		return err
	}
	if err := c.ConnectionLimits.check(); err != nil {
		return err
	}
	if err := c.Timeouts.check(); err != nil {
		return err
	}
	if err := c.checkBus(c.replica); err != nil {
		return err
	}
	return c.checkFederation()
}

// checkBus accepts an empty bus (one process) or NATS URLs, separated by
// commas as nats.go takes them, and the settings that go with a bus only:
// the lease TTL and the replica's name (from --replica, not the shared
// file).
func (c *serveConfig) checkBus(replica string) error {
	if c.BusLeaseTTLSeconds < 0 {
		return errors.New("bus_lease_ttl_seconds must not be negative")
	}
	if c.BusLeaseTTLSeconds > maxLeaseTTLSeconds {
		return fmt.Errorf("bus_lease_ttl_seconds must be at most %d", maxLeaseTTLSeconds)
	}
	if c.Bus == "" {
		switch {
		case c.BusLeaseTTLSeconds != 0:
			return errors.New("bus_lease_ttl_seconds needs bus")
		case replica != "":
			return errors.New("--replica needs bus: it names this replica on the bus")
		}
		return nil
	}
	if replica != "" && !validReplicaName(replica) {
		return fmt.Errorf("--replica %q: use letters, digits, '-', '_' and '.' only (at most 64)", replica)
	}
	for _, s := range strings.Split(c.Bus, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
			return fmt.Errorf("bus %q: want nats://HOST:PORT or tls://HOST:PORT (several separated by commas)", s)
		}
	}
	return nil
}

// checkFederation checks the federation fields: all or nothing of listen
// and trust file, and the URL one the directory can be made of.
func (c *serveConfig) checkFederation() error {
	if c.FederationListen == "" {
		if c.FederationURL != "" || c.TrustFile != "" {
			return errors.New("federation_url and trust_file need federation_listen")
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(c.FederationListen); err != nil {
		return fmt.Errorf("federation_listen %q: %v", c.FederationListen, err)
	}
	if c.TrustFile == "" {
		return errors.New("federation_listen needs trust_file, the list of partners")
	}
	if _, err := federation.NewDirectory(c.federationURL()); err != nil {
		return fmt.Errorf("federation_url: %v", err)
	}
	return nil
}

// validReplicaName keeps replica names readable in logs, NATS connection
// lists and lease values.
func validReplicaName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// busName is this process's name on the bus: the --replica name (default
// the host name) and a random suffix drawn at each start. The name makes
// logs and leases readable; the suffix keeps it unique, which matters
// because a replica ignores wake-ups sent under its own name, so two
// processes started with one name (a shared unit file, a copied command
// line) would miss each other's.
func (c *serveConfig) busName() string {
	prefix := c.replica
	if prefix == "" {
		prefix, _ = os.Hostname()
		if !validReplicaName(prefix) {
			prefix = c.Domain
		}
	}
	var r [4]byte
	rand.Read(r[:])
	return fmt.Sprintf("%s-%x", prefix, r)
}

func (c *serveConfig) federationURL() string {
	if c.FederationURL != "" {
		return c.FederationURL
	}
	return "https://" + c.Domain
}

// checkFiles checks what the configuration names on disk, for --check,
// without creating anything: the TLS pair loads, and the data directory,
// if it exists already, is a directory whose CA (once made) loads and is
// for this domain. A serve that would fail on these should fail at check.
func (c *serveConfig) checkFiles() error {
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("tls_cert and tls_key: %v", err)
		}
	}
	if c.TrustFile != "" {
		if _, err := federation.LoadTrust(c.TrustFile, slog.New(slog.DiscardHandler)); err != nil {
			return fmt.Errorf("trust_file: %v", err)
		}
	}
	fi, err := os.Stat(c.DataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // made on the first start
	case err != nil:
		return fmt.Errorf("data directory: %v", err)
	case !fi.IsDir():
		return fmt.Errorf("data directory %s is not a directory", c.DataDir)
	}
	if _, _, err := node.LoadCA(c.DataDir, c.Domain); err != nil {
		return err
	}
	if c.TLSSelfSigned && c.TLSCert == "" {
		certFile, keyFile := filepath.Join(c.DataDir, "tls.pem"), filepath.Join(c.DataDir, "tls-key.pem")
		if _, err := os.Stat(certFile); err == nil {
			if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
				return fmt.Errorf("the self-signed TLS pair in the data directory: %v", err)
			}
		}
	}
	return nil
}

func runServe(args []string, stdout, stderr io.Writer) int {
	cfg := defaultServeConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "JSON configuration file (flags override it)")
	check := fs.Bool("check", false, "validate the configuration and exit")
	listen := fs.String("listen", "", "address to serve on (default "+cfg.Listen+")")
	domain := fs.String("domain", "", "the provider's domain (default "+cfg.Domain+")")
	dataDir := fs.String("data", "", "data directory (default "+cfg.DataDir+")")
	storeDSN := fs.String("store", "", `storage: "sqlite" (default, in the data directory) or a postgres:// URL`)
	tlsCert := fs.String("tls-cert", "", "TLS certificate file (PEM)")
	tlsKey := fs.String("tls-key", "", "TLS key file (PEM)")
	selfSigned := fs.Bool("tls-self-signed", false, "serve TLS with a self-signed certificate kept in the data directory")
	fedListen := fs.String("federation-listen", "", "address of the federation API for partner providers (default: federation_listen of the configuration file; none without it)")
	busURL := fs.String("bus", "", "NATS server(s) shared by the provider's replicas, nats://HOST:PORT[,nats://...] (default: none, one process)")
	pprofAddr := fs.String("pprof", "", "serve Go's runtime profiles (net/http/pprof: CPU, heap, goroutines, mutex and block) on this loopback address, e.g. 127.0.0.1:6060 (default: off)")
	replica := fs.String("replica", "", "with --bus: this replica's name in logs and on the bus, made unique by a random suffix (default: the host name)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: switchboard serve [--config FILE] [flags]

Runs a provider: the client API on --listen and, with federation_listen in
the configuration file, the federation API for partner providers. The
configuration file (JSON) holds every setting; flags override it. One
process keeps everything in SQLite in the data directory. For capacity or
availability, run several replicas with the same configuration file, a
PostgreSQL --store and a NATS --bus (docs/deploy.md), each with its own
--replica name (and its own --listen, --federation-listen and --data when
they share a host). SIGTERM or SIGINT drains and stops; SIGHUP reloads
the trust file.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		// A stray word is most likely a mistyped flag; serving with the
		// defaults instead would hide it.
		fmt.Fprintf(stderr, "switchboard: serve takes no arguments, got %q\n", fs.Args())
		fs.Usage()
		return 2
	}
	if *configFile != "" {
		data, err := os.ReadFile(*configFile)
		if err != nil {
			fmt.Fprintln(stderr, "switchboard:", err)
			return 2
		}
		if err := decodeServeConfig(data, &cfg); err != nil {
			fmt.Fprintf(stderr, "switchboard: %s: %v\n", *configFile, err)
			return 2
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Listen, *listen)
	set(&cfg.Domain, *domain)
	set(&cfg.DataDir, *dataDir)
	set(&cfg.Store, *storeDSN)
	set(&cfg.TLSCert, *tlsCert)
	set(&cfg.TLSKey, *tlsKey)
	set(&cfg.FederationListen, *fedListen)
	set(&cfg.Bus, *busURL)
	cfg.replica = *replica
	cfg.pprof = *pprofAddr
	if *selfSigned {
		cfg.TLSSelfSigned = true
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintln(stderr, "switchboard: configuration:", err)
		return 2
	}
	if *check {
		if err := cfg.checkFiles(); err != nil {
			fmt.Fprintln(stderr, "switchboard: configuration:", err)
			return 2
		}
		fmt.Fprintln(stdout, "configuration ok")
		return 0
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if err := serve(cfg, log, stdout); err != nil {
		log.Error("provider stopped", "err", err)
		return 1
	}
	return 0
}

func serve(cfg serveConfig, log *slog.Logger, stdout io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	var clientTLS *tls.Config
	if cfg.TLSCert != "" || cfg.TLSSelfSigned {
		var err error
		if clientTLS, err = tlsConfig(cfg); err != nil {
			return err
		}
	}
	pcfg := cfg.providerConfig()
	ncfg := node.Config{
		Domain: cfg.Domain, DataDir: cfg.DataDir, StoreDSN: cfg.Store, Listen: cfg.Listen, ClientTLS: clientTLS, Provider: pcfg,
		FederationListen: cfg.FederationListen, FederationURL: cfg.federationURL(), TrustFile: cfg.TrustFile,
		Timeouts:     cfg.Timeouts.node(),
		DrainTimeout: time.Duration(cfg.DrainTimeoutSeconds) * time.Second,
	}
	if cfg.Bus != "" {
		ncfg.Bus, ncfg.BusName = cfg.Bus, cfg.busName()
		ncfg.BusLeaseTTL = time.Duration(cfg.BusLeaseTTLSeconds) * time.Second
		// The outbox's rescan is what finds a dead replica's destinations
		// once their leases expire: scanning less often than a short TTL
		// would make the wait the rescan's, not the TTL the operator chose.
		if ncfg.BusLeaseTTL > 0 && ncfg.BusLeaseTTL < defaultOutboxRescan {
			ncfg.Outbox.Rescan = ncfg.BusLeaseTTL
		}
		// Every line this process logs says which replica it is.
		log = log.With("replica", ncfg.BusName)
	}
	ncfg.Logger = log
	if cfg.pprof != "" {
		ps, addr, err := servePprof(cfg.pprof, log)
		if err != nil {
			return err
		}
		defer ps.Close()
		fmt.Fprintf(stdout, "Runtime profiles at http://%s/debug/pprof/\n", addr)
	}
	if point, nth := crashpoint.Armed(); point != "" {
		log.Warn("a crash point is armed: this process kills itself there (a testing hook, docs/reliability.md)", "point", point, "nth", nth)
	}
	n, err := node.Start(ncfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if n.Trust != nil {
		reloadOnHangup(ctx, n.Trust, log)
		fmt.Fprintf(stdout, "Switchboard federation for %s serving https://%s as %s\n", cfg.Domain, n.FederationAddr, cfg.federationURL())
	}
	if n.Bus != nil {
		// Not the bus URL: it may hold a password.
		fmt.Fprintf(stdout, "Replica name on the bus: %s\n", n.Bus.Name())
	}
	fmt.Fprintf(stdout, "Switchboard provider %s serving %s (data in %s)\n", cfg.Domain, n.ClientURL, cfg.DataDir)
	<-ctx.Done()
	log.Info("shutting down: draining connections")
	// Requests in flight (submits among them) finish before the store
	// closes.
	began := time.Now()
	err = n.Close()
	log.Info("stopped", "drain_took", time.Since(began).Round(time.Millisecond), "err", err)
	return err
}

// providerConfig is the provider's part of the configuration.
func (cfg serveConfig) providerConfig() provider.Config {
	pcfg := provider.Config{MaxBodyBytes: cfg.MaxBodyBytes, MaxCommitBytes: cfg.MaxCommitBytes, KeyPackageLowWatermark: cfg.LowWatermark,
		MaxAttachmentBytes: cfg.MaxAttachmentBytes, AttachmentRetention: time.Duration(cfg.AttachmentRetentionDays) * 24 * time.Hour}
	cfg.RateLimits.apply(&pcfg)
	pcfg.Connections = provider.ConnLimits{Total: cfg.ConnectionLimits.Total, PerSource: cfg.ConnectionLimits.PerSource}
	pcfg.BodyTimeout = time.Duration(cfg.Timeouts.Body) * time.Second
	if cfg.RetentionDays > 0 {
		pcfg.QueueRetention = time.Duration(cfg.RetentionDays) * 24 * time.Hour
	}
	return pcfg
}

// defaultOutboxRescan is federation.OutboxOptions.Rescan's default.
const defaultOutboxRescan = 10 * time.Second

func tlsConfig(cfg serveConfig) (*tls.Config, error) {
	certFile, keyFile := cfg.TLSCert, cfg.TLSKey
	if certFile == "" {
		certFile, keyFile = filepath.Join(cfg.DataDir, "tls.pem"), filepath.Join(cfg.DataDir, "tls-key.pem")
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := selfSign(cfg.Domain, certFile, keyFile); err != nil {
				return nil, err
			}
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, nil
}

// selfSign makes a TLS pair for the domain, for development and tests.
func selfSign(domain, certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: domain},
		DNSNames:     []string{domain, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    clock.Now().Add(-time.Hour),
		NotAfter:     clock.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644) // #nosec G306 -- a certificate is public
}

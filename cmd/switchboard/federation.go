package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/provider"
)

// The federation listener of `serve`: the provider's MIMI API for its
// partners, on a port of its own with mutual TLS.

const (
	// trustWatchInterval is how often the trust file is re-read; SIGHUP
	// reloads it at once.
	trustWatchInterval = 30 * time.Second
	// providerCertRenewBefore: the provider certificate is reissued when
	// it has less than this left, so partners never see it expire.
	providerCertRenewBefore = 30 * 24 * time.Hour
	// providerCertCheckInterval is how often a running provider looks.
	providerCertCheckInterval = 12 * time.Hour
)

// startFederation loads the trust file, obtains the provider certificate,
// and returns the federation server and its TLS listener, not yet serving.
// Until ctx ends it watches the trust file, reloads it on SIGHUP and
// renews the certificate.
func startFederation(ctx context.Context, cfg serveConfig, p *provider.Server, ca *identity.CA, log *slog.Logger) (*http.Server, net.Listener, error) {
	trust, err := federation.LoadTrust(cfg.TrustFile, log)
	if err != nil {
		return nil, nil, fmt.Errorf("trust_file: %w", err)
	}
	var cert atomic.Pointer[tls.Certificate]
	renew := func() error {
		c, err := loadOrIssueProviderCert(cfg.DataDir, ca, cfg.Domain, time.Now())
		if err != nil {
			return err
		}
		cert.Store(&c)
		return nil
	}
	if err := renew(); err != nil {
		return nil, nil, err
	}
	tc := federation.ServerTLSConfig(*cert.Load(), trust)
	// The certificate is renewed while the provider runs: handshakes take
	// the current one.
	tc.Certificates = nil
	tc.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert.Load(), nil }
	ln, err := net.Listen("tcp", cfg.FederationListen)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{
		Handler:           p.FederationHandler(trust),
		ReadHeaderTimeout: 10 * time.Second,
		// Partners are trusted, not infallible: bound slow bodies and
		// idle connections so a stuck partner cannot hold descriptors.
		ReadTimeout:  60 * time.Second,
		WriteTimeout: 60 * time.Second,
		IdleTimeout:  2 * time.Minute,
		// Refused handshakes are logged here with the partner's address
		// (the reason goes to the trust's log as well).
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go trust.Watch(ctx, trustWatchInterval)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		t := time.NewTicker(providerCertCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// Reload logs each change, and keeps the previous
				// configuration if the file is bad.
				if err := trust.Reload(); err != nil {
					log.Error("SIGHUP: the trust file was not reloaded", "err", err)
				} else {
					log.Info("SIGHUP: trust file reloaded")
				}
			case <-t.C:
				if err := renew(); err != nil {
					log.Error("renewing the federation certificate", "err", err)
				}
			}
		}
	}()
	return srv, tls.NewListener(ln, tc), nil
}

// loadOrIssueProviderCert returns the provider's federation certificate,
// kept in the data directory as federation-tls.pem (certificate and CA) and
// federation-tls-key.pem. The key is made once and kept, so that partners
// who pin it (pin_sha256) keep working across renewals; the certificate is
// reissued by the provider's CA when it is missing, does not load, names
// another domain, or has less than providerCertRenewBefore left.
func loadOrIssueProviderCert(dir string, ca *identity.CA, domain string, now time.Time) (tls.Certificate, error) {
	certFile, keyFile := filepath.Join(dir, "federation-tls.pem"), filepath.Join(dir, "federation-tls-key.pem")
	key, err := loadOrCreateKey(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && c.Leaf != nil &&
		c.Leaf.VerifyHostname(domain) == nil && now.Add(providerCertRenewBefore).Before(c.Leaf.NotAfter) {
		return c, nil
	}
	c, err := federation.IssueProviderCertificateForKey(ca, domain, key, now.Add(federation.DefaultProviderCertValidity))
	if err != nil {
		return tls.Certificate{}, err
	}
	var out []byte
	for _, der := range c.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	// Written beside and renamed, so a crash never leaves half a file.
	tmp := certFile + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.Rename(tmp, certFile); err != nil {
		return tls.Certificate{}, err
	}
	return c, nil
}

// loadOrCreateKey reads the ECDSA P-256 key of keyFile, making it on first
// use.
func loadOrCreateKey(keyFile string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		return key, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	} else if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM PRIVATE KEY", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", keyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		// Never replaced: a new key would break every partner's pin.
		return nil, fmt.Errorf("%s: not an ECDSA P-256 key", keyFile)
	}
	return key, nil
}

package federation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/identity"
)

// DefaultProviderCertValidity is the lifetime we suggest for a provider's
// TLS certificate. Partners that trust the provider's CA are unaffected by
// renewals, so it can be short; partners that pin the key need the key kept
// across renewals (IssueProviderCertificateForKey).
const DefaultProviderCertValidity = 90 * 24 * time.Hour

// IssueProviderCertificate makes the provider's TLS certificate for
// federation with a fresh ECDSA P-256 key, signed by its identity CA. See
// IssueProviderCertificateForKey.
func IssueProviderCertificate(ca *identity.CA, domain string, notAfter time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("federation: generate TLS key: %w", err)
	}
	return IssueProviderCertificateForKey(ca, domain, key, notAfter)
}

// IssueProviderCertificateForKey makes the provider's TLS certificate for
// key, signed by its identity CA: DNS name domain and URI mimi://domain in
// the subjectAltName (the CA's name constraints allow exactly that URI),
// extended key usage for both TLS server and client authentication, since
// the same certificate answers partners and dials them, and validity to
// notAfter. The chain is [certificate, CA certificate].
//
// The key should be ECDSA P-256: its signature scheme is mandatory to
// implement in TLS 1.3 (RFC 8446 §9.1), so every partner's TLS stack, load
// balancer and HSM handles it, whereas Ed25519 in TLS, though Go speaks it,
// is optional and missing from some. The CA stays Ed25519: a peer checks
// that signature during path validation, where Ed25519 is widely supported.
func IssueProviderCertificateForKey(ca *identity.CA, domain string, key crypto.Signer, notAfter time.Time) (tls.Certificate, error) {
	if domain != ca.Domain() {
		return tls.Certificate{}, fmt.Errorf("federation: the CA of %s cannot certify %s (its name constraints allow its own domain only)", ca.Domain(), quoteDomain(domain))
	}
	tmpl := &x509.Certificate{
		// The identity is in the subjectAltName; the CommonName is only
		// for tools that print subjects.
		Subject:     pkix.Name{CommonName: domain},
		DNSNames:    []string{domain},
		URIs:        []*url.URL{{Scheme: "mimi", Host: domain}},
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leaf, err := ca.SignCertificate(tmpl, key.Public())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("federation: TLS certificate for %s: %w", domain, err)
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Certificate().Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// ServerTLSConfig returns the TLS configuration of the federation listener:
// TLS 1.3 only, cert as the server certificate, and a client certificate
// required and checked at every handshake against the trust configuration
// as it is at that moment, so a reload applies to the next connection
// without a restart. A client is accepted if its certificate names exactly
// one provider, mimi://DOMAIN and DNS name DOMAIN, DOMAIN is an active
// partner, and the certificate, meant for client authentication and valid
// now, matches the partner's pin and chains to its CA, whichever are
// configured.
//
// A refused client gets a bad_certificate alert (crypto/tls sends no other
// for a failed check); the reason, such as "federation: red.example is not
// a partner of this provider", is logged to the Trust's logger and returned
// from the handshake, so http.Server logs it to ErrorLog with the remote
// address. Serve the handlers behind RequirePartner too: it repeats the
// check on every request, for connections opened before a change.
//
// TLS 1.3 only, because every provider is new software, and because 1.3
// encrypts the client certificate, so an observer cannot see which partner
// is connecting.
func ServerTLSConfig(cert tls.Certificate, trust *Trust) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		Time:         clock.Now,
		// HTTP/2 first: a partner's many requests at once (its devices'
		// messages forwarded to rooms hosted here) share a connection
		// instead of each opening one, with a handshake each.
		NextProtos: []string{"h2", "http/1.1"},
		// Any certificate, because crypto/x509 can check a chain against
		// only one fixed pool and we check per partner, CA or pin, in
		// VerifyConnection, which crypto/tls also calls on resumed sessions.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			domain, err := trust.cur.Load().verifyPeer(cs.PeerCertificates, x509.ExtKeyUsageClientAuth, "", clock.Now())
			if err != nil {
				trust.log.Warn("federation: refused a partner's TLS handshake", "peer", domain, "err", err)
			}
			return err
		},
	}
}

// ClientTLSConfig returns the TLS configuration for dialling the partner
// domain: TLS 1.3 only, cert as the client certificate, and the server
// accepted only if its certificate names domain (mimi://domain and DNS name
// domain), is meant for server authentication, is valid now, and matches
// the partner's configured pin and CA, as the trust configuration stands at
// the handshake. A suspended or removed partner is not dialled: the
// handshake fails with ErrSuspendedPartner or ErrUnknownPartner, which
// callers see with errors.Is through the *url.Error of net/http.
//
// The server is authenticated as domain, not as the host of the partner's
// endpoint, which may be an IP address or a load balancer's name: MIMI
// requires the certificate to authenticate the target provider domain.
// ServerName is set to domain for SNI.
func ClientTLSConfig(cert tls.Certificate, trust *Trust, domain string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ServerName:   domain,
		Time:         clock.Now,
		// The standard check would compare the certificate with the
		// system roots; VerifyConnection below does the whole check against
		// the partner's own CA or pin instead.
		InsecureSkipVerify: true, // #nosec G402 -- VerifyConnection below does the whole check against the partner's CA or pin
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := trust.cur.Load().verifyPeer(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, domain, clock.Now())
			return err
		},
	}
}

// maxPeerChain bounds the certificates taken from a peer, as identity does
// for credentials: a leaf, its CA and room for one intermediate.
const maxPeerChain = 4

// verifyPeer authenticates a peer's certificate chain against the partner
// it names, for usage (client or server authentication). want, if not
// empty, is the partner the peer must be. It returns the domain the leaf
// names, when it names one, even on failure, for the log.
func (c *trustConfig) verifyPeer(certs []*x509.Certificate, usage x509.ExtKeyUsage, want string, now time.Time) (string, error) {
	role := "client"
	if usage == x509.ExtKeyUsageServerAuth {
		role = "server"
	}
	if len(certs) == 0 {
		return "", trustErr(ErrUnauthenticated, want, nil, "the %s presented no certificate; federation needs mutual TLS", role)
	}
	if len(certs) > maxPeerChain {
		return "", trustErr(ErrUntrustedCertificate, want, nil, "the %s presented %d certificates, more than %d", role, len(certs), maxPeerChain)
	}
	leaf := certs[0]
	domain, err := certDomain(leaf)
	if err != nil {
		return "", trustErr(ErrUntrustedCertificate, want, err, "the %s certificate names no provider", role)
	}
	if want != "" && domain != want {
		return domain, trustErr(ErrUntrustedCertificate, want, nil, "the server for %s presented a certificate of %s", want, domain)
	}
	p, err := c.partner(domain)
	if err != nil {
		return domain, err
	}
	// The DNS name is what RFC 6125 checks and what other implementations'
	// certificates will carry; the URI is what ours carry. Requiring both
	// keeps the two from ever disagreeing.
	if leaf.VerifyHostname(domain) != nil {
		return domain, trustErr(ErrUntrustedCertificate, domain, nil, "the certificate of %s does not name %s as a DNS name", domain, domain)
	}
	// Explicitly listed, because crypto/x509 treats a certificate with no
	// extended key usage as good for any: without this, a device
	// credential issued by the partner's CA would pass for its provider.
	if !slices.Contains(leaf.ExtKeyUsage, usage) {
		return domain, trustErr(ErrUntrustedCertificate, domain, nil, "the certificate of %s is not for TLS %s authentication", domain, role)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return domain, trustErr(ErrUntrustedCertificate, domain, nil, "the certificate of %s is valid only from %s to %s",
			domain, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if p.Pin != nil {
		sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
		if subtle.ConstantTimeCompare(sum[:], p.Pin) != 1 {
			return domain, trustErr(ErrUntrustedCertificate, domain, nil, "the key of %s (pin %s) does not match its configured pin_sha256",
				domain, base64.StdEncoding.EncodeToString(sum[:]))
		}
	}
	if p.roots != nil {
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: p.roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
		if err != nil {
			return domain, trustErr(ErrUntrustedCertificate, domain, err, "the certificate of %s does not chain to its configured CA", domain)
		}
	}
	return domain, nil
}

// certDomain returns the provider domain a TLS certificate names: its one
// mimi:// URI, which must be a provider URI.
func certDomain(leaf *x509.Certificate) (string, error) {
	var found []identity.URI
	for _, u := range leaf.URIs {
		if u.Scheme != "mimi" {
			continue
		}
		id, err := identity.ParseURI(u.String())
		if err != nil {
			return "", err
		}
		found = append(found, id)
	}
	if len(found) != 1 || found[0].Kind != identity.KindProvider {
		return "", fmt.Errorf("want exactly one mimi://DOMAIN URI, found %d mimi:// URIs", len(found))
	}
	return found[0].Domain, nil
}

type peerKey struct{}

// PeerDomain returns the partner domain that RequirePartner authenticated
// for r: the domain named by the verified client certificate in r.TLS. It
// fails with ErrUnauthenticated for a request that did not pass through
// RequirePartner, rather than read r.TLS itself, because with
// RequireAnyClientCert crypto/tls leaves no mark of whether anyone checked
// that certificate, and a name read from an unchecked certificate is
// anyone's to claim.
func PeerDomain(r *http.Request) (string, error) {
	if d, ok := r.Context().Value(peerKey{}).(string); ok {
		return d, nil
	}
	return "", trustErr(ErrUnauthenticated, "", nil, "the request was not authenticated as a partner's (serve it behind federation.RequirePartner)")
}

// ContextWithPeer returns ctx marked as carrying a request from the partner
// domain, as RequirePartner marks it. It is for in-process peers and tests,
// which have no TLS connection to authenticate.
func ContextWithPeer(ctx context.Context, domain string) context.Context {
	return context.WithValue(ctx, peerKey{}, domain)
}

// RequirePartner serves next only requests from an active partner: the
// client certificate in r.TLS is checked against the current trust
// configuration on every request, as at the handshake, so suspending or
// removing a partner, or replacing its CA or pin, refuses its next request
// even on a keep-alive connection opened before. If the request has a From
// header (MIMI names the source provider as "From: mimi@DOMAIN"), it must
// name the same provider as the certificate.
//
// A refusal is a JSON error body, {"error": {"code": "suspended_partner",
// "message": "..."}}, with the status and code of the *TrustError (403 for
// unknown_partner, suspended_partner, untrusted_certificate and
// not_its_user; 401 unauthenticated when there is no client certificate),
// and "Connection: close", so the partner's next request makes a new
// handshake. Handlers behind it get the partner from PeerDomain.
func RequirePartner(trust *Trust, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		domain, err := trust.authenticate(r)
		if err != nil {
			trust.log.Info("federation: refused a request", "remote", r.RemoteAddr, "peer", domain,
				"method", r.Method, "path", r.URL.Path, "err", err)
			w.Header().Set("Connection", "close")
			writeTrustError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(ContextWithPeer(r.Context(), domain)))
	})
}

func (t *Trust) authenticate(r *http.Request) (string, error) {
	if r.TLS == nil {
		return "", trustErr(ErrUnauthenticated, "", nil, "federation requests need mutual TLS")
	}
	// Per request, this costs one chain verification (about 0.1 ms, see
	// BenchmarkVerifyPeer): small beside the work of any federation
	// request, and it means a changed CA or pin applies to open
	// connections as surely as a suspension does.
	domain, err := t.cur.Load().verifyPeer(r.TLS.PeerCertificates, x509.ExtKeyUsageClientAuth, "", clock.Now())
	if err != nil {
		return domain, err
	}
	if from := r.Header.Get("From"); from != "" && from != "mimi@"+domain {
		return domain, trustErr(ErrNotItsUser, domain, nil, "the request says From: %s, but the certificate is that of %s", strconv.Quote(from), domain)
	}
	return domain, nil
}

// writeTrustError writes err as a JSON error response: a *TrustError with
// its code, status and message; anything else as a 500 "internal" that
// reveals nothing.
func writeTrustError(w http.ResponseWriter, err error) {
	code, status, msg := "internal", http.StatusInternalServerError, "internal error"
	var te *TrustError
	if errors.As(err, &te) {
		code, status, msg = te.Code(), te.Status(), te.Msg
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body) // #nosec G104 -- the partner went away; nothing to tell it
}

// StampRequest sets the replay-protection headers on an outgoing request:
// a fresh random HeaderRequestID and the current HeaderTimestamp. Call it
// for every attempt, retries included.
func StampRequest(h http.Header) {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	h.Set(HeaderRequestID, base64.RawURLEncoding.EncodeToString(b[:]))
	h.Set(HeaderTimestamp, strconv.FormatInt(clock.Now().Unix(), 10))
}

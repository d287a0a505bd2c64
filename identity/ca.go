package identity

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"time"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/mls"
)

// Validity periods.
const (
	// CAValidity is how long NewCA's certificate is valid. A provider's CA is
	// a trust anchor that peers configure by hand, so it should change
	// rarely; device certificates are short and carry the risk instead.
	CAValidity = 10 * 365 * 24 * time.Hour
	// DefaultDeviceValidity is the lifetime we suggest for device
	// credentials: long enough that a device offline for weeks still has a
	// valid credential, short enough that a lost device's credential dies
	// without revocation. The client renews it with an MLS Update.
	DefaultDeviceValidity = 90 * 24 * time.Hour
	// clockSkew backdates NotBefore so a peer whose clock runs a little slow
	// accepts a credential the moment it is issued.
	clockSkew = time.Hour
)

// caCommonName is the CommonName of the CA certificates NewCA makes. It is
// informational: the provider's domain is in O= and in a mimi:// URI SAN.
const caCommonName = "MIMI device CA"

// CA is a provider's credential authority: it holds the provider's CA
// certificate and key and issues device credentials under them. A CA is
// safe for concurrent use.
type CA struct {
	domain string
	cert   *x509.Certificate
	key    crypto.Signer
}

// NewCA makes a fresh Ed25519 CA for the provider domain: a self-signed
// certificate with Subject O=domain, a URI SAN mimi://domain, CA:TRUE with
// path length 0 (it signs end-entity certificates only: devices, and the
// provider's own TLS certificate), KeyUsage CertSign, a random serial,
// validity CAValidity, and critical name constraints that permit URIs on
// exactly domain (not its subdomains), so even a verifier that does no
// Switchboard-specific checks refuses a device URI of another domain.
func NewCA(domain string) (*CA, error) { return newCA(domain, clock.Now()) }

func newCA(domain string, now time.Time) (*CA, error) {
	if reason := checkDomain(domain); reason != "" {
		return nil, newError(ErrCA, nil, "provider domain %s: %s", quote(domain), reason)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, newError(ErrCA, err, "generate CA key for %s", domain)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	self := ProviderURI(domain)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{domain}, CommonName: caCommonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{toURL(self)},
		// RFC 5280 says a URI constraint without a leading dot names one
		// host, but crypto/x509 also lets it match subdomains; excluding
		// ".domain" makes it exact everywhere.
		PermittedURIDomains:         []string{domain},
		ExcludedURIDomains:          []string{"." + domain},
		PermittedDNSDomainsCritical: true, // marks the whole NameConstraints extension critical
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, newError(ErrCA, err, "create CA certificate for %s", domain)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, newError(ErrCA, err, "parse new CA certificate for %s", domain)
	}
	return &CA{domain: domain, cert: cert, key: priv}, nil
}

// LoadCA restores a CA saved with PEM: a "CERTIFICATE" block and a PKCS#8
// "PRIVATE KEY" block. The certificate must be a CA certificate allowed to
// sign certificates, with exactly one mimi://DOMAIN URI, and the key must be
// its key. Any key type crypto/x509 can sign with is accepted, so a provider
// may bring a CA made elsewhere.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, newError(ErrCA, nil, "load CA: no CERTIFICATE PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, newError(ErrCA, err, "load CA: parse certificate")
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		return nil, newError(ErrCA, nil, "load CA: no PRIVATE KEY (PKCS#8) PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, newError(ErrCA, err, "load CA: parse private key")
	}
	key, ok := k.(crypto.Signer)
	if !ok || !sameKey(cert.PublicKey, key.Public()) {
		return nil, newError(ErrCA, nil, "load CA: the private key does not belong to the certificate")
	}
	if !cert.BasicConstraintsValid || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, newError(ErrCA, nil, "load CA: the certificate is not a CA certificate allowed to sign certificates")
	}
	domain, err := anchorDomain(cert)
	if err != nil {
		return nil, newError(ErrCA, err, "load CA")
	}
	return &CA{domain: domain, cert: cert, key: key}, nil
}

// anchorDomain returns the provider domain a CA certificate names in its
// single mimi://DOMAIN URI SAN.
func anchorDomain(cert *x509.Certificate) (string, error) {
	var found []URI
	for _, u := range cert.URIs {
		if p, err := ParseURI(u.String()); err == nil && p.Kind == KindProvider {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		return "", newError(ErrCA, nil, "CA certificate has %d mimi://DOMAIN URIs, want 1", len(found))
	}
	return found[0].Domain, nil
}

// PEM returns the CA certificate and its PKCS#8 private key in PEM, for the
// provider to store (the key file must be kept secret) and LoadCA to read.
func (ca *CA) PEM() (certPEM, keyPEM []byte, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, nil, newError(ErrCA, err, "marshal CA key")
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return certPEM, keyPEM, nil
}

// Certificate returns the CA certificate: what peers configure as this
// provider's trust anchor. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Domain returns the provider domain the CA issues for.
func (ca *CA) Domain() string { return ca.domain }

// IssueDevice issues the MLS credential of one device of user: an X.509
// credential whose chain is [device certificate, CA certificate].
//
// The device certificate has an empty subject and a critical subjectAltName
// with exactly two URIs, mimi://DOMAIN/d/USER/DEVICE then mimi://DOMAIN/u/USER
// (the identity lives only there, so there is nothing to keep consistent
// with a subject name); CA:FALSE; KeyUsage DigitalSignature; a random
// serial; validity from an hour ago (clock skew) to notAfter, which must be
// in the future and within the CA's own validity. Its subject public key is
// signatureKey, the device's MLS SignaturePublicKey for suite, so the
// certificate and the leaf node name the same key as RFC 9420 §5.3 requires.
//
// The CA certificate is included although a verifier trusts only its own
// configured copy: a verifier that pins the CA by hash can check it, an
// operator can see at a glance which CA issued a credential, and it costs a
// few hundred bytes per member. RFC 9420 allows omitting it; Verify accepts
// both forms.
//
// IssueDevice does not check that the device holds the private key; the
// provider must (for example by verifying the signature on the device's
// KeyPackage, which that key made) before calling it.
func (ca *CA) IssueDevice(suite *mls.Suite, signatureKey []byte, user, device string, notAfter time.Time) (mls.Credential, error) {
	return ca.issueDevice(suite, signatureKey, user, device, "", clock.Now(), notAfter)
}

// IssueDeviceWithPhone is IssueDevice for a user whose phone number the
// provider verified and who chose to be discoverable by it: the device
// certificate carries a third URI, tel:PHONE (phone in E.164 form, see
// ParsePhoneURI), after the device and user URIs. An empty phone issues
// exactly what IssueDevice does. The provider must not pass a number the
// user did not agree to show: every member of every group the device joins
// will read it.
func (ca *CA) IssueDeviceWithPhone(suite *mls.Suite, signatureKey []byte, user, device, phone string, notAfter time.Time) (mls.Credential, error) {
	return ca.issueDevice(suite, signatureKey, user, device, phone, clock.Now(), notAfter)
}

func (ca *CA) issueDevice(suite *mls.Suite, signatureKey []byte, user, device, phone string, now, notAfter time.Time) (mls.Credential, error) {
	dev := DeviceURI(ca.domain, user, device)
	if err := dev.Validate(); err != nil {
		return mls.Credential{}, err
	}
	uris := []*url.URL{toURL(dev), toURL(dev.UserOf())}
	if phone != "" {
		if err := CheckPhone(phone); err != nil {
			return mls.Credential{}, err
		}
		// A global tel URI has no authority, so it parses as opaque.
		uris = append(uris, &url.URL{Scheme: "tel", Opaque: phone})
	}
	pub, err := publicKey(suite, signatureKey)
	if err != nil {
		return mls.Credential{}, err
	}
	if !notAfter.After(now) {
		return mls.Credential{}, newError(ErrCA, nil, "credential for %s: notAfter %s is not in the future", dev, notAfter.UTC().Format(time.RFC3339))
	}
	if notAfter.After(ca.cert.NotAfter) {
		return mls.Credential{}, newError(ErrCA, nil, "credential for %s: notAfter %s is after the CA expires (%s)",
			dev, notAfter.UTC().Format(time.RFC3339), ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	notBefore := now.Add(-clockSkew)
	if notBefore.Before(ca.cert.NotBefore) {
		notBefore = ca.cert.NotBefore
	}
	serial, err := randomSerial()
	if err != nil {
		return mls.Credential{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  false,
		// With an empty subject, crypto/x509 marks the SAN critical, as
		// RFC 5280 §4.2.1.6 requires and the draft's example shows.
		URIs: uris,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return mls.Credential{}, newError(ErrCA, err, "issue credential for %s", dev)
	}
	return mls.Credential{Type: mls.CredentialX509, Certificates: [][]byte{der, ca.cert.Raw}}, nil
}

// randomSerial returns a random positive serial of at most 128 bits, well
// within RFC 5280's 20 octets. Random serials keep certificates unlinkable
// by issue order and were what defeated chosen-prefix collisions on
// MD5-signed certificates.
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, newError(ErrCA, err, "random serial")
	}
	b[0] &= 0x7f
	b[0] |= 0x01 // never zero, and always 16 octets
	return new(big.Int).SetBytes(b), nil
}

// toURL converts a valid URI to the form crypto/x509 stores in a SAN.
func toURL(u URI) *url.URL {
	p, err := url.Parse(u.String())
	if err != nil {
		// Unreachable: a valid URI uses only characters url.Parse accepts.
		panic("identity: url.Parse of " + u.String() + ": " + err.Error())
	}
	return p
}

// SignCertificate signs an end-entity certificate for pub from tmpl under
// the CA and returns it parsed. It is for certificates other than device
// credentials — the provider's own TLS certificate for federation — whose
// profile belongs to the package that uses them, so the caller fills in the
// names, key usages and validity.
//
// It still enforces what keeps the CA sound: tmpl must not be a CA (the CA
// has path length 0, and handing out intermediates is not what it is for),
// and NotAfter must be in the future and within the CA's own validity. A
// nil SerialNumber gets a random one, and a zero NotBefore becomes an hour
// ago (clock skew), as for device credentials. tmpl is not modified. The
// CA's name constraints still apply: a verifier refuses a mimi:// URI of
// another domain in the result.
func (ca *CA) SignCertificate(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	now := clock.Now()
	if tmpl.IsCA {
		return nil, newError(ErrCA, nil, "sign certificate: the template is a CA certificate; %s signs end-entity certificates only", ca.domain)
	}
	if !tmpl.NotAfter.After(now) {
		return nil, newError(ErrCA, nil, "sign certificate: notAfter %s is not in the future", stamp(tmpl.NotAfter))
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		return nil, newError(ErrCA, nil, "sign certificate: notAfter %s is after the CA expires (%s)", stamp(tmpl.NotAfter), stamp(ca.cert.NotAfter))
	}
	t := *tmpl
	if t.SerialNumber == nil {
		serial, err := randomSerial()
		if err != nil {
			return nil, err
		}
		t.SerialNumber = serial
	}
	if t.NotBefore.IsZero() {
		t.NotBefore = now.Add(-clockSkew)
		if t.NotBefore.Before(ca.cert.NotBefore) {
			t.NotBefore = ca.cert.NotBefore
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, &t, ca.cert, pub, ca.key)
	if err != nil {
		return nil, newError(ErrCA, err, "sign certificate")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, newError(ErrCA, err, "parse the certificate just signed")
	}
	return cert, nil
}

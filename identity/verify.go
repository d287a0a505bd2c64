package identity

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/mls"
)

// maxChain bounds the certificates Verify parses from one credential, so a
// hostile credential cannot make it parse hundreds. A device certificate,
// its CA and room for one intermediate are all a chain needs.
const maxChain = 4

// Device is a verified device credential: who the member is.
type Device struct {
	URI         URI               // mimi://DOMAIN/d/USER/DEVICE
	User        URI               // mimi://DOMAIN/u/USER
	Phone       string            // the user's phone number in E.164 form, vouched for by the provider; "" if the certificate has none
	NotAfter    time.Time         // when the credential expires
	Certificate *x509.Certificate // the device certificate
}

// Verifier checks MLS credentials against the providers' CA certificates.
// Its anchors are fixed once made, and it is safe for concurrent use. It
// remembers the credentials it verified: a room's members are checked
// again and again (by the hub at every commit, by every member on its
// join and on each change), and a chain costs an X.509 parse and a
// signature check, where remembering costs a hash.
type Verifier struct {
	anchors map[string]*anchor

	mu       sync.Mutex
	verified map[[sha256.Size]byte]verifiedCredential
}

// verifiedCredential is a credential that verified, and the time span in
// which every certificate it was verified with (the leaf, the other
// certificates of the credential, the anchor) is valid: within it the
// same verification gives the same answer, since the chain's validity
// depends on the time only through those spans.
type verifiedCredential struct {
	dev         Device
	from, until time.Time
}

// maxVerified bounds the verified credentials a Verifier remembers; past
// it they are forgotten at once (a flood of new credentials costs time,
// not memory).
const maxVerified = 1 << 16

type anchor struct {
	domain string
	cert   *x509.Certificate
	pool   *x509.CertPool // holds only cert, made once
	// bare holds cert without its name constraints, for certificates
	// with a tel URI (see verifyChain).
	bare *x509.CertPool
}

// NewVerifier returns a Verifier that trusts, for each provider domain, only
// the CA certificate given for it (from federation trust configuration).
// Every domain must be valid and every certificate a CA certificate allowed
// to sign certificates. The map is copied.
func NewVerifier(anchors map[string]*x509.Certificate) (*Verifier, error) {
	v := &Verifier{anchors: make(map[string]*anchor, len(anchors)), verified: map[[sha256.Size]byte]verifiedCredential{}}
	for domain, cert := range anchors {
		if reason := checkDomain(domain); reason != "" {
			return nil, newError(ErrCA, nil, "trust anchor domain %s: %s", quote(domain), reason)
		}
		if cert == nil || !cert.BasicConstraintsValid || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
			return nil, newError(ErrCA, nil, "trust anchor for %s is not a CA certificate allowed to sign certificates", domain)
		}
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		bare := x509.NewCertPool()
		bare.AddCert(withoutNameConstraints(cert))
		v.anchors[domain] = &anchor{domain: domain, cert: cert, pool: pool, bare: bare}
	}
	return v, nil
}

// Domains returns the provider domains the Verifier trusts, sorted.
func (v *Verifier) Domains() []string { return slices.Sorted(maps.Keys(v.anchors)) }

// Verify authenticates a member's credential as the Authentication Service
// of RFC 9420 §5.3.1: it checks that cred is an X.509 device credential
// issued by the CA of the provider its device URI names, for the MLS
// signature key signatureKey (the LeafNode's signature_key), valid at now.
// In detail:
//
//   - cred is an X.509 credential of 1 to 4 DER certificates, leaf first;
//   - the leaf is an end-entity certificate (not CA:TRUE) whose key usage
//     allows digital signatures;
//   - its subjectAltName holds exactly two names, both URIs: one device URI
//     and one user URI with the same domain and user; or three, the third a
//     tel URI in canonical E.164 form (see ParsePhoneURI), whose number
//     Device.Phone returns;
//   - the device URI's domain has a trust anchor;
//   - the leaf is valid at now;
//   - its public key is signatureKey, of the suite's signature algorithm;
//   - the chain verifies with crypto/x509 to that domain's anchor alone
//     (the credential's other certificates serve only as intermediates), at
//     now, honouring the anchor's name constraints. A certificate with a
//     tel URI must be signed by the anchor itself (intermediates are not
//     used), and
//     the anchor's URI constraints are applied to its mimi:// URIs only:
//     crypto/x509 cannot match a URI without a host against a constraint,
//     and a phone number is not a name in the provider's domain.
//
// Each failure is an *Error whose Kind says which check failed. To check a
// message sent in the past (RFC 9420 §5.3.2), pass the time it was sent.
//
// A credential that verified is remembered with the span in which all its
// certificates are valid, and verifies again at once at any time in it;
// failures are not remembered. Devices returned for the same credential
// share the parsed Certificate, which callers must not change.
func (v *Verifier) Verify(s *mls.Suite, cred mls.Credential, signatureKey []byte, now time.Time) (Device, error) {
	key := credentialKey(s, cred, signatureKey)
	v.mu.Lock()
	known, ok := v.verified[key]
	v.mu.Unlock()
	if ok && !now.Before(known.from) && !now.After(known.until) {
		return known.dev, nil
	}
	dev, from, until, err := v.verify(s, cred, signatureKey, now)
	if err != nil {
		return Device{}, err
	}
	v.mu.Lock()
	if len(v.verified) >= maxVerified {
		clear(v.verified)
	}
	v.verified[key] = verifiedCredential{dev: dev, from: from, until: until}
	v.mu.Unlock()
	return dev, nil
}

// credentialKey names what Verify checks: the suite, the signature key and
// the credential's certificates, each length-prefixed so that no two
// inputs run together.
func credentialKey(s *mls.Suite, cred mls.Credential, signatureKey []byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	binary.BigEndian.PutUint16(n[:2], uint16(s.ID))
	h.Write(n[:2])
	binary.BigEndian.PutUint16(n[:2], uint16(cred.Type))
	h.Write(n[:2])
	put(signatureKey)
	put(cred.Identity)
	for _, c := range cred.Certificates {
		put(c)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// verify is Verify without the memory; it also returns the span in which
// every certificate involved is valid.
func (v *Verifier) verify(s *mls.Suite, cred mls.Credential, signatureKey []byte, now time.Time) (dev Device, from, until time.Time, err error) {
	leaf, intermediates, err := parseChain(cred)
	if err != nil {
		return Device{}, from, until, err
	}
	d, err := v.verifyParsed(s, leaf, intermediates, signatureKey, now)
	if err != nil {
		return Device{}, from, until, err
	}
	from, until = leaf.NotBefore, leaf.NotAfter
	for _, c := range slices.Concat(intermediates, []*x509.Certificate{v.anchors[d.URI.Domain].cert}) {
		if c.NotBefore.After(from) {
			from = c.NotBefore
		}
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	return d, from, until, nil
}

// verifyParsed is the checks of Verify on a parsed chain.
func (v *Verifier) verifyParsed(s *mls.Suite, leaf *x509.Certificate, intermediates []*x509.Certificate, signatureKey []byte, now time.Time) (Device, error) {
	dev, phone, err := deviceNames(leaf)
	if err != nil {
		return Device{}, err
	}
	a := v.anchors[dev.Domain]
	if a == nil {
		return Device{}, newError(ErrUnknownProvider, nil, "credential for %s is signed by an unknown provider %s", dev, dev.Domain)
	}
	if now.Before(leaf.NotBefore) {
		return Device{}, newError(ErrExpired, nil, "credential for %s is not valid until %s", dev, stamp(leaf.NotBefore))
	}
	if now.After(leaf.NotAfter) {
		return Device{}, newError(ErrExpired, nil, "credential for %s expired at %s", dev, stamp(leaf.NotAfter))
	}
	// The key check is cheap, so it goes before the signature checks.
	want, err := publicKey(s, signatureKey)
	if err != nil {
		return Device{}, newError(ErrBadKey, err, "credential for %s: MLS signature key", dev)
	}
	if !sameKey(leaf.PublicKey, want) {
		if got := keyAlgorithm(leaf.PublicKey); got != keyAlgorithm(want) {
			return Device{}, newError(ErrKeyMismatch, nil, "credential for %s: certificate has an %s key but suite %v signs with %s",
				dev, got, s.ID, signatureAlgorithm(s.ID))
		}
		return Device{}, newError(ErrKeyMismatch, nil, "credential for %s: certificate key does not match the MLS signature key", dev)
	}
	if phone != "" {
		err = v.verifyPhoneChain(a, leaf, dev, now)
	} else {
		err = v.verifyChain(a, leaf, intermediates, dev, now)
	}
	if err != nil {
		return Device{}, err
	}
	return Device{URI: dev, User: dev.UserOf(), Phone: phone, NotAfter: leaf.NotAfter, Certificate: leaf}, nil
}

// parseChain decodes a credential's certificates.
func parseChain(cred mls.Credential) (*x509.Certificate, []*x509.Certificate, error) {
	switch cred.Type {
	case mls.CredentialX509:
	case mls.CredentialBasic:
		return nil, nil, newError(ErrNotX509, nil, "basic credential %s: members must present an X.509 credential from their provider", quote(string(cred.Identity)))
	default:
		return nil, nil, newError(ErrNotX509, nil, "credential type 0x%04x: members must present an X.509 credential from their provider", uint16(cred.Type))
	}
	if n := len(cred.Certificates); n == 0 || n > maxChain {
		return nil, nil, newError(ErrMalformed, nil, "X.509 credential with %d certificates, want 1 to %d", n, maxChain)
	}
	certs := make([]*x509.Certificate, len(cred.Certificates))
	for i, der := range cred.Certificates {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, newError(ErrMalformed, err, "X.509 credential: certificate %d", i)
		}
		certs[i] = c
	}
	return certs[0], certs[1:], nil
}

// deviceNames checks the shape of a device certificate and returns its
// device URI and the phone number it carries, if any.
func deviceNames(leaf *x509.Certificate) (URI, string, error) {
	if leaf.IsCA {
		return URI{}, "", newError(ErrMalformed, nil, "device certificate is a CA certificate")
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return URI{}, "", newError(ErrMalformed, nil, "device certificate's key usage does not allow digital signatures")
	}
	// Any other name would be an identity this package does not check and
	// an application might trust; refuse rather than ignore it.
	if n := len(leaf.DNSNames) + len(leaf.EmailAddresses) + len(leaf.IPAddresses); n > 0 {
		return URI{}, "", newError(ErrNames, nil, "device certificate has %d names that are not URIs", n)
	}
	if len(leaf.URIs) != 2 && len(leaf.URIs) != 3 {
		return URI{}, "", newError(ErrNames, nil, "device certificate has %d URIs, want a device URI, a user URI and at most a phone URI", len(leaf.URIs))
	}
	var dev, user []URI
	var phones []string
	for _, raw := range leaf.URIs {
		if strings.EqualFold(raw.Scheme, "tel") {
			p, err := ParsePhoneURI(raw.String())
			if err != nil {
				return URI{}, "", newError(ErrNames, err, "device certificate")
			}
			phones = append(phones, p)
			continue
		}
		u, err := ParseURI(raw.String())
		if err != nil {
			return URI{}, "", newError(ErrNames, err, "device certificate")
		}
		switch u.Kind {
		case KindDevice:
			dev = append(dev, u)
		case KindUser:
			user = append(user, u)
		default:
			return URI{}, "", newError(ErrNames, nil, "device certificate names %s, a %v URI", u, u.Kind)
		}
	}
	if len(dev) != 1 || len(user) != 1 {
		return URI{}, "", newError(ErrNames, nil, "device certificate has %d device URIs and %d user URIs, want one of each", len(dev), len(user))
	}
	if user[0] != dev[0].UserOf() {
		return URI{}, "", newError(ErrNames, nil, "device certificate names device %s but user %s", dev[0], user[0])
	}
	if len(phones) > 1 {
		return URI{}, "", newError(ErrNames, nil, "device certificate has %d phone URIs, want at most one", len(phones))
	}
	phone := ""
	if len(phones) == 1 {
		phone = phones[0]
	}
	return dev[0], phone, nil
}

// verifyPhoneChain is verifyChain for a certificate with a tel URI.
// crypto/x509 refuses any host-less URI under a name-constrained CA (it
// cannot match it), and our CAs are all constrained, so the chain is
// verified against a copy of the anchor without its constraints, and the
// constraints are then applied here to the mimi:// domain, the only name
// in the certificate they can speak about. The leaf must be signed by the
// anchor itself and the credential's other certificates are not used: a
// phone number is vouched for by the provider's CA, and a constrained
// intermediate would hit the same limit of crypto/x509.
func (v *Verifier) verifyPhoneChain(a *anchor, leaf *x509.Certificate, dev URI, now time.Time) error {
	opts := x509.VerifyOptions{Roots: a.bare, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if _, err := leaf.Verify(opts); err != nil {
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			return newError(ErrExpired, err, "credential for %s: the certificate chain is not valid at %s", dev, stamp(now))
		}
		if other := v.signer(leaf, nil, dev.Domain, now); other != "" {
			return newError(ErrWrongProvider, nil, "credential for %s is signed by provider %s, not by %s", dev, other, dev.Domain)
		}
		return newError(ErrUntrusted, err, "credential for %s is not signed by the CA of %s", dev, dev.Domain)
	}
	if !uriDomainAllowed(a.cert, dev.Domain) {
		return newError(ErrUntrusted, nil, "credential for %s: the CA of %s may not sign URIs of that domain", dev, dev.Domain)
	}
	return nil
}

// withoutNameConstraints returns a copy of a CA certificate that
// crypto/x509 treats as unconstrained. Only the parsed form changes; the
// copy is used as a root, whose own signature is never checked.
func withoutNameConstraints(c *x509.Certificate) *x509.Certificate {
	bare := *c
	bare.Extensions = nil
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidNameConstraints) {
			bare.Extensions = append(bare.Extensions, e)
		}
	}
	bare.PermittedDNSDomains, bare.ExcludedDNSDomains = nil, nil
	bare.PermittedURIDomains, bare.ExcludedURIDomains = nil, nil
	bare.PermittedEmailAddresses, bare.ExcludedEmailAddresses = nil, nil
	bare.PermittedIPRanges, bare.ExcludedIPRanges = nil, nil
	return &bare
}

var oidNameConstraints = asn1.ObjectIdentifier{2, 5, 29, 30}

// uriDomainAllowed applies a CA's URI name constraints to a host as
// crypto/x509 does: a constraint ".d" matches names below d, a constraint
// "d" matches d and names below it; excluded beats permitted, and an empty
// permitted list permits everything.
func uriDomainAllowed(ca *x509.Certificate, host string) bool {
	match := func(c string) bool {
		c = strings.ToLower(c)
		if strings.HasPrefix(c, ".") {
			return strings.HasSuffix(host, c)
		}
		return host == c || strings.HasSuffix(host, "."+c)
	}
	for _, c := range ca.ExcludedURIDomains {
		if match(c) {
			return false
		}
	}
	if len(ca.PermittedURIDomains) == 0 {
		return true
	}
	for _, c := range ca.PermittedURIDomains {
		if match(c) {
			return true
		}
	}
	return false
}

// verifyChain checks that leaf chains to a's CA, and on failure works out
// the most useful explanation.
func (v *Verifier) verifyChain(a *anchor, leaf *x509.Certificate, intermediates []*x509.Certificate, dev URI, now time.Time) error {
	opts := x509.VerifyOptions{
		Roots:       a.pool,
		CurrentTime: now,
		// No extended key usage means any: there is no EKU for MLS, and
		// crypto/x509 would otherwise demand serverAuth.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	if len(intermediates) > 0 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range intermediates {
			if !bytes.Equal(c.Raw, a.cert.Raw) { // the usual [leaf, CA] chain has none
				opts.Intermediates.AddCert(c)
			}
		}
	}
	_, err := leaf.Verify(opts)
	if err == nil {
		return nil
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
		return newError(ErrExpired, err, "credential for %s: the certificate chain is not valid at %s", dev, stamp(now))
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		return newError(ErrUntrusted, err, "credential for %s does not verify to the CA of %s", dev, dev.Domain)
	}
	// Not signed by the domain's CA. Say who did sign, if it is a provider
	// we know: that is a provider issuing for a domain not its own, or a
	// misconfigured anchor, and either way worth a precise message.
	if other := v.signer(leaf, intermediates, dev.Domain, now); other != "" {
		return newError(ErrWrongProvider, nil, "credential for %s is signed by provider %s, not by %s", dev, other, dev.Domain)
	}
	// Otherwise name the issuer the certificate claims, which is
	// unauthenticated but tells an operator where to look.
	if len(leaf.Issuer.Organization) == 1 {
		if claimed := leaf.Issuer.Organization[0]; claimed != dev.Domain && checkDomain(claimed) == "" {
			return newError(ErrUnknownProvider, nil, "credential for %s is signed by an unknown provider %s", dev, claimed)
		}
	}
	return newError(ErrUntrusted, err, "credential for %s is not signed by the CA of %s", dev, dev.Domain)
}

// signer returns the trusted domain other than except whose CA the leaf
// chains to, or "". It runs only after a failure, and crypto/x509 matches
// names before it checks any signature, so unrelated anchors cost little.
func (v *Verifier) signer(leaf *x509.Certificate, intermediates []*x509.Certificate, except string, now time.Time) string {
	for _, d := range v.Domains() {
		a := v.anchors[d]
		if d == except {
			continue
		}
		opts := x509.VerifyOptions{Roots: a.pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		if len(intermediates) > 0 {
			opts.Intermediates = x509.NewCertPool()
			for _, c := range intermediates {
				opts.Intermediates.AddCert(c)
			}
		}
		// Name constraints would hide exactly the case we are looking for
		// (another provider's CA signing our domain's URI), so match the
		// signature alone for a direct child of the anchor too.
		direct := bytes.Equal(leaf.RawIssuer, a.cert.RawSubject) && leaf.CheckSignatureFrom(a.cert) == nil
		if _, err := leaf.Verify(opts); err == nil || direct {
			return d
		}
	}
	return ""
}

// VerifyMembers verifies the credentials of a group's members, given as
// mls.Group.Members returns them, at now: each as Verify does, with the
// group's suite, and no device twice (RFC 9420 §5.3.3 leaves uniqueness to
// the application; two leaves for one device mean a stale or cloned
// device). It returns each leaf's Device, or the first failure in leaf
// order, naming the leaf. Use it when joining a group, where RFC 9420
// §5.3.1 requires validating every credential in the tree.
func (v *Verifier) VerifyMembers(s *mls.Suite, members map[mls.LeafIndex]*mls.LeafNode, now time.Time) (map[mls.LeafIndex]Device, error) {
	out := make(map[mls.LeafIndex]Device, len(members))
	seen := make(map[URI]mls.LeafIndex, len(members))
	for _, i := range slices.Sorted(maps.Keys(members)) {
		leaf := members[i]
		if leaf == nil {
			continue
		}
		d, err := v.Verify(s, leaf.Credential, leaf.SignatureKey, now)
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				return nil, &Error{Kind: e.Kind, Msg: fmt.Sprintf("leaf %d: %s", i, e.Msg), Err: e.Err}
			}
			return nil, err
		}
		if j, dup := seen[d.URI]; dup {
			return nil, newError(ErrDuplicateDevice, nil, "leaves %d and %d are both %s", j, i, d.URI)
		}
		seen[d.URI] = i
		out[i] = d
	}
	return out, nil
}

// CheckSuccessor applies our policy for a credential that replaces a
// member's credential in an Update or a commit's UpdatePath (RFC 9420
// §5.3.1: "valid as a successor"): it must name the same device. The key
// and validity may change; that is what renewal is for.
func CheckSuccessor(old, next Device) error {
	if old.URI != next.URI {
		return newError(ErrNotSuccessor, nil, "credential for %s cannot replace the credential of %s", next.URI, old.URI)
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

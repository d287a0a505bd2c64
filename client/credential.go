package client

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/mls"
)

// ErrCredential reports an MLS credential the client does not accept: not
// an X.509 credential, no chain to a trusted CA, a certificate key other
// than the leaf's signature key, or no mimi device URI.
var ErrCredential = errors.New("client: invalid credential")

// member is who stands behind a leaf of a group, as its X.509 credential
// says: the device URI mimi://DOMAIN/d/USER/DEVICE and the user URI
// mimi://DOMAIN/u/USER.
type member struct {
	Domain string
	User   string
	Device string
}

// DeviceURI returns the member's device URI.
func (m member) DeviceURI() string { return "mimi://" + m.Domain + "/d/" + m.User + "/" + m.Device }

// address is the user as the application sees it: the bare handle for
// users of this device's provider, handle@domain for others.
func (m member) address(localDomain string) string {
	if m.Domain == localDomain {
		return m.User
	}
	return m.User + "@" + m.Domain
}

// parseMimiURI splits mimi://DOMAIN/d/USER/DEVICE or mimi://DOMAIN/u/USER.
func parseMimiURI(u *url.URL) (kind byte, domain, user, device string, ok bool) {
	if u.Scheme != "mimi" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return 0, "", "", "", false
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	switch {
	case len(parts) == 3 && parts[0] == "d" && parts[1] != "" && parts[2] != "":
		return 'd', u.Host, parts[1], parts[2], true
	case len(parts) == 2 && parts[0] == "u" && parts[1] != "":
		return 'u', u.Host, parts[1], "", true
	}
	return 0, "", "", "", false
}

// verifier checks credentials and remembers the answers: the same few
// certificates are seen on every message of a room, and parsing and
// verifying a chain costs far more than decrypting a message.
type verifier struct {
	domain string
	roots  *x509.CertPool // this provider's CA
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]verified
}

type verified struct {
	m   member
	err error
}

func newVerifier(domain string, caDER []byte) (*verifier, error) {
	roots := x509.NewCertPool()
	if len(caDER) > 0 {
		ca, err := x509.ParseCertificate(caDER)
		if err != nil {
			return nil, fmt.Errorf("client: provider CA certificate: %w", err)
		}
		roots.AddCert(ca)
	}
	return &verifier{domain: domain, roots: roots, now: time.Now, cache: map[string]verified{}}, nil
}

// leafMember returns who stands behind a leaf node.
func (v *verifier) leafMember(leaf *mls.LeafNode) (member, error) {
	return v.check(&leaf.Credential, leaf.SignatureKey)
}

// check verifies an X.509 credential for the given MLS signature key and
// returns the member it names.
func (v *verifier) check(cred *mls.Credential, sigKey []byte) (member, error) {
	key := string(mls.Marshal(cred)) + "\x00" + string(sigKey)
	v.mu.Lock()
	r, ok := v.cache[key]
	v.mu.Unlock()
	if ok {
		return r.m, r.err
	}
	m, err := v.verify(cred, sigKey)
	v.mu.Lock()
	if len(v.cache) > 4096 {
		// A crude bound: a client sees few distinct credentials, and a
		// flood of new ones should cost time, not memory.
		clear(v.cache)
	}
	v.cache[key] = verified{m, err}
	v.mu.Unlock()
	return m, err
}

func (v *verifier) verify(cred *mls.Credential, sigKey []byte) (member, error) {
	fail := func(format string, args ...any) (member, error) {
		return member{}, fmt.Errorf("%w: "+format, append([]any{ErrCredential}, args...)...)
	}
	if cred.Type != mls.CredentialX509 || len(cred.Certificates) == 0 {
		return fail("not an X.509 credential")
	}
	leaf, err := x509.ParseCertificate(cred.Certificates[0])
	if err != nil {
		return fail("certificate: %v", err)
	}
	if !publicKeyMatches(leaf.PublicKey, sigKey) {
		return fail("certificate key is not the leaf's signature key")
	}
	// The device URI names the user too; the user URI adds nothing the
	// client needs.
	var m member
	for _, u := range leaf.URIs {
		if kind, domain, user, device, ok := parseMimiURI(u); ok && kind == 'd' {
			m = member{Domain: domain, User: user, Device: device}
			break
		}
	}
	if m.Device == "" {
		return fail("no mimi device URI")
	}

	inter := x509.NewCertPool()
	for _, der := range cred.Certificates[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fail("chain certificate: %v", err)
		}
		inter.AddCert(c)
	}
	roots := v.roots
	if m.Domain != v.domain {
		// TODO(federation): verify against the other provider's CA as
		// learned through federation. Until then a foreign credential is
		// checked only for a self-consistent chain.
		roots = inter
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   v.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fail("%s: %v", m.DeviceURI(), err)
	}
	return m, nil
}

// publicKeyMatches compares a certificate's key with an MLS signature
// public key (Ed25519 raw key, or an uncompressed ECDSA point).
func publicKeyMatches(certKey any, sigKey []byte) bool {
	switch k := certKey.(type) {
	case ed25519.PublicKey:
		return bytes.Equal(k, sigKey)
	case *ecdsa.PublicKey:
		b, err := k.Bytes()
		return err == nil && bytes.Equal(b, sigKey)
	}
	return false
}

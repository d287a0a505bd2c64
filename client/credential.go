package client

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
)

// ErrCredential reports an MLS credential the client does not accept (see
// identity.Verifier.Verify; the error also wraps identity's error, whose
// Kind says which check failed).
var ErrCredential = errors.New("client: invalid credential")

// member is who stands behind a leaf of a group, as its X.509 credential
// says: the device URI mimi://DOMAIN/d/USER/DEVICE and the user URI
// mimi://DOMAIN/u/USER, and the phone number the provider vouches for, if
// the credential carries one.
type member struct {
	Domain string
	User   string
	Device string
	Phone  string    // E.164, "" if none
	Issued time.Time // the certificate's NotBefore, to prefer the newest of a user's devices
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

// verifier checks credentials with package identity and remembers the
// answers: a room's credentials are looked at whenever the device lists
// who is in it, and in a room of 1,000 that is 1,000 look-ups. They are
// found by the leaf's signature key (unique in a group, and short to hash),
// then compared with the credential whole; a full check costs an X.509
// parse and signature check (identity.Verifier remembers those too, but
// finding them there means hashing every certificate).
type verifier struct {
	domain string
	suite  *mls.Suite
	v      *identity.Verifier
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]verified // by signature key
}

type verified struct {
	cred    mls.Credential
	m       member
	err     error
	expires time.Time
}

// newVerifier trusts this provider's CA for its own domain, and the
// application's anchors for other providers (federation).
func newVerifier(suite *mls.Suite, domain string, caDER []byte, anchors map[string]*x509.Certificate) (*verifier, error) {
	all := map[string]*x509.Certificate{}
	for d, c := range anchors {
		all[d] = c
	}
	if len(caDER) > 0 {
		ca, err := x509.ParseCertificate(caDER)
		if err != nil {
			return nil, fmt.Errorf("client: provider CA certificate: %w", err)
		}
		all[domain] = ca
	}
	v, err := identity.NewVerifier(all)
	if err != nil {
		return nil, fmt.Errorf("client: trust anchors: %w", err)
	}
	return &verifier{domain: domain, suite: suite, v: v, now: clock.Now, cache: map[string]verified{}}, nil
}

// replace takes the anchors of other, as when the provider's partners
// changed, and forgets every cached answer.
func (v *verifier) replace(other *verifier) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.v = other.v
	clear(v.cache)
}

// leafMember returns who stands behind a leaf node.
func (v *verifier) leafMember(leaf *mls.LeafNode) (member, error) {
	return v.check(&leaf.Credential, leaf.SignatureKey)
}

// check verifies an X.509 credential for the given MLS signature key and
// returns the member it names.
func (v *verifier) check(cred *mls.Credential, sigKey []byte) (member, error) {
	now := v.now()
	v.mu.Lock()
	r, ok := v.cache[string(sigKey)]
	iv := v.v
	v.mu.Unlock()
	if ok && now.Before(r.expires) && sameCredential(&r.cred, cred) {
		return r.m, r.err
	}
	d, err := iv.Verify(v.suite, *cred, sigKey, now)
	// A failure is remembered for a minute (a partner's CA may be added
	// meanwhile, which also clears the cache); a success until the
	// certificate expires.
	r = verified{cred: *cred, err: err, expires: now.Add(time.Minute)}
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrCredential, err)
		r.err = err
	} else {
		r.m = member{Domain: d.URI.Domain, User: d.URI.User, Device: d.URI.Device, Phone: d.Phone, Issued: d.Certificate.NotBefore}
		r.expires = d.NotAfter
	}
	v.mu.Lock()
	if len(v.cache) > 4096 {
		// A crude bound: a client sees few distinct credentials, and a
		// flood of new ones should cost time, not memory.
		clear(v.cache)
	}
	v.cache[string(sigKey)] = r
	v.mu.Unlock()
	return r.m, err
}

// sameCredential reports whether two credentials are the same, byte for
// byte.
func sameCredential(a, b *mls.Credential) bool {
	return a.Type == b.Type && bytes.Equal(a.Identity, b.Identity) &&
		slices.EqualFunc(a.Certificates, b.Certificates, bytes.Equal)
}

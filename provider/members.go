package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// Who stands behind a room's leaves. A member is a device of this
// provider, or of a partner provider, named by the device URI its X.509
// credential carries; the credential is checked against the CA of the
// provider it names (ours, or the partner's from the trust file).

// member is the device behind a leaf. For a device of this provider,
// device and user are its rows in the store; for another provider's, they
// are zero and uri says who it is.
type member struct {
	uri    identity.URI // mimi://DOMAIN/d/USER/DEVICE
	device store.Device
	user   store.User
	// unverified is set for another provider's member whose credential
	// could not be checked when the room was loaded (its provider was
	// removed from the trust file, say). The room still loads, so that
	// its other members can go on; new leaves are always checked.
	unverified bool
}

// local says whether the member is a device of this provider.
func (m member) local() bool { return m.device.ID != 0 }

// domain is the member's provider.
func (m member) domain() string { return m.uri.Domain }

// membersOf maps every leaf of a group to its device. Credentials of this
// provider's devices must verify and name an existing device; another
// provider's that do not verify are kept, marked unverified (see member).
func (s *Server) membersOf(ctx context.Context, g *mls.PublicGroup) (map[mls.LeafIndex]member, error) {
	return s.membersAfter(ctx, g, nil)
}

// membersAfter is membersOf for the epoch a commit starts in a room whose
// members of the epoch before are known (prev; nil: none). A leaf a
// commit left as it was keeps its device of this provider without looking
// it up in the store again (a room of 1,000 would otherwise cost 2,000
// queries per commit, on the path of every join); its credential is still
// verified, which identity.Verifier answers from memory unless it
// expired.
func (s *Server) membersAfter(ctx context.Context, g *mls.PublicGroup, prev *roomState) (map[mls.LeafIndex]member, error) {
	out := map[mls.LeafIndex]member{}
	for l, leaf := range g.Members() {
		if prev != nil && prev.group != nil {
			if m, ok := prev.members[l]; ok && m.local() && sameLeafIdentity(prev.group.Tree().Leaf(l), leaf) {
				if _, err := s.verifier.Verify(g.Suite(), leaf.Credential, leaf.SignatureKey, s.now()); err == nil {
					out[l] = m
					continue
				}
			}
		}
		m, err := s.leafMember(ctx, g.Suite(), leaf)
		if err != nil {
			uri, perr := credentialDevice(leaf.Credential)
			if perr != nil || uri.Domain == s.cfg.Domain {
				return nil, fmt.Errorf("leaf %d: %w", l, err)
			}
			m = member{uri: uri, unverified: true}
		}
		out[l] = m
	}
	return out, nil
}

// sameLeafIdentity reports whether two leaves carry the same credential
// and signature key, which is what names their device.
func sameLeafIdentity(a, b *mls.LeafNode) bool {
	if a == nil || b == nil {
		return false
	}
	return a.Credential.Type == b.Credential.Type && bytes.Equal(a.SignatureKey, b.SignatureKey) &&
		bytes.Equal(a.Credential.Identity, b.Credential.Identity) &&
		slices.EqualFunc(a.Credential.Certificates, b.Credential.Certificates, bytes.Equal)
}

// leafMember checks a leaf node's credential and finds the device behind
// it: a device of this provider, which must exist, or a device of a
// partner provider, whose CA must have issued the credential.
func (s *Server) leafMember(ctx context.Context, suite *mls.Suite, leaf *mls.LeafNode) (member, error) {
	dev, err := s.verifier.Verify(suite, leaf.Credential, leaf.SignatureKey, s.now())
	if err != nil && errors.Is(err, identity.ErrUnknownProvider) {
		dev, err = s.partners.verify(s.trustConfig(), suite, leaf.Credential, leaf.SignatureKey, s.now())
		if err != nil {
			return member{}, errForbidden("a leaf's credential is neither this provider's nor a partner's: %v", err)
		}
		return member{uri: dev.URI}, nil
	}
	if err != nil {
		return member{}, errForbidden("a leaf's credential does not verify: %v", err)
	}
	u, err := s.store.UserByHandle(ctx, dev.URI.User)
	if err != nil {
		return member{}, errForbidden("no user %q on this provider", dev.URI.User)
	}
	ds, err := s.store.DevicesOfUser(ctx, u.ID)
	if err != nil {
		return member{}, err
	}
	for _, d := range ds {
		if d.Name == dev.URI.Device {
			return member{uri: dev.URI, device: d, user: u}, nil
		}
	}
	return member{}, errForbidden("no device %q of user %q", dev.URI.Device, u.Handle)
}

// credentialDevice reads the device URI of an X.509 credential without
// checking it.
func credentialDevice(cred mls.Credential) (identity.URI, error) {
	if cred.Type != mls.CredentialX509 || len(cred.Certificates) == 0 {
		return identity.URI{}, errors.New("not an X.509 credential")
	}
	leaf, err := x509.ParseCertificate(cred.Certificates[0])
	if err != nil {
		return identity.URI{}, err
	}
	for _, u := range leaf.URIs {
		if uri, err := identity.ParseURI(u.String()); err == nil && uri.Kind == identity.KindDevice {
			return uri, nil
		}
	}
	return identity.URI{}, errors.New("the certificate names no device")
}

// partnerVerifiers checks credentials of partners' users against their
// CAs in the trust file. Verifiers are cached per CA certificate, so a
// reloaded trust file applies at once while a steady one costs nothing.
type partnerVerifiers struct {
	mu    sync.Mutex
	cache map[[sha256.Size]byte]*identity.Verifier
}

// verify checks a credential against the CAs the trust configuration
// lists for the provider it names. Suspended partners' CAs count: a
// suspension stops traffic, it does not make their users' existing
// credentials false.
func (pv *partnerVerifiers) verify(trust *federation.Trust, suite *mls.Suite, cred mls.Credential, key []byte, now time.Time) (identity.Device, error) {
	uri, err := credentialDevice(cred)
	if err != nil {
		return identity.Device{}, err
	}
	if trust == nil {
		return identity.Device{}, fmt.Errorf("%s is not a partner: this provider has no federation", uri.Domain)
	}
	p, err := trust.Partner(uri.Domain)
	if err != nil && p.Domain == "" {
		return identity.Device{}, err
	}
	if len(p.CAs) == 0 {
		return identity.Device{}, fmt.Errorf("%s is trusted by pin only: its users' credentials cannot be verified until the trust file lists its CA (ca_pem)", uri.Domain)
	}
	var failure error
	for _, ca := range p.CAs {
		v, err := pv.verifier(p.Domain, ca)
		if err != nil {
			failure = err
			continue
		}
		dev, err := v.Verify(suite, cred, key, now)
		if err == nil {
			return dev, nil
		}
		failure = err
	}
	return identity.Device{}, failure
}

func (pv *partnerVerifiers) verifier(domain string, ca *x509.Certificate) (*identity.Verifier, error) {
	key := sha256.Sum256(append([]byte(domain+"\x00"), ca.Raw...))
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if v := pv.cache[key]; v != nil {
		return v, nil
	}
	v, err := identity.NewVerifier(map[string]*x509.Certificate{domain: ca})
	if err != nil {
		return nil, err
	}
	if pv.cache == nil || len(pv.cache) > 1024 {
		pv.cache = map[[sha256.Size]byte]*identity.Verifier{}
	}
	pv.cache[key] = v
	return v, nil
}

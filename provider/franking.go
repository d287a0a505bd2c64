package provider

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// Franking at the hub (docs/abuse.md): the hub stamps every application
// message that carries a franking tag in its Safe AAD, so that whoever
// receives it can later prove to any provider that exactly this message
// was sent by this sender in this room.

// frankingKey is one signature scheme's key material, parsed.
type frankingKey struct {
	priv   *mls.SignaturePrivateKey
	pub    []byte
	hubKey []byte
}

// frankingKeys caches the hub's own keys, and the partners' public keys
// fetched from their directories.
type frankingKeys struct {
	mu      sync.Mutex
	own     map[string]*frankingKey
	partner map[string]partnerFrankingKeys // by domain
}

type partnerFrankingKeys struct {
	keys    map[string][]byte
	fetched time.Time
}

// partnerKeysRefresh is how soon a partner's keys are fetched again when a
// scheme is missing from what was fetched before.
const partnerKeysRefresh = time.Minute

// ownFrankingKey returns this provider's franking key for the suite's
// signature scheme, made and stored on first use.
func (s *Server) ownFrankingKey(ctx context.Context, suite *mls.Suite) (*frankingKey, error) {
	scheme := suite.SignatureScheme()
	s.franking.mu.Lock()
	defer s.franking.mu.Unlock()
	if k := s.franking.own[scheme]; k != nil {
		return k, nil
	}
	sk, err := s.store.FrankingKey(ctx, scheme)
	if errors.Is(err, store.ErrNotFound) {
		priv, gerr := suite.GenerateSignatureKey()
		if gerr != nil {
			return nil, gerr
		}
		hubKey := make([]byte, 32)
		rand.Read(hubKey)
		sk, err = s.store.AddFrankingKey(ctx, store.FrankingKey{Scheme: scheme, PrivateKey: priv.Bytes(), PublicKey: priv.PublicKey(), HubKey: hubKey})
	}
	if err != nil {
		return nil, err
	}
	priv, err := suite.ParseSignaturePrivateKey(sk.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("provider: stored franking key for %s: %w", scheme, err)
	}
	k := &frankingKey{priv: priv, pub: sk.PublicKey, hubKey: sk.HubKey}
	if s.franking.own == nil {
		s.franking.own = map[string]*frankingKey{}
	}
	s.franking.own[scheme] = k
	return k, nil
}

// frankingPublicKeys are this provider's franking public keys for every
// scheme of its supported suites, as the directory and GET /v1/provider
// publish them.
func (s *Server) frankingPublicKeys(ctx context.Context) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, id := range mls.SupportedSuites {
		suite, err := mls.SuiteFor(id)
		if err != nil {
			continue
		}
		if _, done := out[suite.SignatureScheme()]; done {
			continue
		}
		k, err := s.ownFrankingKey(ctx, suite)
		if err != nil {
			return nil, err
		}
		out[suite.SignatureScheme()] = k.pub
	}
	return out, nil
}

// frankOf is the hub's frank for an application message with a franking
// tag in its AAD, or nil if it has none (or an AAD that is not a Safe AAD:
// another client's data, which the hub has no business refusing).
func (s *Server) frankOf(ctx context.Context, rs *roomState, pm *mls.PrivateMessage, sender federation.IdentifierURI, accepted uint64) ([]byte, error) {
	tag, ok, err := federation.FrankingTagOf(pm.AuthenticatedData)
	if err != nil || !ok {
		return nil, nil
	}
	suite := rs.group.Suite()
	k, err := s.ownFrankingKey(ctx, suite)
	if err != nil {
		return nil, err
	}
	fctx := federation.ServerFrankingContext{SenderURI: sender, RoomURI: s.roomURI(s.cfg.Domain, rs.room.ID), AcceptedTimestamp: accepted}
	f, err := federation.MakeFrank(suite, rs.group.Context().CipherSuite, k.priv, k.hubKey, tag, fctx)
	if err != nil {
		return nil, err
	}
	return mls.Marshal(f), nil
}

// hubFrankingKey is the public key that verifies franks of the given
// suite made by hub: this provider's own, or the partner's from its
// directory, fetched over the mutually authenticated federation
// connection and cached.
func (s *Server) hubFrankingKey(ctx context.Context, hub string, suite *mls.Suite) ([]byte, error) {
	scheme := suite.SignatureScheme()
	if hub == s.cfg.Domain {
		k, err := s.ownFrankingKey(ctx, suite)
		if err != nil {
			return nil, err
		}
		return k.pub, nil
	}
	s.franking.mu.Lock()
	cached, have := s.franking.partner[hub]
	s.franking.mu.Unlock()
	if pub := cached.keys[scheme]; pub != nil {
		return pub, nil
	}
	if have && s.now().Sub(cached.fetched) < partnerKeysRefresh {
		return nil, fmt.Errorf("the hub %s publishes no %s franking key", hub, scheme)
	}
	if s.fed == nil || s.fed.Transport == nil {
		return nil, fmt.Errorf("no federation to reach the hub %s", hub)
	}
	g, ok := s.fed.Transport.(federation.Getter)
	if !ok {
		return nil, fmt.Errorf("the federation transport cannot fetch %s's directory", hub)
	}
	resp, err := g.Get(ctx, hub, federation.WellKnownDirectoryPath)
	if err := federation.Classify(resp, err); err != nil {
		return nil, fmt.Errorf("fetching %s's directory: %w", hub, err)
	}
	var d federation.Directory
	if err := json.Unmarshal(resp.Body, &d); err != nil {
		return nil, fmt.Errorf("%s's directory: %w", hub, err)
	}
	s.franking.mu.Lock()
	if s.franking.partner == nil {
		s.franking.partner = map[string]partnerFrankingKeys{}
	}
	s.franking.partner[hub] = partnerFrankingKeys{keys: d.FrankingKeys, fetched: s.now()}
	s.franking.mu.Unlock()
	if pub := d.FrankingKeys[scheme]; pub != nil {
		return pub, nil
	}
	return nil, fmt.Errorf("the hub %s publishes no %s franking key", hub, scheme)
}

// frankFields adds a message's frank to a client API answer: the Frank
// encoding and the acceptance time it signs.
func frankFields(m map[string]any, frank []byte, accepted int64) {
	if accepted > 0 {
		m["accepted_timestamp"] = accepted
	}
	if len(frank) > 0 {
		m["frank"] = frank
	}
}

// directoryWithKeys is the directory with this provider's franking keys.
func (s *Server) directoryWithKeys(r *http.Request) (*federation.Directory, error) {
	keys, err := s.frankingPublicKeys(r.Context())
	if err != nil {
		return nil, err
	}
	d := *s.directory
	d.FrankingKeys = keys
	return &d, nil
}

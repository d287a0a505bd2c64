package provider

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// The provider's side of federation (docs/federation.md): the MIMI
// endpoints its partners call. So far the directory, keyMaterial and
// identifierQuery; the room endpoints come with remote room members.

// FederationHandler returns the handler of the provider's federation API,
// to be served on a listener of its own with federation.ServerTLSConfig:
//
//   - GET /.well-known/mimi-protocol-directory: the directory, whose
//     endpoints live under Config.FederationURL;
//   - POST {keyMaterial}/{targetUser}: one KeyPackage per device of a local
//     user, claimed for a partner's user;
//   - POST {identifierQuery}/{domain}: a local user's URI, found by handle
//     or phone number;
//   - the room, consent, abuse and download endpoints (federated.go,
//     federation_more.go, reports.go, attachments.go);
//   - POST {batch}: several one-way requests in one (fedBatch).
//
// Every request goes through federation.RequirePartner, so only active
// partners with a valid certificate reach the endpoints; the POSTs also
// through a federation.ReplayGuard. The directory is exempt from the
// replay check: it is a GET that changes nothing, and a partner may fetch
// it with any HTTP client, which would not stamp it.
//
// Errors are JSON in RequirePartner's shape, {"error": {"code": ...,
// "message": ...}}, so federation.Classify reads them; successful answers
// are the MIMI wire bodies.
func (s *Server) FederationHandler(trust *federation.Trust) http.Handler {
	guard := federation.NewReplayGuard(0, 0)
	m := http.NewServeMux()
	m.Handle("GET "+federation.WellKnownDirectoryPath, s.federated("fed_directory", nil, s.fedDirectory))
	m.Handle("POST "+s.fedPath(s.directory.KeyMaterial), s.federated("fed_key_material", guard,
		func(w http.ResponseWriter, r *http.Request) error { return s.fedKeyMaterial(w, r, trust) }))
	m.Handle("POST "+s.fedPath(s.directory.IdentifierQuery), s.federated("fed_identifier_query", guard, s.fedIdentifierQuery))
	m.Handle("POST "+s.fedPath(s.directory.Update), s.federated("fed_update", guard, s.fedUpdate))
	m.Handle("POST "+s.fedPath(s.directory.SubmitMessage), s.federated("fed_submit_message", guard, s.fedSubmitMessage))
	m.Handle("POST "+s.fedPath(s.directory.GroupInfo), s.federated("fed_group_info", guard, s.fedGroupInfo))
	m.Handle("POST "+s.fedPath(s.directory.ProxyDownload), s.federated("fed_proxy_download", guard, s.fedProxyDownload))
	m.Handle("GET "+s.fedPath(s.directory.ProxyDownload), s.federated("fed_proxy_download", nil, s.fedProxyDownload))
	s.oneWayEndpoints(m, guard)
	// A batch's entries are checked against replays as part of the batch:
	// they come without stamps of their own.
	entries := http.NewServeMux()
	s.oneWayEndpoints(entries, nil)
	m.Handle("POST "+s.fedPath(s.directory.Batch), s.federated("fed_batch", guard,
		func(w http.ResponseWriter, r *http.Request) error { return s.fedBatch(w, r, entries) }))
	return federation.RequirePartner(trust, s.heardFrom(m))
}

// heardFrom nudges the outbox towards the partner of every authenticated
// request: a partner that reaches us again after an outage is caught up
// at once, not when our backoff for it runs out (Outbox.Nudge).
func (s *Server) heardFrom(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.fed != nil && s.fed.Outbox != nil {
			if peer, err := federation.PeerDomain(r); err == nil {
				s.fed.Outbox.Nudge(peer)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// oneWayEndpoints registers the endpoints a batch may carry
// (federation.Batchable): requests that change something here and answer
// with a status only.
func (s *Server) oneWayEndpoints(m *http.ServeMux, guard *federation.ReplayGuard) {
	m.Handle("POST "+s.fedPath(s.directory.Notify), s.federated("fed_notify", guard, s.fedNotify))
	m.Handle("POST "+s.fedPath(s.directory.RequestConsent), s.federated("fed_request_consent", guard, s.fedRequestConsent))
	m.Handle("POST "+s.fedPath(s.directory.UpdateConsent), s.federated("fed_update_consent", guard, s.fedUpdateConsent))
	m.Handle("POST "+s.fedPath(s.directory.ReportAbuse), s.federated("fed_report_abuse", guard, s.fedReportAbuse))
}

// fedBatch is the batch endpoint (docs/federation.md, "Batches"): each
// entry goes through entries, the one-way endpoints, exactly as if it had
// come alone (the partner's rate limit counts each), and is answered in
// the batch's answer. Notifies of different rooms are handled side by
// side, so that their writes share the store's commits; those of one
// room, and every other entry, in order.
func (s *Server) fedBatch(w http.ResponseWriter, r *http.Request, entries http.Handler) error {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, federation.MaxBatchBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errTooLarge(federation.MaxBatchBody)
	} else if err != nil {
		return errBadRequest("reading the body: %v", err)
	}
	var req federation.BatchRequest
	if err := mls.Unmarshal(data, &req); err != nil {
		return errBadRequest("malformed BatchRequest: %v", err)
	}
	if len(req.Entries) > federation.MaxBatchEntries {
		return errBadRequest("a batch carries at most %d entries, not %d", federation.MaxBatchEntries, len(req.Entries))
	}
	base := strings.TrimSuffix(s.fedPath(s.directory.Batch), "/batch")
	notify := strings.TrimSuffix(s.fedPath(s.directory.Notify), "{roomId}")[len(base):]
	lane := func(path string) (string, bool) { return path, strings.HasPrefix(path, notify) }
	writeWire(w, federation.RunBatch(r, &req, base, entries, lane))
	return nil
}

// fedPath turns one of our directory's URL templates into a ServeMux
// pattern path: the template without scheme and host. NewDirectory made
// the templates from Config.FederationURL, which New checked, so the
// prefix is always there.
func (s *Server) fedPath(template string) string {
	return template[len(s.fedOrigin):]
}

// federated adapts a handlerFunc for the federation API as serve does for
// the client API (request ID, draining, metrics, logs), with the error
// body of federation.RequirePartner and the replay check for guard.
func (s *Server) federated(name string, guard *federation.ReplayGuard, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		w.Header().Set("X-Request-ID", id)
		var err error
		switch {
		case s.isDraining():
			err = errUnavailable("the provider is shutting down")
		case guard != nil:
			if err = guard.CheckRequest(r); err != nil {
				break
			}
			fallthrough
		default:
			err = h(w, r)
		}
		if err == nil {
			s.metrics.requests.WithLabelValues(name, "ok").Inc()
			return
		}
		code, status, msg := "", 0, ""
		var te *federation.TrustError
		switch {
		case errors.As(err, &te):
			code, status, msg = te.Code(), te.Status(), te.Msg
		default:
			apiErr := apiError(err)
			setRetryAfter(w, apiErr)
			code, status, msg = apiErr.Code, apiErr.Status, apiErr.Message
		}
		s.metrics.requests.WithLabelValues(name, code).Inc()
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		peer, _ := federation.PeerDomain(r)
		s.log.Log(r.Context(), level, "federation request failed", "request_id", id, "handler", name,
			"peer", peer, "code", code, "message", msg, "err", err)
		var body fedErrorBody
		body.Error.Code, body.Error.Message = code, msg
		writeJSON(w, status, body)
	})
}

// fedErrorBody is federation.RequirePartner's error body. It has no
// request_id, unlike the client API's: a partner's operator quotes our
// X-Request-ID header instead, and Classify reads code and message only.
type fedErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func errInvalidSignature(err error) *Error {
	return &Error{Code: "invalid_signature", Status: http.StatusForbidden, Message: err.Error(), cause: err}
}

func errUntrustedCredential(format string, args ...any) *Error {
	return &Error{Code: "untrusted_credential", Status: http.StatusForbidden, Message: fmt.Sprintf(format, args...)}
}

// readWire reads a binary MIMI body into v, within MaxBodyBytes. The
// Content-Type is not checked: the draft registers none, and the path says
// what the body is (docs/federation.md, "Content type").
func (s *Server) readWire(r *http.Request, what string, v mls.Unmarshaler) error {
	_, err := s.readWireWithin(r, what, v, s.cfg.MaxBodyBytes)
	return err
}

// readWireWithin is readWire with another limit; it returns the body's
// size.
func (s *Server) readWireWithin(r *http.Request, what string, v mls.Unmarshaler, limit int64) (int64, error) {
	data, err := s.readBodyWithin(r, limit)
	if err != nil {
		return 0, err
	}
	if err := mls.Unmarshal(data, v); err != nil {
		return 0, errBadRequest("malformed %s: %v", what, err)
	}
	return int64(len(data)), nil
}

// keyMaterialReplayBucket is how long one signed keyMaterial request is
// answered only once.
const keyMaterialReplayBucket = time.Minute

// readBody reads a request body within MaxBodyBytes.
func (s *Server) readBody(r *http.Request) ([]byte, error) {
	return s.readBodyWithin(r, s.cfg.MaxBodyBytes)
}

// readBodyWithin reads a request body within limit.
func (s *Server) readBodyWithin(r *http.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errTooLarge(limit)
	} else if err != nil {
		return nil, errBadRequest("reading the body: %v", err)
	}
	return data, nil
}

func writeWire(w http.ResponseWriter, v mls.Marshaler) {
	w.Header().Set("Content-Type", federation.ContentType)
	w.WriteHeader(http.StatusOK)
	w.Write(mls.Marshal(v)) // #nosec G705 -- binary MIMI wire data under its own content type
}

func (s *Server) fedDirectory(w http.ResponseWriter, r *http.Request) error {
	d, err := s.directoryWithKeys(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// fedKeyMaterial answers keyMaterial: it claims, for a partner's user, one
// KeyPackage for each device of a local user.
//
// A local user who does not allow the requesting partner to reach them
// (docs/reachability.md) is answered noConsent, with nothing claimed. The
// client API, where this provider's own users claim each other's
// KeyPackages, is not affected.
func (s *Server) fedKeyMaterial(w http.ResponseWriter, r *http.Request, trust *federation.Trust) error {
	if err := s.limitPartner(r); err != nil {
		return err
	}
	peer, err := federation.PeerDomain(r)
	if err != nil {
		return err
	}
	var req federation.KeyMaterialRequest
	if err := s.readWire(r, "KeyMaterialRequest", &req); err != nil {
		return err
	}
	if string(req.TargetUser) != r.PathValue("targetUser") {
		return errBadRequest("the path names %q, the body's targetUser is %q", r.PathValue("targetUser"), req.TargetUser)
	}
	if err := req.Verify(); err != nil {
		return errInvalidSignature(err)
	}
	requester, err := identity.ParseURI(string(req.RequestingUser))
	if err != nil || requester.Kind != identity.KindUser {
		return errBadRequest("requestingUser %q is not a user URI", req.RequestingUser)
	}
	// The partner acts as its user here, so the user must be its own:
	// otherwise red could claim our users' KeyPackages in blue's name.
	if err := federation.CheckSpeaksFor(peer, requester); err != nil {
		return err
	}
	// The signature proves possession of requesterSignatureKey; the
	// credential, checked against the partner's CA, binds that key to the
	// requesting user. Without it a partner's server could sign in any of
	// its users' names with a key of its own, and the request would carry
	// no evidence from the user's device.
	if err := s.verifyRequester(trust, peer, requester, &req); err != nil {
		return err
	}
	target, err := identity.ParseURI(string(req.TargetUser))
	if err != nil || target.Kind != identity.KindUser {
		return errBadRequest("targetUser %q is not a user URI", req.TargetUser)
	}
	if target.Domain != s.cfg.Domain {
		return errBadRequest("targetUser %s is not a user of %s", target, s.cfg.Domain)
	}
	resp := federation.KeyMaterialResponse{Protocol: federation.ProtocolMLS10, UserURI: req.TargetUser}
	u, err := s.store.UserByHandle(r.Context(), target.User)
	if errors.Is(err, store.ErrNotFound) {
		resp.UserStatus = federation.KeyMaterialUserUnknown
		writeWire(w, &resp)
		return nil
	} else if err != nil {
		return err
	}
	// Third-party reachability (docs/reachability.md): a user who does not
	// allow the requesting partner gets noConsent, and nothing is claimed
	// or recorded. In particular the replay record below is not made: a
	// noConsent answer hands out nothing a replay could drain, and the
	// same signed request, asked again once the user has turned
	// reachability on, must be answered rather than refused as a replay.
	if ok, err := s.reachableFrom(r.Context(), u.ID, peer); err != nil {
		return err
	} else if !ok {
		s.log.Info("key material refused: the user does not allow the partner", "partner", peer)
		resp.UserStatus = federation.KeyMaterialNoConsent
		writeWire(w, &resp)
		return nil
	}
	// Consent (docs/consent.md): a user who blocked the requester is
	// answered as one who does not allow the partner, so that the block
	// is not told apart; nothing is claimed or recorded.
	if blocked, err := s.blockedBy(r.Context(), u.ID, requester); err != nil {
		return err
	} else if blocked {
		resp.UserStatus = federation.KeyMaterialNoConsent
		writeWire(w, &resp)
		return nil
	}
	// The signed body carries no nonce of its own, so a partner could send
	// the same signed request again with fresh transport stamps and claim
	// more KeyPackages in the user's name. Yet the same request is also
	// made honestly again (the signature is deterministic: inviting the
	// same person to the same room twice, a retry after a failure). So a
	// signature is answered once per minute (keyMaterialReplayBucket):
	// a replay drains at most one KeyPackage per device a minute, and a
	// person who asks again soon is told to wait.
	sig := sha256.Sum256(req.Signature)
	bucket := s.now().Unix() / int64(keyMaterialReplayBucket/time.Second)
	if seen, err := s.store.SeenInbound(r.Context(), peer, "keyMaterial/"+hex.EncodeToString(sig[:])+"/"+strconv.FormatInt(bucket, 10), s.now()); err != nil {
		return err
	} else if seen {
		return &Error{Code: "replay", Status: http.StatusForbidden, Message: "this signed key material request was just answered; ask again in a minute"}
	}
	devices, err := s.store.DevicesOfUser(r.Context(), u.ID)
	if err != nil {
		return err
	}
	// The requester's suites in its order of preference, of those we
	// support: each device gets a KeyPackage of the first one it has.
	var suites []mls.CipherSuite
	for _, cs := range req.AcceptableCiphersuites {
		if slices.Contains(mls.SupportedSuites, cs) && !slices.Contains(suites, cs) {
			suites = append(suites, cs)
		}
	}
	found := 0
	for _, d := range devices {
		c := federation.ClientKeyMaterial{ClientURI: federation.IdentifierURI(identity.DeviceURI(s.cfg.Domain, u.Handle, d.Name).String())}
		switch kp, err := s.claimFor(r, d, suites); {
		case err != nil:
			// KeyPackages already claimed for other devices are used up:
			// answer with them rather than lose them, and report this
			// device as having none.
			s.log.Error("claiming a KeyPackage", "device", d.ID, "err", err)
			c.ClientStatus = federation.ClientKeyMaterialExhausted
		case kp != nil:
			c.ClientStatus, c.KeyPackage = federation.ClientKeyMaterialSuccess, kp
			found++
		case len(suites) == 0:
			// No device of ours could have a KeyPackage the requester
			// accepts. The capabilities are left out: a provider may
			// withhold them, and listing them tells a stranger what
			// software each device runs.
			c.ClientStatus = federation.ClientNothingCompatible
		default:
			c.ClientStatus = federation.ClientKeyMaterialExhausted
		}
		resp.Clients = append(resp.Clients, c)
	}
	switch {
	case found > 0 && found == len(devices):
		resp.UserStatus = federation.KeyMaterialSuccess
	case found > 0:
		resp.UserStatus = federation.KeyMaterialPartialSuccess
	default:
		// Also for a user without devices: there is nothing to add.
		resp.UserStatus = federation.KeyMaterialNoCompatibleMaterial
	}
	writeWire(w, &resp)
	return nil
}

// claimFor claims one KeyPackage of device d in the first of suites it has
// one of, fresh or else last-resort: used up exactly once by the store,
// which keeps its ref so that the Welcome that uses it can be routed to d.
// It returns nil when the device has none of these suites.
func (s *Server) claimFor(r *http.Request, d store.Device, suites []mls.CipherSuite) (*mls.KeyPackage, error) {
	now := uint64(s.now().Unix()) // #nosec G115 -- the clock is after 1970
	for _, cs := range suites {
		// Expired KeyPackages must not be handed out (the draft's MUST):
		// a fresh one that expired is used up and the next one tried; an
		// expired last-resort one leaves the device with nothing.
		for range maxExpiredSkips {
			row, left, err := s.store.ClaimKeyPackage(r.Context(), d.ID, uint16(cs))
			if errors.Is(err, store.ErrNotFound) {
				break
			} else if err != nil {
				return nil, err
			}
			m, err := mls.ParseMLSMessage(row.Data)
			if err != nil || m.KeyPackage == nil {
				// It was checked on upload; a stored row that no longer
				// parses is a bug or a damaged database, not the caller's.
				return nil, fmt.Errorf("stored KeyPackage of device %d does not parse: %v", d.ID, err)
			}
			if life := m.KeyPackage.LeafNode.Lifetime; now < life.NotBefore || now > life.NotAfter {
				if row.LastResort {
					break
				}
				continue
			}
			if left < s.cfg.KeyPackageLowWatermark {
				s.tell(d.ID, deviceNotice{Event: &event{Type: "keypackages.low", CipherSuite: uint16(cs), Available: left}})
			}
			return m.KeyPackage, nil
		}
	}
	return nil, nil
}

// maxExpiredSkips bounds how many expired KeyPackages one claim uses up
// before it gives up on a device.
const maxExpiredSkips = 64

// verifyRequester checks that the request's credential is a device
// credential of the requesting user, issued by the partner's CA, for the
// key that signed the request.
func (s *Server) verifyRequester(trust *federation.Trust, peer string, requester identity.URI, req *federation.KeyMaterialRequest) error {
	suite, err := req.SigningSuite()
	if err != nil {
		return errBadRequest("%v", err) // Verify passed, so this cannot happen
	}
	uri, err := credentialDevice(req.RequesterCredential)
	if err != nil {
		return errUntrustedCredential("requesterCredential: %v", err)
	}
	if uri.Domain != peer {
		return errUntrustedCredential("the credential is for %s, not a user of %s", uri, peer)
	}
	dev, err := s.partners.verify(trust, suite, req.RequesterCredential, req.RequesterSignatureKey, s.now())
	if err != nil {
		return errUntrustedCredential("requesterCredential: %v", err)
	}
	if dev.User != requester {
		return errUntrustedCredential("the credential is %s's, not the requesting user %s's", dev.User, requester)
	}
	return nil
}

// fedIdentifierQuery answers identifierQuery: the URI of the local user
// whose handle or E.164 phone number matches, if that user allows being
// found by it (docs/discovery.md); one who does not is notFound, exactly as
// if there were no such user. Every element must match the same user (the
// draft ANDs them). Other search types are answered unsupportedField.
//
// Any partner may ask about any user, within its partner limit and its
// discovery limit (ratelimit.go), which is slow so that enumerating our
// users' phone numbers is slow and shows in /metrics.
func (s *Server) fedIdentifierQuery(w http.ResponseWriter, r *http.Request) error {
	if err := s.limit(limitKey{s.limits.partner, partnerKey(r)}, limitKey{s.limits.discoveryPartner, partnerKey(r)}); err != nil {
		return err
	}
	if d := r.PathValue("domain"); d != s.cfg.Domain {
		return errNotFound("this provider is %s and answers for its own users only, not %q", s.cfg.Domain, d)
	}
	var req federation.IdentifierRequest
	if err := s.readWire(r, "IdentifierRequest", &req); err != nil {
		return err
	}
	if len(req.QueryElements) == 0 {
		return errBadRequest("the IdentifierRequest has no query element")
	}
	resp := federation.IdentifierResponse{ResponseCode: federation.IdentifierNotFound}
	var match *store.User
	for _, q := range req.QueryElements {
		u, ok, err := s.findUser(r, q)
		if errors.Is(err, errUnsupportedSearch) {
			resp.ResponseCode = federation.IdentifierUnsupportedField
			writeWire(w, &resp)
			return nil
		} else if err != nil {
			return err
		}
		if !ok || (match != nil && match.ID != u.ID) {
			writeWire(w, &resp)
			return nil
		}
		match = &u
	}
	resp.ResponseCode = federation.IdentifierSuccess
	resp.URIs = []federation.IdentifierURI{federation.IdentifierURI(identity.UserURI(s.cfg.Domain, match.Handle).String())}
	writeWire(w, &resp)
	return nil
}

var errUnsupportedSearch = errors.New("unsupported search type")

// findUser looks up the user one query element names, among the users who
// allow being found by that field (a handle search finds only users
// discoverable by handle, a phone search only those discoverable by phone).
// A value that is not a valid handle or phone number matches no one.
func (s *Server) findUser(r *http.Request, q federation.QueryElement) (store.User, bool, error) {
	var u store.User
	var err error
	switch q.SearchType {
	case federation.SearchHandle:
		h, herr := NormalizeHandle(q.SearchValue)
		if herr != nil {
			return store.User{}, false, nil
		}
		u, err = s.store.UserByHandle(r.Context(), h)
	case federation.SearchPhone:
		p, perr := NormalizePhone(q.SearchValue)
		if perr != nil || p == "" { // NormalizePhone gives "" for a blank value
			return store.User{}, false, nil
		}
		u, err = s.store.UserByPhone(r.Context(), p)
	default:
		return store.User{}, false, errUnsupportedSearch
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, false, nil
	} else if err != nil {
		return store.User{}, false, err
	}
	if !discoverableBy(u.DiscoverableByHandle, u.DiscoverableByPhone, q.SearchType) {
		return store.User{}, false, nil
	}
	return u, true, nil
}

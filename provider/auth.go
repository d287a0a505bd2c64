package provider

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Devices authenticate with their own Ed25519 key: the provider stores only
// the public key, hands out a random challenge, and issues a session token
// for a valid signature over it. Tokens and enrollment codes are stored as
// SHA-256 hashes, so a leaked database holds nothing to sign in with.

const authContext = "switchboard auth v1\n"

// SignInMessage is what a device signs to prove it holds its key.
func SignInMessage(domain string, challenge []byte) []byte {
	return append([]byte(authContext+domain+"\n"), challenge...)
}

func hashSecret(s []byte) []byte {
	h := sha256.Sum256(s)
	return h[:]
}

// newCode makes a human-typable one-time code: 20 base32 characters in
// groups of four (100 bits).
func newCode() string {
	var b [13]byte
	rand.Read(b[:])
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(b[:]), "=")[:20]
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20]
}

// normalizeCode accepts a code typed with any case, spaces or dashes.
func normalizeCode(c string) []byte {
	c = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(c))
	return []byte(c)
}

// challenges holds outstanding sign-in challenges in memory: they live two
// minutes, and a provider restart only makes devices ask again.
type challenges struct {
	mu sync.Mutex
	m  map[string]challengeEntry
}

type challengeEntry struct {
	key     string
	expires time.Time
}

func newChallenges() *challenges { return &challenges{m: map[string]challengeEntry{}} }

// maxChallenges bounds the outstanding challenges, so that a flood of
// challenge requests cannot fill the provider's memory.
const maxChallenges = 100_000

// add records a challenge; it reports false when too many are outstanding
// even after expired ones are dropped.
func (c *challenges) add(key []byte, ch []byte, now, expires time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxChallenges {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxChallenges {
			return false
		}
	}
	c.m[string(ch)] = challengeEntry{key: string(key), expires: expires}
	return true
}

// take uses up a challenge issued to key.
func (c *challenges) take(key, ch []byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[string(ch)]
	delete(c.m, string(ch))
	return ok && e.key == string(key) && now.Before(e.expires)
}

func (c *challenges) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
		}
	}
}

// deviceNames are short, safe for MIMI URIs and for file names.
var deviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

type registerRequest struct {
	EnrollmentCode string `json:"enrollment_code"`
	DeviceName     string `json:"device_name"`
	AuthKey        []byte `json:"auth_key"`
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	var req registerRequest
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	if !deviceName.MatchString(req.DeviceName) {
		return errBadRequest("device_name must be 1-32 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	if len(req.AuthKey) != ed25519.PublicKeySize {
		return errBadRequest("auth_key must be a %d-byte Ed25519 public key", ed25519.PublicKeySize)
	}
	if req.EnrollmentCode == "" {
		return errBadRequest("enrollment_code is required")
	}
	d, err := s.store.RegisterDevice(r.Context(), hashSecret(normalizeCode(req.EnrollmentCode)), req.DeviceName, req.AuthKey, s.now())
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired):
		return errGone("the enrollment code is unknown, used or expired")
	case errors.Is(err, store.ErrExists):
		return errConflict("the device name or key is already registered")
	case err != nil:
		return err
	}
	u, err := s.store.UserByID(r.Context(), d.UserID)
	if err != nil {
		return err
	}
	s.log.Info("device registered", "user", u.Handle, "device", d.Name)
	// The user's other devices add the new one to their rooms.
	if others, err := s.store.DevicesOfUser(r.Context(), u.ID); err == nil {
		for _, o := range others {
			if o.ID != d.ID {
				s.tell(o.ID, deviceNotice{Event: &event{Type: "device.added", Device: d.Name}})
			}
		}
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"user":   map[string]any{"handle": u.Handle},
		"device": map[string]any{"id": d.ID, "name": d.Name},
	})
	return nil
}

type challengeRequest struct {
	AuthKey []byte `json:"auth_key"`
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request) error {
	var req challengeRequest
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	if len(req.AuthKey) != ed25519.PublicKeySize {
		return errBadRequest("auth_key must be a %d-byte Ed25519 public key", ed25519.PublicKeySize)
	}
	// A challenge is given to any key, known or not, so that the answer
	// does not reveal which keys are registered.
	ch := make([]byte, 32)
	rand.Read(ch)
	now := s.now()
	expires := now.Add(s.cfg.ChallengeTTL)
	if !s.challenges.add(req.AuthKey, ch, now, expires) {
		return errUnavailable("too many sign-ins in progress; try again shortly")
	}
	writeJSON(w, http.StatusOK, map[string]any{"challenge": ch, "expires": expires.UTC()})
	return nil
}

type signInRequest struct {
	AuthKey   []byte `json:"auth_key"`
	Challenge []byte `json:"challenge"`
	Signature []byte `json:"signature"`
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) error {
	var req signInRequest
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	if len(req.AuthKey) != ed25519.PublicKeySize {
		return errBadRequest("auth_key must be a %d-byte Ed25519 public key", ed25519.PublicKeySize)
	}
	now := s.now()
	if !s.challenges.take(req.AuthKey, req.Challenge, now) {
		return errUnauthenticated("unknown or expired challenge")
	}
	if !ed25519.Verify(req.AuthKey, SignInMessage(s.cfg.Domain, req.Challenge), req.Signature) {
		return errUnauthenticated("the signature does not verify")
	}
	d, err := s.store.DeviceByAuthKey(r.Context(), req.AuthKey)
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthenticated("no device has this key")
	} else if err != nil {
		return err
	}
	if u, err := s.store.UserByID(r.Context(), d.UserID); err != nil {
		return err
	} else if u.Suspended {
		return errSuspended(u.Handle)
	}
	token := make([]byte, 32)
	rand.Read(token)
	tok := base64.RawURLEncoding.EncodeToString(token)
	expires := now.Add(s.cfg.SessionTTL)
	if err := s.store.CreateSession(r.Context(), store.Session{TokenHash: hashSecret([]byte(tok)), DeviceID: d.ID, Expires: expires}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expires": expires.UTC()})
	return nil
}

type ctxKey int

const deviceKey ctxKey = 0

// caller is the authenticated device of a request.
type caller struct {
	device store.Device
	user   store.User
}

// authed wraps a handler that needs a signed-in device.
func (s *Server) authed(name string, h handlerFunc) http.Handler {
	return s.serve(name, func(w http.ResponseWriter, r *http.Request) error {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || tok == "" {
			return errUnauthenticated("missing bearer token")
		}
		c, err := s.signedIn(r.Context(), tok, userCachedRoutes[name])
		if err != nil {
			return err
		}
		r = r.WithContext(context.WithValue(r.Context(), deviceKey, c))
		return h(w, r)
	})
}

// userCachedRoutes are the routes, the busiest, that may take the user
// from the session cache: they use only its ID and handle, which never
// change. The others read the user afresh, since its settings feed what
// they answer or issue (discoverability, the phone in a credential).
var userCachedRoutes = map[string]bool{
	"submit": true, "stream": true, "inbox": true, "ack": true,
	"room": true, "room_log": true, "room_tree": true,
	"claim_key_packages": true, "upload_key_packages": true, "key_package_count": true,
	"upload_attachment": true, "download_attachment": true,
}

// signedIn finds the device and user of a bearer token: from the session
// cache (sessioncache.go) when it holds them fresh, else from the store.
// With cachedUser false the session may come from the cache but the user
// is read from the store.
func (s *Server) signedIn(ctx context.Context, tok string, cachedUser bool) (*caller, error) {
	key := sha256.Sum256([]byte(tok))
	now := s.now()
	c, gen := s.sessions.get(key, now)
	if c != nil && cachedUser {
		return c, nil
	}
	var d store.Device
	var expires time.Time
	if c != nil {
		d = c.device
	} else {
		sess, dev, err := s.store.LiveSession(ctx, key[:], now)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired) {
			return nil, errUnauthenticated("unknown or expired token")
		} else if err != nil {
			return nil, err
		}
		d, expires = dev, sess.Expires
	}
	u, err := s.store.UserByID(ctx, d.UserID)
	if err != nil {
		return nil, err
	}
	if u.Suspended {
		return nil, errSuspended(u.Handle)
	}
	fresh := &caller{device: d, user: u}
	if c == nil {
		s.sessions.put(key, fresh, now, expires, gen)
	}
	return fresh, nil
}

// onNotice takes a device notice from the bus. Whatever it says, the
// device's cached sessions go first: a sign-out must end the session here
// before (or as) its streams close, and the other notices are rare. A
// consent notice (consentcache.go) is the hub's and goes no further.
func (s *Server) onNotice(device int64, data []byte) {
	s.sessions.forgetDevice(device)
	if isConsentNotice(data) {
		s.consents.forgetAll() // for the hub's cache, not the streams
		return
	}
	s.onTell(device, data)
}

func callerOf(r *http.Request) *caller { return r.Context().Value(deviceKey).(*caller) }

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) error {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if err := s.store.DeleteSession(r.Context(), hashSecret([]byte(tok))); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	// A stream opened with this session must not outlive it, on whichever
	// replica it is open.
	s.tell(callerOf(r).device.ID, deviceNotice{Close: true})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	user := map[string]any{"handle": c.user.Handle}
	if c.user.Phone != "" {
		user["phone"] = c.user.Phone
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"user":   user,
		"device": map[string]any{"id": c.device.ID, "name": c.device.Name},
		"domain": s.cfg.Domain,
	})
	return nil
}

func (s *Server) myDevices(w http.ResponseWriter, r *http.Request) error {
	ds, err := s.store.DevicesOfUser(r.Context(), callerOf(r).user.ID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(ds))
	for _, d := range ds {
		out = append(out, map[string]any{"id": d.ID, "name": d.Name})
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
	return nil
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) error {
	code, expires, err := s.NewEnrollment(r.Context(), callerOf(r).user.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"code": code, "expires": expires.UTC()})
	return nil
}

// NewEnrollment makes a one-time code with which a new device joins the
// user's account.
func (s *Server) NewEnrollment(ctx context.Context, userID int64) (string, time.Time, error) {
	code, err := AddEnrollment(ctx, s.store, userID, s.cfg.EnrollmentTTL)
	return code, s.now().Add(s.cfg.EnrollmentTTL), err
}

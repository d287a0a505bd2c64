// Package client is Switchboard's Go SDK: one device of one user. It keeps
// the device's keys and every room's MLS group state in a directory the
// application chooses, talks to the device's provider over the client API
// (docs/api.md), and is the only place where message plaintext exists.
//
// A device is registered once with Register and reopened with Open. Rooms
// are created with CreateRoom and grown with Invite; Send encrypts and posts
// a message. Run keeps a WebSocket to the provider and turns what arrives
// into Events, exactly once and in each room's order; Sync does the same
// over plain HTTP.
package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/mls"
)

// RoomID names a room: its MLS group ID in base64url, as the provider
// reports it.
type RoomID string

// MessageID names a message: its room and the hub's sequence number,
// "ROOM/SEQ".
type MessageID string

// Options are an application's choices for a Client. The zero value is
// usable.
type Options struct {
	// Suite is the MLS cipher suite of the device's key and of the rooms
	// it creates (default X25519AES128GCMSHA256Ed25519). It is fixed at
	// Register; Open ignores it.
	Suite mls.CipherSuite
	// KeyPackageBatch is how many KeyPackages are uploaded at a time
	// (default 50).
	KeyPackageBatch int
	// HTTPClient makes the requests (default: a client with a 60-second
	// timeout). Its transport is also used for the WebSocket.
	HTTPClient *http.Client
	// Logger receives the client's diagnostics (default: discarded).
	Logger *slog.Logger
	// TrustAnchors are the CA certificates of other providers, by domain,
	// for verifying their users' credentials. Without one for a domain,
	// the client trusts the CA its own provider lists for that partner
	// (GET /v1/provider, refreshed at Open and by Run's housekeeping); an
	// anchor given here wins. This device's own provider's CA is learned at
	// Register and always trusted for its domain.
	TrustAnchors map[string]*x509.Certificate
	// Now is the device's wall clock (default clock.Now, which honours
	// SWITCHBOARD_CLOCK_SKEW): a testing hook for a device whose clock
	// is ahead of or behind its provider's.
	Now func() time.Time
}

func (o *Options) fill() {
	if o.Suite == 0 {
		o.Suite = mls.X25519AES128GCMSHA256Ed25519
	}
	if o.KeyPackageBatch <= 0 {
		o.KeyPackageBatch = 50
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = clock.Now
	}
}

// Errors of the client itself (the provider's errors are *APIError).
var (
	// ErrUnknownRoom reports a room this device is not in.
	ErrUnknownRoom = errors.New("client: not in this room")
	// ErrRemoved reports a room this device was removed from.
	ErrRemoved = errors.New("client: removed from this room")
	// ErrNotMember reports a user with no device in the room.
	ErrNotMember = errors.New("client: user is not in the room")
	// ErrClosed reports use of a closed Client.
	ErrClosed = errors.New("client: closed")
	// ErrUnreadableMessage is the Err of a DeliveryFailed for a queue
	// entry whose fields did not all read: the provider sent something
	// this client does not understand.
	ErrUnreadableMessage = errors.New("client: unreadable message from the provider")
)

// Client is one registered device. It is safe for concurrent use: one
// mutex serializes every change of group state, so that what is saved is
// always what the group is.
type Client struct {
	opts  Options
	log   *slog.Logger
	store store
	api   *api
	suite *mls.Suite

	// tokenMu guards api.token. It is separate from mu so that a
	// re-sign-in never waits for a group operation that is itself waiting
	// for the network.
	tokenMu sync.Mutex

	// mu guards everything below and all group state.
	mu       sync.Mutex
	dev      *deviceState
	signer   *mls.SignaturePrivateKey
	cred     mls.Credential
	verifier *verifier
	// kps holds this device's KeyPackages by hex KeyPackageRef.
	kps map[string]*keyPackageState
	// kpsUnsaved is set while keypackages.json still holds KeyPackages
	// that were used (a save failed): the next flush writes it again.
	kpsUnsaved bool
	rooms      map[RoomID]*roomEntry
	// unloaded are rooms whose memory was discarded after a failed save
	// and whose file could not be read back (reloadRoomLocked), with why.
	unloaded map[RoomID]error
	cursor   int64
	// cursorOnDisk is the cursor file's value and cursorSaved when it was
	// written: the file may lag behind cursor (flushLocked).
	cursorOnDisk int64
	cursorSaved  time.Time
	// knownDevices is the user's device list as last reconciled with the
	// rooms (sorted names).
	knownDevices []string

	events  *eventQueue
	running atomic.Bool
	// sender sends messages over Run's stream while it is connected.
	sender atomic.Pointer[streamSender]
	closed atomic.Bool
	// devicesIncomplete is set while one of the user's devices could not
	// be added to a room yet (it had no KeyPackages), so Run tries again.
	devicesIncomplete atomic.Bool
}

// roomEntry is one room's group and its saved record.
type roomEntry struct {
	st *roomState
	g  *mls.Group // nil once removed
	// tree is the hash of the tree file on disk ("" for none yet): a save
	// writes the tree only when the group's differs.
	tree string
}

// Register makes a new device for the account that enrollmentCode belongs
// to, on the provider at serverURL, and keeps its state in dir (created if
// needed; it must not already hold a device). It makes the device's auth
// key and MLS signature key, registers the device, signs in, obtains the
// device's X.509 credential and uploads KeyPackages.
//
// The device's keys are saved before the provider hears of them, so an
// interrupted Register can be finished by Open on the same directory.
func Register(ctx context.Context, serverURL, enrollmentCode, deviceName, dir string, opts Options) (*Client, error) {
	opts.fill()
	st := store{dir: dir}
	if st.hasDevice() {
		return nil, fmt.Errorf("%w: %s", ErrStateExists, dir)
	}
	if err := st.init(); err != nil {
		return nil, err
	}
	a, err := newAPI(serverURL, opts.HTTPClient)
	if err != nil {
		return nil, err
	}
	suite, err := mls.SuiteFor(opts.Suite)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	var info providerInfo
	if err := a.do(ctx, http.MethodGet, "/v1/provider", nil, "", nil, &info); err != nil {
		return nil, err
	}
	if info.Domain == "" {
		return nil, errors.New("client: provider reports no domain")
	}
	if len(info.CipherSuites) > 0 && !containsSuite(info.CipherSuites, opts.Suite) {
		return nil, fmt.Errorf("client: provider does not support cipher suite %v", opts.Suite)
	}
	authPub, authKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	sig, err := suite.GenerateSignatureKey()
	if err != nil {
		return nil, err
	}
	dev := &deviceState{
		Domain:        info.Domain,
		Device:        deviceName,
		AuthKey:       authKey.Seed(),
		Suite:         uint16(opts.Suite),
		SignatureKey:  sig.Bytes(),
		CACertificate: info.CACertificate,
	}
	if err := st.saveDevice(dev); err != nil {
		return nil, err
	}
	var reg struct {
		User struct {
			Handle string `json:"handle"`
		} `json:"user"`
		Device struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"device"`
	}
	req := map[string]any{"enrollment_code": enrollmentCode, "device_name": deviceName, "auth_key": []byte(authPub)}
	if err := a.do(ctx, http.MethodPost, "/v1/devices", nil, "", req, &reg); err != nil {
		// The provider refused: nothing refers to these keys, so the
		// directory may be used again.
		var ae *APIError
		if errors.As(err, &ae) {
			st.removeDevice()
		}
		return nil, fmt.Errorf("client: register device: %w", err)
	}
	dev.User, dev.DeviceID = reg.User.Handle, reg.Device.ID
	if reg.Device.Name != "" {
		dev.Device = reg.Device.Name
	}
	if err := st.saveDevice(dev); err != nil {
		return nil, err
	}
	return open(ctx, a, st, dev, opts)
}

func containsSuite(list []uint16, s mls.CipherSuite) bool {
	for _, x := range list {
		if x == uint16(s) {
			return true
		}
	}
	return false
}

// Open loads the device kept in dir and signs in to its provider at
// serverURL. It finishes what an interrupted Register left undone and
// resends a commit whose outcome a crash left unknown.
func Open(ctx context.Context, serverURL, dir string, opts Options) (*Client, error) {
	opts.fill()
	st := store{dir: dir}
	dev, err := st.loadDevice()
	if err != nil {
		return nil, err
	}
	if err := st.init(); err != nil {
		return nil, err
	}
	st.cleanTemp()
	a, err := newAPI(serverURL, opts.HTTPClient)
	if err != nil {
		return nil, err
	}
	return open(ctx, a, st, dev, opts)
}

// open builds the Client from saved state and brings the device up to date
// with the provider.
func open(ctx context.Context, a *api, st store, dev *deviceState, opts Options) (*Client, error) {
	c, err := restore(a, st, dev, opts)
	if err != nil {
		return nil, err
	}
	if err := c.setUp(ctx); err != nil {
		c.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return nil, err
	}
	return c, nil
}

// restore builds the Client from saved state alone, without the network:
// everything read from the state directory is checked here.
func restore(a *api, st store, dev *deviceState, opts Options) (*Client, error) {
	suite, err := mls.SuiteFor(mls.CipherSuite(dev.Suite))
	if err != nil {
		return nil, fmt.Errorf("client: device.json: %w", err)
	}
	if len(dev.AuthKey) != ed25519.SeedSize {
		return nil, errors.New("client: device.json: auth key is not an Ed25519 seed")
	}
	signer, err := suite.ParseSignaturePrivateKey(dev.SignatureKey)
	if err != nil {
		return nil, fmt.Errorf("client: device.json: %w", err)
	}
	a.authKey = ed25519.NewKeyFromSeed(dev.AuthKey)
	a.domain = dev.Domain
	c := &Client{
		opts:   opts,
		log:    opts.Logger,
		store:  st,
		api:    a,
		suite:  suite,
		dev:    dev,
		signer: signer,
		kps:    map[string]*keyPackageState{},
		rooms:  map[RoomID]*roomEntry{},
	}
	if err := c.loadState(); err != nil {
		return nil, err
	}
	// The queue's goroutine starts only for a state that loaded, so a
	// refused state leaves nothing running.
	c.events = newEventQueue()
	return c, nil
}

// loadState reads KeyPackages, the cursor and every room from disk.
func (c *Client) loadState() error {
	var err error
	if c.verifier, err = newVerifier(c.suite, c.dev.Domain, c.dev.CACertificate, c.opts.TrustAnchors); err != nil {
		return err
	}
	c.verifier.now = c.now
	if len(c.dev.Credential) > 0 {
		if err := mls.Unmarshal(c.dev.Credential, &c.cred); err != nil {
			return fmt.Errorf("client: device.json: credential: %w", err)
		}
	}
	kps, err := c.store.loadKeyPackages()
	if err != nil {
		return err
	}
	now := uint64(c.now().Unix()) // #nosec G115 -- the clock is after 1970
	for i := range kps {
		// Expired KeyPackages can no longer be used to join (a joiner
		// must refuse them), so their keys are dropped.
		if kps[i].NotAfter != 0 && kps[i].NotAfter < now {
			continue
		}
		c.kps[hex.EncodeToString(kps[i].Ref)] = &kps[i]
	}
	if c.cursor, err = c.store.loadCursor(); err != nil {
		return err
	}
	c.cursorOnDisk = c.cursor
	rooms, err := c.store.loadRooms()
	if err != nil {
		return err
	}
	for id, st := range rooms {
		r := &roomEntry{st: st, tree: st.Tree}
		if !st.Removed {
			if r.g, err = c.restoreGroup(st); err != nil {
				return fmt.Errorf("client: room %s: %w", id, err)
			}
		}
		c.rooms[id] = r
	}
	return nil
}

// setUp signs in and completes the device: who it is (after a Register
// interrupted before its answer was saved), its credential, its
// KeyPackages; then it resolves commits a crash left pending.
func (c *Client) setUp(ctx context.Context) error {
	if _, err := c.signIn(ctx); err != nil {
		return err
	}
	if c.dev.User == "" {
		var me struct {
			User struct {
				Handle string `json:"handle"`
			} `json:"user"`
			Device struct {
				ID   int64  `json:"id"`
				Name string `json:"name"`
			} `json:"device"`
		}
		if err := c.call(ctx, http.MethodGet, "/v1/me", nil, nil, &me); err != nil {
			return err
		}
		c.mu.Lock()
		c.dev.User, c.dev.DeviceID, c.dev.Device = me.User.Handle, me.Device.ID, me.Device.Name
		err := c.store.saveDevice(c.dev)
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if len(c.dev.Credential) == 0 {
		if err := c.fetchCredential(ctx); err != nil {
			return err
		}
	}
	if err := c.refreshPartners(ctx); err != nil {
		return err
	}
	if err := c.checkKeyPackages(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	b := newBatch()
	for _, r := range c.rooms {
		if r.st.Pending != nil {
			if err := c.resolvePendingLocked(ctx, r, b); err != nil {
				c.log.Warn("pending commit unresolved", "room", r.st.Room, "err", err)
			}
		}
	}
	err := c.flushLocked(b)
	c.mu.Unlock()
	c.events.push(b.events...)
	return err
}

// refreshPartners learns the provider's partner providers and their CAs,
// to check the credentials of their users. Anchors the application gave
// in Options.TrustAnchors take precedence over the provider's.
func (c *Client) refreshPartners(ctx context.Context) error {
	var info providerInfo
	if err := c.api.do(ctx, http.MethodGet, "/v1/provider", nil, "", nil, &info); err != nil {
		return fmt.Errorf("client: provider info: %w", err)
	}
	anchors := map[string]*x509.Certificate{}
	for _, p := range info.Partners {
		if p.Domain == c.dev.Domain {
			continue
		}
		ca, err := x509.ParseCertificate(p.CACertificate)
		if err != nil {
			c.log.Warn("partner CA certificate does not parse", "partner", p.Domain, "err", err)
			continue
		}
		anchors[p.Domain] = ca
	}
	for d, ca := range c.opts.TrustAnchors {
		anchors[d] = ca
	}
	v, err := newVerifier(c.suite, c.dev.Domain, c.dev.CACertificate, anchors)
	if err != nil {
		// A bad partner entry must not lock the device out of its own
		// provider: keep what was trusted before.
		c.log.Warn("partner trust anchors refused", "err", err)
		return nil
	}
	// The verifier is swapped in place (under its own lock): code that
	// holds it, with or without c.mu, sees the old anchors or the new.
	c.verifier.replace(v)
	return nil
}

// fetchCredential asks the provider for the device's X.509 credential.
func (c *Client) fetchCredential(ctx context.Context) error {
	var resp struct {
		Credential []byte `json:"credential"`
		DeviceURI  string `json:"device_uri"`
		UserURI    string `json:"user_uri"`
	}
	req := map[string]any{"cipher_suite": c.dev.Suite, "signature_key": c.signer.PublicKey()}
	if err := c.call(ctx, http.MethodPost, "/v1/me/credentials", nil, req, &resp); err != nil {
		return fmt.Errorf("client: credential: %w", err)
	}
	var cred mls.Credential
	if err := mls.Unmarshal(resp.Credential, &cred); err != nil {
		return fmt.Errorf("client: credential from provider: %w", err)
	}
	m, err := c.verifier.check(&cred, c.signer.PublicKey())
	if err != nil {
		return fmt.Errorf("client: credential from provider: %w", err)
	}
	if m.Domain != c.dev.Domain || m.User != c.dev.User {
		return fmt.Errorf("%w: provider issued a credential for %s", ErrCredential, m.DeviceURI())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cred = cred
	c.dev.Credential, c.dev.DeviceURI, c.dev.UserURI = resp.Credential, resp.DeviceURI, resp.UserURI
	return c.store.saveDevice(c.dev)
}

// Close stops the client taking in events. Events already received are
// still delivered on the Events channel, which is closed after the last
// of them: they are saved as processed, so the provider will not send
// them again, and dropping them would lose them. An application should
// therefore read Events until the channel is closed. Close does not end
// the provider session.
func (c *Client) Close() error {
	// Under c.mu, so that no batch of deliveries is half applied: one that
	// started finishes and hands its events over first.
	c.mu.Lock()
	already := c.closed.Swap(true)
	if !already && c.cursor > c.cursorOnDisk {
		// The cursor file may lag behind (flushLocked); a restart
		// should begin where this device stopped.
		if err := c.store.saveCursor(c.cursor); err != nil {
			c.log.Warn("saving the cursor", "err", err)
		}
	}
	c.mu.Unlock()
	if already {
		return nil
	}
	c.events.close()
	c.api.close()
	return nil
}

// Events returns the channel on which the client delivers what it
// received, in order. It is closed by Close. Events queue up in memory
// while the application does not read them, so that receiving never waits
// for the application.
func (c *Client) Events() <-chan Event { return c.events.out }

// User returns the device's user handle.
func (c *Client) User() string { return c.dev.User }

// Device returns the device's name.
func (c *Client) Device() string { return c.dev.Device }

// Domain returns the domain of the device's provider.
func (c *Client) Domain() string { return c.dev.Domain }

// Rooms lists the rooms this device is in.
func (c *Client) Rooms() []RoomID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []RoomID
	for id, r := range c.rooms {
		if !r.st.Removed {
			out = append(out, id)
		}
	}
	return out
}

// Members returns the users of a room as this device's group state has
// them (handles of this provider's users, handle@domain for others).
func (c *Client) Members(room RoomID) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.roomLocked(room)
	if err != nil {
		return nil, err
	}
	return sortedUsers(c.usersOf(r.g)), nil
}

// Epoch returns the room's MLS epoch as this device sees it.
func (c *Client) Epoch(room RoomID) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.roomLocked(room)
	if err != nil {
		return 0, err
	}
	return r.g.Epoch(), nil
}

func (c *Client) roomLocked(id RoomID) (*roomEntry, error) {
	if err := c.loadSetAsideLocked(id); err != nil {
		return nil, err
	}
	r, ok := c.rooms[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownRoom, id)
	}
	if r.st.Removed {
		return nil, fmt.Errorf("%w: %s", ErrRemoved, id)
	}
	return r, nil
}

// groupConfig is this device's local MLS choices, given again whenever a
// group is restored (they are not part of the saved state).
func (c *Client) groupConfig() mls.GroupConfig {
	return mls.GroupConfig{
		// Handshakes stay PublicMessages so the hub can enforce the
		// room policy (docs/api.md).
		EncryptHandshake: false,
		// Application messages are padded so that their length says less
		// about their content.
		PaddingBlock: 32,
		Now:          func() uint64 { return uint64(c.now().Unix()) }, // #nosec G115 -- the clock is after 1970
	}
}

// now is the device's wall clock (Options.Now).
func (c *Client) now() time.Time {
	if c.opts.Now == nil { // a Client made without Register or Open
		return clock.Now()
	}
	return c.opts.Now()
}

// signIn gets a fresh session token.
func (c *Client) signIn(ctx context.Context) (string, error) {
	tok, err := c.api.signIn(ctx)
	if err != nil {
		return "", err
	}
	c.tokenMu.Lock()
	c.api.token = tok
	c.tokenMu.Unlock()
	return tok, nil
}

// token returns the current session token, signing in if there is none.
func (c *Client) token(ctx context.Context) (string, error) {
	c.tokenMu.Lock()
	tok := c.api.token
	c.tokenMu.Unlock()
	if tok != "" {
		return tok, nil
	}
	return c.signIn(ctx)
}

// call makes an authenticated request. An expired session is renewed and
// the request made once more.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any) error {
	tok, err := c.token(ctx)
	if err != nil {
		return err
	}
	err = c.api.do(ctx, method, path, q, tok, in, out)
	if !errors.Is(err, ErrUnauthenticated) {
		return err
	}
	if tok, err = c.signIn(ctx); err != nil {
		return err
	}
	return c.api.do(ctx, method, path, q, tok, in, out)
}

// newClientID makes an idempotency key for a POST to a room: a random
// UUID (version 4).
func newClientID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// roomMatchesGroup reports whether a room ID is the base64url encoding of
// the group ID, so that a provider cannot pass one group off as another
// room.
func roomMatchesGroup(id RoomID, groupID []byte) bool {
	return string(id) == base64.RawURLEncoding.EncodeToString(groupID) ||
		string(id) == base64.URLEncoding.EncodeToString(groupID)
}

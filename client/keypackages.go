package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
)

// checkKeyPackages makes sure the provider has KeyPackages of this device
// to hand out: a full batch and a last-resort one when the device has none
// yet (a new device), another batch when the provider's stock is below its
// low watermark.
func (c *Client) checkKeyPackages(ctx context.Context) error {
	c.mu.Lock()
	hasLastResort := false
	for _, kp := range c.kps {
		hasLastResort = hasLastResort || (kp.LastResort && kp.Uploaded)
	}
	c.mu.Unlock()
	if !hasLastResort {
		return c.uploadKeyPackages(ctx, c.opts.KeyPackageBatch, true)
	}
	var stock struct {
		Available    map[string]int `json:"available"`
		LowWatermark int            `json:"low_watermark"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/me/keypackages", nil, nil, &stock); err != nil {
		return err
	}
	if stock.Available[strconv.Itoa(int(c.dev.Suite))] < max(stock.LowWatermark, 1) {
		return c.uploadKeyPackages(ctx, c.opts.KeyPackageBatch, false)
	}
	return nil
}

// uploadKeyPackages makes n KeyPackages (and a last-resort one if asked)
// and uploads them. Their private keys are saved first: a KeyPackage the
// provider hands out whose keys the device lost is a Welcome that can
// never be opened.
func (c *Client) uploadKeyPackages(ctx context.Context, n int, lastResort bool) error {
	c.mu.Lock()
	var fresh []*keyPackageState
	var last *keyPackageState
	for i := 0; i < n+1; i++ {
		lr := i == n
		if lr && !lastResort {
			break
		}
		kp, err := c.newKeyPackage(lr)
		if err != nil {
			c.mu.Unlock()
			return err
		}
		c.kps[hex.EncodeToString(kp.Ref)] = kp
		if lr {
			last = kp
		} else {
			fresh = append(fresh, kp)
		}
	}
	err := c.saveKeyPackagesLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	req := struct {
		KeyPackages [][]byte `json:"key_packages"`
		LastResort  []byte   `json:"last_resort,omitempty"`
	}{KeyPackages: [][]byte{}}
	for _, kp := range fresh {
		req.KeyPackages = append(req.KeyPackages, kp.KeyPackage)
	}
	if last != nil {
		req.LastResort = last.KeyPackage
	}
	if err := c.call(ctx, http.MethodPost, "/v1/me/keypackages", nil, req, nil); err != nil {
		return fmt.Errorf("client: upload key packages: %w", err)
	}
	if last != nil {
		// Only now does the provider hold it; until then a failed upload
		// must be retried with a new last-resort KeyPackage.
		c.mu.Lock()
		last.Uploaded = true
		err := c.saveKeyPackagesLocked()
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
	c.log.Debug("uploaded key packages", "count", len(fresh), "last_resort", last != nil)
	return nil
}

// newKeyPackage makes one KeyPackage of the device. c.mu must be held (it
// reads the credential).
func (c *Client) newKeyPackage(lastResort bool) (*keyPackageState, error) {
	life := mls.DefaultLifetime(c.now()) // the device's clock, not the process's
	kp, err := mls.NewKeyPackage(c.suite, c.signer, c.cred, mls.KeyPackageOptions{LastResort: lastResort, Lifetime: &life})
	if err != nil {
		return nil, err
	}
	initKey, err := kp.InitKey.Bytes()
	if err != nil {
		return nil, err
	}
	encKey, err := kp.EncryptionKey.Bytes()
	if err != nil {
		return nil, err
	}
	msg := &mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp.KeyPackage}
	return &keyPackageState{
		Ref:           kp.KeyPackage.Ref(c.suite),
		KeyPackage:    mls.Marshal(msg),
		InitKey:       initKey,
		EncryptionKey: encKey,
		LastResort:    lastResort,
		NotAfter:      kp.KeyPackage.LeafNode.Lifetime.NotAfter,
	}, nil
}

// saveKeyPackagesLocked writes every kept KeyPackage, in a stable order so
// that the file does not churn.
func (c *Client) saveKeyPackagesLocked() error {
	keys := make([]string, 0, len(c.kps))
	for k := range c.kps {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	list := make([]keyPackageState, 0, len(keys))
	for _, k := range keys {
		list = append(list, *c.kps[k])
	}
	return c.store.saveKeyPackages(list)
}

// keyPackagePrivate rebuilds the mls form of a kept KeyPackage.
func (c *Client) keyPackagePrivate(kp *keyPackageState) (*mls.KeyPackagePrivate, error) {
	msg, err := mls.ParseMLSMessage(kp.KeyPackage)
	if err != nil || msg.KeyPackage == nil {
		return nil, fmt.Errorf("client: kept key package: %v", err)
	}
	initKey, err := c.suite.ParseHPKEPrivateKey(kp.InitKey)
	if err != nil {
		return nil, err
	}
	encKey, err := c.suite.ParseHPKEPrivateKey(kp.EncryptionKey)
	if err != nil {
		return nil, err
	}
	return &mls.KeyPackagePrivate{KeyPackage: msg.KeyPackage, InitKey: initKey, EncryptionKey: encKey, SignatureKey: c.signer}, nil
}

// claimedKeyPackage is another device's KeyPackage from the directory,
// checked.
type claimedKeyPackage struct {
	kp *mls.KeyPackage
	m  member
}

// claimKeyPackages gets one KeyPackage of each of a user's devices and
// checks them: valid, of this device's suite, with a credential the
// provider's CA issued to that very user. A provider that hands out
// someone else's KeyPackage is caught here, before anyone is added.
func (c *Client) claimKeyPackages(ctx context.Context, room RoomID, handle string) ([]claimedKeyPackage, error) {
	var resp struct {
		KeyPackages []struct {
			Device     string `json:"device"`
			KeyPackage []byte `json:"key_package"`
		} `json:"key_packages"`
	}
	req := map[string]any{"cipher_suite": c.dev.Suite}
	user, domain := handle, c.dev.Domain
	if at := strings.LastIndexByte(handle, '@'); at >= 0 {
		user, domain = handle[:at], strings.ToLower(handle[at+1:])
	}
	if domain != c.dev.Domain {
		// A partner's user: the partner hands out key material only for
		// a request this device signs (MIMI keyMaterial).
		km, err := c.keyMaterialRequest(user, domain, federation.IdentifierURI(c.RoomURI(room)))
		if err != nil {
			return nil, err
		}
		req["key_material_request"] = km
	}
	if err := c.call(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(handle)+"/keypackages", nil, req, &resp); err != nil {
		return nil, fmt.Errorf("client: key packages of %s: %w", handle, err)
	}
	var out []claimedKeyPackage
	for _, e := range resp.KeyPackages {
		kp, m, err := c.checkClaimed(e.KeyPackage, user, domain)
		if err != nil {
			c.log.Warn("refused key package", "user", handle, "device", e.Device, "err", err)
			continue
		}
		out = append(out, claimedKeyPackage{kp: kp, m: m})
	}
	if len(out) == 0 && len(resp.KeyPackages) > 0 {
		return nil, fmt.Errorf("%w: no valid key package of %s", ErrCredential, handle)
	}
	return out, nil
}

func (c *Client) checkClaimed(data []byte, handle, domain string) (*mls.KeyPackage, member, error) {
	msg, err := mls.ParseMLSMessage(data)
	if err != nil {
		return nil, member{}, err
	}
	if msg.KeyPackage == nil {
		return nil, member{}, fmt.Errorf("%w: not a KeyPackage", mls.ErrInvalidKeyPackage)
	}
	kp := msg.KeyPackage
	if err := mls.ValidateKeyPackage(c.suite, kp, uint64(c.verifier.now().Unix())); err != nil { // #nosec G115 -- the clock is after 1970
		return nil, member{}, err
	}
	m, err := c.verifier.leafMember(&kp.LeafNode)
	if err != nil {
		return nil, member{}, err
	}
	if m.Domain != domain || m.User != handle {
		return nil, member{}, fmt.Errorf("%w: asked for %s@%s, got %s", ErrCredential, handle, domain, m.DeviceURI())
	}
	return kp, m, nil
}

// RoomURI names a room as MIMI does, mimi://HUB/r/ID, where HUB is the
// provider hosting it. Message IDs of the MIMI content format are
// computed over it.
func (c *Client) RoomURI(id RoomID) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	hub := c.dev.Domain
	if r := c.rooms[id]; r != nil && r.st.Hub != "" {
		hub = r.st.Hub
	}
	return "mimi://" + hub + "/r/" + string(id)
}

// UserURI is this device's user, mimi://DOMAIN/u/USER.
func (c *Client) UserURI() string { return "mimi://" + c.dev.Domain + "/u/" + c.dev.User }

// keyMaterialRequest is the MIMI KeyMaterialRequest for user@domain,
// signed by this device.
func (c *Client) keyMaterialRequest(user, domain string, room federation.IdentifierURI) ([]byte, error) {
	km := federation.KeyMaterialRequest{
		RoomID:                 room,
		Protocol:               federation.ProtocolMLS10,
		RequestingUser:         federation.IdentifierURI("mimi://" + c.dev.Domain + "/u/" + c.dev.User),
		TargetUser:             federation.IdentifierURI("mimi://" + domain + "/u/" + user),
		AcceptableCiphersuites: []mls.CipherSuite{c.suite.ID},
		RequesterCredential:    c.credential(),
	}
	if err := km.Sign(c.suite, c.signer); err != nil {
		return nil, fmt.Errorf("client: key material request: %w", err)
	}
	return mls.Marshal(&km), nil
}

// credential returns the device's current credential; SetDiscovery may
// replace it while the client runs.
func (c *Client) credential() mls.Credential {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cred
}

package provider

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

type credentialRequest struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	SignatureKey []byte `json:"signature_key"`
}

// issueCredential gives the device an X.509 MLS credential for one of its
// signature keys, naming its device and user URIs, and the user's phone
// number when the user has one (the operator verified it) and chose to be
// discoverable by it: every member of the device's groups reads it
// (docs/identity.md), so the same consent that lets partners find the user
// by number lets the certificate show it.
func (s *Server) issueCredential(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	var req credentialRequest
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	suite, err := mls.SuiteFor(mls.CipherSuite(req.CipherSuite))
	if err != nil {
		return errBadRequest("cipher_suite %d is not supported", req.CipherSuite)
	}
	if err := suite.CheckSignaturePublicKey(req.SignatureKey); err != nil {
		return errBadRequest("signature_key: %v", err)
	}
	phone := ""
	if c.user.DiscoverableByPhone {
		phone = c.user.Phone
	}
	cred, err := s.ca.IssueDeviceWithPhone(suite, req.SignatureKey, c.user.Handle, c.device.Name, phone, s.now().Add(s.cfg.CredentialTTL))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"credential": mls.Marshal(&cred),
		"device_uri": identity.DeviceURI(s.cfg.Domain, c.user.Handle, c.device.Name).String(),
		"user_uri":   identity.UserURI(s.cfg.Domain, c.user.Handle).String(),
	})
	return nil
}

type uploadRequest struct {
	KeyPackages [][]byte `json:"key_packages"`
	LastResort  []byte   `json:"last_resort"`
}

// maxKeyPackageBatch bounds one upload.
const maxKeyPackageBatch = 500

// uploadKeyPackages stores a batch of the device's KeyPackages after
// checking each one: valid, of a supported suite, and carrying a credential
// this provider issued to this very device.
func (s *Server) uploadKeyPackages(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	var req uploadRequest
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	if len(req.KeyPackages) > maxKeyPackageBatch {
		return errBadRequest("at most %d KeyPackages per upload", maxKeyPackageBatch)
	}
	var rows []store.KeyPackage
	check := func(i int, data []byte, lastResort bool) error {
		kp, suite, err := s.checkKeyPackage(c, data)
		if err != nil {
			return errBadRequest("key package %d: %v", i, err)
		}
		if lastResort {
			if _, ok := kp.Extensions.Find(mls.ExtLastResort); !ok {
				return errBadRequest("last_resort: the KeyPackage lacks the last_resort extension")
			}
		}
		rows = append(rows, store.KeyPackage{Ref: kp.Ref(suite), DeviceID: c.device.ID, Suite: uint16(suite.ID), Data: data, LastResort: lastResort})
		return nil
	}
	for i, data := range req.KeyPackages {
		if err := check(i, data, false); err != nil {
			return err
		}
	}
	if req.LastResort != nil {
		if err := check(len(req.KeyPackages), req.LastResort, true); err != nil {
			return err
		}
	}
	if err := s.store.AddKeyPackages(r.Context(), rows); errors.Is(err, store.ErrExists) {
		return errConflict("a KeyPackage of this upload is already stored")
	} else if err != nil {
		return err
	}
	avail, err := s.available(r, c.device.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"stored": len(rows), "available": avail})
	return nil
}

func (s *Server) checkKeyPackage(c *caller, data []byte) (*mls.KeyPackage, *mls.Suite, error) {
	m, err := mls.ParseMLSMessage(data)
	if err != nil {
		return nil, nil, err
	}
	if m.KeyPackage == nil {
		return nil, nil, fmt.Errorf("not a KeyPackage message")
	}
	kp := m.KeyPackage
	suite, err := mls.SuiteFor(kp.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	now := uint64(s.now().Unix()) // #nosec G115 -- the clock is after 1970
	if err := mls.ValidateKeyPackage(suite, kp, now); err != nil {
		return nil, nil, err
	}
	dev, err := s.verifier.Verify(suite, kp.LeafNode.Credential, kp.LeafNode.SignatureKey, s.now())
	if err != nil {
		return nil, nil, err
	}
	if want := identity.DeviceURI(s.cfg.Domain, c.user.Handle, c.device.Name); dev.URI != want {
		return nil, nil, fmt.Errorf("the credential names %s, not this device (%s)", dev.URI, want)
	}
	return kp, suite, nil
}

// available counts the device's fresh KeyPackages per supported suite.
func (s *Server) available(r *http.Request, deviceID int64) (map[string]int, error) {
	out := map[string]int{}
	for _, id := range mls.SupportedSuites {
		n, err := s.store.CountKeyPackages(r.Context(), deviceID, uint16(id))
		if err != nil {
			return nil, err
		}
		if n > 0 {
			out[strconv.Itoa(int(id))] = n
		}
	}
	return out, nil
}

func (s *Server) countKeyPackages(w http.ResponseWriter, r *http.Request) error {
	avail, err := s.available(r, callerOf(r).device.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"available": avail, "low_watermark": s.cfg.KeyPackageLowWatermark})
	return nil
}

type claimRequest struct {
	CipherSuite uint16 `json:"cipher_suite"`
	// KeyMaterialRequest, for a user of another provider (handle@domain),
	// is the MIMI KeyMaterialRequest the device signed: the partner
	// answers only a request its requester's device signed.
	KeyMaterialRequest []byte `json:"key_material_request"`
}

// claimKeyPackages hands out one KeyPackage for each device of a user.
func (s *Server) claimKeyPackages(w http.ResponseWriter, r *http.Request) error {
	var req claimRequest
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	if _, err := mls.SuiteFor(mls.CipherSuite(req.CipherSuite)); err != nil {
		return errBadRequest("cipher_suite %d is not supported", req.CipherSuite)
	}
	name := r.PathValue("handle")
	if at := strings.LastIndexByte(name, '@'); at >= 0 {
		if domain := strings.ToLower(name[at+1:]); domain != s.cfg.Domain {
			return s.claimRemote(w, r, name[:at], domain, req)
		}
		name = name[:at]
	}
	handle, err := NormalizeHandle(name)
	if err != nil {
		return errNotFound("no user %q", r.PathValue("handle"))
	}
	u, err := s.store.UserByHandle(r.Context(), handle)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("no user %q", handle)
	} else if err != nil {
		return err
	}
	// Consent (docs/consent.md): nothing for a user the target blocked.
	c := callerOf(r)
	me := s.userURI(c.user.Handle)
	if u.ID != c.user.ID {
		if blocked, err := s.blockedBy(r.Context(), u.ID, me); err != nil {
			return err
		} else if blocked {
			return errNoConsent("%s does not accept contact from this user", handle)
		}
	}
	devices, err := s.store.DevicesOfUser(r.Context(), u.ID)
	if err != nil {
		return err
	}
	type claimed struct {
		Device     string `json:"device"`
		KeyPackage []byte `json:"key_package"`
	}
	out := []claimed{}
	var claimErr error
	for _, d := range devices {
		// The same claim as for partners: never an expired KeyPackage.
		kp, err := s.claimFor(r, d, []mls.CipherSuite{mls.CipherSuite(req.CipherSuite)})
		if err != nil {
			// Earlier devices' KeyPackages are already used up: hand them
			// out rather than lose them; this device is left out.
			s.log.Error("claiming a KeyPackage", "device", d.ID, "err", err)
			claimErr = err
			continue
		}
		if kp == nil {
			continue // a device without KeyPackages cannot be added yet
		}
		out = append(out, claimed{Device: d.Name, KeyPackage: mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp})})
	}
	if len(out) == 0 {
		if claimErr != nil {
			return claimErr // nothing was handed out: a plain failure
		}
		return errNoKeyPackages(handle, req.CipherSuite)
	}
	if u.ID != c.user.ID {
		s.noteInvited(r.Context(), c.user.ID, s.userURI(u.Handle))
	}
	writeJSON(w, http.StatusOK, map[string]any{"key_packages": out})
	return nil
}

package federation

import (
	"bytes"
	"fmt"

	"github.com/switchboard-chat/switchboard/mls"
)

// POST /keyMaterial/{targetUser}: claim KeyPackages for every client of one
// user, on behalf of a requesting user, for use in one room.

// keyMaterialRequestLabel is the SignWithLabel label of the request.
const keyMaterialRequestLabel = "KeyMaterialRequestTBS"

// KeyMaterialRequest is the body of a keyMaterial request. The requester
// signs it (KeyMaterialRequestTBS is every field but the signature) with the
// signature key its credential binds.
type KeyMaterialRequest struct {
	Protocol       Protocol
	RequestingUser IdentifierURI
	TargetUser     IdentifierURI
	// RoomID is empty when the request is not made to add the target to a
	// room: the draft makes the field mandatory but only requires a room
	// when there is one.
	RoomID IdentifierURI
	// AcceptableCiphersuites is non-empty. Its first entry is the suite
	// whose signature scheme makes the signature (see SigningSuite).
	AcceptableCiphersuites []mls.CipherSuite
	RequiredCapabilities   mls.RequiredCapabilities
	RequesterSignatureKey  []byte
	RequesterCredential    mls.Credential
	Signature              []byte
}

// marshalTBS writes KeyMaterialRequestTBS: the request without its
// signature, which is a prefix of the request's encoding.
func (m *KeyMaterialRequest) marshalTBS(w *mls.Writer) {
	w.U8(uint8(m.Protocol))
	m.RequestingUser.MarshalMLS(w)
	m.TargetUser.MarshalMLS(w)
	m.RoomID.MarshalMLS(w)
	if m.Protocol == ProtocolMLS10 {
		w.Vector(func(w *mls.Writer) {
			for _, s := range m.AcceptableCiphersuites {
				w.U16(uint16(s))
			}
		})
		m.RequiredCapabilities.MarshalMLS(w)
		w.Opaque(m.RequesterSignatureKey)
		m.RequesterCredential.MarshalMLS(w)
	}
}

// TBS returns the encoding of KeyMaterialRequestTBS, the signed content.
func (m *KeyMaterialRequest) TBS() []byte {
	w := mls.NewWriter(256)
	m.marshalTBS(w)
	return w.Bytes()
}

// MarshalMLS writes the request.
func (m *KeyMaterialRequest) MarshalMLS(w *mls.Writer) {
	m.marshalTBS(w)
	if m.Protocol == ProtocolMLS10 {
		w.Opaque(m.Signature)
	}
}

// UnmarshalMLS reads a request. It checks the encoding, not the signature:
// call Verify.
func (m *KeyMaterialRequest) UnmarshalMLS(r *mls.Reader) {
	*m = KeyMaterialRequest{}
	m.Protocol = readEnum[Protocol](r)
	m.RequestingUser.UnmarshalMLS(r)
	m.TargetUser.UnmarshalMLS(r)
	m.RoomID.UnmarshalMLS(r)
	if r.Err() != nil {
		return
	}
	m.AcceptableCiphersuites = nil
	r.Each(func(r *mls.Reader) {
		m.AcceptableCiphersuites = append(m.AcceptableCiphersuites, mls.CipherSuite(r.U16()))
	})
	if r.Err() == nil && len(m.AcceptableCiphersuites) == 0 {
		failf(r, "KeyMaterialRequest lists no acceptable cipher suite")
	}
	m.RequiredCapabilities.UnmarshalMLS(r)
	m.RequesterSignatureKey = readBytes(r)
	m.RequesterCredential.UnmarshalMLS(r)
	m.Signature = readBytes(r)
}

// SigningSuite returns the suite whose signature scheme signs the request.
// The draft does not say which of the acceptable suites that is; Switchboard
// uses the first, the requester's preferred one, so that the verifier needs
// no other hint.
func (m *KeyMaterialRequest) SigningSuite() (*mls.Suite, error) {
	if len(m.AcceptableCiphersuites) == 0 {
		return nil, fmt.Errorf("%w: KeyMaterialRequest lists no acceptable cipher suite", ErrInvalidMessage)
	}
	return mls.SuiteFor(m.AcceptableCiphersuites[0])
}

// Sign signs the request with key under suite s, which must be its
// SigningSuite. An empty RequesterSignatureKey is set to key's public key;
// a different one is an error, since the signature would never verify.
func (m *KeyMaterialRequest) Sign(s *mls.Suite, key *mls.SignaturePrivateKey) error {
	want, err := m.SigningSuite()
	if err != nil {
		return err
	}
	if s.ID != want.ID {
		return fmt.Errorf("%w: signing with suite %v, the request's first acceptable suite is %v", ErrInvalidMessage, s.ID, want.ID)
	}
	if len(m.RequesterSignatureKey) == 0 {
		m.RequesterSignatureKey = key.PublicKey()
	} else if !bytes.Equal(m.RequesterSignatureKey, key.PublicKey()) {
		return fmt.Errorf("%w: the signing key is not the request's requesterSignatureKey", ErrInvalidMessage)
	}
	sig, err := s.SignWithLabel(key, keyMaterialRequestLabel, m.TBS())
	if err != nil {
		return err
	}
	m.Signature = sig
	return nil
}

// Verify checks the signature with RequesterSignatureKey under the
// SigningSuite. It does not check that RequesterCredential binds that key
// to RequestingUser: that is the trust layer's job.
func (m *KeyMaterialRequest) Verify() error {
	if m.Protocol != ProtocolMLS10 {
		return fmt.Errorf("%w: %v", ErrUnknownValue, m.Protocol)
	}
	s, err := m.SigningSuite()
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(m.RequesterSignatureKey, keyMaterialRequestLabel, m.TBS(), m.Signature); err != nil {
		return fmt.Errorf("KeyMaterialRequest signature: %w", err)
	}
	return nil
}

// KeyMaterialUserCode is the outcome of a keyMaterial request for the user.
type KeyMaterialUserCode uint8

// The user codes; see the draft for their semantics.
const (
	KeyMaterialSuccess              KeyMaterialUserCode = 0
	KeyMaterialPartialSuccess       KeyMaterialUserCode = 1
	KeyMaterialIncompatibleProtocol KeyMaterialUserCode = 2
	KeyMaterialNoCompatibleMaterial KeyMaterialUserCode = 3
	KeyMaterialUserUnknown          KeyMaterialUserCode = 4
	KeyMaterialNoConsent            KeyMaterialUserCode = 5
	KeyMaterialNoConsentForThisRoom KeyMaterialUserCode = 6
	KeyMaterialUserDeleted          KeyMaterialUserCode = 7
)

var keyMaterialUserCodeNames = []string{"success", "partialSuccess", "incompatibleProtocol",
	"noCompatibleMaterial", "userUnknown", "noConsent", "noConsentForThisRoom", "userDeleted"}

func (c KeyMaterialUserCode) known() bool { return int(c) < len(keyMaterialUserCodeNames) }

// String returns the draft's name for the value.
func (c KeyMaterialUserCode) String() string {
	return enumString("KeyMaterialUserCode", keyMaterialUserCodeNames, uint8(c))
}

// mayListClients reports whether a response with this code may enumerate
// clients: the draft forbids it for every code but these three.
func (c KeyMaterialUserCode) mayListClients() bool {
	return c == KeyMaterialSuccess || c == KeyMaterialPartialSuccess || c == KeyMaterialNoCompatibleMaterial
}

// KeyMaterialClientCode is the outcome of a keyMaterial request for one
// client of the user.
type KeyMaterialClientCode uint8

// The client codes.
const (
	ClientKeyMaterialSuccess   KeyMaterialClientCode = 0
	ClientKeyMaterialExhausted KeyMaterialClientCode = 1
	ClientNothingCompatible    KeyMaterialClientCode = 2
)

var keyMaterialClientCodeNames = []string{"success", "keyMaterialExhausted", "nothingCompatible"}

func (c KeyMaterialClientCode) known() bool { return int(c) < len(keyMaterialClientCodeNames) }

// String returns the draft's name for the value.
func (c KeyMaterialClientCode) String() string {
	return enumString("KeyMaterialClientCode", keyMaterialClientCodeNames, uint8(c))
}

// ClientKeyMaterial is one client's entry in a KeyMaterialResponse, in its
// MLS 1.0 form (the response's protocol; no other exists).
type ClientKeyMaterial struct {
	ClientStatus KeyMaterialClientCode
	ClientURI    IdentifierURI
	// KeyPackage is set for ClientKeyMaterialSuccess.
	KeyPackage *mls.KeyPackage
	// ClientCapabilities may be set for ClientNothingCompatible; a
	// provider can leave it out for privacy.
	ClientCapabilities *mls.Capabilities
}

// MarshalMLS writes the entry.
func (c *ClientKeyMaterial) MarshalMLS(w *mls.Writer) {
	w.U8(uint8(c.ClientStatus))
	c.ClientURI.MarshalMLS(w)
	switch c.ClientStatus {
	case ClientKeyMaterialSuccess:
		c.KeyPackage.MarshalMLS(w)
	case ClientNothingCompatible:
		w.Optional(c.ClientCapabilities != nil, func(w *mls.Writer) { c.ClientCapabilities.MarshalMLS(w) })
	}
}

// UnmarshalMLS reads an entry.
func (c *ClientKeyMaterial) UnmarshalMLS(r *mls.Reader) {
	c.ClientStatus = readEnum[KeyMaterialClientCode](r)
	c.ClientURI.UnmarshalMLS(r)
	c.KeyPackage, c.ClientCapabilities = nil, nil
	if r.Err() != nil {
		return
	}
	switch c.ClientStatus {
	case ClientKeyMaterialSuccess:
		c.KeyPackage = new(mls.KeyPackage)
		c.KeyPackage.UnmarshalMLS(r)
	case ClientNothingCompatible:
		if r.Optional() {
			c.ClientCapabilities = new(mls.Capabilities)
			c.ClientCapabilities.UnmarshalMLS(r)
		}
	}
}

// KeyMaterialResponse answers a KeyMaterialRequest.
type KeyMaterialResponse struct {
	Protocol   Protocol
	UserStatus KeyMaterialUserCode
	UserURI    IdentifierURI
	// Clients is empty unless UserStatus is success, partialSuccess or
	// noCompatibleMaterial.
	Clients []ClientKeyMaterial
}

// MarshalMLS writes the response.
func (m *KeyMaterialResponse) MarshalMLS(w *mls.Writer) {
	w.U8(uint8(m.Protocol))
	w.U8(uint8(m.UserStatus))
	m.UserURI.MarshalMLS(w)
	w.Vector(func(w *mls.Writer) {
		for i := range m.Clients {
			m.Clients[i].MarshalMLS(w)
		}
	})
}

// UnmarshalMLS reads a response, refusing one that lists clients where the
// draft says it MUST NOT.
func (m *KeyMaterialResponse) UnmarshalMLS(r *mls.Reader) {
	*m = KeyMaterialResponse{}
	m.Protocol = readEnum[Protocol](r)
	m.UserStatus = readEnum[KeyMaterialUserCode](r)
	m.UserURI.UnmarshalMLS(r)
	m.Clients = nil
	r.Each(func(r *mls.Reader) {
		var c ClientKeyMaterial
		c.UnmarshalMLS(r)
		m.Clients = append(m.Clients, c)
	})
	if r.Err() == nil && len(m.Clients) > 0 && !m.UserStatus.mayListClients() {
		failf(r, "KeyMaterialResponse with user status %v lists clients", m.UserStatus)
	}
}

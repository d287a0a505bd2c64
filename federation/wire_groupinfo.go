package federation

import (
	"bytes"
	"fmt"

	"github.com/switchboard-chat/switchboard/mls"
)

// POST /groupInfo/{roomId}: a provider fetches, for one of its clients, the
// GroupInfo and ratchet tree of a room's group so the client can join by
// external commit. The hub encrypts them to a key the request names and
// signs its response as the group's external sender.

const (
	groupInfoRequestLabel  = "GroupInfoRequestTBS"
	groupInfoResponseLabel = "GroupInfoResponseTBS"
	// groupInfoEncryptLabel is the EncryptWithLabel label of the hub's
	// answer; the room ID is the context.
	groupInfoEncryptLabel = "GroupInfo and ratchet_tree encryption"
)

// GroupInfoRequest is the body of a groupInfo request, signed by the
// requesting client.
//
// The draft's GroupInfoRequestTBS has `optional opaque joiningCode<V>` but
// GroupInfoRequest has `opaque joiningCode<V>`. Switchboard uses the
// latter in both, so that the TBS is the request without its signature
// like every other MLS TBS; an empty JoiningCode means none.
type GroupInfoRequest struct {
	Protocol               Protocol
	CipherSuite            mls.CipherSuite
	RequestingSignatureKey []byte
	RequestingCredential   mls.Credential
	// GroupInfoPublicKey is the HPKE key the hub encrypts its answer to.
	GroupInfoPublicKey []byte
	JoiningCode        []byte
	Signature          []byte
}

func (m *GroupInfoRequest) marshalTBS(w *mls.Writer) {
	w.U8(uint8(m.Protocol))
	if m.Protocol == ProtocolMLS10 {
		w.U16(uint16(m.CipherSuite))
		w.Opaque(m.RequestingSignatureKey)
		m.RequestingCredential.MarshalMLS(w)
		w.Opaque(m.GroupInfoPublicKey)
		w.Opaque(m.JoiningCode)
	}
}

// TBS returns the encoding of GroupInfoRequestTBS, the signed content.
func (m *GroupInfoRequest) TBS() []byte {
	w := mls.NewWriter(256)
	m.marshalTBS(w)
	return w.Bytes()
}

// MarshalMLS writes the request.
func (m *GroupInfoRequest) MarshalMLS(w *mls.Writer) {
	m.marshalTBS(w)
	if m.Protocol == ProtocolMLS10 {
		w.Opaque(m.Signature)
	}
}

// UnmarshalMLS reads a request; call Verify to check its signature.
func (m *GroupInfoRequest) UnmarshalMLS(r *mls.Reader) {
	*m = GroupInfoRequest{}
	m.Protocol = readEnum[Protocol](r)
	if r.Err() != nil {
		return
	}
	m.CipherSuite = mls.CipherSuite(r.U16())
	m.RequestingSignatureKey = readBytes(r)
	m.RequestingCredential.UnmarshalMLS(r)
	m.GroupInfoPublicKey = readBytes(r)
	m.JoiningCode = readBytes(r)
	m.Signature = readBytes(r)
}

// Sign signs the request with key under suite s, which must be the
// request's CipherSuite. An empty RequestingSignatureKey is set to key's.
func (m *GroupInfoRequest) Sign(s *mls.Suite, key *mls.SignaturePrivateKey) error {
	if s.ID != m.CipherSuite {
		return fmt.Errorf("%w: signing with suite %v, the request names %v", ErrInvalidMessage, s.ID, m.CipherSuite)
	}
	if len(m.RequestingSignatureKey) == 0 {
		m.RequestingSignatureKey = key.PublicKey()
	} else if !bytes.Equal(m.RequestingSignatureKey, key.PublicKey()) {
		return fmt.Errorf("%w: the signing key is not the request's requestingSignatureKey", ErrInvalidMessage)
	}
	sig, err := s.SignWithLabel(key, groupInfoRequestLabel, m.TBS())
	if err != nil {
		return err
	}
	m.Signature = sig
	return nil
}

// Verify checks the signature with RequestingSignatureKey under the
// request's CipherSuite. Whether the credential binds that key to someone
// allowed to join is for the hub's policy to decide.
func (m *GroupInfoRequest) Verify() error {
	if m.Protocol != ProtocolMLS10 {
		return fmt.Errorf("%w: %v", ErrUnknownValue, m.Protocol)
	}
	s, err := mls.SuiteFor(m.CipherSuite)
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(m.RequestingSignatureKey, groupInfoRequestLabel, m.TBS(), m.Signature); err != nil {
		return fmt.Errorf("GroupInfoRequest signature: %w", err)
	}
	return nil
}

// GroupInfoCode is the hub's answer to a GroupInfoRequest.
type GroupInfoCode uint8

// The GroupInfo codes (0 is reserved).
const (
	GroupInfoSuccess       GroupInfoCode = 1
	GroupInfoNotAuthorized GroupInfoCode = 2
	GroupInfoNoSuchRoom    GroupInfoCode = 3
)

var groupInfoCodeNames = []string{"reserved", "success", "notAuthorized", "noSuchRoom"}

func (c GroupInfoCode) known() bool { return c >= GroupInfoSuccess && c <= GroupInfoNoSuchRoom }

// String returns the draft's name for the value.
func (c GroupInfoCode) String() string {
	return enumString("GroupInfoCode", groupInfoCodeNames, uint8(c))
}

// PendingProposal is a proposal the hub accepted in the current epoch.
type PendingProposal struct {
	// Proposal is a PublicMessage proposal.
	Proposal        mls.MLSMessage
	HubAcceptedTime uint64
}

// MarshalMLS writes the pending proposal.
func (p *PendingProposal) MarshalMLS(w *mls.Writer) {
	p.Proposal.MarshalMLS(w)
	w.U64(p.HubAcceptedTime)
}

// UnmarshalMLS reads a pending proposal.
func (p *PendingProposal) UnmarshalMLS(r *mls.Reader) {
	p.Proposal.UnmarshalMLS(r)
	if r.Err() == nil {
		if ct, err := handshakeType(&p.Proposal); err != nil {
			r.Fail(fmt.Errorf("pending proposal: %w", err))
		} else if ct != mls.ContentProposal {
			failf(r, "pending proposal holds a %v", ct)
		}
	}
	p.HubAcceptedTime = r.U64()
}

// GroupInfoRatchetTreeTBE is what the hub encrypts to the requester: the
// GroupInfo (without an embedded ratchet_tree), the tree, and the epoch's
// pending proposals.
type GroupInfoRatchetTreeTBE struct {
	GroupInfo        mls.GroupInfo
	RatchetTree      RatchetTreeOption
	PendingProposals []PendingProposal
}

// MarshalMLS writes the plaintext.
func (t *GroupInfoRatchetTreeTBE) MarshalMLS(w *mls.Writer) {
	t.GroupInfo.MarshalMLS(w)
	t.RatchetTree.MarshalMLS(w)
	w.Vector(func(w *mls.Writer) {
		for i := range t.PendingProposals {
			t.PendingProposals[i].MarshalMLS(w)
		}
	})
}

// UnmarshalMLS reads the plaintext.
func (t *GroupInfoRatchetTreeTBE) UnmarshalMLS(r *mls.Reader) {
	*t = GroupInfoRatchetTreeTBE{}
	t.GroupInfo.UnmarshalMLS(r)
	t.RatchetTree.UnmarshalMLS(r)
	r.Each(func(r *mls.Reader) {
		var p PendingProposal
		p.UnmarshalMLS(r)
		t.PendingProposals = append(t.PendingProposals, p)
	})
}

// SealGroupInfo encrypts tbe to the requester's groupInfoPublicKey with
// EncryptWithLabel, the room ID (its bytes, as in room_id) as context.
func SealGroupInfo(s *mls.Suite, groupInfoPublicKey []byte, roomID IdentifierURI, tbe *GroupInfoRatchetTreeTBE) (mls.HPKECiphertext, error) {
	kem, ct, err := s.EncryptWithLabel(groupInfoPublicKey, groupInfoEncryptLabel, []byte(roomID), mls.Marshal(tbe))
	if err != nil {
		return mls.HPKECiphertext{}, fmt.Errorf("sealing GroupInfo: %w", err)
	}
	return mls.HPKECiphertext{KEMOutput: kem, Ciphertext: ct}, nil
}

// OpenGroupInfo decrypts and decodes what SealGroupInfo sealed.
func OpenGroupInfo(s *mls.Suite, priv mls.HPKEPrivateKey, roomID IdentifierURI, ct mls.HPKECiphertext) (*GroupInfoRatchetTreeTBE, error) {
	pt, err := s.DecryptWithLabel(priv, groupInfoEncryptLabel, []byte(roomID), ct.KEMOutput, ct.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("opening GroupInfo: %w", err)
	}
	tbe := new(GroupInfoRatchetTreeTBE)
	if err := mls.Unmarshal(pt, tbe); err != nil {
		return nil, fmt.Errorf("GroupInfoRatchetTreeTBE: %w", err)
	}
	return tbe, nil
}

// GroupInfoResponse answers a GroupInfoRequest. Only a successful response
// carries more than the status; it is signed by the hub as the external
// sender HubSender of the room's group.
type GroupInfoResponse struct {
	Protocol Protocol
	// RoomID is the draft's opaque room_id<V>; its encoding is that of an
	// IdentifierURI.
	RoomID IdentifierURI
	Status GroupInfoCode

	// Success only.
	CipherSuite               mls.CipherSuite
	HubSender                 mls.ExternalSender
	EncryptedGroupInfoAndTree mls.HPKECiphertext
	Signature                 []byte
}

// marshalTBS writes GroupInfoResponseTBS. The draft's TBS has no select on
// the status; a signature exists only on success, where the two agree.
func (m *GroupInfoResponse) marshalTBS(w *mls.Writer) {
	w.U8(uint8(m.Protocol))
	m.RoomID.MarshalMLS(w)
	w.U8(uint8(m.Status))
	if m.Protocol == ProtocolMLS10 {
		w.U16(uint16(m.CipherSuite))
		w.Opaque(m.HubSender.SignatureKey)
		m.HubSender.Credential.MarshalMLS(w)
		m.EncryptedGroupInfoAndTree.MarshalMLS(w)
	}
}

// TBS returns the encoding of GroupInfoResponseTBS, the signed content.
func (m *GroupInfoResponse) TBS() []byte {
	w := mls.NewWriter(512)
	m.marshalTBS(w)
	return w.Bytes()
}

// MarshalMLS writes the response.
func (m *GroupInfoResponse) MarshalMLS(w *mls.Writer) {
	if m.Status != GroupInfoSuccess {
		w.U8(uint8(m.Protocol))
		m.RoomID.MarshalMLS(w)
		w.U8(uint8(m.Status))
		return
	}
	m.marshalTBS(w)
	if m.Protocol == ProtocolMLS10 {
		w.Opaque(m.Signature)
	}
}

// UnmarshalMLS reads a response; call Verify to check a successful one.
func (m *GroupInfoResponse) UnmarshalMLS(r *mls.Reader) {
	*m = GroupInfoResponse{}
	m.Protocol = readEnum[Protocol](r)
	m.RoomID.UnmarshalMLS(r)
	m.Status = readEnum[GroupInfoCode](r)
	if r.Err() != nil || m.Status != GroupInfoSuccess {
		return
	}
	m.CipherSuite = mls.CipherSuite(r.U16())
	m.HubSender.SignatureKey = readBytes(r)
	m.HubSender.Credential.UnmarshalMLS(r)
	m.EncryptedGroupInfoAndTree.KEMOutput = readBytes(r)
	m.EncryptedGroupInfoAndTree.Ciphertext = readBytes(r)
	m.Signature = readBytes(r)
}

// Sign signs a successful response with the hub's external-sender key
// under suite s, which must be the response's CipherSuite; HubSender's
// signature key must be key's (an empty one is set).
func (m *GroupInfoResponse) Sign(s *mls.Suite, key *mls.SignaturePrivateKey) error {
	if m.Status != GroupInfoSuccess {
		return fmt.Errorf("%w: only a successful GroupInfoResponse is signed", ErrInvalidMessage)
	}
	if s.ID != m.CipherSuite {
		return fmt.Errorf("%w: signing with suite %v, the response names %v", ErrInvalidMessage, s.ID, m.CipherSuite)
	}
	if len(m.HubSender.SignatureKey) == 0 {
		m.HubSender.SignatureKey = key.PublicKey()
	} else if !bytes.Equal(m.HubSender.SignatureKey, key.PublicKey()) {
		return fmt.Errorf("%w: the signing key is not hub_sender's", ErrInvalidMessage)
	}
	sig, err := s.SignWithLabel(key, groupInfoResponseLabel, m.TBS())
	if err != nil {
		return err
	}
	m.Signature = sig
	return nil
}

// Verify checks a successful response's signature with HubSender's key.
// The caller must still check that HubSender is the hub's entry in the
// group's external_senders (the GroupInfo inside tells), or it has only
// learnt that someone signed the response.
func (m *GroupInfoResponse) Verify() error {
	if m.Status != GroupInfoSuccess {
		return fmt.Errorf("%w: GroupInfoResponse status %v carries no signature", ErrInvalidMessage, m.Status)
	}
	s, err := mls.SuiteFor(m.CipherSuite)
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(m.HubSender.SignatureKey, groupInfoResponseLabel, m.TBS(), m.Signature); err != nil {
		return fmt.Errorf("GroupInfoResponse signature: %w", err)
	}
	return nil
}

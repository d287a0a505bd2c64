package federation

import (
	"github.com/switchboard-chat/switchboard/mls"
)

// POST /update/{roomId}: a follower provider hands the hub a commit, or one
// or more proposals, for the room's MLS group.

// HandshakeBundle is a proposal or commit with what travels with it. For a
// commit: the Welcome for new members (if any), the new epoch's GroupInfo
// and its ratchet tree (neither the Welcome nor the GroupInfo embeds the
// tree). For a proposal: further proposals of the same sender.
//
// ProposalOrCommit must be a PublicMessage: see handshakeType.
type HandshakeBundle struct {
	ProposalOrCommit mls.MLSMessage

	// Commit only.
	Welcome     *mls.Welcome // nil when the commit adds no one
	GroupInfo   GroupInfoOption
	RatchetTree RatchetTreeOption

	// Proposal only: more proposals, each a PublicMessage.
	MoreProposals []mls.MLSMessage
}

// MarshalMLS writes the bundle. The fields written after the message
// depend on its content type, as the draft's select says.
func (b *HandshakeBundle) MarshalMLS(w *mls.Writer) {
	b.ProposalOrCommit.MarshalMLS(w)
	ct, err := handshakeType(&b.ProposalOrCommit)
	if err != nil {
		return // not a handshake: nothing the decoder would accept follows
	}
	switch ct {
	case mls.ContentCommit:
		w.Optional(b.Welcome != nil, func(w *mls.Writer) { b.Welcome.MarshalMLS(w) })
		b.GroupInfo.MarshalMLS(w)
		b.RatchetTree.MarshalMLS(w)
	case mls.ContentProposal:
		writeMessages(w, b.MoreProposals)
	}
}

// UnmarshalMLS reads a bundle.
func (b *HandshakeBundle) UnmarshalMLS(r *mls.Reader) {
	*b = HandshakeBundle{}
	b.ProposalOrCommit.UnmarshalMLS(r)
	if r.Err() != nil {
		return
	}
	ct, err := handshakeType(&b.ProposalOrCommit)
	if err != nil {
		r.Fail(err)
		return
	}
	switch ct {
	case mls.ContentCommit:
		if r.Optional() {
			b.Welcome = new(mls.Welcome)
			b.Welcome.UnmarshalMLS(r)
		}
		b.GroupInfo.UnmarshalMLS(r)
		b.RatchetTree.UnmarshalMLS(r)
	case mls.ContentProposal:
		b.MoreProposals = readProposals(r, "moreProposals")
	}
}

// UpdateRequest is the body of an update request. The draft selects on the
// room's protocol, which is not on the wire (the hub knows its room): for
// MLS 1.0 the body is exactly a HandshakeBundle.
type UpdateRequest struct {
	Bundle HandshakeBundle
}

// MarshalMLS writes the request.
func (u *UpdateRequest) MarshalMLS(w *mls.Writer) { u.Bundle.MarshalMLS(w) }

// UnmarshalMLS reads a request.
func (u *UpdateRequest) UnmarshalMLS(r *mls.Reader) { u.Bundle.UnmarshalMLS(r) }

// UpdateResponseCode is the hub's verdict on an UpdateRequest.
type UpdateResponseCode uint8

// The update response codes.
const (
	UpdateSuccess         UpdateResponseCode = 0
	UpdateWrongEpoch      UpdateResponseCode = 1
	UpdateNotAllowed      UpdateResponseCode = 2
	UpdateInvalidProposal UpdateResponseCode = 3
)

var updateResponseCodeNames = []string{"success", "wrongEpoch", "notAllowed", "invalidProposal"}

func (c UpdateResponseCode) known() bool { return int(c) < len(updateResponseCodeNames) }

// String returns the draft's name for the value.
func (c UpdateResponseCode) String() string {
	return enumString("UpdateResponseCode", updateResponseCodeNames, uint8(c))
}

// UpdateRoomResponse answers an UpdateRequest.
type UpdateRoomResponse struct {
	ResponseCode UpdateResponseCode
	// ErrorDescription is UTF-8 text (the draft's `string`, encoded as
	// opaque<V>), empty on success.
	ErrorDescription string
	// AcceptedTimestamp (success) is the hub's acceptance time in
	// milliseconds since the Unix epoch.
	AcceptedTimestamp uint64
	// CurrentEpoch (wrongEpoch) is the group's epoch at the hub.
	CurrentEpoch uint64
	// InvalidProposals (invalidProposal) are the ProposalRefs at fault.
	InvalidProposals [][]byte
}

// MarshalMLS writes the response.
func (u *UpdateRoomResponse) MarshalMLS(w *mls.Writer) {
	w.U8(uint8(u.ResponseCode))
	w.Opaque([]byte(u.ErrorDescription))
	switch u.ResponseCode {
	case UpdateSuccess:
		w.U64(u.AcceptedTimestamp)
	case UpdateWrongEpoch:
		w.U64(u.CurrentEpoch)
	case UpdateInvalidProposal:
		w.Vector(func(w *mls.Writer) {
			for _, ref := range u.InvalidProposals {
				w.Opaque(ref)
			}
		})
	}
}

// UnmarshalMLS reads a response.
func (u *UpdateRoomResponse) UnmarshalMLS(r *mls.Reader) {
	*u = UpdateRoomResponse{}
	u.ResponseCode = readEnum[UpdateResponseCode](r)
	u.ErrorDescription = readString(r, "errorDescription")
	if r.Err() != nil {
		return
	}
	switch u.ResponseCode {
	case UpdateSuccess:
		u.AcceptedTimestamp = r.U64()
	case UpdateWrongEpoch:
		u.CurrentEpoch = r.U64()
	case UpdateInvalidProposal:
		r.Each(func(r *mls.Reader) { u.InvalidProposals = append(u.InvalidProposals, readBytes(r)) })
	}
}

package federation

import (
	"github.com/switchboard-chat/switchboard/mls"
)

// POST /submitMessage/{roomId}: a follower provider hands the hub an
// application message of one of its users, for authorization and fanout.

// SubmitMessageRequest is the body of a submitMessage request.
type SubmitMessageRequest struct {
	Protocol Protocol
	// AppMessage is a PrivateMessage of content type application.
	AppMessage mls.MLSMessage
	// SendingURI is the sender's user URI, a participant of the room.
	SendingURI IdentifierURI
}

// MarshalMLS writes the request.
func (m *SubmitMessageRequest) MarshalMLS(w *mls.Writer) {
	w.U8(uint8(m.Protocol))
	if m.Protocol == ProtocolMLS10 {
		m.AppMessage.MarshalMLS(w)
		m.SendingURI.MarshalMLS(w)
	}
}

// UnmarshalMLS reads a request, refusing anything but an application
// PrivateMessage: handshakes go to the update endpoint.
func (m *SubmitMessageRequest) UnmarshalMLS(r *mls.Reader) {
	*m = SubmitMessageRequest{}
	m.Protocol = readEnum[Protocol](r)
	if r.Err() != nil {
		return
	}
	m.AppMessage.UnmarshalMLS(r)
	if r.Err() == nil && !isApplication(&m.AppMessage) {
		failf(r, "appMessage is a %s, not an application PrivateMessage", wireFormatName(m.AppMessage.WireFormat))
	}
	m.SendingURI.UnmarshalMLS(r)
}

// isApplication reports whether m is an application message, which MLS
// requires to be a PrivateMessage.
func isApplication(m *mls.MLSMessage) bool {
	return m.WireFormat == mls.WireFormatPrivateMessage && m.Private != nil &&
		m.Private.ContentType == mls.ContentApplication
}

// SubmitResponseCode is the hub's verdict on a SubmitMessageRequest.
type SubmitResponseCode uint8

// The submit response codes. The draft's response selects on `success`,
// which it names `accepted` in the enum; they are the same value.
const (
	SubmitAccepted    SubmitResponseCode = 0
	SubmitNotAllowed  SubmitResponseCode = 1
	SubmitEpochTooOld SubmitResponseCode = 2
)

var submitResponseCodeNames = []string{"accepted", "notAllowed", "epochTooOld"}

func (c SubmitResponseCode) known() bool { return int(c) < len(submitResponseCodeNames) }

// String returns the draft's name for the value.
func (c SubmitResponseCode) String() string {
	return enumString("SubmitResponseCode", submitResponseCodeNames, uint8(c))
}

// SubmitMessageResponse answers a SubmitMessageRequest.
type SubmitMessageResponse struct {
	Protocol   Protocol
	StatusCode SubmitResponseCode
	// AcceptedTimestamp (accepted) is the hub's acceptance time in
	// milliseconds since the Unix epoch.
	AcceptedTimestamp uint64
	// Frank (accepted) is the hub's frank, when the message asked for one.
	Frank *Frank
	// CurrentEpoch (epochTooOld) is the group's epoch at the hub.
	CurrentEpoch uint64
}

// MarshalMLS writes the response.
func (m *SubmitMessageResponse) MarshalMLS(w *mls.Writer) {
	w.U8(uint8(m.Protocol))
	if m.Protocol != ProtocolMLS10 {
		return
	}
	w.U8(uint8(m.StatusCode))
	switch m.StatusCode {
	case SubmitAccepted:
		w.U64(m.AcceptedTimestamp)
		writeOptionalFrank(w, m.Frank)
	case SubmitEpochTooOld:
		w.U64(m.CurrentEpoch)
	}
}

// UnmarshalMLS reads a response.
func (m *SubmitMessageResponse) UnmarshalMLS(r *mls.Reader) {
	*m = SubmitMessageResponse{}
	m.Protocol = readEnum[Protocol](r)
	if r.Err() != nil {
		return
	}
	m.StatusCode = readEnum[SubmitResponseCode](r)
	if r.Err() != nil {
		return
	}
	switch m.StatusCode {
	case SubmitAccepted:
		m.AcceptedTimestamp = r.U64()
		m.Frank = readOptionalFrank(r)
	case SubmitEpochTooOld:
		m.CurrentEpoch = r.U64()
	}
}

package federation

import (
	"github.com/switchboard-chat/switchboard/mls"
)

// POST /reportAbuse/{roomId}: a provider reports abusive messages to the
// room's hub, proving each with the hub's own frank. The response has no
// body.

// AbuseType classifies an abuse report. The draft defines no value but
// reserved(0) while a taxonomy is found, so 0 is the one value accepted
// here, meaning "unspecified"; any other is refused until the draft
// defines it.
type AbuseType uint8

// AbuseUnspecified is the draft's reserved(0), the only value it defines.
const AbuseUnspecified AbuseType = 0

func (t AbuseType) known() bool { return t == AbuseUnspecified }

// String returns the draft's name for the value.
func (t AbuseType) String() string { return enumString("AbuseType", []string{"unspecified"}, uint8(t)) }

// AbusiveMessage is one allegedly abusive message with the evidence the hub
// needs to recognise it: its frank and acceptance time.
type AbusiveMessage struct {
	// MessageContent is the decrypted message (for example a MIMI content
	// message), which the hub will re-frank.
	MessageContent    []byte
	Frank             Frank
	AcceptedTimestamp uint64
}

// MarshalMLS writes the message.
func (m *AbusiveMessage) MarshalMLS(w *mls.Writer) {
	w.Opaque(m.MessageContent)
	m.Frank.MarshalMLS(w)
	w.U64(m.AcceptedTimestamp)
}

// UnmarshalMLS reads a message.
func (m *AbusiveMessage) UnmarshalMLS(r *mls.Reader) {
	m.MessageContent = readBytes(r)
	m.Frank.UnmarshalMLS(r)
	m.AcceptedTimestamp = r.U64()
}

// AbuseReport is the body of a reportAbuse request.
type AbuseReport struct {
	// ReportingUser is empty for an anonymous report: the draft makes the
	// field mandatory but its content optional.
	ReportingUser    IdentifierURI
	AllegedAbuserURI IdentifierURI
	ReasonCode       AbuseType
	// Note is UTF-8 text for people, possibly empty.
	Note            string
	Messages        []AbusiveMessage
	AbuseExtensions AppDataDictionary
}

// MarshalMLS writes the report.
func (a *AbuseReport) MarshalMLS(w *mls.Writer) {
	a.ReportingUser.MarshalMLS(w)
	a.AllegedAbuserURI.MarshalMLS(w)
	w.U8(uint8(a.ReasonCode))
	w.Opaque([]byte(a.Note))
	w.Vector(func(w *mls.Writer) {
		for i := range a.Messages {
			a.Messages[i].MarshalMLS(w)
		}
	})
	a.AbuseExtensions.MarshalMLS(w)
}

// UnmarshalMLS reads a report.
func (a *AbuseReport) UnmarshalMLS(r *mls.Reader) {
	*a = AbuseReport{}
	a.ReportingUser.UnmarshalMLS(r)
	a.AllegedAbuserURI.UnmarshalMLS(r)
	a.ReasonCode = readEnum[AbuseType](r)
	a.Note = readString(r, "note")
	r.Each(func(r *mls.Reader) {
		var m AbusiveMessage
		m.UnmarshalMLS(r)
		a.Messages = append(a.Messages, m)
	})
	a.AbuseExtensions.UnmarshalMLS(r)
}

package federation

import (
	"github.com/switchboard-chat/switchboard/mls"
)

// POST /requestConsent/{targetUser} and POST /updateConsent/{requesterUser}:
// providers ask for, cancel, grant and revoke a user's consent to be
// contacted. Both bodies are a ConsentEntry; neither response has a body.

// ConsentOperation says what a ConsentEntry does. requestConsent carries
// request or cancel; updateConsent carries grant or revoke.
type ConsentOperation uint8

// The consent operations.
const (
	ConsentCancel  ConsentOperation = 0
	ConsentRequest ConsentOperation = 1
	ConsentGrant   ConsentOperation = 2
	ConsentRevoke  ConsentOperation = 3
)

var consentOperationNames = []string{"cancel", "request", "grant", "revoke"}

func (o ConsentOperation) known() bool { return int(o) < len(consentOperationNames) }

// String returns the draft's name for the value.
func (o ConsentOperation) String() string {
	return enumString("ConsentOperation", consentOperationNames, uint8(o))
}

// writeOptionalRoom writes optional<RoomId>, RoomId being an IdentifierUri
// (the draft leaves RoomId undefined; a room is named by its URI).
func writeOptionalRoom(w *mls.Writer, room IdentifierURI) {
	w.Optional(room != "", func(w *mls.Writer) { room.MarshalMLS(w) })
}

// readOptionalRoom reads optional<RoomId>. A present but empty room ID is
// refused, so that "" can stand for absent without losing a distinction.
func readOptionalRoom(r *mls.Reader) IdentifierURI {
	if !r.Optional() {
		return ""
	}
	var room IdentifierURI
	room.UnmarshalMLS(r)
	if r.Err() == nil && room == "" {
		failf(r, "present but empty roomId")
	}
	return room
}

// ConsentScope is what a consent decision is about: a requester, a target
// and, optionally, one room.
type ConsentScope struct {
	RequesterURI IdentifierURI
	TargetURI    IdentifierURI
	RoomID       IdentifierURI // empty: every room
}

// MarshalMLS writes the scope.
func (s *ConsentScope) MarshalMLS(w *mls.Writer) {
	s.RequesterURI.MarshalMLS(w)
	s.TargetURI.MarshalMLS(w)
	writeOptionalRoom(w, s.RoomID)
}

// UnmarshalMLS reads a scope.
func (s *ConsentScope) UnmarshalMLS(r *mls.Reader) {
	s.RequesterURI.UnmarshalMLS(r)
	s.TargetURI.UnmarshalMLS(r)
	s.RoomID = readOptionalRoom(r)
}

// ConsentEntry is the body of requestConsent and updateConsent.
type ConsentEntry struct {
	ConsentOperation ConsentOperation
	RequesterURI     IdentifierURI
	TargetURI        IdentifierURI
	RoomID           IdentifierURI // empty: every room
	// ClientKeyPackages (grant only) are the target's KeyPackages, so that
	// the requester can add the target at once; the list may be empty.
	ClientKeyPackages []mls.KeyPackage
	ConsentExtensions AppDataDictionary
}

// Scope returns the entry's ConsentScope.
func (e *ConsentEntry) Scope() ConsentScope {
	return ConsentScope{RequesterURI: e.RequesterURI, TargetURI: e.TargetURI, RoomID: e.RoomID}
}

// MarshalMLS writes the entry.
func (e *ConsentEntry) MarshalMLS(w *mls.Writer) {
	w.U8(uint8(e.ConsentOperation))
	e.RequesterURI.MarshalMLS(w)
	e.TargetURI.MarshalMLS(w)
	writeOptionalRoom(w, e.RoomID)
	if e.ConsentOperation == ConsentGrant {
		w.Vector(func(w *mls.Writer) {
			for i := range e.ClientKeyPackages {
				e.ClientKeyPackages[i].MarshalMLS(w)
			}
		})
	}
	e.ConsentExtensions.MarshalMLS(w)
}

// UnmarshalMLS reads an entry.
func (e *ConsentEntry) UnmarshalMLS(r *mls.Reader) {
	*e = ConsentEntry{}
	e.ConsentOperation = readEnum[ConsentOperation](r)
	e.RequesterURI.UnmarshalMLS(r)
	e.TargetURI.UnmarshalMLS(r)
	e.RoomID = readOptionalRoom(r)
	if r.Err() != nil {
		return
	}
	if e.ConsentOperation == ConsentGrant {
		r.Each(func(r *mls.Reader) {
			var kp mls.KeyPackage
			kp.UnmarshalMLS(r)
			e.ClientKeyPackages = append(e.ClientKeyPackages, kp)
		})
	}
	e.ConsentExtensions.UnmarshalMLS(r)
}

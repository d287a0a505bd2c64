package store

import "time"

// Consent (docs/consent.md): whom a local user has accepted or blocked,
// and the message requests waiting for the user's answer. Peers are user
// URIs (mimi://DOMAIN/u/HANDLE), of this provider's users or a partner's.

// ContactState is what a user decided about another user.
type ContactState string

const (
	// ContactNone: no decision (no row); SetContact with it removes one.
	ContactNone ContactState = ""
	// ContactAccepted: the peer may start conversations with the user
	// without a message request.
	ContactAccepted ContactState = "accepted"
	// ContactBlocked: the peer gets no key material of the user, and the
	// user's devices get no Welcome and no application message from them.
	ContactBlocked ContactState = "blocked"
)

// Valid says whether s is one of the three states.
func (s ContactState) Valid() bool {
	return s == ContactNone || s == ContactAccepted || s == ContactBlocked
}

// Contact is a user's decision about a peer.
type Contact struct {
	UserID  int64
	Peer    string // the peer's user URI
	State   ContactState
	Updated time.Time
}

// RequestState is where a message request stands.
type RequestState string

const (
	// RequestPending: waiting for the user's answer.
	RequestPending RequestState = "pending"
	// RequestDeclined: the user declined it (or blocked its peer); the
	// room is dropped for the user, who gets none of its messages.
	RequestDeclined RequestState = "declined"
)

// MessageRequest is a first contact from a peer the user has not
// accepted: a room the peer added the user to, or (RoomID empty) a MIMI
// requestConsent without a room.
type MessageRequest struct {
	UserID  int64
	Peer    string // the user URI of whoever asked
	RoomID  string // the room's ID; empty for a request without a room
	State   RequestState
	Created time.Time
}

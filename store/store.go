// Package store is the provider's system of record: accounts, devices,
// sessions, the KeyPackage directory, rooms with their ordered message logs,
// every device's durable delivery queue, and the federation outbox (requests
// to other providers, kept until delivered) with the inbound delivery IDs
// already seen. The provider talks to storage
// only through the Store interface; store/sqlstore implements it once in
// SQL, which store/sqlite (the embedded default) and store/postgres (for
// replicas) run on their databases, and store/storetest is the
// conformance suite every implementation must pass.
//
// The store never sees plaintext: message payloads are MLS messages,
// encrypted end to end or (for handshake messages) public by design.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors. Implementations return these (possibly wrapped) so the provider
// can map them to API error codes.
var (
	// ErrNotFound: no such user, device, session, room or key package.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a unique value (handle, phone, device name, auth key,
	// key package ref, room id) is already taken.
	ErrExists = errors.New("store: already exists")
	// ErrConflict: a room's state changed since the caller read it (another
	// commit won the epoch).
	ErrConflict = errors.New("store: conflict")
	// ErrExpired: an enrollment code or session that is no longer valid.
	ErrExpired = errors.New("store: expired")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrUnavailable: the storage server (PostgreSQL) could not be
	// reached or is restarting. Nothing is known to have changed; the
	// call may be retried once it is back, which needs nothing from the
	// caller (connections are re-established by themselves).
	ErrUnavailable = errors.New("store: unavailable, retry later")
	// ErrStorageFull: the disk (or the database's quota) is full, so the
	// change was not stored; nothing of it is kept and nothing was
	// acknowledged. Reads still work. The call may be retried once space
	// is freed, which needs no restart.
	ErrStorageFull = errors.New("store: storage full, retry later")
	// ErrKeyPackageUsed: a Welcome names a KeyPackage (not a last-resort
	// one) that an earlier stored Welcome already used. Nothing of the
	// submission was written.
	ErrKeyPackageUsed = errors.New("store: key package already used")
)

// User is an account on this provider.
type User struct {
	ID      int64
	Handle  string // unique, lower case
	Phone   string // E.164, empty if none; unique when set
	Created time.Time
	// DiscoverableByHandle and DiscoverableByPhone say whether the user
	// lets other providers' users find them by handle or by phone number
	// (docs/discovery.md). Both are false for a new user: nobody is
	// discoverable until they say so. CreateUser ignores them; they are
	// changed with SetDiscoverable only.
	DiscoverableByHandle bool
	DiscoverableByPhone  bool
	// Suspended is set by the operator (docs/abuse.md): the user's
	// devices can neither sign in nor use a session nor send. CreateUser
	// ignores it; SetSuspended changes it.
	Suspended bool
}

// ReachMode is whether a user may be reached from other providers: by
// nobody (ReachOff, every new user's), by the users of every partner
// provider (ReachAll), or by those of the partners the user chose
// (ReachSome).
type ReachMode string

const (
	ReachOff  ReachMode = "off"
	ReachAll  ReachMode = "all"
	ReachSome ReachMode = "some"
)

// Valid says whether m is one of the three modes.
func (m ReachMode) Valid() bool { return m == ReachOff || m == ReachAll || m == ReachSome }

// Reachability is a user's third-party reachability (docs/reachability.md):
// which partner providers may hand out the user's key material to their
// users and have rooms they host deliver to the user's devices.
type Reachability struct {
	Mode ReachMode
	// Partners are the allowed partner domains for ReachSome, sorted;
	// empty otherwise.
	Partners []string
}

// Allows says whether the partner provider domain may reach the user.
func (r Reachability) Allows(domain string) bool {
	switch r.Mode {
	case ReachAll:
		return true
	case ReachSome:
		for _, p := range r.Partners {
			if p == domain {
				return true
			}
		}
	}
	return false
}

// Device is one of a user's clients. It authenticates with AuthKey, an
// Ed25519 public key; no device secret is ever stored.
type Device struct {
	ID      int64
	UserID  int64
	Name    string // unique per user
	AuthKey []byte // Ed25519 public key, unique
	Created time.Time
}

// Enrollment is a one-time code that lets a new device join an account.
// Only a hash of the code is stored.
type Enrollment struct {
	CodeHash []byte
	UserID   int64
	Expires  time.Time
}

// Session is a device's bearer token, stored by hash.
type Session struct {
	TokenHash []byte
	DeviceID  int64
	Expires   time.Time
}

// KeyPackage is one KeyPackage in the directory. Ref is its KeyPackageRef;
// Data its MLSMessage encoding. A last-resort KeyPackage is handed out
// only when a device has no other, and is never used up.
type KeyPackage struct {
	Ref        []byte
	DeviceID   int64
	Suite      uint16
	Data       []byte
	LastResort bool
}

// Room is a room this provider keeps a log of. Either it hosts the room
// (Hub is empty: it is the room's hub), and then State is the hub's public
// group state (mls.PublicGroup.MarshalState) and Version increases with
// every accepted handshake message so that concurrent writers detect each
// other; or the room is hosted by the provider named in Hub and this is a
// follower's copy of its log, holding the messages the hub fanned out to
// this provider under the hub's sequence numbers, with no State and
// CreatorID 0.
type Room struct {
	ID        string
	Hub       string // the hosting provider's domain; empty when this provider hosts the room
	CreatorID int64  // user; 0 for a follower's copy
	Epoch     uint64
	Version   int64
	State     []byte
	Created   time.Time
	// LastSeq is the Seq of the last message of the room's log (0 when
	// the log is empty). It is read-only: CreateRoom ignores it.
	LastSeq int64
}

// RoomMember is a local user's role in a room. The provider derives
// membership from the MLS group; roles are its policy. Users of other
// providers have no row: they are plain members. In a follower's copy the
// rows list the local users in the room, as the hub last said.
type RoomMember struct {
	RoomID string
	UserID int64
	Role   Role
}

// Role is a user's power in a room.
type Role string

const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Kind says what a logged message is.
type Kind string

const (
	KindCommit      Kind = "commit"
	KindProposal    Kind = "proposal"
	KindApplication Kind = "application"
	KindWelcome     Kind = "welcome"
)

// Message is an entry of a room's log, in hub order.
type Message struct {
	RoomID       string
	Seq          int64 // position in the room's log, from 1
	ClientID     string
	SenderDevice int64  // the local sending device; 0 for a device of another provider
	Sender       string // the sending device's URI (mimi://DOMAIN/d/USER/DEVICE); empty in logs written before it was kept
	Kind         Kind
	Epoch        uint64
	Payload      []byte
	Created      time.Time
	// Frank is the hub's frank of an application message whose sender
	// asked for one (the federation.Frank encoding, opaque here); nil
	// otherwise. Accepted is the hub's acceptance time in milliseconds
	// since the Unix epoch, the number the frank signs; 0 in logs
	// written before it was kept.
	Frank    []byte
	Accepted int64
}

// Submission asks the store to append one message to a room's log and to
// queue it for delivery, atomically. A handshake message also moves the
// room's state: the store applies it only if the room is still at
// PrevVersion, else it returns ErrConflict and changes nothing.
type Submission struct {
	RoomID       string
	ClientID     string // the sender's idempotency key, unique per room
	SenderDevice int64  // 0 for a device of another provider
	Sender       string // the sending device's URI, stored as Message.Sender
	Kind         Kind
	Epoch        uint64 // the epoch the message was sent in
	Payload      []byte
	// Frank and Accepted are stored as Message.Frank and Message.Accepted
	// (a Welcome stored with a commit gets the same Accepted, no Frank).
	Frank    []byte
	Accepted int64

	// Seq, if not 0, is the message's place in the log: it must be
	// greater than the room's LastSeq, else ErrConflict and nothing is
	// written. A hub sets it to LastSeq+1, so that what it fans out
	// names the same Seq the store gives the message; a follower's copy
	// takes the hub's Seq, which may skip what the hub did not send it.
	// If 0, the message gets LastSeq+1.
	Seq int64

	// For handshake messages (commit, proposal): the room's new state.
	PrevVersion int64
	NewState    []byte
	NewEpoch    uint64
	// Members, if not nil, replaces the room's member list (after a commit).
	Members []RoomMember

	// Recipients are the devices whose queues get the message.
	Recipients []int64

	// KeyPackages, for a Welcome stored as the message itself (a
	// follower's copy of the hub's Welcome), are the refs of this
	// provider's KeyPackages it uses: marked used with it, atomically; a
	// ref an earlier Welcome used (a last-resort one excepted) is
	// ErrKeyPackageUsed and nothing is written. A repeat of the same
	// ClientID is a Duplicate, not a reuse.
	KeyPackages [][]byte

	// Welcome, if set, is stored in the same transaction, as the next
	// message of the log (kind welcome, ClientID + "/welcome"), queued for
	// its own recipients: a commit that adds members and the Welcome those
	// members need are accepted together or not at all.
	Welcome *Welcome

	// Outbound are requests to other providers (the room's followers)
	// stored in the outbox in the same transaction, so an accepted
	// message is never lost for remote members. A Duplicate or refused
	// submission stores none of them.
	Outbound []Outbound
}

// Welcome is the Welcome message of a commit and the devices it is for.
type Welcome struct {
	Payload    []byte
	Recipients []int64
	// KeyPackages are the refs of this provider's KeyPackages the Welcome
	// uses: marked welcomed with it, except a last-resort one. One that an
	// earlier Welcome used is ErrKeyPackageUsed, and then nothing of the
	// submission is written: two rooms racing for one KeyPackage cannot
	// both have it.
	KeyPackages [][]byte
}

// SubmitResult tells where a submission landed. Duplicate is set when the
// same ClientID was already accepted: nothing new was written and Seq is
// the original message's.
type SubmitResult struct {
	Seq       int64
	Duplicate bool
}

// Delivery is one entry of a device's queue: a message for it, in the
// order it was queued. Cursor increases strictly per device.
type Delivery struct {
	Cursor  int64
	Message Message
}

// Outbound is one request to another provider, waiting in the durable
// outbox until the destination has accepted it. Destination, Path and ID
// are required.
type Outbound struct {
	Destination string // the receiving provider's domain
	Kind        string // what the request is: "notify", "update", "submitMessage", "keyMaterial", ...
	Path        string // the request path to POST at the destination
	Body        []byte
	// ID is the delivery ID the receiver de-duplicates on (SeenInbound):
	// unique per destination, and the same on every retry.
	ID string
	// Header holds extra request headers sent with every attempt (nil
	// for none). Header names are in canonical form.
	Header map[string]string
}

// OutboundEntry is a queued Outbound with its delivery state.
type OutboundEntry struct {
	Outbound
	// Seq orders the outbox: it increases in the order entries were
	// stored and is never reused, so a stale Seq can never name a newer
	// entry.
	Seq       int64
	Attempts  int       // failed attempts so far
	NotBefore time.Time // no attempt before this; zero for a fresh entry
	LastError string    // why the last attempt failed
	Created   time.Time // when the entry was stored
}

// Attachment is an encrypted file a local device uploaded, kept for its
// recipients to download until it is trimmed (docs/attachments.md). Data
// is ciphertext: the key travels only inside the MLS-encrypted message
// that names the attachment.
type Attachment struct {
	ID      string // unguessable: whoever knows it may download the data
	OwnerID int64  // the uploading user
	Data    []byte
	Created time.Time
}

// FrankingKey is the hub's franking key material for one signature
// scheme (docs/abuse.md): the key pair that signs franks and the secret
// hub_key of server franks. Made on first use and kept for good, since
// every frank the hub ever made is checked with it.
type FrankingKey struct {
	Scheme     string // the signature scheme's name, such as "ed25519"
	PrivateKey []byte // mls.SignaturePrivateKey.Bytes
	PublicKey  []byte
	HubKey     []byte // 32 random bytes
	Created    time.Time
}

// Report states.
const (
	ReportOpen    = "open"
	ReportHandled = "handled"
)

// Report is a verified abuse report in the operator's queue
// (docs/abuse.md). Body is the MIMI AbuseReport encoding, with the
// reported messages the reporter chose to reveal.
type Report struct {
	ID            int64
	Created       time.Time
	Room          string // the room's URI
	Reporter      string // the reporting user's URI; empty if anonymous
	AllegedAbuser string // the alleged abuser's user URI
	Reason        uint8
	Note          string
	Body          []byte
	// From is where the report came from: "local" for one of this
	// provider's users, else the partner's domain.
	From string
	// DeliveryID is the partner's delivery ID of a forwarded report
	// (empty for a local one): AddReport refuses a second report with
	// the same From and DeliveryID as ErrExists, so a retry is queued
	// once.
	DeliveryID string
	// VerifiedBy says what this provider checked, for the operator.
	VerifiedBy string
	State      string // ReportOpen or ReportHandled
	Action     string // once handled: warn, suspend-user, suspend-partner, dismiss
	ActionNote string
	Handled    time.Time

	// Outbound are the requests that send the report on to other
	// providers, stored in the outbox in the same transaction as the
	// report (AddReport only; not read back).
	Outbound []Outbound
}

// Notice is a message from the operator to a local user, such as a
// warning after an abuse report.
type Notice struct {
	ID      int64
	UserID  int64
	Text    string
	Report  int64 // the report it answers, 0 if none
	Created time.Time
}

// Store is the provider's storage. All methods are safe for concurrent use.
// A method that returns without error has made its change durable.
//
// store/storetest pins down what these comments leave open; in short:
// a list method (DevicesOfUser, RoomMembers, RoomMessages, Deliveries) on
// an unknown user, room or device is ErrNotFound, and an empty list
// otherwise; a write that fails changes nothing; a write whose context
// ends before it returns may still have been applied, so callers retry
// with the same idempotency key (ClientID) or unique value.
type Store interface {
	// Accounts.
	CreateUser(ctx context.Context, handle, phone string) (User, error)
	UserByID(ctx context.Context, id int64) (User, error)
	UserByHandle(ctx context.Context, handle string) (User, error)
	UserByPhone(ctx context.Context, phone string) (User, error)
	// SetDiscoverable sets whether the user may be found by handle and by
	// phone number (User.DiscoverableByHandle, DiscoverableByPhone). An
	// unknown user is ErrNotFound. Setting the values a user already has
	// is not an error.
	SetDiscoverable(ctx context.Context, userID int64, byHandle, byPhone bool) error
	// Reachability returns whether, and by which partner providers, the
	// user may be reached (docs/reachability.md): ReachOff for a new
	// user. An unknown user is ErrNotFound.
	Reachability(ctx context.Context, userID int64) (Reachability, error)
	// SetReachability replaces the user's reachability: the mode and, for
	// ReachSome, the partner domains (stored as given, duplicates once;
	// for ReachOff and ReachAll the list is emptied and partners is
	// ignored). An unknown user is ErrNotFound; a mode other than the
	// three is an error that changes nothing.
	SetReachability(ctx context.Context, userID int64, mode ReachMode, partners []string) error

	// Devices and authentication.
	CreateEnrollment(ctx context.Context, e Enrollment) error
	// RegisterDevice uses up the enrollment code whose hash is given and
	// adds the device to its user, atomically. An unknown code is
	// ErrNotFound, an expired one ErrExpired.
	RegisterDevice(ctx context.Context, codeHash []byte, name string, authKey []byte, now time.Time) (Device, error)
	DeviceByID(ctx context.Context, id int64) (Device, error)
	DeviceByAuthKey(ctx context.Context, authKey []byte) (Device, error)
	DevicesOfUser(ctx context.Context, userID int64) ([]Device, error)
	CreateSession(ctx context.Context, s Session) error
	// SessionDevice returns the device of a live session.
	SessionDevice(ctx context.Context, tokenHash []byte, now time.Time) (Device, error)
	// LiveSession is SessionDevice with the session, whose Expires a
	// cache of signed-in sessions must honour.
	LiveSession(ctx context.Context, tokenHash []byte, now time.Time) (Session, Device, error)
	// DeleteSession ends a session; an unknown one is ErrNotFound.
	DeleteSession(ctx context.Context, tokenHash []byte) error

	// The KeyPackage directory.
	// AddKeyPackages adds all of kps or none (a ref already stored is
	// ErrExists). A last-resort package replaces the device's previous
	// one of the same suite.
	AddKeyPackages(ctx context.Context, kps []KeyPackage) error
	// ClaimKeyPackage hands out one of the device's KeyPackages of the
	// suite: a fresh one, used up by this call, or else its last-resort
	// one. It returns how many fresh ones remain.
	ClaimKeyPackage(ctx context.Context, deviceID int64, suite uint16) (KeyPackage, int, error)
	// KeyPackageDevice finds the device a handed-out (or still
	// stored) KeyPackage belongs to, to route a Welcome.
	KeyPackageDevice(ctx context.Context, ref []byte) (int64, error)
	// KeyPackageWelcomed reports whether a stored Welcome already named
	// the KeyPackage (Welcome.KeyPackages): a KeyPackage other than a
	// last-resort one is used once (RFC 9420, section 16.8).
	KeyPackageWelcomed(ctx context.Context, ref []byte) (bool, error)
	// CountKeyPackages counts the fresh ones; last resort does not count.
	CountKeyPackages(ctx context.Context, deviceID int64, suite uint16) (int, error)

	// Rooms.
	CreateRoom(ctx context.Context, r Room, members []RoomMember) error
	Room(ctx context.Context, id string) (Room, error)
	RoomMembers(ctx context.Context, id string) ([]RoomMember, error)
	// Submit appends a message to a room's log and queues it, durably,
	// in one transaction. A ClientID already in the room's log is a
	// Duplicate even if its PrevVersion is stale by now; only commits
	// and proposals are checked against and move Version; a recipient
	// named twice is queued once; an unknown recipient is ErrNotFound.
	Submit(ctx context.Context, s Submission) (SubmitResult, error)
	// MessageByClientID finds the message a sender submitted to a room
	// with this idempotency key, so a retry gets the first answer.
	MessageByClientID(ctx context.Context, roomID, clientID string) (Message, error)
	// RoomMessages reads a room's log after seq.
	RoomMessages(ctx context.Context, roomID string, after int64, limit int) ([]Message, error)

	// Delivery queues.
	// Deliveries returns up to limit entries of the device's queue after
	// cursor, oldest first.
	Deliveries(ctx context.Context, deviceID int64, after int64, limit int) ([]Delivery, error)
	// Ack removes the device's entries up to and including cursor.
	// Acking the same or an older cursor again is not an error.
	Ack(ctx context.Context, deviceID int64, cursor int64) error
	// TrimQueues removes queue entries older than before (for devices that
	// never came back) and returns how many were removed.
	TrimQueues(ctx context.Context, before time.Time) (int64, error)

	// The federation outbox. Entries for one destination are handed out
	// oldest first; the sender delivers the head entry before the next.
	// EnqueueOutbound stores all of out or none (an entry without a
	// Destination, Path or ID is an error). An entry whose (Destination,
	// ID) is still queued is skipped, so a retried call stores nothing
	// twice. Submission.Outbound stores entries with a room message.
	EnqueueOutbound(ctx context.Context, out []Outbound) error
	// OutboundDestinations lists, sorted, the destinations that have
	// queued entries: what a sender must resume after a restart.
	OutboundDestinations(ctx context.Context) ([]string, error)
	// NextOutbound returns the destination's oldest queued entry,
	// whatever its NotBefore, or ErrNotFound when there is none.
	NextOutbound(ctx context.Context, dest string) (OutboundEntry, error)
	// NextOutboundBatch returns up to limit (at least 1) of the
	// destination's oldest queued entries, oldest first, for one batched
	// request (docs/federation.md, "Batches"); ErrNotFound when there is
	// none.
	NextOutboundBatch(ctx context.Context, dest string, limit int) ([]OutboundEntry, error)
	// MarkOutboundFailed records a failed attempt on an entry: its
	// attempt count, when to try again and why it failed. An unknown
	// entry is ErrNotFound.
	MarkOutboundFailed(ctx context.Context, dest string, seq int64, attempts int, notBefore time.Time, lastError string) error
	// DeleteOutbound removes an entry once it is delivered (or given
	// up). An unknown entry, such as one already deleted, is ErrNotFound.
	DeleteOutbound(ctx context.Context, dest string, seq int64) error

	// Inbound de-duplication, for requests from other providers.
	// SeenInbound records the delivery ID from fromDomain at now and says
	// whether it had been recorded before; of concurrent calls for one
	// ID, exactly one answers false. A repeat moves the ID's time to now
	// (if later), so an ID a sender keeps retrying stays remembered.
	//
	// It commits on its own, not with the request's effect: a receiver
	// that records an ID and then fails to apply the request makes the
	// sender's retry look like a duplicate, and the request is lost. So
	// a receiver records an ID only once its effect can no longer fail,
	// or gives the effect an idempotency key of its own
	// (Submission.ClientID), which is better still: one transaction.
	SeenInbound(ctx context.Context, fromDomain, id string, now time.Time) (bool, error)
	// TrimInbound forgets IDs last seen before before and returns how
	// many. The window must outlast the senders' retries: a retry that
	// arrives after its ID is forgotten is applied again.
	TrimInbound(ctx context.Context, before time.Time) (int64, error)

	// Consent (docs/consent.md): contacts and message requests.
	//
	// Contact returns the user's decision about a peer (a user URI):
	// ContactNone when there is none. It does not check the user.
	Contact(ctx context.Context, userID int64, peer string) (ContactState, error)
	// SetContact records the user's own decision about a peer, with the
	// effects that go with it, in one transaction:
	//   - ContactAccepted: the peer's pending requests are removed;
	//   - ContactBlocked: the peer's pending requests become declined
	//     and the queue entries of their rooms, for the user's devices,
	//     are removed (as DeclineRequest);
	//   - ContactNone: the row is removed (unblock); requests untouched.
	// An unknown user is ErrNotFound; another state is an error that
	// changes nothing.
	SetContact(ctx context.Context, userID int64, peer string, state ContactState, now time.Time) error
	// AddContact makes the peer an accepted contact unless the user
	// decided otherwise already (a blocked peer stays blocked), removes
	// the peer's pending requests if it is accepted, and returns the
	// state now held. An unknown user is ErrNotFound.
	AddContact(ctx context.Context, userID int64, peer string, now time.Time) (ContactState, error)
	// Contacts lists the user's contacts in a state, by peer.
	Contacts(ctx context.Context, userID int64, state ContactState) ([]Contact, error)
	// AddRequest records a pending message request unless one for the
	// same (user, peer, room) is already stored, pending or declined (a
	// declined request stays declined). An unknown user is ErrNotFound.
	AddRequest(ctx context.Context, r MessageRequest) error
	// RemoveRequest removes a pending request (the peer cancelled it).
	// No pending request for (user, peer, room) is ErrNotFound.
	RemoveRequest(ctx context.Context, userID int64, peer, roomID string) error
	// Requests lists the user's pending requests, oldest first.
	Requests(ctx context.Context, userID int64) ([]MessageRequest, error)
	// DeclineRequest declines a pending request and, for a room, removes
	// the room's entries from the queues of the user's devices, in one
	// transaction. No pending request is ErrNotFound.
	DeclineRequest(ctx context.Context, userID int64, peer, roomID string) error
	// AcceptRequest accepts a pending request: the peer becomes an
	// accepted contact, every pending request of the peer is removed, and
	// out (the answer to the peer's provider, if any) is stored in the
	// outbox, all in one transaction. No pending request is ErrNotFound
	// and changes nothing.
	AcceptRequest(ctx context.Context, userID int64, peer, roomID string, now time.Time, out []Outbound) error
	// Refusing returns those of users (sorted, each once) whose devices
	// must not get a message of roomID: users who declined the room, and,
	// when sender (a user URI) is not empty, users who blocked sender.
	// One indexed query: it runs for every message delivered.
	Refusing(ctx context.Context, roomID, sender string, users []int64) ([]int64, error)
	// Franking and abuse reports (docs/abuse.md).
	// MessageByFrank finds the message of a room's log stored with exactly
	// this frank; none is ErrNotFound.
	MessageByFrank(ctx context.Context, roomID string, frank []byte) (Message, error)
	// FrankingKey returns the key of a signature scheme, or ErrNotFound.
	FrankingKey(ctx context.Context, scheme string) (FrankingKey, error)
	// AddFrankingKey stores k unless its scheme has a key already, and
	// returns the scheme's stored key either way, so that concurrent
	// first uses agree on one key.
	AddFrankingKey(ctx context.Context, k FrankingKey) (FrankingKey, error)
	// AddReport stores a report in the queue, open, and its Outbound in
	// the outbox, all or nothing, and returns its ID (Created is set by
	// the store; ID, State and the handling fields are ignored; Outbound
	// entries are checked as by EnqueueOutbound).
	AddReport(ctx context.Context, r Report) (int64, error)
	// Reports lists the queue, oldest first; ReportByID reads one
	// (ErrNotFound if unknown).
	Reports(ctx context.Context) ([]Report, error)
	ReportByID(ctx context.Context, id int64) (Report, error)
	// HandleReport marks an open report handled with the action taken.
	// An unknown report is ErrNotFound, one already handled ErrConflict.
	HandleReport(ctx context.Context, id int64, action, note string, at time.Time) error
	// AddNotice stores a notice for a user (unknown: ErrNotFound) and
	// returns its ID; Notices lists a user's, oldest first.
	AddNotice(ctx context.Context, n Notice) (int64, error)
	Notices(ctx context.Context, userID int64) ([]Notice, error)
	// SetSuspended sets User.Suspended; an unknown user is ErrNotFound.
	SetSuspended(ctx context.Context, userID int64, suspended bool) error

	// Attachments.
	// PutAttachment stores an attachment; an ID already stored is
	// ErrExists, an unknown owner ErrNotFound.
	PutAttachment(ctx context.Context, a Attachment) error
	// ReadAttachment returns up to limit bytes of an attachment's data
	// from offset on (limit <= 0: to the end) and the data's whole size.
	// An offset at or past the end gives no bytes; an unknown ID is
	// ErrNotFound.
	ReadAttachment(ctx context.Context, id string, offset, limit int64) ([]byte, int64, error)
	// TrimAttachments removes the attachments created before before and
	// returns how many were removed.
	TrimAttachments(ctx context.Context, before time.Time) (int64, error)

	Close() error
}

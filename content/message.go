package content

import (
	"encoding/hex"
	"fmt"
	"time"
)

// MediaType is the media type of MIMI content itself, for MLS content
// advertisement.
const MediaType = "application/mimi-content"

// Content types every MIMI client must accept, spelled as the draft and its
// examples spell them.
const (
	TypePlainText = "text/plain;charset=utf-8"
	TypeMarkdown  = "text/markdown;variant=GFM-MIMI"
	TypeHTML      = "text/html;charset=utf-8"
)

// SaltSize is the size of the per-message random salt.
const SaltSize = 16

// ID is a MIMI message ID: one octet naming the hash algorithm (HashSHA256),
// then the first 31 octets of the hash (see MessageID).
type ID [32]byte

// HashAlg is the hash algorithm octet of the ID.
func (id ID) HashAlg() uint8 { return id[0] }

// IsZero reports whether id is all zeros (never a valid ID).
func (id ID) IsZero() bool { return id == ID{} }

// String is the ID in lowercase hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID reads an ID written in hex, as String writes it: lowercase
// only, so that one ID has one spelling (a stored row or a URL keyed by
// another spelling would never match the ID's own).
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, newError(ErrMalformed, err, "message ID is not %d octets of hex", len(id))
	}
	copy(id[:], b)
	if id.String() != s {
		return ID{}, newError(ErrMalformed, nil, "message ID is not in lowercase hex")
	}
	return id, nil
}

// Message is one MIMI content message (the draft's mimiContent).
type Message struct {
	// Salt is the per-message random salt. Constructors fill it from
	// crypto/rand; a message made by hand must be given one.
	Salt [SaltSize]byte
	// Replaces is the message this one edits or deletes (or whose reaction
	// it removes), or nil.
	Replaces *ID
	// TopicID groups messages into a topic; empty for none.
	TopicID []byte
	// Expires is when the receiver should delete the message, or nil.
	Expires *Expiration
	// InReplyTo is the message this one answers or reacts to, or nil.
	InReplyTo *ID
	// Extensions are the mimiExtensions map, including the senderUri (1)
	// and roomUri (2) entries. Unknown entries are kept as they were.
	Extensions Extensions
	// Body is the message's nested body part.
	Body Part
}

// Expiration is the draft's Expiration: when a message should be deleted.
type Expiration struct {
	// Relative: Time is seconds after the receiver reads the message.
	// Otherwise Time is seconds since the UNIX epoch.
	Relative bool
	Time     uint32
}

// ExpiresAfter is a relative expiration: d after the receiver reads the
// message, in whole seconds (rounded up, at least 1, at most 2^32-1).
func ExpiresAfter(d time.Duration) Expiration {
	s := (d + time.Second - 1) / time.Second
	return Expiration{Relative: true, Time: clampSeconds(int64(s), 1)}
}

// ExpiresAt is an absolute expiration at t, in whole seconds since the
// epoch (rounded up, within the uint32 range the format allows).
func ExpiresAt(t time.Time) Expiration {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return Expiration{Time: clampSeconds(s, 0)}
}

func clampSeconds(s, lo int64) uint32 {
	switch {
	case s < lo:
		return uint32(lo) // #nosec G115 -- lo is 0 or a time in seconds, below 2^32
	case s > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(s) // #nosec G115 -- 0 <= s < 2^32 here
}

// Deadline is when the message expires: for a relative expiration, readAt
// plus Time seconds; for an absolute one, Time itself (readAt is ignored).
func (e Expiration) Deadline(readAt time.Time) time.Time {
	if e.Relative {
		return readAt.Add(time.Duration(e.Time) * time.Second)
	}
	return time.Unix(int64(e.Time), 0).UTC()
}

func (e Expiration) String() string {
	if e.Relative {
		return fmt.Sprintf("%ds after reading", e.Time)
	}
	return "at " + time.Unix(int64(e.Time), 0).UTC().Format(time.RFC3339)
}

// Disposition is how the sender intends a part to be handled (the MIMI
// Content Disposition registry). Values 9 to 255 are unassigned; the draft
// tells receivers to treat an unknown value as DispRender, and this package
// keeps the value as it was.
type Disposition uint8

// The registered dispositions.
const (
	DispUnspecified Disposition = 0
	DispRender      Disposition = 1
	DispReaction    Disposition = 2 // a single reaction to another message
	DispProfile     Disposition = 3
	DispInline      Disposition = 4
	DispIcon        Disposition = 5
	DispAttachment  Disposition = 6
	DispSession     Disposition = 7
	DispPreview     Disposition = 8
)

var dispositionNames = [...]string{"unspecified", "render", "reaction", "profile", "inline", "icon", "attachment", "session", "preview"}

func (d Disposition) String() string {
	if int(d) < len(dispositionNames) {
		return dispositionNames[d]
	}
	return fmt.Sprintf("disposition(%d)", uint8(d))
}

// Effective is the disposition a receiver acts on: an unassigned value
// counts as DispRender, as the draft says.
func (d Disposition) Effective() Disposition {
	if int(d) < len(dispositionNames) {
		return d
	}
	return DispRender
}

// Cardinality says which of the four shapes a part has.
type Cardinality uint8

// The cardinalities, with the draft's values.
const (
	NullPart     Cardinality = 0 // no content: deletes and unlikes
	SinglePart   Cardinality = 1 // inline content with its content type
	ExternalPart Cardinality = 2 // content at a URL (attachments, sessions)
	MultiPart    Cardinality = 3 // two or more nested parts
)

func (c Cardinality) String() string {
	switch c {
	case NullPart:
		return "null"
	case SinglePart:
		return "single"
	case ExternalPart:
		return "external"
	case MultiPart:
		return "multi"
	}
	return fmt.Sprintf("cardinality(%d)", uint8(c))
}

// Semantics is how the parts of a MultiPart relate.
type Semantics uint8

// The part semantics, with the draft's values.
const (
	ChooseOne  Semantics = 0 // the receiver processes exactly one part (like multipart/alternative)
	SingleUnit Semantics = 1 // all parts or none, as one unit (like multipart/related)
	ProcessAll Semantics = 2 // each part on its own, as many as it can (like multipart/mixed)
)

func (s Semantics) String() string {
	switch s {
	case ChooseOne:
		return "chooseOne"
	case SingleUnit:
		return "singleUnit"
	case ProcessAll:
		return "processAll"
	}
	return fmt.Sprintf("semantics(%d)", uint8(s))
}

// Part is the draft's NestedPart. Disposition and Language apply to every
// part; which other fields are used depends on Cardinality, and Encode
// refuses a part that sets fields of another cardinality:
//
//	NullPart      nothing else
//	SinglePart    ContentType, Content
//	ExternalPart  ContentType, External
//	MultiPart     Semantics, Parts (at least two)
//
// Each part also has an implied index, counted depth-first from 0 at the
// body (see Message.Walk); "cid:INDEX@local.invalid" refers to it.
type Part struct {
	Disposition Disposition
	// Language is "" or a comma-separated list of language tags.
	Language    string
	Cardinality Cardinality
	// ContentType is the media type with its parameters, for single and
	// external parts.
	ContentType string
	// Content is the content of a single part.
	Content []byte
	// External describes the content of an external part.
	External External
	// Semantics and Parts make up a multipart.
	Semantics Semantics
	Parts     []Part
}

// External is what an ExternalPart says about content kept at a URL,
// usually an attachment encrypted with a key sent only in the message.
type External struct {
	URL string
	// Expires is when the content at URL stops being valid, in seconds
	// since the epoch, or 0 for never.
	Expires uint32
	// Size is the content's size in octets, or 0 if not given.
	Size uint64
	// EncAlg is the IANA AEAD algorithm the content is encrypted with
	// (EncAES128GCM), or EncNone; Key, Nonce and AAD are its inputs.
	EncAlg uint16
	Key    []byte
	Nonce  []byte
	AAD    []byte
	// HashAlg is the named-information hash algorithm of ContentHash
	// (HashSHA256), or 0 with an empty ContentHash.
	HashAlg     uint8
	ContentHash []byte
	Description string
	Filename    string
}

// Algorithm numbers used in External and in message IDs.
const (
	EncNone      uint16 = 0 // the content is not encrypted
	EncAES128GCM uint16 = 1 // AEAD_AES_128_GCM in the IANA AEAD Algorithms registry
	HashNone     uint8  = 0
	HashSHA256   uint8  = 1 // sha-256 in the IANA Named Information Hash Algorithm registry
)

// isZero reports whether e has no field set.
func (e *External) isZero() bool {
	return e.URL == "" && e.Expires == 0 && e.Size == 0 && e.EncAlg == 0 &&
		len(e.Key) == 0 && len(e.Nonce) == 0 && len(e.AAD) == 0 &&
		e.HashAlg == 0 && len(e.ContentHash) == 0 && e.Description == "" && e.Filename == ""
}

package federation

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/mls"
)

// Decoding errors of this package. A decoder that refuses its input fails its
// mls.Reader with an error wrapping one of these, or one of the mls codec's
// own errors (mls.ErrTruncated, mls.ErrTrailingData, ...).
var (
	// ErrUnknownValue reports an enum value the draft does not define, or
	// one it reserves.
	ErrUnknownValue = errors.New("federation: unknown enum value")
	// ErrUnsupported reports an option the draft defines but Switchboard
	// does not implement (partial GroupInfo, ratchet trees other than
	// inline, SemiPrivateMessage); docs/federation.md lists them.
	ErrUnsupported = errors.New("federation: unsupported option")
	// ErrInvalidMessage reports a value the draft's rules forbid, such as
	// an application message where a handshake message belongs.
	ErrInvalidMessage = errors.New("federation: invalid message")
)

// enum is implemented by every enumeration of this package: known says
// whether the value is one the draft defines (and not reserved).
type enum interface {
	~uint8
	known() bool
}

// readEnum reads a one-byte enum (every MIMI enum tops out at 255) and
// refuses values the draft does not define, so that no caller ever has to
// switch over a value it cannot handle.
func readEnum[E enum](r *mls.Reader) E {
	v := E(r.U8())
	if r.Err() == nil && !v.known() {
		typ := strings.TrimPrefix(fmt.Sprintf("%T", v), "federation.")
		r.Fail(fmt.Errorf("%w: %s %d", ErrUnknownValue, typ, uint8(v)))
	}
	return v
}

// enumString names v from names, or says it is unknown.
func enumString(typ string, names []string, v uint8) string {
	if int(v) < len(names) && names[v] != "" {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, v)
}

// failf fails r with ErrInvalidMessage, unless it already failed: the first
// error is the one worth reporting.
func failf(r *mls.Reader, format string, args ...any) {
	if r.Err() == nil {
		r.Fail(fmt.Errorf("%w: "+format, append([]any{ErrInvalidMessage}, args...)...))
	}
}

// readBytes reads opaque<V> into a fresh slice, nil when empty, so that a
// decoded value compares equal to one built with a nil slice.
func readBytes(r *mls.Reader) []byte {
	b := r.Opaque()
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

// readString reads opaque<V> holding UTF-8 text (the draft's `string` and
// the opaque fields it calls UTF-8 strings), refusing invalid UTF-8 so that
// nothing downstream has to cope with it.
func readString(r *mls.Reader, field string) string {
	b := r.Opaque()
	if r.Err() == nil && !utf8.Valid(b) {
		failf(r, "%s is not UTF-8", field)
		return ""
	}
	return string(b)
}

// writeMessages writes MLSMessage list<V>.
func writeMessages(w *mls.Writer, msgs []mls.MLSMessage) {
	w.Vector(func(w *mls.Writer) {
		for i := range msgs {
			msgs[i].MarshalMLS(w)
		}
	})
}

// readProposals reads MLSMessage list<V> whose every item must be a
// proposal in a PublicMessage (field names the list for errors).
func readProposals(r *mls.Reader, field string) []mls.MLSMessage {
	var out []mls.MLSMessage
	r.Each(func(r *mls.Reader) {
		var m mls.MLSMessage
		m.UnmarshalMLS(r)
		if r.Err() == nil {
			if ct, err := handshakeType(&m); err != nil {
				r.Fail(fmt.Errorf("%s: %w", field, err))
			} else if ct != mls.ContentProposal {
				failf(r, "%s holds a %v, not a proposal", field, ct)
			}
		}
		out = append(out, m)
	})
	return out
}

// handshakeType returns the content type of a handshake message. The draft
// lets a handshake travel as a PublicMessage or as a SemiPrivateMessage
// (draft-mahy-mls-semiprivatemessage); Switchboard's hubs must check every
// handshake with mls.PublicGroup, so only PublicMessage is accepted.
func handshakeType(m *mls.MLSMessage) (mls.ContentType, error) {
	switch {
	case m.WireFormat == mls.WireFormatPublicMessage && m.Public != nil:
		ct := m.Public.Content.ContentType
		if ct != mls.ContentProposal && ct != mls.ContentCommit {
			return ct, fmt.Errorf("%w: a handshake message carries %v content", ErrInvalidMessage, ct)
		}
		return ct, nil
	case m.WireFormat == mls.WireFormatPrivateMessage:
		return 0, fmt.Errorf("%w: handshake messages travel as PublicMessage (SemiPrivateMessage is not implemented, PrivateMessage hides them from the hub)", ErrUnsupported)
	default:
		return 0, fmt.Errorf("%w: %s where a handshake message belongs", ErrInvalidMessage, wireFormatName(m.WireFormat))
	}
}

// wireFormatName names a wire format for error messages.
func wireFormatName(f mls.WireFormat) string {
	names := []string{1: "PublicMessage", 2: "PrivateMessage", 3: "Welcome", 4: "GroupInfo", 5: "KeyPackage"}
	if int(f) < len(names) && names[f] != "" {
		return names[f]
	}
	return fmt.Sprintf("wire format %d", f)
}

// Protocol is the end-to-end protocol of a MIMI exchange.
type Protocol uint8

// ProtocolMLS10 is MLS 1.0, the only protocol the draft defines.
const ProtocolMLS10 Protocol = 1

func (p Protocol) known() bool { return p == ProtocolMLS10 }

// String returns the draft's name for the value.
func (p Protocol) String() string {
	return enumString("Protocol", []string{"reserved", "mls10"}, uint8(p))
}

// IdentifierURI is the draft's IdentifierUri: a MIMI URI (user, client,
// room, ...) as opaque<V>. The codec does not parse it; handlers check it
// with identity.ParseURI, which knows the MIMI URI rules.
type IdentifierURI string

// MarshalMLS writes the URI as opaque<V>.
func (u IdentifierURI) MarshalMLS(w *mls.Writer) { w.Opaque([]byte(u)) }

// UnmarshalMLS reads the URI.
func (u *IdentifierURI) UnmarshalMLS(r *mls.Reader) { *u = IdentifierURI(r.Opaque()) }

// ComponentID names an entry of an AppDataDictionary.
type ComponentID uint32

// ComponentData is one entry of an AppDataDictionary.
type ComponentData struct {
	ID   ComponentID
	Data []byte
}

// AppDataDictionary is the extension point of several MIMI bodies, with the
// syntax of the app_data_dictionary extension of draft-ietf-mls-extensions:
// entries sorted by component ID, at most one per ID.
type AppDataDictionary []ComponentData

// MarshalMLS writes ComponentData component_data<V>.
func (d AppDataDictionary) MarshalMLS(w *mls.Writer) {
	w.Vector(func(w *mls.Writer) {
		for _, c := range d {
			w.U32(uint32(c.ID))
			w.Opaque(c.Data)
		}
	})
}

// UnmarshalMLS reads the dictionary and refuses unsorted or repeated IDs:
// the extensions draft requires strict order, which also keeps the encoding
// canonical.
func (d *AppDataDictionary) UnmarshalMLS(r *mls.Reader) {
	*d = nil
	r.Each(func(r *mls.Reader) {
		c := ComponentData{ID: ComponentID(r.U32()), Data: readBytes(r)}
		if n := len(*d); n > 0 && (*d)[n-1].ID >= c.ID {
			failf(r, "AppDataDictionary component %d after %d: not strictly ascending", c.ID, (*d)[n-1].ID)
		}
		*d = append(*d, c)
	})
}

// Frank is the hub's franking stamp on an application message (see the
// draft's "Message Franking"). This package only carries it; making and
// checking franks comes later.
type Frank struct {
	ServerFrank                  [32]byte
	FrankingSignatureCiphersuite mls.CipherSuite
	FrankingIntegritySignature   []byte
}

// MarshalMLS writes the Frank.
func (f *Frank) MarshalMLS(w *mls.Writer) {
	w.Raw(f.ServerFrank[:])
	w.U16(uint16(f.FrankingSignatureCiphersuite))
	w.Opaque(f.FrankingIntegritySignature)
}

// UnmarshalMLS reads a Frank.
func (f *Frank) UnmarshalMLS(r *mls.Reader) {
	copy(f.ServerFrank[:], r.Raw(len(f.ServerFrank)))
	f.FrankingSignatureCiphersuite = mls.CipherSuite(r.U16())
	f.FrankingIntegritySignature = readBytes(r)
}

// writeOptionalFrank writes optional<Frank>.
func writeOptionalFrank(w *mls.Writer, f *Frank) {
	w.Optional(f != nil, func(w *mls.Writer) { f.MarshalMLS(w) })
}

// readOptionalFrank reads optional<Frank>.
func readOptionalFrank(r *mls.Reader) *Frank {
	if !r.Optional() {
		return nil
	}
	f := new(Frank)
	f.UnmarshalMLS(r)
	return f
}

// RatchetTreeRepresentation says how a RatchetTreeOption conveys the tree
// (draft-mahy-mls-ratchet-tree-options, which we do not have in full).
type RatchetTreeRepresentation uint8

// RatchetTreeFull carries the whole tree inline. It is the only
// representation implemented: the others (by URL, out of band, rebuilt by
// the distribution service) need machinery the draft leaves open.
const RatchetTreeFull RatchetTreeRepresentation = 1

func (t RatchetTreeRepresentation) known() bool { return t == RatchetTreeFull }

// String returns the draft's name for the value.
func (t RatchetTreeRepresentation) String() string {
	return enumString("RatchetTreeRepresentation", []string{"reserved", "full"}, uint8(t))
}

// RatchetTreeOption conveys a group's ratchet tree next to a Welcome or
// GroupInfo that omits it. Only the full representation exists here, so Tree
// is always the tree, in the form of the ratchet_tree extension
// (optional<Node> ratchet_tree<V>: blank nodes are representable).
type RatchetTreeOption struct {
	Representation RatchetTreeRepresentation
	Tree           mls.TreeNodes
}

// FullRatchetTree returns the inline representation of t.
func FullRatchetTree(t mls.TreeNodes) RatchetTreeOption {
	return RatchetTreeOption{Representation: RatchetTreeFull, Tree: t}
}

// MarshalMLS writes the option.
func (o *RatchetTreeOption) MarshalMLS(w *mls.Writer) {
	w.U8(uint8(o.Representation))
	if o.Representation == RatchetTreeFull {
		o.Tree.MarshalMLS(w)
	}
}

// UnmarshalMLS reads the option; representations other than full are
// refused with ErrUnsupported, reserved or undefined ones with
// ErrUnknownValue.
func (o *RatchetTreeOption) UnmarshalMLS(r *mls.Reader) {
	o.Representation = RatchetTreeRepresentation(r.U8())
	o.Tree = nil
	if r.Err() != nil {
		return
	}
	switch {
	case o.Representation == RatchetTreeFull:
		o.Tree.UnmarshalMLS(r)
	case o.Representation >= 2 && o.Representation <= 5:
		// httpsUri, outOfBand, distributionService (and the older
		// compressed, delta, patch, byReference) in the drafts we have seen.
		r.Fail(fmt.Errorf("%w: ratchet tree representation %d (only full is implemented)", ErrUnsupported, o.Representation))
	default:
		r.Fail(fmt.Errorf("%w: RatchetTreeRepresentation %d", ErrUnknownValue, o.Representation))
	}
}

// GroupInfoRepresentation says how a GroupInfoOption conveys the GroupInfo.
type GroupInfoRepresentation uint8

const (
	// GroupInfoFull carries the whole GroupInfo, the only representation
	// implemented.
	GroupInfoFull GroupInfoRepresentation = 1
	// GroupInfoPartial (a PartialGroupInfo the hub completes) is defined by
	// draft-mahy-mls-ratchet-tree-options, which we do not have; it is
	// refused with ErrUnsupported.
	GroupInfoPartial GroupInfoRepresentation = 2
)

func (g GroupInfoRepresentation) known() bool { return g == GroupInfoFull || g == GroupInfoPartial }

// String returns the draft's name for the value.
func (g GroupInfoRepresentation) String() string {
	return enumString("GroupInfoRepresentation", []string{"reserved", "full", "partial"}, uint8(g))
}

// GroupInfoOption conveys the GroupInfo of the epoch a commit creates, for
// the hub. The GroupInfo omits the ratchet_tree extension; the tree travels
// in the RatchetTreeOption beside it.
type GroupInfoOption struct {
	Representation GroupInfoRepresentation
	GroupInfo      mls.GroupInfo // GroupInfoFull
}

// FullGroupInfo returns the full representation of gi.
func FullGroupInfo(gi mls.GroupInfo) GroupInfoOption {
	return GroupInfoOption{Representation: GroupInfoFull, GroupInfo: gi}
}

// MarshalMLS writes the option.
func (o *GroupInfoOption) MarshalMLS(w *mls.Writer) {
	w.U8(uint8(o.Representation))
	if o.Representation == GroupInfoFull {
		o.GroupInfo.MarshalMLS(w)
	}
}

// UnmarshalMLS reads the option; partial is refused with ErrUnsupported.
func (o *GroupInfoOption) UnmarshalMLS(r *mls.Reader) {
	o.Representation = readEnum[GroupInfoRepresentation](r)
	if r.Err() != nil {
		return
	}
	if o.Representation == GroupInfoPartial {
		r.Fail(fmt.Errorf("%w: partial GroupInfo (only full is implemented)", ErrUnsupported))
		return
	}
	o.GroupInfo.UnmarshalMLS(r)
}

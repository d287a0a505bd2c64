package federation

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/switchboard-chat/switchboard/mls"
)

// Message franking (the draft's "Message Franking"; docs/abuse.md). The
// sender commits to a MIMI content message with
//
//	franking_tag = HMAC-SHA256(key = the content's salt, data = the content)
//
// and carries the tag in its PrivateMessage's authenticated_data, as the
// frank_aad item of a Safe AAD (mls-extensions). The hub, which cannot
// read the content, binds the tag to the sender and room it knows and to
// the time it accepted the message (ServerFrank) and signs all of it
// (SignFrank); a receiver that later reports the message reveals the
// content, and every provider can then check that exactly this content
// was sent by that sender in that room.

// FrankAADComponent is the component ID of the frank_aad Safe AAD item.
// The draft asks IANA for it and proposes 0x0020; we use that value.
const FrankAADComponent uint16 = 0x0020

// FrankingTagSize is the size of a franking tag and of a server frank.
const FrankingTagSize = sha256.Size

// ErrSafeAAD reports authenticated data that is not a well-formed Safe AAD.
var ErrSafeAAD = errors.New("federation: malformed Safe AAD")

// SafeAADItem is one item of a Safe AAD: a component's data.
type SafeAADItem struct {
	Component uint16
	Data      []byte
}

// MarshalSafeAAD encodes items as the mls-extensions SafeAAD struct:
// SafeAADItem aad_items<V>, each item a uint16 component_id and opaque
// aad_item_data<V>. The caller lists the items in increasing component
// order, each once, as ParseSafeAAD demands.
func MarshalSafeAAD(items []SafeAADItem) []byte {
	w := mls.NewWriter(64)
	w.Vector(func(w *mls.Writer) {
		for _, it := range items {
			w.U16(it.Component)
			w.Opaque(it.Data)
		}
	})
	return w.Bytes()
}

// ParseSafeAAD decodes a Safe AAD. Items must come in strictly increasing
// component order (so each component appears once and the encoding is
// canonical), and nothing may follow the list.
func ParseSafeAAD(b []byte) ([]SafeAADItem, error) {
	r := mls.NewReader(b)
	var items []SafeAADItem
	r.Each(func(r *mls.Reader) {
		it := SafeAADItem{Component: r.U16(), Data: r.OpaqueCopy()}
		if r.Err() != nil {
			return
		}
		if n := len(items); n > 0 && it.Component <= items[n-1].Component {
			r.Failf("component 0x%04x after 0x%04x: items must be in increasing order, each once", it.Component, items[n-1].Component)
			return
		}
		items = append(items, it)
	})
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSafeAAD, err)
	}
	return items, nil
}

// FrankAAD is the authenticated data that carries a franking tag and
// nothing else.
func FrankAAD(tag [FrankingTagSize]byte) []byte {
	return MarshalSafeAAD([]SafeAADItem{{Component: FrankAADComponent, Data: tag[:]}})
}

// FrankingTagOf finds the franking tag in a PrivateMessage's
// authenticated data. ok is false when the data holds none (empty data,
// or a Safe AAD without frank_aad); an error means the data is not a
// Safe AAD or its frank_aad is not 32 bytes.
func FrankingTagOf(aad []byte) (tag [FrankingTagSize]byte, ok bool, err error) {
	if len(aad) == 0 {
		return tag, false, nil
	}
	items, err := ParseSafeAAD(aad)
	if err != nil {
		return tag, false, err
	}
	for _, it := range items {
		if it.Component != FrankAADComponent {
			continue
		}
		if len(it.Data) != FrankingTagSize {
			return tag, false, fmt.Errorf("%w: frank_aad holds %d bytes, not %d", ErrSafeAAD, len(it.Data), FrankingTagSize)
		}
		copy(tag[:], it.Data)
		return tag, true, nil
	}
	return tag, false, nil
}

// FrankingTag is the sender's commitment to a content message:
// HMAC-SHA256 keyed with the content's salt over the encoded content.
func FrankingTag(salt, content []byte) [FrankingTagSize]byte {
	m := hmac.New(sha256.New, salt)
	m.Write(content)
	var t [FrankingTagSize]byte
	m.Sum(t[:0])
	return t
}

// ServerFrankingContext is what the hub binds a franking tag to.
type ServerFrankingContext struct {
	SenderURI         IdentifierURI // the sender's user URI
	RoomURI           IdentifierURI
	AcceptedTimestamp uint64 // the hub's acceptance time, ms since the Unix epoch
}

// MarshalMLS writes the context.
func (c *ServerFrankingContext) MarshalMLS(w *mls.Writer) {
	c.SenderURI.MarshalMLS(w)
	c.RoomURI.MarshalMLS(w)
	w.U64(c.AcceptedTimestamp)
}

// ServerFrank is HMAC-SHA256(hub_key, franking_tag || context).
func ServerFrank(hubKey []byte, tag [FrankingTagSize]byte, ctx ServerFrankingContext) [FrankingTagSize]byte {
	m := hmac.New(sha256.New, hubKey)
	m.Write(tag[:])
	m.Write(mls.Marshal(&ctx))
	var f [FrankingTagSize]byte
	m.Sum(f[:0])
	return f
}

// FrankingIntegrityLabel is the SignWithLabel label of a frank's signature.
const FrankingIntegrityLabel = "FrankingIntegrityTBS"

// frankingIntegrityTBS is the signed content: the server frank, the
// suite, and the context.
func frankingIntegrityTBS(serverFrank [FrankingTagSize]byte, suite mls.CipherSuite, ctx ServerFrankingContext) []byte {
	w := mls.NewWriter(128)
	w.Raw(serverFrank[:])
	w.U16(uint16(suite))
	ctx.MarshalMLS(w)
	return w.Bytes()
}

// MakeFrank is the hub's franking of a message: the server frank under
// hubKey and its signature under key, for the room's cipher suite.
func MakeFrank(suite *mls.Suite, id mls.CipherSuite, key *mls.SignaturePrivateKey, hubKey []byte, tag [FrankingTagSize]byte, ctx ServerFrankingContext) (*Frank, error) {
	sf := ServerFrank(hubKey, tag, ctx)
	sig, err := suite.SignWithLabel(key, FrankingIntegrityLabel, frankingIntegrityTBS(sf, id, ctx))
	if err != nil {
		return nil, err
	}
	return &Frank{ServerFrank: sf, FrankingSignatureCiphersuite: id, FrankingIntegritySignature: sig}, nil
}

// ErrFrank reports a frank that does not verify.
var ErrFrank = errors.New("federation: frank does not verify")

// VerifyFrank checks the hub's signature on f for the context, with the
// hub's franking public key pub of f's cipher suite.
func VerifyFrank(f *Frank, pub []byte, ctx ServerFrankingContext) error {
	suite, err := mls.SuiteFor(f.FrankingSignatureCiphersuite)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFrank, err)
	}
	if err := suite.VerifyWithLabel(pub, FrankingIntegrityLabel, frankingIntegrityTBS(f.ServerFrank, f.FrankingSignatureCiphersuite, ctx), f.FrankingIntegritySignature); err != nil {
		return fmt.Errorf("%w: the hub's signature: %v", ErrFrank, err)
	}
	return nil
}

// ParseFrank decodes a Frank encoding, refusing trailing bytes.
func ParseFrank(b []byte) (*Frank, error) {
	f := new(Frank)
	if err := mls.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	return f, nil
}

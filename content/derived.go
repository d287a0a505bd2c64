package content

// Derived is the draft's MessageDerivedValues: what a receiving client
// knows about a message besides its content, from MLS and its provider.
// The draft defines it for reference (its implied-original example); this
// package can encode and decode it, for storing or exchanging it.
type Derived struct {
	MessageID ID
	// HubTimestamp is the hub's accepted time in milliseconds since the
	// epoch; ExtendedTimestamp holds instead an RFC 9581 extended time
	// (tag 1001) as encoded, when that is what was given.
	HubTimestamp      uint64
	ExtendedTimestamp []byte
	MLSGroupID        []byte
	SenderLeafIndex   uint32
	SenderClientURL   string
	SenderUserURL     string
	RoomURL           string
}

// DecodeDerived reads an encoded MessageDerivedValues.
func DecodeDerived(b []byte) (*Derived, error) {
	if len(b) > MaxEncodedSize {
		return nil, newError(ErrTooLarge, nil, "derived values of %d octets exceed %d", len(b), MaxEncodedSize)
	}
	if err := decMode.Wellformed(b); err != nil {
		return nil, classify(err, "derived values")
	}
	r := reader{b: b}
	d := new(Derived)
	if err := r.array("derived values", 7); err != nil {
		return nil, err
	}
	id, err := r.bytes("messageId")
	if err != nil {
		return nil, err
	}
	if len(id) != len(d.MessageID) {
		return nil, r.fail("messageId", "%d octets, not %d", len(id), len(d.MessageID))
	}
	copy(d.MessageID[:], id)
	if r.off < len(b) && b[r.off]>>5 == majTag {
		major, _, tag, _, _ := readHead(b[r.off:])
		if major != majTag || tag != 1001 {
			return nil, r.fail("hubAcceptedTimestamp", "tag %d, not 1001", tag)
		}
		n, err := checkItem(b[r.off:], 1)
		if err != nil {
			return nil, newError(ErrMalformed, err, "hubAcceptedTimestamp")
		}
		d.ExtendedTimestamp = append([]byte{}, b[r.off:r.off+n]...)
		r.off += n
	} else if d.HubTimestamp, err = r.uint("hubAcceptedTimestamp", 1<<64-1); err != nil {
		return nil, err
	}
	if d.MLSGroupID, err = r.bytes("mlsGroupId"); err != nil {
		return nil, err
	}
	leaf, err := r.uint("senderLeafIndex", 1<<32-1)
	if err != nil {
		return nil, err
	}
	d.SenderLeafIndex = uint32(leaf) // #nosec G115 -- r.uint checked it is below 2^32
	for _, f := range []struct {
		name string
		dst  *string
	}{{"senderClientUrl", &d.SenderClientURL}, {"senderUserUrl", &d.SenderUserURL}, {"roomUrl", &d.RoomURL}} {
		if *f.dst, err = r.text(f.name); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Encode encodes the derived values in deterministic CBOR.
func (d *Derived) Encode() ([]byte, error) {
	var ts any = d.HubTimestamp
	if len(d.ExtendedTimestamp) > 0 {
		major, _, tag, _, err := readHead(d.ExtendedTimestamp)
		if err != nil || major != majTag || tag != 1001 {
			return nil, newError(ErrMalformed, err, "extended timestamp is not tag 1001")
		}
		if n, err := checkItem(d.ExtendedTimestamp, 1); err != nil || n != len(d.ExtendedTimestamp) {
			return nil, newError(ErrMalformed, err, "extended timestamp")
		}
		ts = rawItem(d.ExtendedTimestamp)
	}
	b, err := encMode.Marshal([]any{d.MessageID[:], ts, nonNil(d.MLSGroupID), d.SenderLeafIndex,
		d.SenderClientURL, d.SenderUserURL, d.RoomURL})
	if err != nil {
		return nil, newError(ErrMalformed, err, "encoding derived values")
	}
	return b, nil
}

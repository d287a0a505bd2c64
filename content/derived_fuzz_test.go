package content_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/switchboard-chat/switchboard/content"
)

// FuzzDecodeDerived: DecodeDerived never panics; a refusal is an *Error
// with a code; what it accepts encodes, and that encoding decodes again to
// the same encoding.
func FuzzDecodeDerived(f *testing.F) {
	for _, d := range []content.Derived{
		{MessageID: content.ID{1, 2, 3}, HubTimestamp: 1700000000000, MLSGroupID: []byte("group"), SenderLeafIndex: 3,
			SenderClientURL: "mimi://a.example/d/alice/phone", SenderUserURL: "mimi://a.example/u/alice", RoomURL: "mimi://a.example/r/x"},
		{MessageID: content.ID{9}, ExtendedTimestamp: []byte{0xd9, 0x03, 0xe9, 0xa1, 0x01, 0x1a, 0x65, 0x53, 0xf1, 0x00}},
		{},
	} {
		b, err := d.Encode()
		if err != nil {
			continue
		}
		f.Add(b)
	}
	f.Add([]byte{0x87})
	f.Add([]byte{0x87, 0x50})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := content.DecodeDerived(b)
		if err != nil {
			var e *content.Error
			if !errors.As(err, &e) || content.Code(err) == "" {
				t.Fatalf("DecodeDerived error %v is not an *Error with a code", err)
			}
			return
		}
		e1, err := d.Encode()
		if err != nil {
			t.Fatalf("decoded derived values do not encode: %v", err)
		}
		d2, err := content.DecodeDerived(e1)
		if err != nil {
			t.Fatalf("the encoding of decoded derived values does not decode: %v", err)
		}
		e2, err := d2.Encode()
		if err != nil || !bytes.Equal(e1, e2) {
			t.Fatalf("derived values change on a second round trip:\n%x\n%x", e1, e2)
		}
	})
}

// FuzzParseID: a message ID read from text (a stored history, a console
// request) prints back as the same lowercase hex, or is refused with a
// code.
func FuzzParseID(f *testing.F) {
	f.Add(content.ID{1, 2, 3}.String())
	f.Add("")
	f.Add("zz")
	f.Add("ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := content.ParseID(s)
		if err != nil {
			if content.Code(err) == "" {
				t.Fatalf("ParseID(%q): %v has no code", s, err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q) = %s: two spellings of one ID", s, id)
		}
	})
}

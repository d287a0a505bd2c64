package sqlstore

import (
	"maps"
	"testing"
)

// FuzzDecodeHeader reads whatever the outbox.header column could hold (a
// row written by another version, or damaged): never a panic, an empty
// header is nil, and what it reads encodes to a column that reads back to
// the same headers.
func FuzzDecodeHeader(f *testing.F) {
	for _, h := range []map[string]string{
		nil,
		{"Mimi-Room-Seq": "12", "Mimi-Sender": "mimi://green.example/d/alice/phone"},
		{"": ""},
		{"X": "ü\u0000"},
	} {
		s, err := encodeHeader(h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
	}
	for _, s := range []string{`{}`, `null`, `[]`, `{"a":1}`, `{"a":"b","a":"c"}`, `"x"`, `{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := decodeHeader(s)
		if err != nil {
			return
		}
		if h != nil && len(h) == 0 {
			t.Fatal("an empty header read back as an empty map, not nil")
		}
		enc, err := encodeHeader(h)
		if err != nil {
			t.Fatalf("a decoded header does not encode: %v", err)
		}
		back, err := decodeHeader(enc)
		if err != nil || !maps.Equal(back, h) {
			t.Fatalf("round trip: %v, then %v (%v)", h, back, err)
		}
	})
}

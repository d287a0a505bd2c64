package bus

import (
	"slices"
	"testing"
)

// FuzzDecodeDevices: whatever arrives on the wake-up subject, decoding
// never panics, and what it accepts round-trips.
func FuzzDecodeDevices(f *testing.F) {
	for _, s := range []string{`[1,2,3]`, `[]`, `[-1]`, `[0]`, `{"a":1}`, `[1.5]`, `null`, `[9223372036854775807]`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := decodeDevices(data)
		if err != nil {
			return
		}
		again, err := decodeDevices(encodeDevices(ds))
		if err != nil || !slices.Equal(ds, again) {
			t.Fatalf("%q decoded to %v, which does not round-trip (%v, %v)", data, ds, again, err)
		}
	})
}

// FuzzDecodeDest: an announcement is accepted only as a domain that is
// safe to put in a NATS subject.
func FuzzDecodeDest(f *testing.F) {
	for _, s := range []string{"blue.test", "127.0.0.1:8443", "", ".", "a..b", "a.*", "a >", "x.", "ü.test"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeDest(data)
		if err != nil {
			return
		}
		for _, c := range []byte(d) {
			if c == '*' || c == '>' || c <= ' ' || c >= 0x7f {
				t.Fatalf("accepted %q with %q in it", d, c)
			}
		}
	})
}

// FuzzDecodeRoom: a room wake-up is accepted only as printable ASCII.
func FuzzDecodeRoom(f *testing.F) {
	for _, s := range []string{"lA7bcgVhDxhb1vST6XoQ2g", "", "a b", "\x00", "ü"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRoom(data)
		if err != nil {
			return
		}
		if r != string(data) || len(r) == 0 || len(r) > maxRoomLen {
			t.Fatalf("accepted %q as %q", data, r)
		}
		for _, c := range []byte(r) {
			if c <= ' ' || c >= 0x7f {
				t.Fatalf("accepted %q with %q in it", r, c)
			}
		}
	})
}

func TestDecodeRefusals(t *testing.T) {
	for _, s := range []string{`[]`, `[0]`, `[-4]`, `"x"`, `[1,"a"]`} {
		if _, err := decodeDevices([]byte(s)); err == nil {
			t.Errorf("decodeDevices(%s) accepted it", s)
		}
	}
	for _, s := range []string{"", "a..b", ".a", "a.", "a b", "a.>", "x*"} {
		if _, err := decodeDest([]byte(s)); err == nil {
			t.Errorf("decodeDest(%q) accepted it", s)
		}
	}
}

package bus

import (
	"bytes"
	"testing"
)

// FuzzDecodeNotice: whatever arrives on the notice subject, decoding never
// panics, accepts only a positive device and a bounded notice, and what it
// accepts round-trips.
func FuzzDecodeNotice(f *testing.F) {
	good, _ := encodeNotice(5, []byte(`{"close":true}`))
	for _, s := range [][]byte{good, nil, {0, 0, 0, 0, 0, 0, 0, 0, 'x'}, {0x80, 0, 0, 0, 0, 0, 0, 1, 'x'}, {0, 0, 0, 0, 0, 0, 0, 1}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		device, notice, err := decodeNotice(data)
		if err != nil {
			return
		}
		if device <= 0 || len(notice) == 0 || len(notice) > MaxNotice {
			t.Fatalf("accepted device %d with a notice of %d bytes", device, len(notice))
		}
		again, err := encodeNotice(device, notice)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("%x decoded to (%d, %q), which does not round-trip (%x, %v)", data, device, notice, again, err)
		}
	})
}

package provider

import (
	"fmt"
	"testing"
)

// FuzzParseRange reads whatever Range header a partner's provider could
// send to proxyDownload. Never a panic; a refusal is bad_request; an
// accepted range starts at 0 or later and, when it has an end, has a
// length of one byte or more that does not overflow (the length bounds
// the read); it prints back to the same range.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-", "bytes=0-99", "bytes=100-199", "bytes=5-5", "bytes=9-3", "bytes=-5",
		"bytes=0-9223372036854775807", "bytes=1-2,4-5", "bytes= 1-2", "items=0-1", "bytes=+1-2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		first, last, err := parseRange(v)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Code != "bad_request" {
				t.Fatalf("parseRange(%q) refused with %v", v, err)
			}
			return
		}
		if first < 0 {
			t.Fatalf("parseRange(%q) starts at %d", v, first)
		}
		want := fmt.Sprintf("bytes=%d-", first)
		if last >= 0 {
			if n := last - first + 1; n < 1 {
				t.Fatalf("parseRange(%q) = %d-%d: a length of %d", v, first, last, n)
			}
			want += fmt.Sprint(last)
		} else if last != -1 {
			t.Fatalf("parseRange(%q) ends at %d", v, last)
		}
		if a, b, err := parseRange(want); err != nil || a != first || b != last {
			t.Fatalf("parseRange(%q) = %d-%d, but %q reads as %d-%d (%v)", v, first, last, want, a, b, err)
		}
	})
}

// FuzzParseContentRange reads whatever Content-Range a partner's answer to
// a ranged download could carry. Never a panic; what it accepts is a span
// that starts at 0 or later and ends no earlier than it starts, and
// prints back to the same values.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/1000", "bytes 900-999/1000", "bytes 0-0/1", "bytes 5-3/10", "bytes 0-9/*",
		"bytes */1000", "bytes -1-2/3", "bytes 0-9223372036854775807/9223372036854775807", "bits 0-1/2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		first, last, total, ok := parseContentRange(v)
		if !ok {
			return
		}
		if first < 0 || last < first {
			t.Fatalf("parseContentRange(%q) = %d-%d/%d", v, first, last, total)
		}
		again := fmt.Sprintf("bytes %d-%d/%d", first, last, total)
		if a, b, c, ok := parseContentRange(again); !ok || a != first || b != last || c != total {
			t.Fatalf("parseContentRange(%q) = %s, which reads back as %d-%d/%d", v, again, a, b, c)
		}
	})
}

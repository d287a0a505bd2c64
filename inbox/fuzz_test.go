package inbox

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseHash: a stored password hash, however damaged, is refused or
// read within bounds; never a panic.
func FuzzParseHash(f *testing.F) {
	good, err := hashPassword("correct horse battery")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(dummyHash)
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$$")
	f.Add("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := parseHash(s)
		if ok && (p.memory > 256*1024 || p.time > 10 || p.threads == 0 || p.threads > 16 || len(p.key) > 64) {
			t.Fatalf("accepted out-of-bounds parameters %+v", p)
		}
	})
	if !checkPassword(good, "correct horse battery") || checkPassword(good, "correct horse batterz") {
		f.Fatal("checkPassword does not tell right from wrong")
	}
}

// FuzzExpand: expanding canned codes never panics, leaves text without a
// known code alone, and replaces a known one.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"/hi", "/hi there", "say /hi", "a/hi", "/hi/hi", "/", "/é", "http://x/hi", "\xff/hi", "/hi-"} {
		f.Add(s)
	}
	texts := map[string]string{"hi": "Hello!", "hi-": "dash"}
	f.Fuzz(func(t *testing.T, s string) {
		out := expand(s, texts)
		if !strings.Contains(s, "/hi") && out != s {
			t.Fatalf("%q changed to %q without a code", s, out)
		}
		if strings.HasPrefix(s, "/hi ") && !strings.HasPrefix(out, "Hello! ") {
			t.Fatalf("%q expanded to %q", s, out)
		}
	})
}

// FuzzHours: any "HH:MM" pair is refused or makes a span that Open and
// nextOpening handle; an accepted time is within the day.
func FuzzHours(f *testing.F) {
	f.Add("09:00", "17:30", int64(0))
	f.Add("00:00", "24:00", int64(1764666000))
	f.Add("24:00", "24:00", int64(-1))
	f.Add("9:00", "1x:00", int64(5))
	f.Add("23:59", "24:01", int64(1<<40))
	f.Fuzz(func(t *testing.T, from, to string, at int64) {
		a, err1 := clockMinutes(from)
		b, err2 := clockMinutes(to)
		if err1 != nil || err2 != nil || a >= b {
			return
		}
		if a < 0 || b > 24*60 {
			t.Fatalf("%q to %q read as %d to %d", from, to, a, b)
		}
		var h Hours
		h.Days[time.Monday] = []Span{{From: from, To: to}}
		when := time.Unix(at%(1<<36), 0)
		open := h.open(when, time.UTC)
		if next := h.nextOpening(when, time.UTC); !open && (next.IsZero() || !next.After(when)) {
			t.Fatalf("closed at %v, next opening %v", when, next)
		}
	})
}

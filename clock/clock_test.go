package clock

import (
	"strings"
	"testing"
	"time"
)

// An operator, or a test, sets SWITCHBOARD_CLOCK_SKEW; these are the
// values it may hold and what each means.
func TestParseSkew(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"-7m", -7 * time.Minute},
		{"2h", 2 * time.Hour},
		{"90s", 90 * time.Second},
		{"-1h30m", -90 * time.Minute},
	} {
		got, err := parseSkew(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseSkew(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"7", "minus 7m", "7 minutes", "--7m"} {
		got, err := parseSkew(bad)
		if err == nil || got != 0 {
			t.Errorf("parseSkew(%q) = %v, %v; want an error and no skew", bad, got, err)
		} else if !strings.Contains(err.Error(), EnvSkew) {
			t.Errorf("parseSkew(%q): the error %q does not name %s", bad, err, EnvSkew)
		}
	}
}

// A skewed clock runs ahead (or behind) by its skew, and a duration
// measured on it is the real one.
func TestSkewed(t *testing.T) {
	ahead := Skewed(10 * time.Minute)
	before := time.Now()
	got := ahead()
	after := time.Now()
	if got.Before(before.Add(10*time.Minute)) || got.After(after.Add(10*time.Minute)) {
		t.Errorf("a clock 10 minutes ahead read %v between %v and %v", got, before, after)
	}
	if d := ahead().Sub(got); d < 0 || d > time.Minute {
		t.Errorf("two readings of a skewed clock are %v apart", d)
	}
	// This test process has no skew set.
	if d, err := Skew(); d != 0 || err != nil {
		t.Skipf("%s is set in this environment (%v, %v)", EnvSkew, d, err)
	}
	if n := Now(); time.Until(n) > time.Second || time.Since(n) > time.Minute {
		t.Errorf("without a skew Now read %v", n)
	}
}

func FuzzParseSkew(f *testing.F) {
	for _, s := range []string{"", "-7m", "2h", "x", "1e9h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseSkew(s)
		if err != nil && d != 0 {
			t.Errorf("parseSkew(%q) failed yet gave %v", s, d)
		}
	})
}

package crashpoint

import (
	"strings"
	"testing"
)

func TestParseNamesAPointAndItsCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		name string
		n    int64
	}{
		{"hub-commit-stored", HubCommitStored, 1},
		{"outbox-sent@3", OutboxSent, 3},
	} {
		name, n, err := Parse(tc.in)
		if err != nil || name != tc.name || n != tc.n {
			t.Errorf("Parse(%q) = %q, %d, %v; want %q, %d", tc.in, name, n, err, tc.name, tc.n)
		}
	}
}

func TestParseRefusesWhatWouldNeverCrash(t *testing.T) {
	for _, in := range []string{"hub-commit-stord", "outbox-sent@0", "outbox-sent@-1", "outbox-sent@x", "@2", "outbox-sent@"} {
		if _, _, err := Parse(in); err == nil || !strings.Contains(err.Error(), EnvVar) {
			t.Errorf("Parse(%q): %v, want an error naming %s", in, err, EnvVar)
		}
	}
}

func TestUnarmedPointsDoNothing(t *testing.T) {
	// This test process was not started with the variable (go test does
	// not set it): reaching every point returns.
	if name, _ := Armed(); name != "" {
		t.Skipf("%s is set for this test process", EnvVar)
	}
	for _, p := range Points {
		Reached(p)
		ReachedIf(true, p)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"outbox-sent", "outbox-sent@2", "x@", "@", "hub-commit-stored@99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		name, n, err := Parse(v)
		if err != nil {
			return
		}
		if n < 1 || !strings.HasPrefix(v, name) {
			t.Fatalf("Parse(%q) = %q, %d", v, name, n)
		}
	})
}

func BenchmarkReachedUnarmed(b *testing.B) {
	for b.Loop() {
		Reached(HubCommitStored)
	}
}

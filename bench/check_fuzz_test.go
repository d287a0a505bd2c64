package bench_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/switchboard-chat/switchboard/bench"
)

// FuzzCheck reads whatever `switchboard bench --check` could be handed
// (a report from another version, a truncated file, a hand edit). Never a
// panic; a refusal wraps ErrReport; a report that checks writes back to
// JSON that checks again.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"", "{", "[]", "null", `{"version": 1, "runs": []}`, `{"version": 1, "runs": []} {}`,
		`{"version": 1, "runs": [{"messages": {"expected": 1, "delivered": 1}}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := bench.Check(data)
		if err != nil {
			if !errors.Is(err, bench.ErrReport) {
				t.Fatalf("Check refused with %v, not ErrReport", err)
			}
			return
		}
		out, err := json.Marshal(rep)
		if err != nil {
			t.Fatalf("a checked report does not encode: %v", err)
		}
		if _, err := bench.Check(out); err != nil {
			t.Fatalf("a checked report, written back, no longer checks: %v", err)
		}
	})
}

package federation

import (
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestOutboxNudgeEndsTheBackoff: blue was down, so its first entry waits
// out an hour's backoff. Then blue sends us a request (it is back), and
// the Outbox is nudged: the entry goes at once, and the rest behind it.
// A second nudge within MinBackoff of the first is not let through, so a
// partner we still cannot reach does not turn its every request into an
// attempt of ours.
func TestOutboxNudgeEndsTheBackoff(t *testing.T) {
	rcv := newReceiver(t, func(id string, attempt int) fault {
		if id == "m1" && attempt <= 2 {
			return fail
		}
		return accept
	})
	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	o := NewOutbox(st, httpSend(map[string]string{"blue.test": rcv.srv.URL}),
		OutboxOptions{MinBackoff: time.Hour, MaxBackoff: time.Hour, RequestTimeout: 5 * time.Second})
	o.jitter = func(ceiling time.Duration) time.Duration { return ceiling } // the whole hour
	start(t, o)
	out := entries("blue.test", "m", 5)
	if err := o.Enqueue(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first attempt to fail", func() bool { return o.Stats().Retried == 1 })

	o.Nudge("red.test") // no entries for red: nothing happens
	o.Nudge("blue.test")
	waitFor(t, "the nudged retry", func() bool { return rcv.attemptsOf("m1") == 2 })
	waitFor(t, "the second failure recorded", func() bool { return o.Stats().Retried == 2 })
	o.Nudge("blue.test") // within MinBackoff of the first: not let through
	time.Sleep(300 * time.Millisecond)
	if n := rcv.attemptsOf("m1"); n != 2 {
		t.Fatalf("m1 tried %d times: a second nudge within MinBackoff was let through", n)
	}
	if got := rcv.appliedIDs(); len(got) != 0 {
		t.Fatalf("blue applied %v while m1 waits", got)
	}

	// An hour later, as far as the nudge's spacing is concerned.
	o.mu.Lock()
	o.nudges["blue.test"].last = time.Now().Add(-2 * time.Hour)
	o.mu.Unlock()
	o.Nudge("blue.test")
	waitFor(t, "every entry delivered after the second nudge", func() bool { return empty(t, st, "blue.test") })
	if got := rcv.appliedIDs(); !slices.Equal(got, ids(out)) {
		t.Errorf("blue applied %v, want %v in order", got, ids(out))
	}
}

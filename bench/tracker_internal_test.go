package bench

import (
	"errors"
	"testing"
	"time"
)

// The tracker's counts, which every report rests on: a delivery counts
// once per device, a second one is a duplicate, a delivery may come
// before its message's acknowledgement, and a failed send is expected
// nowhere.
func TestTrackerCountsEachDeliveryOnce(t *testing.T) {
	tr := newTracker()
	tr.recipients[1] = 2 // sender 1's messages go to devices 10 and 11
	m0 := header{sender: 1, num: 0, at: 0}
	m1 := header{sender: 1, num: 1, at: time.Millisecond}
	m2 := header{sender: 1, num: 2, at: 2 * time.Millisecond}

	tr.sent(m0, 0, time.Millisecond, nil)
	tr.delivered(10, m0, 3*time.Millisecond)
	tr.delivered(10, m0, 4*time.Millisecond) // again: a duplicate
	tr.delivered(11, m1, 2*time.Millisecond) // before m1's acknowledgement
	if got := tr.outstanding(); got != 1 {
		t.Errorf("outstanding %d, want 1 (m0 to device 11)", got)
	}
	tr.sent(m1, time.Millisecond, 5*time.Millisecond, nil)
	tr.sent(m2, 2*time.Millisecond, 6*time.Millisecond, errors.New("refused"))
	tr.delivered(11, m0, 6*time.Millisecond)
	tr.delivered(10, m1, 7*time.Millisecond)
	tr.delivered(12, header{sender: 9, num: 0}, 7*time.Millisecond) // no such sender

	if tr.expected != 4 || tr.deliveredAcked != 4 || tr.outstanding() != 0 {
		t.Errorf("expected %d, delivered %d, outstanding %d; want 4, 4, 0", tr.expected, tr.deliveredAcked, tr.outstanding())
	}
	if tr.duplicates != 1 || tr.unknown != 1 || tr.attempted != 3 || len(tr.acked) != 2 {
		t.Errorf("duplicates %d, unknown %d, attempted %d, acked %d; want 1, 1, 3, 2", tr.duplicates, tr.unknown, tr.attempted, len(tr.acked))
	}
	if tr.errors["send:network"] != 1 {
		t.Errorf("errors %v, want one send:network", tr.errors)
	}
	// Latency runs from the intended time: m0 was due at 0 and reached
	// device 10 at 3 ms. The histogram keeps 3 significant digits.
	if got := summarize(tr.latency); got.Count != 4 || got.Min != 1 || got.Max < 6 || got.Max > 6.006 {
		t.Errorf("latency %+v, want 4 samples from 1 to 6 ms", got)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	b := make([]byte, 40)
	h := header{sender: 7, num: 1 << 20, at: 1234567 * time.Microsecond}
	h.put(b)
	got, err := readHeader(b)
	if err != nil || got != h {
		t.Fatalf("readHeader = %+v, %v; want %+v", got, err, h)
	}
	if _, err := readHeader(b[:HeaderSize-1]); err == nil {
		t.Fatal("a short message read as a header")
	}
}

func TestQuotasSplitTheBound(t *testing.T) {
	q := quotas(10, 4)
	if q[0] != 3 || q[1] != 3 || q[2] != 2 || q[3] != 2 {
		t.Errorf("quotas(10, 4) = %v", q)
	}
	if q := quotas(0, 2); q[0] != -1 || q[1] != -1 {
		t.Errorf("quotas(0, 2) = %v, want no bound", q)
	}
}

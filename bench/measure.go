package bench

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/switchboard-chat/switchboard/client"
)

// Latencies are recorded in microseconds, from 1 µs to 10 minutes, with 3
// significant digits: an HDR histogram (fixed memory, every percentile
// within 0.1 %).
const (
	histMin    = 1
	histMax    = int64(10 * time.Minute / time.Microsecond)
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

func recordHist(h *hdrhistogram.Histogram, d time.Duration) {
	us := max(int64(d/time.Microsecond), histMin)
	h.RecordValue(min(us, histMax)) // #nosec G104 -- the value is clamped to the histogram's range above
}

// header is what every measured message starts with: the sender, the
// message's number at that sender and its intended send time (since the
// run's start). The receiver reads it back to find the message's
// latency; nothing else is needed to match a delivery to its send.
type header struct {
	sender uint32
	num    uint32
	at     time.Duration
}

func (h header) put(b []byte) {
	binary.BigEndian.PutUint32(b[0:], h.sender)
	binary.BigEndian.PutUint32(b[4:], h.num)
	binary.BigEndian.PutUint64(b[8:], uint64(h.at)) // #nosec G115 -- a non-negative time since the run began
}

var errShort = errors.New("bench: message too short for its header")

func readHeader(b []byte) (header, error) {
	if len(b) < HeaderSize {
		return header{}, errShort
	}
	return header{
		sender: binary.BigEndian.Uint32(b[0:]),
		num:    binary.BigEndian.Uint32(b[4:]),
		at:     time.Duration(binary.BigEndian.Uint64(b[8:])), // #nosec G115 -- the bits put writes
	}, nil
}

func msgKey(sender, num uint32) uint64 { return uint64(sender)<<32 | uint64(num) }

// tracker keeps every figure of one run's load phase.
type tracker struct {
	start time.Time // monotonic: the origin of every intended send time

	mu sync.Mutex
	// recipients is how many devices each sender's messages go to.
	recipients map[uint32]int
	// acked: the messages the provider acknowledged (stored durably).
	acked map[uint64]bool
	// seen is, per receiving device, the messages it has had.
	seen map[int]map[uint64]bool
	// expected counts the deliveries acknowledged messages are to have,
	// deliveredAcked those they had; early holds deliveries that came
	// before their message's acknowledgement (the two race).
	expected       int
	deliveredAcked int
	early          map[uint64]int
	deliveries     int
	duplicates     int
	unknown        int // deliveries whose header names no sender of this run
	attempted      int
	errors         map[string]int
	latency        *hdrhistogram.Histogram // intended send → receiving device has it
	ack            *hdrhistogram.Histogram // send call → provider's acknowledgement
	seconds        []*second
	// lastAck and lastDelivery are the times of the last acknowledgement
	// and delivery.
	lastAck, lastDelivery time.Duration
}

// second is one second of the load phase.
type second struct {
	sent, delivered int
	latency         *hdrhistogram.Histogram
}

func newTracker() *tracker {
	return &tracker{
		start:      time.Now(),
		recipients: map[uint32]int{},
		acked:      map[uint64]bool{},
		seen:       map[int]map[uint64]bool{},
		early:      map[uint64]int{},
		errors:     map[string]int{},
		latency:    newHist(),
		ack:        newHist(),
	}
}

// since is the time since the start, as the headers carry it.
func (t *tracker) since() time.Duration { return time.Since(t.start) }

func (t *tracker) secondAt(d time.Duration) *second {
	i := max(int(d/time.Second), 0)
	for len(t.seconds) <= i {
		// Two digits suffice for the chart's per-second lines and keep
		// a long run's memory small.
		t.seconds = append(t.seconds, &second{latency: hdrhistogram.New(histMin, histMax, 2)})
	}
	return t.seconds[i]
}

// sent notes the outcome of one send: its intended time, when the call
// started and when it returned.
func (t *tracker) sent(h header, called, returned time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attempted++
	if err != nil {
		t.errors["send:"+errorCode(err)]++
		return
	}
	k := msgKey(h.sender, h.num)
	t.acked[k] = true
	t.expected += t.recipients[h.sender]
	t.deliveredAcked += t.early[k]
	delete(t.early, k)
	recordHist(t.ack, returned-called)
	t.lastAck = max(t.lastAck, returned)
	t.secondAt(returned).sent++
}

// delivered notes that receiving device rcv has message h at time at
// (since the start).
func (t *tracker) delivered(rcv int, h header, at time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.recipients[h.sender]; !ok {
		t.unknown++
		return
	}
	s := t.seen[rcv]
	if s == nil {
		s = map[uint64]bool{}
		t.seen[rcv] = s
	}
	k := msgKey(h.sender, h.num)
	if s[k] {
		t.duplicates++
		return
	}
	s[k] = true
	t.deliveries++
	t.lastDelivery = max(t.lastDelivery, at)
	if t.acked[k] {
		t.deliveredAcked++
	} else {
		t.early[k]++
	}
	recordHist(t.latency, at-h.at)
	sec := t.secondAt(at)
	sec.delivered++
	recordHist(sec.latency, at-h.at)
}

// fail counts an error that is not a send's.
func (t *tracker) fail(code string) {
	t.mu.Lock()
	t.errors[code]++
	t.mu.Unlock()
}

// progress is a snapshot for the progress display.
func (t *tracker) progress() (sent, delivered, errs int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range t.errors {
		errs += n
	}
	return len(t.acked), t.deliveries, errs
}

// outstanding is how many deliveries of acknowledged messages are still
// to come.
func (t *tracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.expected - t.deliveredAcked
}

// Latency is a latency distribution's summary, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// Percentile is one point of a latency distribution.
type Percentile struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

func ms(us int64) float64 { return float64(us) / 1000 }

func summarize(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.TotalCount(),
		Min:   ms(h.Min()),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// distribution is the latency at percentiles from 0 to 99.999 (as far as
// there are samples), for the percentile chart.
func distribution(h *hdrhistogram.Histogram) []Percentile {
	if h.TotalCount() == 0 {
		return nil
	}
	var out []Percentile
	for _, p := range []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 98, 99, 99.5, 99.9, 99.95, 99.99, 99.999} {
		// A percentile beyond what the samples resolve repeats the max.
		if p > 0 && float64(h.TotalCount())*(100-p)/100 < 1 {
			break
		}
		v := h.ValueAtQuantile(p)
		if p == 0 {
			v = h.Min()
		}
		out = append(out, Percentile{p, ms(v)})
	}
	return append(out, Percentile{100, ms(h.Max())})
}

// sdkCode is the provider's code in an SDK error, if it carries one.
func sdkCode(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

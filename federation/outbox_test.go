package federation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// The tests' stand-ins for the wire format (another package's concern):
// the delivery ID and the sender's domain travel in two headers.
const (
	hdrID   = "X-Test-Delivery-Id"
	hdrFrom = "X-Test-From"
	hub     = "hub.test"
)

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// fault is what a receiver does with one request instead of accepting it.
type fault int

const (
	accept    fault = iota
	fail            // 503 before applying: the receiver is down
	applyLost       // apply, then 503: the answer is lost, the sender retries
	reject          // 400: a request retrying cannot fix
	hang            // never answer; return when the sender gives up
	applyHang       // apply, then never answer: the sender stops waiting
)

// receiver is another provider on a loopback HTTP server. It de-duplicates
// by delivery ID with SeenInbound on its own store, as a real one would,
// and records what it applied and every request it saw.
type receiver struct {
	t     *testing.T
	srv   *httptest.Server
	st    store.Store
	fault func(id string, attempt int) fault // nil: accept everything

	mu       sync.Mutex
	applied  []string       // IDs applied, in order: what users would see
	attempts map[string]int // every request, by ID
	arrivals []string       // the ID of every request, in arrival order
	inFlight int
	maxIn    int // the most requests in flight at once
	hanging  int // requests held by a hang fault right now
}

func newReceiver(t *testing.T, fault func(id string, attempt int) fault) *receiver {
	r := &receiver{t: t, fault: fault, attempts: map[string]int{},
		st: openStore(t, filepath.Join(t.TempDir(), "receiver.db"))}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	io.Copy(io.Discard, req.Body)
	id, from := req.Header.Get(hdrID), req.Header.Get(hdrFrom)
	r.mu.Lock()
	r.attempts[id]++
	attempt := r.attempts[id]
	r.arrivals = append(r.arrivals, id)
	r.inFlight++
	r.maxIn = max(r.maxIn, r.inFlight)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight--
		r.mu.Unlock()
	}()

	f := accept
	if r.fault != nil {
		f = r.fault(id, attempt)
	}
	switch f {
	case fail:
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case reject:
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	case hang:
		r.hold(req)
		return
	}
	seen, err := r.st.SeenInbound(req.Context(), from, id, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !seen {
		r.mu.Lock()
		r.applied = append(r.applied, id)
		r.mu.Unlock()
	}
	switch f {
	case applyLost:
		http.Error(w, "answer lost", http.StatusServiceUnavailable)
		return
	case applyHang:
		r.hold(req)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// hold keeps a request unanswered until its sender gives up on it.
func (r *receiver) hold(req *http.Request) {
	r.mu.Lock()
	r.hanging++
	r.mu.Unlock()
	<-req.Context().Done()
	r.mu.Lock()
	r.hanging--
	r.mu.Unlock()
}

func (r *receiver) holding() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hanging
}

func (r *receiver) appliedIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.applied)
}

func (r *receiver) attemptsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[id]
}

// httpSend is a SendFunc over plain HTTP to the base URL of each
// destination: 2xx is delivered, 4xx permanent, anything else retried.
func httpSend(bases map[string]string) SendFunc {
	return func(ctx context.Context, dest string, e store.OutboundEntry) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, bases[dest]+e.Path, bytes.NewReader(e.Body))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPermanent, err)
		}
		req.Header.Set(hdrID, e.ID)
		req.Header.Set(hdrFrom, hub)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 2:
			return nil
		case resp.StatusCode/100 == 4:
			return fmt.Errorf("%w: %s", ErrPermanent, resp.Status)
		default:
			return errors.New(resp.Status)
		}
	}
}

// entries makes n outbound requests to dest with IDs prefix1..prefixN.
func entries(dest, prefix string, n int) []store.Outbound {
	var out []store.Outbound
	for i := 1; i <= n; i++ {
		id := fmt.Sprint(prefix, i)
		out = append(out, store.Outbound{Destination: dest, Kind: "notify", Path: "/notify/" + id, Body: []byte(id), ID: id})
	}
	return out
}

func ids(out []store.Outbound) []string {
	var s []string
	for _, o := range out {
		s = append(s, o.ID)
	}
	return s
}

// start runs o until the returned stop is called (or the test ends); stop
// waits for Run to return.
func start(t *testing.T, o *Outbox) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond; the deadline only bounds a test that is failing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func empty(t *testing.T, st store.Store, dest string) bool {
	t.Helper()
	_, err := st.NextOutbound(t.Context(), dest)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err != nil
}

// fast are options for tests whose failures should retry at once.
var fast = OutboxOptions{MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, RequestTimeout: 5 * time.Second}

// TestOutboxKeepsOrderThroughFailures: failures before and after the
// receiver applied a request, scattered over 20 entries, change nothing
// of what the receiver shows: each once, in order, one request at a time,
// and no entry is tried before the one ahead of it is through.
func TestOutboxKeepsOrderThroughFailures(t *testing.T) {
	out := entries("blue.test", "m", 20)
	failing := map[string]int{"m1": 2, "m3": 1, "m7": 3, "m12": 1, "m20": 2} // attempts that fail before applying
	lost := map[string]bool{"m4": true, "m9": true, "m20": true}             // applied, answer lost once
	rcv := newReceiver(t, func(id string, attempt int) fault {
		if attempt <= failing[id] {
			return fail
		}
		if lost[id] && attempt == failing[id]+1 {
			return applyLost
		}
		return accept
	})
	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	if err := st.EnqueueOutbound(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	o := NewOutbox(st, httpSend(map[string]string{"blue.test": rcv.srv.URL}), fast)
	start(t, o)
	waitFor(t, "every entry delivered", func() bool { return empty(t, st, "blue.test") })

	if got := rcv.appliedIDs(); !slices.Equal(got, ids(out)) {
		t.Errorf("receiver applied %v, want %v", got, ids(out))
	}
	retries := 0
	for _, o := range out {
		want := 1 + failing[o.ID]
		if lost[o.ID] {
			want++
		}
		retries += want - 1
		if got := rcv.attemptsOf(o.ID); got != want {
			t.Errorf("%s was requested %d times, want %d", o.ID, got, want)
		}
	}
	// Requests arrive grouped by entry in order: a later entry is never
	// tried while an earlier one is still failing.
	rcv.mu.Lock()
	arrivals, maxIn := slices.Clone(rcv.arrivals), rcv.maxIn
	rcv.mu.Unlock()
	if compacted := slices.Compact(slices.Clone(arrivals)); !slices.Equal(compacted, ids(out)) {
		t.Errorf("requests arrived as %v: not one entry after another", arrivals)
	}
	if maxIn != 1 {
		t.Errorf("%d requests were in flight at once, want 1", maxIn)
	}
	if s := o.Stats(); s.Sent != 20 || s.Queued != 20 || s.Retried != int64(retries) || s.Failed != 0 {
		t.Errorf("stats = %+v, want 20 queued and sent, %d retried", s, retries)
	}
}

// TestOutboxDeliversAfterDestinationComesBack: a destination that answers
// 503 for a while gets everything once it recovers, once each and in order;
// while it is down only the head entry is tried.
func TestOutboxDeliversAfterDestinationComesBack(t *testing.T) {
	const downFor = 6
	var mu sync.Mutex
	requests := 0
	rcv := newReceiver(t, func(id string, attempt int) fault {
		mu.Lock()
		defer mu.Unlock()
		requests++
		if requests <= downFor {
			return fail
		}
		return accept
	})
	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	o := NewOutbox(st, httpSend(map[string]string{"blue.test": rcv.srv.URL}), fast)
	start(t, o)
	// Entries arrive while Run is already going: Enqueue wakes the worker.
	out := entries("blue.test", "m", 10)
	if err := o.Enqueue(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every entry delivered", func() bool { return empty(t, st, "blue.test") })

	if got := rcv.appliedIDs(); !slices.Equal(got, ids(out)) {
		t.Errorf("receiver applied %v, want %v", got, ids(out))
	}
	if n := rcv.attemptsOf("m1"); n != downFor+1 {
		t.Errorf("m1 was tried %d times, want %d", n, downFor+1)
	}
	for _, id := range ids(out)[1:] {
		if n := rcv.attemptsOf(id); n != 1 {
			t.Errorf("%s was tried %d times while waiting behind m1, want 1", id, n)
		}
	}
	if s := o.Stats(); s.Sent != 10 || s.Retried != downFor {
		t.Errorf("stats = %+v, want 10 sent, %d retried", s, downFor)
	}
}

// TestOutboxSlowOrDeadDestinationDoesNotDelayOthers: one destination never
// answers (its request hangs), one refuses connections, one is healthy.
// The dead ones' entries are stored first. The backoff is an hour and the
// request timeout a minute, so if the healthy destination waited for
// either dead one at any point it would not finish within the test; it
// must finish while the hanging request is still in flight and before the
// refusing destination's first retry.
func TestOutboxSlowOrDeadDestinationDoesNotDelayOthers(t *testing.T) {
	slow := newReceiver(t, func(string, int) fault { return hang })
	healthy := newReceiver(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := "http://" + l.Addr().String()
	l.Close() // nothing listens there any more: connection refused

	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	var out []store.Outbound
	for i := 1; i <= 10; i++ {
		out = append(out, entries("slow.test", fmt.Sprint("s", i, "-"), 1)...)
		out = append(out, entries("dead.test", fmt.Sprint("d", i, "-"), 1)...)
		out = append(out, entries("ok.test", fmt.Sprint("ok", i, "-"), 1)...)
	}
	if err := st.EnqueueOutbound(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	o := NewOutbox(st, httpSend(map[string]string{
		"slow.test": slow.srv.URL, "dead.test": refusing, "ok.test": healthy.srv.URL,
	}), OutboxOptions{MinBackoff: time.Hour, MaxBackoff: time.Hour, RequestTimeout: time.Minute})
	o.jitter = func(c time.Duration) time.Duration { return c } // the whole hour
	stop := start(t, o)

	waitFor(t, "the healthy destination's entries", func() bool { return len(healthy.appliedIDs()) == 10 })
	hanging, slowRequests := slow.holding(), slow.attemptsOf("s1-1")
	if slowRequests != 1 || hanging != 1 {
		t.Errorf("slow destination: %d requests, %d hanging; want its first still in flight", slowRequests, hanging)
	}
	if d, err := st.NextOutbound(t.Context(), "dead.test"); err != nil || d.ID != "d1-1" || d.Attempts > 1 {
		t.Errorf("dead destination's head = %+v, %v; want d1-1 on at most its first attempt", d, err)
	}
	for i, id := range healthy.appliedIDs() {
		if want := fmt.Sprint("ok", i+1, "-1"); id != want {
			t.Errorf("healthy destination got %s at %d, want %s", id, i, want)
		}
	}
	// Stopping cancels the hanging request rather than waiting a minute.
	stop()
	waitFor(t, "the hanging request to end", func() bool { return slow.holding() == 0 })
}

// TestOutboxRequestDeadline: a request that gets no answer is cut off
// after RequestTimeout and recorded as a failed attempt.
func TestOutboxRequestDeadline(t *testing.T) {
	slow := newReceiver(t, func(string, int) fault { return hang })
	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	if err := st.EnqueueOutbound(t.Context(), entries("slow.test", "m", 1)); err != nil {
		t.Fatal(err)
	}
	o := NewOutbox(st, httpSend(map[string]string{"slow.test": slow.srv.URL}),
		OutboxOptions{MinBackoff: time.Hour, RequestTimeout: 20 * time.Millisecond})
	start(t, o)
	var head store.OutboundEntry
	waitFor(t, "the timed-out attempt to be recorded", func() bool {
		var err error
		head, err = st.NextOutbound(t.Context(), "slow.test")
		return err == nil && head.Attempts == 1
	})
	if !strings.Contains(head.LastError, "deadline exceeded") || !head.NotBefore.After(time.Now()) {
		t.Errorf("after a timeout the entry is %+v; want a deadline error and a retry in the future", head)
	}
}

// TestOutboxResumesAfterRestart: the Outbox is stopped while a request is
// in flight, after the receiver applied it but before the answer arrived;
// the store is closed and opened again and a new Outbox started without
// any Wake. The rest is delivered, and the receiver, de-duplicating by ID,
// applies every entry exactly once and in order.
func TestOutboxResumesAfterRestart(t *testing.T) {
	out := entries("blue.test", "m", 30)
	rcv := newReceiver(t, func(id string, attempt int) fault {
		if id == "m10" && attempt == 1 {
			return applyHang
		}
		return accept
	})
	path := filepath.Join(t.TempDir(), "hub.db")
	bases := map[string]string{"blue.test": rcv.srv.URL}

	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnqueueOutbound(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	first := NewOutbox(st, httpSend(bases), fast)
	stop := start(t, first)
	waitFor(t, "m10 to be applied and left unanswered", func() bool { return rcv.holding() == 1 })
	stop()
	if head, err := st.NextOutbound(t.Context(), "blue.test"); err != nil || head.ID != "m10" {
		t.Fatalf("after stopping, the head is %+v, %v; want m10, whose answer never came", head, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rcv.appliedIDs(); !slices.Equal(got, ids(out)[:10]) {
		t.Fatalf("before the restart the receiver applied %v, want m1..m10", got)
	}

	st2 := openStore(t, path)
	second := NewOutbox(st2, httpSend(bases), fast)
	start(t, second)
	waitFor(t, "the rest delivered", func() bool { return empty(t, st2, "blue.test") })

	if got := rcv.appliedIDs(); !slices.Equal(got, ids(out)) {
		t.Errorf("receiver applied %v, want each of m1..m30 once, in order", got)
	}
	for _, id := range ids(out) {
		want := 1
		if id == "m10" {
			want = 2 // sent again after the restart, dropped as a repeat
		}
		if n := rcv.attemptsOf(id); n != want {
			t.Errorf("%s was requested %d times, want %d", id, n, want)
		}
	}
	if s := second.Stats(); s.Sent != 21 || s.Queued != 21 {
		t.Errorf("second outbox stats = %+v, want m10..m30 queued and sent", s)
	}
}

// TestOutboxDropsPermanentFailures: an entry the destination rejects with
// a 4xx is dropped after one attempt, and the entries behind it go on.
func TestOutboxDropsPermanentFailures(t *testing.T) {
	rcv := newReceiver(t, func(id string, _ int) fault {
		if id == "m2" {
			return reject
		}
		return accept
	})
	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	m := &countingMetrics{}
	opts := fast
	opts.Metrics = m
	o := NewOutbox(st, httpSend(map[string]string{"blue.test": rcv.srv.URL}), opts)
	start(t, o)
	if err := o.Enqueue(t.Context(), entries("blue.test", "m", 3)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queue to empty", func() bool { return empty(t, st, "blue.test") })
	if got := rcv.appliedIDs(); !slices.Equal(got, []string{"m1", "m3"}) {
		t.Errorf("receiver applied %v, want m1 m3", got)
	}
	if n := rcv.attemptsOf("m2"); n != 1 {
		t.Errorf("the rejected entry was tried %d times, want 1", n)
	}
	if s := o.Stats(); s.Sent != 2 || s.Failed != 1 || s.Retried != 0 || s.Queued != 3 {
		t.Errorf("stats = %+v, want 3 queued, 2 sent, 1 failed", s)
	}
	if got := m.snapshot(); got != "queued=3 sent=2 retried=0 failed=1" {
		t.Errorf("metrics hooks saw %s", got)
	}
}

// TestOutboxBackoffGrowsAndIsCapped: the ceiling doubles from MinBackoff
// per failure up to MaxBackoff; the wait is drawn below it; and the
// NotBefore each attempt is recorded with follows the ceiling (jitter
// pinned to the ceiling and the clock stopped, so the numbers are exact).
func TestOutboxBackoffGrowsAndIsCapped(t *testing.T) {
	ms := time.Millisecond
	var got []time.Duration
	for n := 1; n <= 7; n++ {
		got = append(got, backoffCeiling(n, 10*ms, 80*ms))
	}
	if want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms, 80 * ms, 80 * ms, 80 * ms}; !slices.Equal(got, want) {
		t.Errorf("ceilings = %v, want %v", got, want)
	}
	if c := backoffCeiling(10000, time.Second, 1<<62); c != 1<<62 {
		t.Errorf("ceiling after 10000 failures = %v, want the cap (no overflow)", c)
	}
	low, high := 0, 0
	for range 1000 {
		d := fullJitter(80 * ms)
		if d < 0 || d > 80*ms {
			t.Fatalf("jitter %v outside [0, 80ms]", d)
		}
		if d < 40*ms {
			low++
		} else {
			high++
		}
	}
	if low == 0 || high == 0 {
		t.Errorf("jitter is not spread: %d below half the ceiling, %d above", low, high)
	}

	// The same through a running Outbox: every attempt sees the entry as
	// the previous failure recorded it.
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	type seen struct {
		attempts int
		wait     time.Duration
	}
	var mu sync.Mutex
	var attempts []seen
	send := func(ctx context.Context, dest string, e store.OutboundEntry) error {
		mu.Lock()
		defer mu.Unlock()
		var wait time.Duration
		if !e.NotBefore.IsZero() {
			wait = e.NotBefore.Sub(t0)
		}
		attempts = append(attempts, seen{e.Attempts, wait})
		if len(attempts) <= 6 {
			return errors.New("503 Service Unavailable")
		}
		return nil
	}
	o := NewOutbox(st, SendFunc(send), OutboxOptions{MinBackoff: ms, MaxBackoff: 8 * ms, Now: func() time.Time { return t0 }})
	o.jitter = func(c time.Duration) time.Duration { return c }
	start(t, o)
	if err := o.Enqueue(t.Context(), entries("blue.test", "m", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after six failures", func() bool { return empty(t, st, "blue.test") })
	want := []seen{{0, 0}, {1, ms}, {2, 2 * ms}, {3, 4 * ms}, {4, 8 * ms}, {5, 8 * ms}, {6, 8 * ms}}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(attempts, want) {
		t.Errorf("attempts saw (attempts, recorded wait) %v, want %v", attempts, want)
	}
}

// TestOutboxManyDestinationsWhileWorkersComeAndGo: entries for eight
// destinations arrive one Enqueue at a time, concurrently, while workers
// drain their queues and retire, so wakes keep landing just before, during
// and after a worker's exit. A lost wake would leave an entry behind; two
// workers for one destination would show two requests in flight.
func TestOutboxManyDestinationsWhileWorkersComeAndGo(t *testing.T) {
	const dests, each = 8, 10
	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	bases := map[string]string{}
	rcvs := map[string]*receiver{}
	for i := range dests {
		d := fmt.Sprint("p", i, ".test")
		rcvs[d] = newReceiver(t, nil)
		bases[d] = rcvs[d].srv.URL
	}
	o := NewOutbox(st, httpSend(bases), fast)
	start(t, o)
	var wg sync.WaitGroup
	for d := range rcvs {
		wg.Go(func() {
			for _, e := range entries(d, "m", each) {
				if err := o.Enqueue(t.Context(), []store.Outbound{e}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "every destination's entries", func() bool { return o.Stats().Sent == dests*each })
	want := ids(entries("", "m", each))
	for d, r := range rcvs {
		r.mu.Lock()
		maxIn := r.maxIn
		r.mu.Unlock()
		if got := r.appliedIDs(); !slices.Equal(got, want) || maxIn != 1 {
			t.Errorf("%s applied %v with up to %d in flight; want m1..m%d in order, one at a time", d, got, maxIn, each)
		}
	}
}

// TestOutboxWakeJustBeforeAWorkerRetires: an entry stored and woken after
// a worker found its queue empty, but before it retired, is delivered: the
// worker sees the wake and looks again instead of exiting.
func TestOutboxWakeJustBeforeAWorkerRetires(t *testing.T) {
	rcv := newReceiver(t, nil)
	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	o := NewOutbox(st, httpSend(map[string]string{"blue.test": rcv.srv.URL}), fast)
	var once sync.Once
	o.idle = func(dest string) {
		// Runs on the worker, once m1 is delivered and the queue is empty.
		once.Do(func() {
			if err := o.Enqueue(t.Context(), entries("blue.test", "late", 1)); err != nil {
				t.Error(err)
			}
		})
	}
	start(t, o)
	if err := o.Enqueue(t.Context(), entries("blue.test", "m", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the late entry", func() bool { return len(rcv.appliedIDs()) == 2 })
	if got := rcv.appliedIDs(); !slices.Equal(got, []string{"m1", "late1"}) {
		t.Errorf("applied %v, want m1 late1", got)
	}
}

// TestOutboxRunsOnce: a second Run while one is going is refused, and a
// Wake with no Run does nothing (the next Run finds the entries itself).
func TestOutboxRunsOnce(t *testing.T) {
	rcv := newReceiver(t, nil)
	st := openStore(t, filepath.Join(t.TempDir(), "hub.db"))
	o := NewOutbox(st, httpSend(map[string]string{"blue.test": rcv.srv.URL}), fast)
	if err := st.EnqueueOutbound(t.Context(), entries("blue.test", "m", 2)); err != nil {
		t.Fatal(err)
	}
	o.Wake("blue.test") // not running: nothing happens, nothing breaks
	start(t, o)
	waitFor(t, "delivery", func() bool { return empty(t, st, "blue.test") })
	if err := o.Run(t.Context()); err == nil {
		t.Error("a second concurrent Run was allowed")
	}
	if got := rcv.appliedIDs(); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Errorf("applied %v", got)
	}
}

type countingMetrics struct {
	mu                            sync.Mutex
	queued, sent, retried, failed int
}

func (m *countingMetrics) add(n *int) { m.mu.Lock(); *n++; m.mu.Unlock() }

func (m *countingMetrics) Queued(string)  { m.add(&m.queued) }
func (m *countingMetrics) Sent(string)    { m.add(&m.sent) }
func (m *countingMetrics) Retried(string) { m.add(&m.retried) }
func (m *countingMetrics) Failed(string)  { m.add(&m.failed) }

func (m *countingMetrics) snapshot() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprintf("queued=%d sent=%d retried=%d failed=%d", m.queued, m.sent, m.retried, m.failed)
}

package federation

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// Batches between green's Outbox and blue, over real mutual TLS and in
// process: green's entries wait in a real SQLite store, blue
// de-duplicates by delivery ID on its own.

// batchReceiver is blue. It serves its directory, listing "batch" or not;
// POST /batch through RunBatch; and each entry, alone or in a batch,
// through entry, which applies it once (SeenInbound on a real store) or
// answers as fault says.
type batchReceiver struct {
	t      *testing.T
	st     store.Store
	guard  *ReplayGuard
	offers atomic.Bool // the directory lists batch
	lanes  bool        // entries of different paths side by side
	// fault, if set, answers an entry instead of applying it: status
	// (0: apply and answer 201), and whether to apply it first anyway.
	fault func(id string, attempt int) (status int, applyFirst bool)
	// hang, if set, says to apply an entry and then never answer: the
	// handler returns once the request is abandoned.
	hang func(id string, attempt int) bool
	// refuseBatch, if set, answers the nth batch request (from 1) with
	// status instead of handling it (0: handle it).
	refuseBatch func(n int) int

	mu       sync.Mutex
	applied  []string
	attempts map[string]int
	batches  [][]string // the delivery IDs of each batch request
	alone    []string   // the delivery IDs of requests that came alone
	inPath   map[string]int
	overlaps []string // entries begun while another of their path ran
}

func newBatchReceiver(t *testing.T, offers bool) *batchReceiver {
	rc := &batchReceiver{t: t, st: openStore(t, filepath.Join(t.TempDir(), "blue.db")), guard: NewReplayGuard(0, 0),
		attempts: map[string]int{}, inPath: map[string]int{}}
	rc.offers.Store(offers)
	return rc
}

func (rc *batchReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == WellKnownDirectoryPath {
		d, err := NewDirectory("https://blue.example")
		if err != nil {
			rc.t.Error(err)
		}
		if !rc.offers.Load() {
			d.Batch = ""
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d)
		return
	}
	if err := rc.guard.CheckRequest(r); err != nil {
		writeTrustError(w, err)
		return
	}
	if r.URL.Path != batchPath {
		rc.mu.Lock()
		rc.alone = append(rc.alone, r.Header.Get(HeaderDeliveryID))
		rc.mu.Unlock()
		rc.entry(w, r)
		return
	}
	if !rc.offers.Load() {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req BatchRequest
	if err := mls.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []string
	for _, e := range req.Entries {
		got = append(got, e.DeliveryID)
	}
	rc.mu.Lock()
	rc.batches = append(rc.batches, got)
	n := len(rc.batches)
	rc.mu.Unlock()
	if rc.refuseBatch != nil {
		if status := rc.refuseBatch(n); status != 0 {
			w.WriteHeader(status)
			return
		}
	}
	var lane BatchLane
	if rc.lanes {
		lane = func(path string) (string, bool) { return path, true }
	}
	w.Header().Set("Content-Type", ContentType)
	w.Write(mls.Marshal(RunBatch(r, &req, "", http.HandlerFunc(rc.entry), lane)))
}

// entry applies one delivery, or answers as fault says.
func (rc *batchReceiver) entry(w http.ResponseWriter, r *http.Request) {
	peer, _ := PeerDomain(r)
	id := r.Header.Get(HeaderDeliveryID)
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.attempts[id]++
	attempt := rc.attempts[id]
	if rc.inPath[r.URL.Path] > 0 {
		rc.overlaps = append(rc.overlaps, id)
	}
	rc.inPath[r.URL.Path]++
	rc.mu.Unlock()
	defer func() {
		rc.mu.Lock()
		rc.inPath[r.URL.Path]--
		rc.mu.Unlock()
	}()
	if string(body) != "body of "+id || r.Header.Get("Mimi-Room-Seq") != strings.TrimPrefix(id, "d") {
		http.Error(w, "bad delivery", http.StatusBadRequest)
		return
	}
	status, applyFirst := 0, false
	if rc.fault != nil {
		status, applyFirst = rc.fault(id, attempt)
	}
	if status != 0 && !applyFirst {
		writeStatus(w, status)
		return
	}
	seen, err := rc.st.SeenInbound(r.Context(), peer, id, time.Now())
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if !seen {
		rc.mu.Lock()
		rc.applied = append(rc.applied, id)
		rc.mu.Unlock()
	}
	if rc.hang != nil && rc.hang(id, attempt) {
		<-r.Context().Done()
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if status == 0 {
		status = http.StatusCreated
	}
	writeStatus(w, status)
}

// writeStatus answers status; a 4xx with a JSON error body, as a provider
// does, and a 503 asking to come back at once.
func writeStatus(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(status)
	case status >= 400 && status < 500:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error": {"code": "bad_request", "message": "refused by the test"}}`)
	default:
		w.WriteHeader(status)
	}
}

func (rc *batchReceiver) appliedIDs() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.applied)
}

func (rc *batchReceiver) requests() (batches [][]string, alone []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.batches), slices.Clone(rc.alone)
}

// batchEntries are n entries for blue, "d1".."dn", spread over rooms
// notify paths: entry i goes to room i%rooms.
func batchEntries(n, rooms int) []store.Outbound {
	var out []store.Outbound
	for i := 1; i <= n; i++ {
		id := fmt.Sprint("d", i)
		out = append(out, store.Outbound{Destination: "blue.example", Kind: "notify",
			Path: fmt.Sprintf("/notify/mimi%%3A%%2F%%2Fgreen.example%%2Fr%%2Froom%d", i%rooms), Body: []byte("body of " + id), ID: id,
			Header: map[string]string{"Mimi-Room-Seq": fmt.Sprint(i), "Mimi-Sender": "mimi://green.example/d/alice/phone"}})
	}
	return out
}

// batchOutbox is green's Outbox over the store at path, with batches to
// e's blue.
func batchOutbox(t *testing.T, e *peerEnv, st store.Store, path string, opts OutboxOptions) *Outbox {
	var send *Batcher
	switch tr := e.tr.(type) {
	case *Peers:
		send = tr.OutboxSender()
	case *Loopback:
		send = tr.OutboxSender()
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff, opts.RequestTimeout = time.Millisecond, 4*time.Millisecond, 10*time.Second
	}
	return NewOutbox(st, send, opts)
}

// inOrderPerRoom checks that got holds each of want once, and, within each
// room of rooms, in want's order.
func inOrderPerRoom(t *testing.T, got, want []string, rooms int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("blue applied %d entries, want %d:\n got  %v\n want %v", len(got), len(want), got, want)
	}
	room := func(id string) int {
		var i int
		fmt.Sscanf(id, "d%d", &i)
		return i % rooms
	}
	for r := range rooms {
		keep := func(ids []string) []string {
			return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return room(id) != r })
		}
		if g, w := keep(got), keep(want); !slices.Equal(g, w) {
			t.Errorf("room %d: blue applied %v, want %v", r, g, w)
		}
	}
}

// Green's outbox holds 300 entries for five rooms when it starts: they go
// in batches of at most 128, each entry applied once, every room's in
// order, though blue handles the rooms side by side; never two entries of
// one room at once.
func TestOutboxSendsBatches(t *testing.T) {
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		rcv := newBatchReceiver(t, true)
		rcv.lanes = true
		e.serve(rcv.ServeHTTP)
		path := filepath.Join(t.TempDir(), "green.db")
		st := openStore(t, path)
		out := batchEntries(300, 5)
		if err := st.EnqueueOutbound(t.Context(), out); err != nil {
			t.Fatal(err)
		}
		o := batchOutbox(t, e, st, path, OutboxOptions{})
		start(t, o)
		waitFor(t, "every entry delivered", func() bool { return empty(t, st, "blue.example") })

		inOrderPerRoom(t, rcv.appliedIDs(), ids(out), 5)
		batches, alone := rcv.requests()
		if len(batches) != 3 || len(alone) != 0 {
			t.Errorf("%d batches and %d requests alone, want 3 batches (128+128+44) and none alone", len(batches), len(alone))
		}
		for i, b := range batches {
			if len(b) > DefaultBatchEntries {
				t.Errorf("batch %d carried %d entries", i, len(b))
			}
		}
		if rcv.overlaps != nil {
			t.Errorf("entries begun while another of their room ran: %v", rcv.overlaps)
		}
		if s := o.Stats(); s.Sent != 300 || s.Queued != 300 || s.Failed != 0 || s.Retried != 0 {
			t.Errorf("outbox stats %+v, want 300 queued and sent", s)
		}
	})
}

// In one batch, d3 is refused for good and d5 fails for now: blue handles
// d1 to d5 and stops; d3 is dropped, d1, d2 and d4 are delivered, and d5
// goes first in the next batch, before anything behind it. No entry
// behind d5 was begun in the first batch.
func TestBatchWithRefusals(t *testing.T) {
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		rcv := newBatchReceiver(t, true) // entries in turn: the order is global
		rcv.fault = func(id string, attempt int) (int, bool) {
			switch {
			case id == "d3":
				return http.StatusBadRequest, false
			case id == "d5" && attempt == 1:
				return http.StatusServiceUnavailable, false
			}
			return 0, false
		}
		e.serve(rcv.ServeHTTP)
		path := filepath.Join(t.TempDir(), "green.db")
		st := openStore(t, path)
		out := batchEntries(8, 2)
		if err := st.EnqueueOutbound(t.Context(), out); err != nil {
			t.Fatal(err)
		}
		o := batchOutbox(t, e, st, path, OutboxOptions{})
		start(t, o)
		waitFor(t, "every entry delivered or dropped", func() bool { return empty(t, st, "blue.example") })

		want := []string{"d1", "d2", "d4", "d5", "d6", "d7", "d8"}
		if got := rcv.appliedIDs(); !slices.Equal(got, want) {
			t.Errorf("blue applied %v, want %v", got, want)
		}
		batches, alone := rcv.requests()
		wantBatches := [][]string{ids(out), {"d5", "d6", "d7", "d8"}}
		if !slices.EqualFunc(batches, wantBatches, slices.Equal) || len(alone) != 0 {
			t.Errorf("batches %v and alone %v, want batches %v", batches, alone, wantBatches)
		}
		rcv.mu.Lock()
		if n := rcv.attempts["d6"]; n != 1 {
			t.Errorf("d6 was handled %d times, want once (not begun behind d5's failure)", n)
		}
		rcv.mu.Unlock()
		if s := o.Stats(); s.Sent != 7 || s.Failed != 1 || s.Retried != 1 {
			t.Errorf("outbox stats %+v, want 7 sent, 1 failed, 1 retried", s)
		}
	})
}

// Blue does not list batch in its directory (an older provider): green
// sends each entry alone, in order.
func TestBatchesNotOfferedGoAlone(t *testing.T) {
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		rcv := newBatchReceiver(t, false)
		e.serve(rcv.ServeHTTP)
		path := filepath.Join(t.TempDir(), "green.db")
		st := openStore(t, path)
		out := batchEntries(20, 3)
		if err := st.EnqueueOutbound(t.Context(), out); err != nil {
			t.Fatal(err)
		}
		start(t, batchOutbox(t, e, st, path, OutboxOptions{}))
		waitFor(t, "every entry delivered", func() bool { return empty(t, st, "blue.example") })
		if got := rcv.appliedIDs(); !slices.Equal(got, ids(out)) {
			t.Errorf("blue applied %v, want %v", got, ids(out))
		}
		batches, alone := rcv.requests()
		if len(batches) != 0 || !slices.Equal(alone, ids(out)) {
			t.Errorf("%d batches, alone %v; want none, and every entry alone in order", len(batches), alone)
		}
	})
}

// Blue lists batch but refuses the first batch whole (413, as for a body
// it finds too large): green sends the entries alone for a while; none is
// dropped.
func TestBatchRefusedWholeGoesAlone(t *testing.T) {
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		rcv := newBatchReceiver(t, true)
		rcv.refuseBatch = func(n int) int {
			if n == 1 {
				return http.StatusRequestEntityTooLarge
			}
			return 0
		}
		e.serve(rcv.ServeHTTP)
		path := filepath.Join(t.TempDir(), "green.db")
		st := openStore(t, path)
		out := batchEntries(10, 2)
		if err := st.EnqueueOutbound(t.Context(), out); err != nil {
			t.Fatal(err)
		}
		o := batchOutbox(t, e, st, path, OutboxOptions{})
		start(t, o)
		waitFor(t, "every entry delivered", func() bool { return empty(t, st, "blue.example") })
		if got := rcv.appliedIDs(); !slices.Equal(got, ids(out)) {
			t.Errorf("blue applied %v, want %v", got, ids(out))
		}
		batches, alone := rcv.requests()
		if len(batches) != 1 || !slices.Equal(alone, ids(out)) {
			t.Errorf("%d batches, alone %v; want the refused one, then every entry alone", len(batches), alone)
		}
		if s := o.Stats(); s.Failed != 0 || s.Sent != 10 {
			t.Errorf("outbox stats %+v, want 10 sent, none failed", s)
		}
	})
}

// Blue applies d1 to d5 of a batch and then never answers; green stops
// (a crash, as far as the batch is concerned) and starts again on the
// same store. The batch goes again, and blue shows each entry once, in
// order.
func TestBatchInterruptedAndResent(t *testing.T) {
	forEachTransport(t, PeerOptions{}, func(t *testing.T, e *peerEnv) {
		rcv := newBatchReceiver(t, true)
		stuck := make(chan struct{})
		rcv.hang = func(id string, attempt int) bool {
			if id == "d5" && attempt == 1 {
				close(stuck)
				return true
			}
			return false
		}
		e.serve(rcv.ServeHTTP)
		path := filepath.Join(t.TempDir(), "green.db")
		st, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		out := batchEntries(12, 3)
		if err := st.EnqueueOutbound(t.Context(), out); err != nil {
			t.Fatal(err)
		}
		stop := start(t, batchOutbox(t, e, st, path, OutboxOptions{}))
		<-stuck
		stop()
		st.Close()
		if got := rcv.appliedIDs(); !slices.Equal(got, ids(out)[:5]) {
			t.Fatalf("before the restart blue applied %v, want d1 to d5", got)
		}

		st = openStore(t, path)
		start(t, batchOutbox(t, e, st, path, OutboxOptions{}))
		waitFor(t, "every entry delivered", func() bool { return empty(t, st, "blue.example") })
		if got := rcv.appliedIDs(); !slices.Equal(got, ids(out)) {
			t.Errorf("blue applied %v, want each of %v once, in order", got, ids(out))
		}
		if batches, _ := rcv.requests(); len(batches) != 2 || len(batches[1]) != 12 {
			t.Errorf("batches %v, want the interrupted one and all 12 again", batches)
		}
	})
}

// RunBatch on its own: entries of a lane one at a time and in order, a
// lone entry with nothing beside it, an entry refused for good passed
// over, nothing begun behind an entry that failed for now, and a panic
// answered as a failure for now (500), as net/http would.
func TestRunBatchLanes(t *testing.T) {
	paths := []string{"/notify/a", "/notify/b", "/notify/a", "/notify/c", "/updateConsent/x", "/notify/b", "/notify/a",
		"/notify/c", "/notify/refuse", "/notify/a", "/notify/b", "/notify/fail", "/notify/a", "/notify/fail"}
	req := &BatchRequest{}
	for i, p := range paths {
		req.Entries = append(req.Entries, BatchEntry{Path: p, DeliveryID: fmt.Sprint("e", i)})
	}
	var mu sync.Mutex
	inFlight := map[string]int{}
	total := 0
	var begun []string
	var problems []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, p := r.Header.Get(HeaderDeliveryID), r.URL.Path
		lone := !strings.HasPrefix(p, "/notify/")
		mu.Lock()
		if inFlight[p] > 0 || (lone && total > 0) || inFlight["lone"] > 0 {
			problems = append(problems, id+" began beside another")
		}
		inFlight[p]++
		if lone {
			inFlight["lone"]++
		}
		total++
		begun = append(begun, id)
		mu.Unlock()
		time.Sleep(time.Millisecond) // room for a wrong overlap to show
		mu.Lock()
		inFlight[p]--
		if lone {
			inFlight["lone"]--
		}
		total--
		mu.Unlock()
		switch p {
		case "/notify/panic":
			panic("boom")
		case "/notify/refuse":
			w.WriteHeader(http.StatusBadRequest)
			return
		case "/notify/fail":
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	r := httptest.NewRequest(http.MethodPost, "/batch", nil)
	lane := func(p string) (string, bool) { return p, strings.HasPrefix(p, "/notify/") }
	resp := RunBatch(r, req, "", h, lane)

	if problems != nil {
		t.Errorf("overlaps: %v", problems)
	}
	var statuses []int
	for _, res := range resp.Results {
		statuses = append(statuses, res.Status)
	}
	want := []int{201, 201, 201, 201, 201, 201, 201, 201, 400, 201, 201, 503}
	if !slices.Equal(statuses, want) {
		t.Errorf("answers %v, want %v (nothing after the 503)", statuses, want)
	}
	// e12, in another lane, may have begun beside e11; e13, behind it in
	// its lane, must not have.
	if slices.Contains(begun, "e13") {
		t.Error("e13 was begun behind e11's failure in its lane")
	}
	// Within each lane, in order.
	for _, p := range []string{"/notify/a", "/notify/b", "/notify/c"} {
		var order []int
		for _, id := range begun {
			var i int
			fmt.Sscanf(id, "e%d", &i)
			if paths[i] == p {
				order = append(order, i)
			}
		}
		if !slices.IsSorted(order) {
			t.Errorf("lane %s began in the order %v", p, order)
		}
	}

	req.Entries[1].Path = "/notify/panic"
	begun = nil
	resp = RunBatch(r, req, "", h, lane)
	if len(resp.Results) != 2 || resp.Results[1].Status != http.StatusInternalServerError {
		t.Errorf("a panicking entry: %d answers, want 2, the second 500", len(resp.Results))
	}
}

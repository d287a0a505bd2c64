package federation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// Batches (wire_batch.go): the sending side, Batcher, which the Outbox
// uses, and the receiving side, RunBatch, which a provider's batch
// endpoint calls.

const (
	// MaxBatchEntries is the most entries a receiver takes in one batch;
	// more is refused whole (400).
	MaxBatchEntries = 512
	// MaxBatchBody bounds the body of a batch request at the receiver.
	// Each entry's body is bounded as it would be alone.
	MaxBatchBody = 4 << 20
	// DefaultBatchEntries and DefaultBatchBytes are the Outbox's bounds
	// on a batch (OutboxOptions.MaxBatch, MaxBatchBytes): entries, and the
	// sum of their bodies.
	DefaultBatchEntries = 128
	DefaultBatchBytes   = 1 << 20
)

// batchPaths are the endpoints a batch may carry, as Switchboard lays
// them out under a partner's federation base URL: the one-way requests an
// outbox sends, whose answers carry no body a sender needs.
var batchPaths = []string{"/notify/", "/requestConsent/", "/updateConsent/", "/reportAbuse/"}

// Batchable reports whether an entry for path may travel in a batch.
func Batchable(path string) bool {
	for _, p := range batchPaths {
		if strings.HasPrefix(path, p) && len(path) > len(p) {
			return true
		}
	}
	return false
}

// batchPath is where Switchboard providers take batches, under the
// partner's federation base URL (NewDirectory's layout).
const batchPath = "/batch"

// How long a partner's answer to "do you take batches?" is kept: a
// directory that says yes or no, for batchSupportTTL; a directory that
// could not be read, for batchSupportRetry, during which every request
// goes alone.
const (
	batchSupportTTL   = 10 * time.Minute
	batchSupportRetry = time.Minute
)

// Batcher is the Outbox's Sender over a Transport. Send delivers one
// entry alone, as TransportSender does. SendBatch delivers several in one
// POST /batch to a partner whose directory lists "batch", and each alone
// to any other: an old partner keeps getting the requests it knows. The
// partner's directory is fetched through the Transport (which must be a
// Getter for batches to be used) and kept for ten minutes.
//
// A Batcher is safe for concurrent use.
type Batcher struct {
	t    Transport
	send SendFunc
	log  *slog.Logger
	now  func() time.Time

	mu       sync.Mutex
	supports map[string]batchSupport
}

type batchSupport struct {
	ok    bool
	until time.Time
}

// NewBatcher returns the Batcher of t; log (nil: discarded) hears when a
// partner's batch support changes or a batch is refused whole.
func NewBatcher(t Transport, log *slog.Logger) *Batcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Batcher{t: t, send: TransportSender(t), log: log.With("component", "batcher"), now: clock.Now,
		supports: map[string]batchSupport{}}
}

// Send delivers one entry alone; see TransportSender.
func (b *Batcher) Send(ctx context.Context, dest string, e store.OutboundEntry) error {
	return b.send(ctx, dest, e)
}

// SendBatch delivers es, two or more of dest's entries oldest first, in
// as few requests as it can: the longest batchable prefix (Batchable
// paths, valid delivery IDs, within MaxBatchBody) in one batch if dest
// takes batches, else es[0] alone. See BatchSender for what it returns.
func (b *Batcher) SendBatch(ctx context.Context, dest string, es []store.OutboundEntry) ([]error, error) {
	n := batchablePrefix(es)
	if n < 2 {
		return []error{b.send(ctx, dest, es[0])}, nil
	}
	if ok, err := b.takesBatches(ctx, dest); err != nil {
		return nil, err // the partner cannot be reached: nothing was sent
	} else if !ok {
		return []error{b.send(ctx, dest, es[0])}, nil
	}
	req := BatchRequest{Entries: make([]BatchEntry, n)}
	for i, e := range es[:n] {
		req.Entries[i] = entryOf(e)
	}
	resp, err := b.t.Post(ctx, dest, batchPath, mls.Marshal(&req), nil)
	if err := Classify(resp, err); err != nil {
		var pe *PeerError
		if errors.As(err, &pe) && pe.Permanent && ctx.Err() == nil {
			// The partner refused the batch itself (it no longer takes
			// them: 404; it finds it too large or malformed: 413, 400).
			// Its entries may well be fine alone, and must not be
			// dropped for the batch's sake.
			b.refused(dest, err)
			return []error{b.send(ctx, dest, es[0])}, nil
		}
		return nil, err
	}
	var br BatchResponse
	if err := mls.Unmarshal(resp.Body, &br); err != nil || len(br.Results) > n {
		// Nothing is known of what was applied: alone, each entry is
		// applied once by its delivery ID, so going alone is safe.
		if err == nil {
			err = fmt.Errorf("%d results for %d entries", len(br.Results), n)
		}
		b.refused(dest, fmt.Errorf("an answer that does not read: %w", err))
		return []error{b.send(ctx, dest, es[0])}, nil
	}
	out := make([]error, len(br.Results))
	for i, res := range br.Results {
		out[i] = Classify(&Response{Domain: dest, Status: res.Status, Header: res.header(), Body: res.Body}, nil)
	}
	return out, nil
}

// MayBatch reports whether dest may take batches: false while its last
// known answer says no, true when it said yes or is not known yet (the
// next SendBatch asks).
func (b *Batcher) MayBatch(dest string) bool {
	if _, isGetter := b.t.(Getter); !isGetter {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, known := b.supports[dest]
	return !known || !b.now().Before(s.until) || s.ok
}

// batchablePrefix is how many entries from the start of es can travel in
// one batch.
func batchablePrefix(es []store.OutboundEntry) int {
	size := 16 // the vector's length and some slack
	for i, e := range es {
		size += len(e.Path) + len(e.ID) + len(e.Body) + 64
		ok := i < MaxBatchEntries && Batchable(e.Path) && validDeliveryID(e.ID) && validBatchPath(e.Path)
		for k, v := range e.Header {
			size += len(k) + len(v) + 8
			// A header the batch cannot carry as it is: the entry goes
			// alone, where the transport sends it as it always did.
			ok = ok && (batchReservedHeaders[http.CanonicalHeaderKey(k)] ||
				validHeaderName(k) && validHeaderValue(v))
		}
		if !ok || size > MaxBatchBody {
			return i
		}
	}
	return len(es)
}

// entryOf is an outbox entry as a batch entry: its headers sorted, the
// delivery ID in its own field (the outbox's, whatever the headers say).
func entryOf(e store.OutboundEntry) BatchEntry {
	be := BatchEntry{Path: e.Path, DeliveryID: e.ID, Body: e.Body}
	for k, v := range e.Header {
		k = http.CanonicalHeaderKey(k)
		if batchReservedHeaders[k] {
			continue
		}
		be.Headers = append(be.Headers, HeaderField{Name: k, Value: v})
	}
	slices.SortFunc(be.Headers, func(a, b HeaderField) int { return strings.Compare(a.Name, b.Name) })
	return be
}

// header is the result's headers as an http.Header.
func (b *BatchResult) header() http.Header {
	h := make(http.Header, len(b.Headers))
	for _, f := range b.Headers {
		h.Set(f.Name, f.Value)
	}
	return h
}

// takesBatches says whether dest's directory lists the batch endpoint,
// fetching it when what we know is stale. A partner that cannot be
// reached (a retryable failure) is an error, and nothing is kept: it is
// asked again at the next attempt, so that a partner coming back from an
// outage gets its backlog in batches at once.
func (b *Batcher) takesBatches(ctx context.Context, dest string) (bool, error) {
	now := b.now()
	b.mu.Lock()
	s, known := b.supports[dest]
	b.mu.Unlock()
	if known && now.Before(s.until) {
		return s.ok, nil
	}
	g, isGetter := b.t.(Getter)
	if !isGetter {
		return false, nil
	}
	s = batchSupport{until: now.Add(batchSupportTTL)}
	resp, err := g.Get(ctx, dest, WellKnownDirectoryPath)
	if err = Classify(resp, err); err == nil {
		var d *Directory
		if d, err = ParseDirectory(resp.Body); err == nil {
			s.ok = d.Batch != ""
		}
	} else if !errors.Is(err, ErrPermanent) {
		return false, err
	}
	if err != nil {
		// No directory, or one that does not read: requests go alone.
		s.until = now.Add(batchSupportRetry)
		b.log.Info("federation: cannot read the partner's directory; sending requests alone for now", "partner", dest, "err", err)
	}
	b.mu.Lock()
	if old, had := b.supports[dest]; !had || old.ok != s.ok {
		b.log.Info("federation: partner batch support", "partner", dest, "batches", s.ok)
	}
	b.supports[dest] = s
	b.mu.Unlock()
	return s.ok, nil
}

// refused stops batches to dest for a while after the partner refused one
// whole.
func (b *Batcher) refused(dest string, err error) {
	b.log.Warn("federation: the partner refused a batch; sending requests alone for now", "partner", dest, "err", err)
	b.mu.Lock()
	b.supports[dest] = batchSupport{ok: false, until: b.now().Add(batchSupportTTL)}
	b.mu.Unlock()
}

// BatchLane says which entries of a batch may be handled side by side.
// Entries of the same lane are handled in order, one at a time; entries
// of different lanes may overlap. An entry with no lane (ok false) is
// handled alone: after every entry before it and before any after it.
type BatchLane func(path string) (lane string, ok bool)

// maxBatchParallel bounds the entries of one batch handled at once: all
// of a full batch, so that their store writes can share one commit (16 at
// a time made a batch of 128 wait for eight commits in turn).
const maxBatchParallel = DefaultBatchEntries

// maxEntryAnswer bounds the body kept of one entry's answer: the batch's
// endpoints answer with no body or a short JSON error.
const maxEntryAnswer = 16 << 10

// RunBatch handles the entries of req, each through h as a POST of its own
// to base+entry.Path, with the entry's headers, delivery ID and body, and
// the batch request's context (and so its PeerDomain), From, TLS state and
// remote address; base is the path of the receiver's federation base URL
// ("" or "/v1"). It returns the entries' answers, in order, up to and
// including the first that is worth retrying (by Classify): once one
// fails that way, no entry after it is begun, so that nothing overtakes
// it. Entries already under way in other lanes finish; their answers are
// left out, and the sender's repeat is applied once by its delivery ID.
//
// lane, if not nil, lets entries of different lanes be handled side by
// side (a whole batch at once), so that their store writes can share commits.
// Nil handles every entry alone, in turn. A panic in h is a 500 answer to
// that entry.
func RunBatch(r *http.Request, req *BatchRequest, base string, h http.Handler, lane BatchLane) *BatchResponse {
	n := len(req.Entries)
	results := make([]BatchResult, n)
	ran := make([]bool, n)
	var mu sync.Mutex
	stopAt := math.MaxInt // the first entry that failed in a retryable way
	run := func(i int) {
		mu.Lock()
		stop := i > stopAt
		mu.Unlock()
		if stop {
			return
		}
		res := runEntry(r, &req.Entries[i], base, h)
		mu.Lock()
		results[i], ran[i] = res, true
		if retryable(res) {
			stopAt = min(stopAt, i)
		}
		mu.Unlock()
	}

	sem := make(chan struct{}, maxBatchParallel)
	var wg sync.WaitGroup
	lanes := map[string]chan struct{}{} // each lane's last entry: closed when done
	var begun []chan struct{}           // entries under way since the last lone one
	waitAll := func() {
		for _, d := range begun {
			<-d
		}
		begun, lanes = nil, map[string]chan struct{}{}
	}
	for i := range req.Entries {
		mu.Lock()
		stopped := i > stopAt
		mu.Unlock()
		if stopped {
			break
		}
		key, laned := "", false
		if lane != nil {
			key, laned = lane(req.Entries[i].Path)
		}
		if !laned {
			waitAll()
			run(i)
			continue
		}
		prev, done := lanes[key], make(chan struct{})
		lanes[key] = done
		begun = append(begun, done)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			defer close(done)
			if prev != nil {
				<-prev
			}
			run(i)
		})
	}
	wg.Wait()

	out := &BatchResponse{}
	for i := range n {
		if !ran[i] {
			break
		}
		out.Results = append(out.Results, results[i])
		if retryable(results[i]) {
			break
		}
	}
	return out
}

// retryable reports whether a sender would retry an entry so answered.
func retryable(res BatchResult) bool {
	var pe *PeerError
	return errors.As(Classify(&Response{Status: res.Status, Header: res.header(), Body: res.Body}, nil), &pe) && !pe.Permanent
}

// runEntry handles one entry through h and records its answer.
func runEntry(batch *http.Request, e *BatchEntry, base string, h http.Handler) (res BatchResult) {
	w := &entryWriter{header: http.Header{}}
	defer func() {
		if p := recover(); p != nil {
			res = BatchResult{Status: http.StatusInternalServerError}
		}
	}()
	target := base + e.Path
	req, err := http.NewRequestWithContext(batch.Context(), http.MethodPost, target, bytes.NewReader(e.Body))
	if err != nil {
		return BatchResult{Status: http.StatusBadRequest}
	}
	for _, f := range e.Headers {
		req.Header.Set(f.Name, f.Value)
	}
	req.Header.Set(HeaderDeliveryID, e.DeliveryID)
	for _, k := range []string{"From", "Content-Type"} {
		if v := batch.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	req.RequestURI, req.Host, req.RemoteAddr, req.TLS = target, batch.Host, batch.RemoteAddr, batch.TLS
	req.Proto, req.ProtoMajor, req.ProtoMinor = batch.Proto, batch.ProtoMajor, batch.ProtoMinor
	h.ServeHTTP(w, req)
	return w.result()
}

// entryWriter records an entry's answer.
type entryWriter struct {
	header http.Header
	sent   http.Header
	status int
	body   []byte
}

func (w *entryWriter) Header() http.Header { return w.header }

func (w *entryWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return
	}
	w.status, w.sent = code, w.header.Clone()
}

func (w *entryWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if room := maxEntryAnswer - len(w.body); room > 0 {
		w.body = append(w.body, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (w *entryWriter) result() BatchResult {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	res := BatchResult{Status: w.status, Body: w.body}
	if res.Status > 599 {
		res.Status = http.StatusInternalServerError
	}
	for k, vs := range w.sent {
		if len(vs) == 0 || batchReservedHeaders[k] || !validHeaderName(k) || !validHeaderValue(vs[0]) {
			continue
		}
		res.Headers = append(res.Headers, HeaderField{Name: k, Value: vs[0]})
	}
	slices.SortFunc(res.Headers, func(a, b HeaderField) int { return strings.Compare(a.Name, b.Name) })
	return res
}

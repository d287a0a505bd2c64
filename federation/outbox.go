package federation

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/crashpoint"
	"github.com/switchboard-chat/switchboard/store"
)

// ErrPermanent marks a delivery failure that retrying cannot fix, such as a
// 4xx answer that is not 408, 425 or 429: the request itself is wrong for
// the receiver. A SendFunc wraps it (fmt.Errorf("%w: ...", ErrPermanent))
// and the Outbox then drops the entry instead of retrying it.
var ErrPermanent = errors.New("federation: permanent delivery failure")

// SendFunc delivers one outbox entry to dest and returns nil only once the
// destination has accepted it. ctx carries the per-request deadline. An
// error wrapping ErrPermanent drops the entry; any other error is retried,
// no sooner than the RetryAfter of a *PeerError in it (capped by
// MaxBackoff). TransportSender makes the SendFunc of a Transport; a real
// provider's Sender is Peers.OutboxSender, a Batcher.
type SendFunc func(ctx context.Context, dest string, e store.OutboundEntry) error

// Send calls f, so that a SendFunc is a Sender.
func (f SendFunc) Send(ctx context.Context, dest string, e store.OutboundEntry) error {
	return f(ctx, dest, e)
}

// Sender delivers outbox entries: Send, one entry, as a SendFunc does.
// A Sender that is also a BatchSender gets batches.
type Sender interface {
	Send(ctx context.Context, dest string, e store.OutboundEntry) error
}

// BatchSender is a Sender that can deliver several entries at once
// (Batcher, through a partner's batch endpoint).
//
// SendBatch is given two or more of dest's entries, oldest first, and
// returns one outcome per entry for a prefix of es, at least es[0]: nil
// once the destination accepted the entry, or an error as Send's (one
// wrapping ErrPermanent drops the entry, any other is retried). Entries
// after the prefix were not delivered, or not known to be: the Outbox
// sends them again. An error instead of outcomes says that nothing is
// known to have been accepted, and counts as a failure of es[0]; it must
// not be permanent, since it is not about es[0].
//
// MayBatch reports whether a batch to dest is worth reading: false while
// dest is known not to take batches, so that the Outbox reads one entry
// to send one.
type BatchSender interface {
	Sender
	SendBatch(ctx context.Context, dest string, es []store.OutboundEntry) ([]error, error)
	MayBatch(dest string) bool
}

// OutboxOptions tune an Outbox. Zero values take the defaults.
type OutboxOptions struct {
	// MinBackoff is the longest wait after a first failure (default 1s);
	// each further failure doubles it, up to MaxBackoff (default 5m).
	// The actual wait is drawn uniformly from [0, that ceiling] ("full
	// jitter"), so that the many providers retrying one partner that
	// comes back do not all arrive at once.
	MinBackoff, MaxBackoff time.Duration
	// RequestTimeout bounds each attempt (default 30s), so a partner
	// that accepts connections and never answers costs one timeout per
	// attempt, not a worker for ever.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	// Now replaces time.Now when computing and honouring NotBefore.
	Now func() time.Time
	// Metrics, if set, is told of every event, with its destination.
	Metrics OutboxMetrics
	// Cluster, if set, shares the destinations with the outboxes of the
	// provider's other replicas (over the same store): a worker sends
	// only while it holds its destination's lease, and Wake announces
	// new entries to the other replicas. Nil: this process is the only
	// sender, as with the embedded store.
	Cluster Cluster
	// Rescan is how often, with a Cluster, Run lists the destinations
	// with entries again (default 10s), so that a destination whose
	// holder died, or whose announcement was lost, is taken up.
	Rescan time.Duration
	// MaxBatch bounds the entries of one batched request (default
	// DefaultBatchEntries; 1 sends every entry alone), MaxBatchBytes the
	// sum of their bodies (default DefaultBatchBytes; an entry larger
	// than that goes alone).
	// Batches are sent only when the Sender is a BatchSender; otherwise
	// one entry at a time.
	MaxBatch, MaxBatchBytes int
}

// Cluster is what the outboxes of several replicas need to share the
// destinations; bus.NATS is one. Acquire tries to take dest's lease: ok
// false (and no error) when another replica holds it; held ends when the
// lease is lost; release gives it up. Announce tells the other replicas
// of new entries for dest (their outboxes' WakeLocal).
type Cluster interface {
	Acquire(ctx context.Context, dest string) (held context.Context, release func(), ok bool, err error)
	Announce(dest string)
}

// OutboxMetrics receives the Outbox's events, for instance to count them
// in Prometheus with the destination as a label. Its methods are called
// from many goroutines at once and must not block.
type OutboxMetrics interface {
	Queued(dest string)  // an entry reached the head of its destination's queue
	Sent(dest string)    // an entry was accepted by its destination
	Retried(dest string) // an attempt failed and the entry will be retried
	Failed(dest string)  // an entry was dropped after a permanent failure
}

// OutboxStats are the Outbox's counts since it was made (see
// OutboxMetrics for what each counts).
type OutboxStats struct {
	Queued, Sent, Retried, Failed int64
}

// Outbox delivers the store's outbound entries to other providers: one
// worker goroutine per destination with entries, each sending its
// destination's entries strictly in order with at most one request in
// flight. That request carries the destination's next entries as one
// batch, where the Sender, the store and the destination allow (up to
// MaxBatch entries and MaxBatchBytes), else the next entry alone. A
// failed attempt is recorded in the store and retried after an
// exponential, jittered, capped backoff; the entries behind it wait, since
// that is what per-destination order means. Destinations never wait for
// each other: a slow or dead partner holds up only its own worker.
//
// Delivery is at least once: an entry is deleted only after its
// destination accepted it, so a crash or a lost answer between the two
// sends it again, and the receiver drops the repeat by its ID
// (store.Store.SeenInbound).
type Outbox struct {
	st     store.Store
	send   Sender
	batch  BatchSender // nil: no batches
	opts   OutboxOptions
	log    *slog.Logger
	jitter func(ceiling time.Duration) time.Duration // replaced by tests
	// idle, if set, runs when a worker has found its queue empty and is
	// about to retire: tests use it to land a Wake in that window.
	idle func(dest string)

	queued, sent, retried, failed atomic.Int64

	mu      sync.Mutex
	started bool                     // a Run is in progress (including its shutdown)
	running bool                     // Wake starts workers
	runCtx  context.Context          // Run's context, for the workers
	workers map[string]chan struct{} // destination -> its worker's wake-up
	nudges  map[string]*nudge        // destination -> its worker's early retry
	wg      sync.WaitGroup
}

// nudge asks a worker waiting out a backoff to try again now: its
// destination was just heard from (Nudge).
type nudge struct {
	c    chan struct{}
	last time.Time // the last nudge let through, to space them
}

// NewOutbox returns an Outbox that delivers st's outbound entries with
// send (a SendFunc, or a Batcher for batches). Nothing happens until Run.
func NewOutbox(st store.Store, send Sender, opts OutboxOptions) *Outbox {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	if opts.Rescan <= 0 {
		opts.Rescan = 10 * time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultBatchEntries
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = DefaultBatchBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := &Outbox{
		st:      st,
		send:    send,
		opts:    opts,
		log:     log.With("component", "outbox"),
		jitter:  fullJitter,
		workers: map[string]chan struct{}{},
		nudges:  map[string]*nudge{},
	}
	if bs, ok := send.(BatchSender); ok && opts.MaxBatch > 1 {
		o.batch = bs
	}
	return o
}

// Run delivers until ctx ends, then waits for its workers and returns nil.
// It starts a worker for every destination that has entries in the store,
// which is how delivery resumes after a restart, and for each destination
// Wake names later. Run returns an error if the store cannot list the
// destinations or if the Outbox is already running. Close the store only
// after Run has returned: a worker may be recording an outcome until then.
func (o *Outbox) Run(ctx context.Context) error {
	o.mu.Lock()
	if o.started {
		o.mu.Unlock()
		return errors.New("federation: outbox already running")
	}
	// The workers' context ends with Run, whichever way Run ends.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	// Accept wakes before listing the destinations: an entry stored and
	// woken in between is then either listed or woken, never missed.
	o.started, o.running, o.runCtx = true, true, wctx
	o.mu.Unlock()

	dests, err := o.st.OutboundDestinations(ctx)
	if err == nil {
		for _, d := range dests {
			o.WakeLocal(d)
		}
		o.log.Info("outbox running", "destinations", len(dests))
		if o.opts.Cluster != nil {
			o.rescan(ctx)
		}
		<-ctx.Done()
	}

	o.mu.Lock()
	o.running = false // no new workers: wg.Go never races wg.Wait
	o.mu.Unlock()
	stop()
	o.wg.Wait()
	o.mu.Lock()
	o.started, o.runCtx = false, nil
	o.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// Wake tells the Outbox that dest has new entries in the store; call it
// after Submit or EnqueueOutbound returns. It never blocks. Before Run or
// after it has stopped it does nothing: the next Run finds the entries.
// With a Cluster, the other replicas are told as well.
func (o *Outbox) Wake(dest string) {
	o.WakeLocal(dest)
	if o.opts.Cluster != nil {
		o.opts.Cluster.Announce(dest)
	}
}

// rescan wakes every destination with entries, every Rescan, until ctx
// ends: with several replicas, a destination may have entries that no
// announcement reaches (its holder died, NATS lost the hint).
func (o *Outbox) rescan(ctx context.Context) {
	t := time.NewTicker(o.opts.Rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		dests, err := o.st.OutboundDestinations(ctx)
		if err != nil {
			if ctx.Err() == nil {
				o.log.Error("outbox: listing destinations", "err", err)
			}
			continue
		}
		for _, d := range dests {
			o.WakeLocal(d)
		}
	}
}

// WakeLocal is Wake without telling the other replicas: for what another
// replica announced.
func (o *Outbox) WakeLocal(dest string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.running {
		return
	}
	if poke, ok := o.workers[dest]; ok {
		select {
		case poke <- struct{}{}:
		default: // already poked
		}
		return
	}
	poke := make(chan struct{}, 1)
	o.workers[dest] = poke
	n := &nudge{c: make(chan struct{}, 1)}
	o.nudges[dest] = n
	ctx := o.runCtx
	o.wg.Go(func() { o.work(ctx, dest, poke, n.c) })
}

// Nudge tells the Outbox that dest was just heard from: it sent us an
// authenticated request (a provider's federation handler nudges for each
// one). A partner that comes
// back after an outage is then caught up at once, instead of when the
// backoff its failures built up (up to MaxBackoff) runs out: if dest's
// worker is waiting out a backoff, it tries again now. Should that fail,
// the backoff goes on growing as before.
//
// Nudges are let through at most once per MinBackoff per destination, so
// a partner that reaches us while we cannot reach it (a one-way
// partition) costs us one early attempt a second, not one per request it
// sends. Nudge never blocks; it does nothing for a destination without
// entries. With a Cluster it nudges this replica's worker only.
func (o *Outbox) Nudge(dest string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.nudges[dest]
	if n == nil {
		return
	}
	now := time.Now()
	if now.Sub(n.last) < o.opts.MinBackoff {
		return
	}
	n.last = now
	select {
	case n.c <- struct{}{}:
	default: // already nudged
	}
}

// Enqueue stores out in the outbox and wakes each destination: the way to
// send a request that does not come with a room message.
func (o *Outbox) Enqueue(ctx context.Context, out []store.Outbound) error {
	if err := o.st.EnqueueOutbound(ctx, out); err != nil {
		return err
	}
	for i, e := range out {
		if i == 0 || out[i-1].Destination != e.Destination { // #nosec G602 -- i > 0 here, so i-1 is in out
			o.Wake(e.Destination)
		}
	}
	return nil
}

// Stats returns the counts so far.
func (o *Outbox) Stats() OutboxStats {
	return OutboxStats{Queued: o.queued.Load(), Sent: o.sent.Load(), Retried: o.retried.Load(), Failed: o.failed.Load()}
}

// work delivers dest's entries until there are none or ctx ends.
func (o *Outbox) work(ctx context.Context, dest string, poke, nudged chan struct{}) {
	log := o.log.With("destination", dest)
	defer o.forget(dest, poke)
	var counted int64  // the highest Seq counted as queued
	storeFailures := 0 // consecutive store errors, for their own backoff
	// With a Cluster the worker sends only under dest's lease, and every
	// request's context ends with it: once the lease is lost (another
	// replica may take it), nothing of ours is in flight.
	held, release := ctx, func() {}
	leased := o.opts.Cluster == nil
	defer func() { release() }()
	for ctx.Err() == nil {
		if !leased {
			h, rel, ok, err := o.opts.Cluster.Acquire(ctx, dest)
			if err != nil {
				storeFailures++
				log.Warn("outbox: cannot take the destination's lease", "err", err)
				sleep(ctx, o.backoff(storeFailures))
				continue
			}
			if !ok {
				// Another replica sends to dest; it heard of the new
				// entries too, and the rescan covers its death.
				return
			}
			held, release, leased = h, rel, true
		}
		if held.Err() != nil {
			log.Warn("outbox: lease lost; another replica may send now")
			release()
			held, release, leased = ctx, func() {}, false
			continue
		}
		es, err := o.next(held, dest)
		if errors.Is(err, store.ErrNotFound) {
			if o.idle != nil {
				o.idle(dest)
			}
			if o.opts.Cluster != nil {
				// Free the destination before retiring: an announcement
				// that arrives after this starts a worker that must be
				// able to take it.
				release()
				held, release, leased = ctx, func() {}, false
			}
			if o.retire(dest, poke) {
				return
			}
			continue
		}
		if err != nil {
			if held.Err() != nil {
				continue
			}
			// The store is in trouble; delivering is pointless until it
			// recovers, and spinning would only flood the log.
			storeFailures++
			log.Error("outbox: reading the next entry", "err", err)
			sleep(ctx, o.backoff(storeFailures))
			continue
		}
		storeFailures = 0
		for _, e := range es {
			if e.Seq > counted {
				counted = e.Seq
				o.note(&o.queued, OutboxMetrics.Queued, dest)
			}
		}
		// After a restart the entry's backoff is still running; within a
		// process it was set just now, by the failure below. A nudge
		// (the destination was heard from) ends it early.
		if wait := es[0].NotBefore.Sub(o.opts.Now()); wait > 0 {
			waited, ok := sleepOrNudge(held, wait, nudged)
			if !ok {
				continue // stopping, or the lease was lost
			}
			if waited < wait {
				log.Info("outbox: destination heard from; retrying before the backoff ends",
					"seq", es[0].Seq, "attempts", es[0].Attempts, "backoff_left", wait-waited)
			}
		}
		// This attempt finds out whether dest is reachable: a nudge from
		// before it is stale, one during it is news.
		select {
		case <-nudged:
		default:
		}
		if len(es) > 1 {
			o.deliverBatch(held, log, dest, es)
		} else {
			o.deliver(held, log, dest, es[0])
		}
	}
}

// next reads what the next attempt for dest carries: with batches, up to
// MaxBatch of its oldest entries within MaxBatchBytes, else (or when the
// first is too large to share) the oldest alone. None is store.ErrNotFound.
func (o *Outbox) next(ctx context.Context, dest string) ([]store.OutboundEntry, error) {
	if o.batch == nil || !o.batch.MayBatch(dest) {
		e, err := o.st.NextOutbound(ctx, dest)
		if err != nil {
			return nil, err
		}
		return []store.OutboundEntry{e}, nil
	}
	es, err := o.st.NextOutboundBatch(ctx, dest, o.opts.MaxBatch)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, store.ErrNotFound
	}
	// Only the head waits out a backoff; should an entry behind it have
	// one too (a crash between two records), the batch ends before it.
	size, now := len(es[0].Body), o.opts.Now()
	for i := 1; i < len(es); i++ {
		size += len(es[i].Body)
		if size > o.opts.MaxBatchBytes || es[i].NotBefore.After(now) || es[i].Seq <= es[i-1].Seq {
			return es[:i], nil
		}
	}
	return es, nil
}

// deliver makes one attempt at e and records its outcome. It returns false
// when ctx has ended.
func (o *Outbox) deliver(ctx context.Context, log *slog.Logger, dest string, e store.OutboundEntry) bool {
	rctx, cancel := context.WithTimeout(ctx, o.opts.RequestTimeout)
	err := o.send.Send(rctx, dest, e)
	cancel()
	return o.record(ctx, log, dest, e, err)
}

// deliverBatch makes one attempt at es, two or more entries, through the
// BatchSender, and records each outcome: the entries accepted or refused
// for good are deleted (together, so that the store can write them in
// one commit), the first that failed otherwise is retried later, and the
// entries after it stay as they are, to go in the next attempt. It returns
// false when ctx has ended.
func (o *Outbox) deliverBatch(ctx context.Context, log *slog.Logger, dest string, es []store.OutboundEntry) bool {
	rctx, cancel := context.WithTimeout(ctx, o.opts.RequestTimeout)
	outcomes, err := o.batch.SendBatch(rctx, dest, es)
	cancel()
	if err == nil && len(outcomes) == 0 {
		err = errors.New("federation: the batch sender gave no outcome")
	}
	if err != nil {
		if errors.Is(err, ErrPermanent) {
			// Not about es[0] alone, so it must not drop it.
			err = errors.New(err.Error())
		}
		return o.record(ctx, log, dest, es[0], err)
	}
	var done []store.OutboundEntry
	failed := -1
	for i, err := range outcomes[:min(len(outcomes), len(es))] {
		e := es[i]
		switch {
		case err == nil:
			o.note(&o.sent, OutboxMetrics.Sent, dest)
			done = append(done, e)
			continue
		case ctx.Err() != nil:
			// Stopping: the rest are sent again by the next Run.
		case errors.Is(err, ErrPermanent):
			o.dropped(log, dest, e, err)
			done = append(done, e)
			continue
		default:
			failed = i
		}
		break
	}
	crashpoint.ReachedIf(len(done) > 0, crashpoint.OutboxSent)
	crashpoint.ReachedIf(len(done) > 0 && es[0].Attempts > 0, crashpoint.OutboxRetrySent)
	if !o.deleteAll(ctx, log, dest, done) {
		return false
	}
	log.Debug("outbox: batch delivered", "entries", len(es), "done", len(done))
	if failed >= 0 {
		return o.retryLater(ctx, log, dest, es[failed], outcomes[failed])
	}
	return ctx.Err() == nil
}

// record records the outcome of one attempt at e. It returns false when
// ctx has ended.
func (o *Outbox) record(ctx context.Context, log *slog.Logger, dest string, e store.OutboundEntry, err error) bool {
	switch {
	case err == nil:
		o.note(&o.sent, OutboxMetrics.Sent, dest)
		crashpoint.Reached(crashpoint.OutboxSent)
		crashpoint.ReachedIf(e.Attempts > 0, crashpoint.OutboxRetrySent)
		if !o.deleteAll(ctx, log, dest, []store.OutboundEntry{e}) {
			return false
		}
		log.Debug("outbox: delivered", "seq", e.Seq, "id", e.ID, "kind", e.Kind, "attempts", e.Attempts+1)
		return true

	case ctx.Err() != nil:
		// We are stopping, not the destination failing: record nothing,
		// and the next Run sends the entry again.
		return false

	case errors.Is(err, ErrPermanent):
		// Retrying cannot fix this entry, and keeping it at the head
		// would block every later entry for this destination for ever
		// (the hub's fan-out to a whole provider). Dropping it loses
		// one request, loudly: an error log with everything needed to
		// find it, and the Failed count for alerting.
		o.dropped(log, dest, e, err)
		return o.deleteAll(ctx, log, dest, []store.OutboundEntry{e})

	default:
		return o.retryLater(ctx, log, dest, e, err)
	}
}

// dropped logs and counts an entry refused for good.
func (o *Outbox) dropped(log *slog.Logger, dest string, e store.OutboundEntry, err error) {
	o.note(&o.failed, OutboxMetrics.Failed, dest)
	log.Error("outbox: dropped after a permanent failure", "seq", e.Seq, "id", e.ID, "kind", e.Kind,
		"path", e.Path, "attempts", e.Attempts+1, "err", err)
}

// retryLater records a failed attempt at e and when to try it again.
func (o *Outbox) retryLater(ctx context.Context, log *slog.Logger, dest string, e store.OutboundEntry, err error) bool {
	wctx, cancel := recordContext(ctx)
	defer cancel()
	attempts := e.Attempts + 1
	wait := o.backoff(attempts)
	// A partner that said when to come back (Retry-After, which MIMI
	// asks senders to respect) would only refuse an earlier retry.
	// MaxBackoff still caps the wait, so a broken header cannot park
	// the queue.
	var pe *PeerError
	if errors.As(err, &pe) && !pe.RetryAfter.IsZero() {
		wait = max(wait, min(pe.RetryAfter.Sub(o.opts.Now()), o.opts.MaxBackoff))
	}
	o.note(&o.retried, OutboxMetrics.Retried, dest)
	log.Warn("outbox: delivery failed, will retry", "seq", e.Seq, "id", e.ID, "kind", e.Kind,
		"attempts", attempts, "retry_in", wait, "err", err)
	if merr := o.st.MarkOutboundFailed(wctx, dest, e.Seq, attempts, o.opts.Now().Add(wait), err.Error()); merr != nil {
		// The stored NotBefore is stale, so wait here instead.
		log.Error("outbox: recording a failed attempt", "seq", e.Seq, "err", merr)
		return sleep(ctx, wait)
	}
	crashpoint.Reached(crashpoint.OutboxFailureRecorded)
	return true
}

// maxParallelDeletes bounds the deletes of one batch in flight at once.
const maxParallelDeletes = 32

// deleteAll deletes entries that were delivered or dropped. The deletes
// run side by side, so that a store that groups concurrent writes into
// one commit (SQLite's writer, PostgreSQL's group commit) pays for one.
// It returns false when ctx has ended during the pause after a failure.
func (o *Outbox) deleteAll(ctx context.Context, log *slog.Logger, dest string, es []store.OutboundEntry) bool {
	if len(es) == 0 {
		return true
	}
	// Records are written on a context that outlives a shutdown, so that
	// a delivery that succeeded just as Run was stopped is not sent again
	// needlessly; the writes are short and bounded.
	wctx, cancel := recordContext(ctx)
	defer cancel()
	errs := make([]error, len(es))
	if len(es) == 1 {
		errs[0] = o.st.DeleteOutbound(wctx, dest, es[0].Seq)
	} else {
		sem := make(chan struct{}, maxParallelDeletes)
		var wg sync.WaitGroup
		for i, e := range es {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				errs[i] = o.st.DeleteOutbound(wctx, dest, e.Seq)
			})
		}
		wg.Wait()
	}
	for i, err := range errs {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			// It will be sent again; the receiver drops the repeat. Wait
			// first, so a broken store does not turn into a resend loop.
			log.Error("outbox: delivered but not deleted", "seq", es[i].Seq, "id", es[i].ID, "err", err) // #nosec G602 -- errs has one entry per entry of es
			return sleep(ctx, o.backoff(1))
		}
	}
	return true
}

// recordContext is the context of the store writes that record an
// attempt's outcome: not ended by a shutdown, bounded in time.
func recordContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// retire removes dest's worker when its queue is empty, unless a Wake came
// in since the worker last looked: then there may be a new entry, and it
// looks again. Wake and retire hold the same lock, so a wake is never lost
// between a worker's last look and its exit.
func (o *Outbox) retire(dest string, poke chan struct{}) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-poke:
		return false
	default:
		delete(o.workers, dest)
		delete(o.nudges, dest)
		return true
	}
}

// forget removes a stopping worker from the map so the next Run starts a
// fresh one. It checks the entry is still this worker's: after retire, a
// Wake may already have started a successor for dest, and deleting that
// one's entry would let a further Wake start a second worker beside it,
// breaking one request in flight per destination.
func (o *Outbox) forget(dest string, poke chan struct{}) {
	o.mu.Lock()
	if o.workers[dest] == poke {
		delete(o.workers, dest)
		delete(o.nudges, dest)
	}
	o.mu.Unlock()
}

// backoff is the wait before retrying after the given number of failed
// attempts: full jitter under an exponential, capped ceiling.
func (o *Outbox) backoff(attempts int) time.Duration {
	return o.jitter(backoffCeiling(attempts, o.opts.MinBackoff, o.opts.MaxBackoff))
}

// backoffCeiling is lo after the first failure, doubled for each further
// one, and never more than hi.
func backoffCeiling(attempts int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < attempts && d < hi; i++ {
		if d > hi/2 { // doubling would pass hi, or overflow
			return hi
		}
		d *= 2
	}
	return min(d, hi)
}

// fullJitter draws uniformly from [0, ceiling].
func fullJitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1)) // #nosec G404 -- jitter of a retry, not a secret
}

// sleep waits for d or until ctx ends, and reports whether it waited the
// whole time.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// sleepOrNudge is sleep that a nudge also ends: it returns how long it
// waited, and false only when ctx ended.
func sleepOrNudge(ctx context.Context, d time.Duration, nudged <-chan struct{}) (time.Duration, bool) {
	began := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return d, true
	case <-nudged:
		return time.Since(began), true
	case <-ctx.Done():
		return time.Since(began), false
	}
}

// note counts an event and tells Metrics, if any. hook is a method
// expression (OutboxMetrics.Sent, ...), so one helper serves all four.
func (o *Outbox) note(n *atomic.Int64, hook func(OutboxMetrics, string), dest string) {
	n.Add(1)
	if o.opts.Metrics != nil {
		hook(o.opts.Metrics, dest)
	}
}

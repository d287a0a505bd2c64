package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// outbound is a request to dest with a recognisable body.
func outbound(dest, id string) store.Outbound {
	return store.Outbound{Destination: dest, Kind: "notify", Path: "/mimi/v1/notify/" + id,
		Body: []byte("body of " + id), ID: id}
}

// drain reads a destination's entries head first, deleting each, and
// returns their IDs: the order a sender would deliver them in.
func (e *env) drain(dest string) []string {
	e.t.Helper()
	var ids []string
	for {
		o, err := e.s.NextOutbound(e.ctx, dest)
		if errors.Is(err, store.ErrNotFound) {
			return ids
		}
		e.ok(err)
		ids = append(ids, o.ID)
		e.ok(e.s.DeleteOutbound(e.ctx, dest, o.Seq))
	}
}

func (e *env) destinations() []string {
	e.t.Helper()
	ds, err := e.s.OutboundDestinations(e.ctx)
	e.ok(err)
	return ds
}

// outboxBatches: a batch for a destination is its oldest entries, in
// order, as many as asked for and no more, whole; other destinations'
// entries never join it; an empty outbox is ErrNotFound and a batch of
// nothing is refused.
func outboxBatches(t *testing.T, e *env) {
	_, err := e.s.NextOutboundBatch(e.ctx, "blue.test", 8)
	is(t, err, store.ErrNotFound, "NextOutboundBatch on an empty outbox")
	var blue []store.Outbound
	for i := range 5 {
		o := outbound("blue.test", fmt.Sprintf("b%d", i))
		if i == 1 {
			o.Header = map[string]string{"X-Room": "r1"}
		}
		blue = append(blue, o)
		e.ok(e.s.EnqueueOutbound(e.ctx, []store.Outbound{o, outbound("green.test", fmt.Sprintf("g%d", i))}))
	}
	ids := func(es []store.OutboundEntry) []string {
		var out []string
		for _, o := range es {
			out = append(out, o.ID)
		}
		return out
	}
	three, err := e.s.NextOutboundBatch(e.ctx, "blue.test", 3)
	e.ok(err)
	if got := ids(three); !slices.Equal(got, []string{"b0", "b1", "b2"}) {
		t.Fatalf("a batch of 3 for blue.test = %v, want b0 b1 b2", got)
	}
	for i, o := range three {
		if o.Destination != "blue.test" || o.Kind != blue[i].Kind || o.Path != blue[i].Path || !bytes.Equal(o.Body, blue[i].Body) ||
			fmt.Sprint(o.Header) != fmt.Sprint(blue[i].Header) || (i > 0 && o.Seq <= three[i-1].Seq) {
			t.Errorf("batch entry %d = %+v, want %+v after seq %d", i, o, blue[i], three[max(i-1, 0)].Seq)
		}
	}
	if head, err := e.s.NextOutbound(e.ctx, "blue.test"); err != nil || head.Seq != three[0].Seq {
		t.Errorf("NextOutbound = %+v, %v; want the batch's first entry", head, err)
	}
	all, err := e.s.NextOutboundBatch(e.ctx, "blue.test", 100)
	e.ok(err)
	if got := ids(all); !slices.Equal(got, []string{"b0", "b1", "b2", "b3", "b4"}) {
		t.Errorf("a batch of up to 100 for blue.test = %v, want its five entries", got)
	}
	e.ok(e.s.DeleteOutbound(e.ctx, "blue.test", three[0].Seq))
	e.ok(e.s.DeleteOutbound(e.ctx, "blue.test", three[1].Seq))
	rest, err := e.s.NextOutboundBatch(e.ctx, "blue.test", 2)
	e.ok(err)
	if got := ids(rest); !slices.Equal(got, []string{"b2", "b3"}) {
		t.Errorf("after two were delivered, a batch of 2 = %v, want b2 b3", got)
	}
	green, err := e.s.NextOutboundBatch(e.ctx, "green.test", 10)
	e.ok(err)
	if got := ids(green); !slices.Equal(got, []string{"g0", "g1", "g2", "g3", "g4"}) {
		t.Errorf("green.test's batch = %v", got)
	}
	if _, err := e.s.NextOutboundBatch(e.ctx, "blue.test", 0); err == nil {
		t.Error("a batch of 0 entries was not refused")
	}
}

// outboxOrder: entries come out per destination in the order they went
// in, however destinations interleave, and round-trip exactly.
func outboxOrder(t *testing.T, e *env) {
	if got := e.destinations(); len(got) != 0 {
		t.Fatalf("fresh store has destinations %v", got)
	}
	_, err := e.s.NextOutbound(e.ctx, "blue.test")
	is(t, err, store.ErrNotFound, "NextOutbound on an empty outbox")

	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	first := store.Outbound{Destination: "blue.test", Kind: "submitMessage", Path: "/mimi/v1/submitMessage/!r", Body: all, ID: "b1"}
	before := time.Now()
	e.ok(e.s.EnqueueOutbound(e.ctx, []store.Outbound{first, outbound("green.test", "g1"), outbound("blue.test", "b2")}))
	e.ok(e.s.EnqueueOutbound(e.ctx, []store.Outbound{outbound("green.test", "g2"), outbound("blue.test", "b3"),
		{Destination: "blue.test", Kind: "update", Path: "/p", ID: "b4"}}))
	after := time.Now()
	if got := e.destinations(); !slices.Equal(got, []string{"blue.test", "green.test"}) {
		t.Errorf("destinations = %v, want blue.test and green.test", got)
	}

	head, err := e.s.NextOutbound(e.ctx, "blue.test")
	e.ok(err)
	if head.Outbound.Destination != first.Destination || head.Kind != first.Kind || head.Path != first.Path ||
		!bytes.Equal(head.Body, all) || head.ID != first.ID || head.Attempts != 0 || !head.NotBefore.IsZero() || head.LastError != "" {
		t.Errorf("head of blue.test = %+v, want %+v, fresh", head, first)
	}
	stamped(t, "OutboundEntry.Created", head.Created, before, after)
	// Reading the head does not take it: it stays until deleted.
	if again, err := e.s.NextOutbound(e.ctx, "blue.test"); err != nil || again.Seq != head.Seq {
		t.Errorf("second NextOutbound = %+v, %v; want the same head", again, err)
	}
	// A delete names its destination: another's Seq is not ours.
	is(t, e.s.DeleteOutbound(e.ctx, "green.test", head.Seq), store.ErrNotFound, "DeleteOutbound with the wrong destination")

	if got := e.drain("blue.test"); !slices.Equal(got, []string{"b1", "b2", "b3", "b4"}) {
		t.Errorf("blue.test in order %v, want b1 b2 b3 b4", got)
	}
	is(t, e.s.DeleteOutbound(e.ctx, "blue.test", head.Seq), store.ErrNotFound, "deleting a deleted entry")
	if got := e.destinations(); !slices.Equal(got, []string{"green.test"}) {
		t.Errorf("destinations after blue.test emptied = %v", got)
	}
	if got := e.drain("green.test"); !slices.Equal(got, []string{"g1", "g2"}) {
		t.Errorf("green.test in order %v, want g1 g2", got)
	}
	if got := e.destinations(); len(got) != 0 {
		t.Errorf("destinations after all delivered = %v", got)
	}
	// An empty body round-trips as empty.
	e.ok(e.s.EnqueueOutbound(e.ctx, []store.Outbound{{Destination: "blue.test", Path: "/p", ID: "empty"}}))
	if o, err := e.s.NextOutbound(e.ctx, "blue.test"); err != nil || len(o.Body) != 0 || o.Kind != "" {
		t.Errorf("entry with no body = %+v, %v", o, err)
	}
}

// outboxFailed: a failed attempt is recorded on the entry, which stays at
// the head of its destination: later entries wait behind it.
func outboxFailed(t *testing.T, e *env) {
	e.ok(e.s.EnqueueOutbound(e.ctx, []store.Outbound{outbound("blue.test", "b1"), outbound("blue.test", "b2")}))
	head, err := e.s.NextOutbound(e.ctx, "blue.test")
	e.ok(err)
	retry := time.Date(2026, 5, 6, 7, 8, 9, 123456000, time.UTC)
	e.ok(e.s.MarkOutboundFailed(e.ctx, "blue.test", head.Seq, 3, retry, "503 Service Unavailable"))
	got, err := e.s.NextOutbound(e.ctx, "blue.test")
	e.ok(err)
	if got.Seq != head.Seq || got.ID != "b1" || got.Attempts != 3 || !got.NotBefore.Equal(retry) || got.LastError != "503 Service Unavailable" {
		t.Errorf("after a failed attempt the head is %+v; want b1, 3 attempts, not before %v", got, retry)
	}
	is(t, e.s.MarkOutboundFailed(e.ctx, "blue.test", head.Seq+1000, 1, retry, "x"), store.ErrNotFound, "marking an unknown entry")
	is(t, e.s.MarkOutboundFailed(e.ctx, "green.test", head.Seq, 1, retry, "x"), store.ErrNotFound, "marking with the wrong destination")
	// A zero NotBefore means "now" and round-trips as zero.
	e.ok(e.s.MarkOutboundFailed(e.ctx, "blue.test", head.Seq, 4, time.Time{}, ""))
	if got, _ := e.s.NextOutbound(e.ctx, "blue.test"); got.Attempts != 4 || !got.NotBefore.IsZero() {
		t.Errorf("after marking with a zero time: %+v", got)
	}
	if ids := e.drain("blue.test"); !slices.Equal(ids, []string{"b1", "b2"}) {
		t.Errorf("order after failures = %v, want b1 b2", ids)
	}
}

// outboxEnqueue: a batch is stored whole or not at all; an entry still
// queued under the same (destination, ID) is skipped, so a retried
// enqueue sends nothing twice; IDs are per destination.
func outboxEnqueue(t *testing.T, e *env) {
	bad := []store.Outbound{outbound("blue.test", "b1"), {Destination: "blue.test", Path: "/p"}}
	if err := e.s.EnqueueOutbound(e.ctx, bad); err == nil {
		t.Fatal("EnqueueOutbound with an entry without an ID succeeded")
	}
	for _, o := range []store.Outbound{{Path: "/p", ID: "x"}, {Destination: "blue.test", ID: "x"}} {
		if err := e.s.EnqueueOutbound(e.ctx, []store.Outbound{o}); err == nil {
			t.Errorf("EnqueueOutbound(%+v) succeeded", o)
		}
	}
	if got := e.destinations(); len(got) != 0 {
		t.Fatalf("a refused batch left entries for %v", got)
	}
	e.ok(e.s.EnqueueOutbound(e.ctx, nil))

	batch := []store.Outbound{outbound("blue.test", "b1"), outbound("blue.test", "b2"), outbound("green.test", "b1")}
	e.ok(e.s.EnqueueOutbound(e.ctx, batch))
	e.ok(e.s.EnqueueOutbound(e.ctx, batch)) // a retry after a lost answer
	e.ok(e.s.EnqueueOutbound(e.ctx, []store.Outbound{outbound("blue.test", "b3"), outbound("blue.test", "b3")}))
	if got := e.drain("blue.test"); !slices.Equal(got, []string{"b1", "b2", "b3"}) {
		t.Errorf("blue.test = %v, want b1 b2 b3 once each", got)
	}
	if got := e.drain("green.test"); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("green.test = %v, want b1: IDs are per destination", got)
	}
}

// outboxWithSubmit: a submission's outbound entries share its fate: stored
// with an accepted message, not again for a duplicate, never for a
// refused one.
func outboxWithSubmit(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.device(alice.ID, "a"), e.device(bob.ID, "b")
	e.room("!r", alice.ID, bob.ID)

	m1 := app("!r", "m1", a.ID, b.ID)
	m1.Outbound = []store.Outbound{outbound("blue.test", "!r/1"), outbound("green.test", "!r/1")}
	e.submit(m1)
	if got := e.destinations(); !slices.Equal(got, []string{"blue.test", "green.test"}) {
		t.Fatalf("destinations after m1 = %v", got)
	}
	if b, g := e.drain("blue.test"), e.drain("green.test"); !slices.Equal(b, []string{"!r/1"}) || !slices.Equal(g, []string{"!r/1"}) {
		t.Fatalf("m1's entries = %v and %v, want !r/1 for each", b, g)
	}
	// A retry of m1 after its entries were delivered must not queue
	// them again (which the (destination, ID) skip would not catch).
	if again := e.submit(m1); !again.Duplicate {
		t.Fatalf("resubmitted m1 = %+v, want a duplicate", again)
	}
	if got := e.destinations(); len(got) != 0 {
		t.Fatalf("a duplicate Submit queued entries for %v", got)
	}

	won := commit("!r", "c1", a.ID, 0, 1, b.ID)
	won.Outbound = []store.Outbound{outbound("blue.test", "!r/2")}
	e.submit(won)
	lost := commit("!r", "c2", b.ID, 0, 1, a.ID)
	lost.Welcome = &store.Welcome{Payload: []byte("welcome"), Recipients: []int64{a.ID}}
	lost.Outbound = []store.Outbound{outbound("blue.test", "!r/lost"), outbound("red.test", "!r/lost")}
	_, err := e.s.Submit(e.ctx, lost)
	is(t, err, store.ErrConflict, "stale commit with outbound entries")

	unknown := app("!r", "m-unknown", a.ID, b.ID, 999999)
	unknown.Outbound = []store.Outbound{outbound("red.test", "!r/unknown")}
	_, err = e.s.Submit(e.ctx, unknown)
	is(t, err, store.ErrNotFound, "submission to an unknown device with outbound entries")

	invalid := app("!r", "m-invalid", a.ID, b.ID)
	invalid.Outbound = []store.Outbound{{Destination: "red.test", Path: "/p"}}
	if _, err := e.s.Submit(e.ctx, invalid); err == nil {
		t.Errorf("Submit with an outbound entry without an ID succeeded")
	}
	if len(e.log("!r")) != 2 {
		t.Errorf("log = %d messages, want m1 and c1 only", len(e.log("!r")))
	}

	if got := e.destinations(); !slices.Equal(got, []string{"blue.test"}) {
		t.Errorf("destinations = %v; a refused submission left entries behind", got)
	}
	if got := e.drain("blue.test"); !slices.Equal(got, []string{"!r/2"}) {
		t.Errorf("blue.test = %v, want c1's !r/2 only", got)
	}
}

// inboundSeen: an ID is new once per sending domain; a repeat keeps it
// fresh; trimming forgets only IDs last seen before the cut.
func inboundSeen(t *testing.T, e *env) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	seen := func(from, id string, at time.Time) bool {
		t.Helper()
		ok, err := e.s.SeenInbound(e.ctx, from, id, at)
		e.ok(err)
		return ok
	}
	if seen("blue.test", "m1", t0) {
		t.Error("a first delivery was reported as seen")
	}
	if !seen("blue.test", "m1", t0.Add(time.Second)) {
		t.Error("a repeated delivery was reported as new")
	}
	if seen("green.test", "m1", t0) {
		t.Error("the same ID from another domain was reported as seen")
	}
	if seen("blue.test", "m2", t0) || seen("blue.test", "m3", t0) {
		t.Error("new IDs reported as seen")
	}
	// m1 was last seen at t0+1s (and a late, older sighting does not move
	// it back); m2 and m3 at t0.
	if !seen("blue.test", "m1", t0.Add(-time.Hour)) {
		t.Error("m1 forgotten")
	}
	n, err := e.s.TrimInbound(e.ctx, t0.Add(time.Millisecond))
	e.ok(err)
	if n != 3 {
		t.Errorf("TrimInbound removed %d, want 3 (m2, m3 and green's m1)", n)
	}
	if !seen("blue.test", "m1", t0.Add(2*time.Second)) {
		t.Error("trim forgot an ID seen after the cut")
	}
	if seen("blue.test", "m2", t0.Add(2*time.Second)) {
		t.Error("a trimmed ID is still remembered")
	}
	if n, err := e.s.TrimInbound(e.ctx, t0.Add(time.Millisecond)); err != nil || n != 0 {
		t.Errorf("second trim = %d, %v", n, err)
	}
}

// inboundConcurrent: racing deliveries of one ID (a retry crossing the
// original) are told "new" exactly once.
func inboundConcurrent(t *testing.T, e *env) {
	const ids, racers = 20, 8
	var mu sync.Mutex
	fresh := map[string]int{}
	var wg sync.WaitGroup
	for r := range racers {
		wg.Go(func() {
			for i := range ids {
				id := fmt.Sprint("m", (i+r)%ids) // racers start at different IDs
				seen, err := e.s.SeenInbound(e.ctx, "blue.test", id, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				if !seen {
					mu.Lock()
					fresh[id]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for i := range ids {
		if id := fmt.Sprint("m", i); fresh[id] != 1 {
			t.Errorf("%s was new to %d of %d callers, want exactly 1", id, fresh[id], racers)
		}
	}
}

// reopenOutbox: queued entries, their failure records and the inbound IDs
// survive a restart, and Seqs are not reused afterwards.
func reopenOutbox(t *testing.T, open func() *env) {
	e := open()
	e.ok(e.s.EnqueueOutbound(e.ctx, []store.Outbound{outbound("blue.test", "b1"), outbound("blue.test", "b2"),
		outbound("green.test", "g1")}))
	head, err := e.s.NextOutbound(e.ctx, "blue.test")
	e.ok(err)
	retry := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	e.ok(e.s.MarkOutboundFailed(e.ctx, "blue.test", head.Seq, 2, retry, "connection refused"))
	g1, err := e.s.NextOutbound(e.ctx, "green.test")
	e.ok(err)
	e.ok(e.s.DeleteOutbound(e.ctx, "green.test", g1.Seq)) // the newest entry is gone
	if _, err := e.s.SeenInbound(e.ctx, "red.test", "x1", time.Now()); err != nil {
		t.Fatal(err)
	}
	e.ok(e.s.Close())

	e = open()
	if got := e.destinations(); !slices.Equal(got, []string{"blue.test"}) {
		t.Errorf("destinations after reopen = %v, want blue.test", got)
	}
	got, err := e.s.NextOutbound(e.ctx, "blue.test")
	e.ok(err)
	if got.Seq != head.Seq || got.Attempts != 2 || !got.NotBefore.Equal(retry) || got.LastError != "connection refused" ||
		!bytes.Equal(got.Body, head.Body) || got.Path != head.Path {
		t.Errorf("head after reopen = %+v, want %+v with its failure", got, head)
	}
	if seen, err := e.s.SeenInbound(e.ctx, "red.test", "x1", time.Now()); err != nil || !seen {
		t.Errorf("inbound ID after reopen: seen=%v, %v", seen, err)
	}
	e.ok(e.s.EnqueueOutbound(e.ctx, []store.Outbound{outbound("green.test", "g2")}))
	g2, err := e.s.NextOutbound(e.ctx, "green.test")
	e.ok(err)
	if g2.Seq <= g1.Seq {
		t.Errorf("new entry got Seq %d, not after the deleted %d: a late delete could hit it", g2.Seq, g1.Seq)
	}
	if ids := e.drain("blue.test"); !slices.Equal(ids, []string{"b1", "b2"}) {
		t.Errorf("blue.test after reopen = %v, want b1 b2", ids)
	}
}

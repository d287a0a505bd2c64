package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Franking, abuse reports, notices and suspension (docs/abuse.md).

// frankedMessages: a message's frank and acceptance time are stored with
// it, come back from every read, and find it again; a Welcome stored with
// a commit has no frank.
func frankedMessages(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	da, db := e.device(alice.ID, "phone"), e.device(bob.ID, "phone")
	e.room("r1", alice.ID, bob.ID)
	e.room("r2", alice.ID, bob.ID)
	frank := []byte("frank of message one: 32 bytes and a signature")
	sub := app("r1", "client-franked", da.ID, db.ID)
	sub.Frank, sub.Accepted = frank, 1767225600123
	res := e.submit(sub)
	plain := app("r1", "client-plain", da.ID, db.ID)
	plain.Accepted = 1767225600456
	e.submit(plain)

	log := e.log("r1")
	if len(log) != 2 || !bytes.Equal(log[0].Frank, frank) || log[0].Accepted != 1767225600123 ||
		log[1].Frank != nil || log[1].Accepted != 1767225600456 {
		t.Fatalf("log = %+v", log)
	}
	if ds := e.deliveries(db.ID); len(ds) != 2 || !bytes.Equal(ds[0].Message.Frank, frank) || ds[0].Message.Accepted != 1767225600123 {
		t.Fatalf("deliveries = %+v", ds)
	}
	m, err := e.s.MessageByClientID(e.ctx, "r1", "client-franked")
	e.ok(err)
	if !bytes.Equal(m.Frank, frank) || m.Accepted != 1767225600123 {
		t.Fatalf("by client ID: %+v", m)
	}
	m, err = e.s.MessageByFrank(e.ctx, "r1", frank)
	e.ok(err)
	if m.Seq != res.Seq || m.ClientID != "client-franked" {
		t.Fatalf("by frank: %+v, want seq %d", m, res.Seq)
	}
	// Another room's log, another frank, no frank: not found.
	for _, c := range []struct {
		room  string
		frank []byte
	}{{"r2", frank}, {"r1", []byte("another frank")}, {"r1", nil}} {
		if _, err := e.s.MessageByFrank(e.ctx, c.room, c.frank); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("MessageByFrank(%s, %q) = %v, want ErrNotFound", c.room, c.frank, err)
		}
	}
}

// frankingKeys: the first key stored for a scheme stays; concurrent first
// uses all get the same one.
func frankingKeys(t *testing.T, e *env) {
	if _, err := e.s.FrankingKey(e.ctx, "ed25519"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("FrankingKey before any = %v, want ErrNotFound", err)
	}
	var wg sync.WaitGroup
	got := make([]store.FrankingKey, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = e.s.AddFrankingKey(e.ctx, store.FrankingKey{Scheme: "ed25519",
				PrivateKey: []byte{byte(i), 1}, PublicKey: []byte{byte(i), 2}, HubKey: []byte{byte(i), 3}}) // #nosec G115 -- a loop index below 256
		}()
	}
	wg.Wait()
	for i := range got {
		e.ok(errs[i])
		if !bytes.Equal(got[i].PrivateKey, got[0].PrivateKey) || !bytes.Equal(got[i].HubKey, got[0].HubKey) {
			t.Fatalf("concurrent AddFrankingKey answers differ: %+v and %+v", got[0], got[i])
		}
	}
	k, err := e.s.FrankingKey(e.ctx, "ed25519")
	e.ok(err)
	if !bytes.Equal(k.PublicKey, got[0].PublicKey) || k.Scheme != "ed25519" || k.Created.IsZero() {
		t.Fatalf("stored key %+v, want %+v", k, got[0])
	}
	if _, err := e.s.FrankingKey(e.ctx, "p256"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another scheme: %v, want ErrNotFound", err)
	}
	if _, err := e.s.AddFrankingKey(e.ctx, store.FrankingKey{Scheme: "p256"}); err == nil {
		t.Fatal("AddFrankingKey accepted a key without key material")
	}
}

// reportQueue: reports are queued open in order, read back whole, and
// handled once.
func reportQueue(t *testing.T, e *env) {
	r := store.Report{Room: "mimi://green.example/r/abc", Reporter: "mimi://blue.example/u/bob",
		AllegedAbuser: "mimi://green.example/u/alice", Note: "spam", Body: []byte{0, 1, 2}, From: "blue.example", VerifiedBy: "everything"}
	id1, err := e.s.AddReport(e.ctx, r)
	e.ok(err)
	r.Note = "more spam"
	id2, err := e.s.AddReport(e.ctx, r)
	e.ok(err)
	if id2 <= id1 {
		t.Fatalf("report IDs %d then %d", id1, id2)
	}
	list, err := e.s.Reports(e.ctx)
	e.ok(err)
	if len(list) != 2 || list[0].ID != id1 || list[1].Note != "more spam" || list[0].State != store.ReportOpen ||
		!bytes.Equal(list[0].Body, []byte{0, 1, 2}) || list[0].From != "blue.example" || list[0].Created.IsZero() {
		t.Fatalf("reports = %+v", list)
	}
	// A partner's retry: the same origin and delivery ID is ErrExists;
	// another partner, or no delivery ID, is a report of its own.
	fwd := r
	fwd.DeliveryID = "report/abc"
	_, err = e.s.AddReport(e.ctx, fwd)
	e.ok(err)
	if _, err := e.s.AddReport(e.ctx, fwd); !errors.Is(err, store.ErrExists) {
		t.Fatalf("the same delivery again: %v, want ErrExists", err)
	}
	fwd.From = "red.example"
	_, err = e.s.AddReport(e.ctx, fwd)
	e.ok(err)
	list, err = e.s.Reports(e.ctx)
	e.ok(err)
	if len(list) != 4 || list[2].DeliveryID != "report/abc" || list[1].DeliveryID != "" {
		t.Fatalf("reports after the retries: %+v", list)
	}
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	e.ok(e.s.HandleReport(e.ctx, id1, "warn", "be nice", at))
	got, err := e.s.ReportByID(e.ctx, id1)
	e.ok(err)
	if got.State != store.ReportHandled || got.Action != "warn" || got.ActionNote != "be nice" || !got.Handled.Equal(at) {
		t.Fatalf("handled report = %+v", got)
	}
	if err := e.s.HandleReport(e.ctx, id1, "dismiss", "", at); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("handling twice = %v, want ErrConflict", err)
	}
	if err := e.s.HandleReport(e.ctx, id2+100, "dismiss", "", at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("handling an unknown report = %v, want ErrNotFound", err)
	}
	if _, err := e.s.ReportByID(e.ctx, id2+100); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown report = %v, want ErrNotFound", err)
	}
	if got, _ := e.s.ReportByID(e.ctx, id2); got.State != store.ReportOpen {
		t.Fatalf("the other report changed: %+v", got)
	}
}

// reportWithOutbound: a report and the requests that send it on are
// stored together, or neither.
func reportWithOutbound(t *testing.T, e *env) {
	out := []store.Outbound{
		{Destination: "green.example", Kind: "reportAbuse", Path: "/reportAbuse/x", Body: []byte("report"), ID: "report/1"},
		{Destination: "red.example", Kind: "reportAbuse", Path: "/reportAbuse/x", Body: []byte("report"), ID: "report/1"},
	}
	bad := append(append([]store.Outbound{}, out...), store.Outbound{Destination: "blue.example", Kind: "reportAbuse", ID: "report/2"})
	if _, err := e.s.AddReport(e.ctx, store.Report{Room: "r", AllegedAbuser: "a", From: "local", Outbound: bad}); err == nil {
		t.Fatal("AddReport accepted an outbound entry without a path")
	}
	if rs, _ := e.s.Reports(e.ctx); len(rs) != 0 {
		t.Fatalf("a refused report was stored: %+v", rs)
	}
	if dests, _ := e.s.OutboundDestinations(e.ctx); len(dests) != 0 {
		t.Fatalf("a refused report's requests were stored: %v", dests)
	}
	_, err := e.s.AddReport(e.ctx, store.Report{Room: "r", AllegedAbuser: "a", From: "local", Outbound: out})
	e.ok(err)
	for _, d := range []string{"green.example", "red.example"} {
		o, err := e.s.NextOutbound(e.ctx, d)
		e.ok(err)
		if o.Kind != "reportAbuse" || o.ID != "report/1" || !bytes.Equal(o.Body, []byte("report")) {
			t.Fatalf("outbox entry for %s: %+v", d, o)
		}
	}
}

// noticesAndSuspension: notices are per user, in order; suspension is a
// flag on the user that every lookup returns.
func noticesAndSuspension(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	if ns, err := e.s.Notices(e.ctx, alice.ID); err != nil || len(ns) != 0 {
		t.Fatalf("notices of a new user = %v, %v", ns, err)
	}
	_, err := e.s.AddNotice(e.ctx, store.Notice{UserID: alice.ID, Text: "first", Report: 7})
	e.ok(err)
	_, err = e.s.AddNotice(e.ctx, store.Notice{UserID: alice.ID, Text: "second"})
	e.ok(err)
	ns, err := e.s.Notices(e.ctx, alice.ID)
	e.ok(err)
	if len(ns) != 2 || ns[0].Text != "first" || ns[0].Report != 7 || ns[1].Text != "second" || ns[0].Created.IsZero() {
		t.Fatalf("notices = %+v", ns)
	}
	if ns, _ := e.s.Notices(e.ctx, bob.ID); len(ns) != 0 {
		t.Fatalf("bob's notices = %+v", ns)
	}
	unknown := alice.ID + bob.ID + 100
	if _, err := e.s.AddNotice(e.ctx, store.Notice{UserID: unknown, Text: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("notice for an unknown user = %v, want ErrNotFound", err)
	}
	if _, err := e.s.Notices(e.ctx, unknown); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("notices of an unknown user = %v, want ErrNotFound", err)
	}

	if alice.Suspended {
		t.Fatal("a new user is suspended")
	}
	e.ok(e.s.SetSuspended(e.ctx, alice.ID, true))
	for _, get := range []func() (store.User, error){
		func() (store.User, error) { return e.s.UserByID(e.ctx, alice.ID) },
		func() (store.User, error) { return e.s.UserByHandle(e.ctx, "alice") },
	} {
		u, err := get()
		e.ok(err)
		if !u.Suspended {
			t.Fatalf("%+v: not suspended", u)
		}
	}
	if u, _ := e.s.UserByID(e.ctx, bob.ID); u.Suspended {
		t.Fatal("bob was suspended too")
	}
	e.ok(e.s.SetSuspended(e.ctx, alice.ID, true)) // again: not an error
	e.ok(e.s.SetSuspended(e.ctx, alice.ID, false))
	if u, _ := e.s.UserByID(e.ctx, alice.ID); u.Suspended {
		t.Fatal("still suspended")
	}
	if err := e.s.SetSuspended(e.ctx, unknown, true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("suspending an unknown user = %v, want ErrNotFound", err)
	}
}

// reopenAbuse: franks, keys, reports, notices and suspension are durable.
func reopenAbuse(t *testing.T, open func() *env) {
	e := open()
	alice := e.user("alice")
	da := e.device(alice.ID, "phone")
	e.room("r1", alice.ID)
	sub := app("r1", "client-franked", da.ID)
	sub.Frank, sub.Accepted = []byte("frank"), 42
	e.submit(sub)
	_, err := e.s.AddFrankingKey(e.ctx, store.FrankingKey{Scheme: "ed25519", PrivateKey: []byte{1}, PublicKey: []byte{2}, HubKey: []byte{3}})
	e.ok(err)
	id, err := e.s.AddReport(e.ctx, store.Report{Room: "r", AllegedAbuser: "a", Body: []byte{9}, From: "local", VerifiedBy: "v"})
	e.ok(err)
	_, err = e.s.AddNotice(e.ctx, store.Notice{UserID: alice.ID, Text: "warned"})
	e.ok(err)
	e.ok(e.s.SetSuspended(e.ctx, alice.ID, true))
	e.ok(e.s.Close())

	e = open()
	if m, err := e.s.MessageByFrank(e.ctx, "r1", []byte("frank")); err != nil || m.Accepted != 42 {
		t.Fatalf("franked message after reopen: %+v, %v", m, err)
	}
	if k, err := e.s.FrankingKey(e.ctx, "ed25519"); err != nil || !bytes.Equal(k.HubKey, []byte{3}) {
		t.Fatalf("franking key after reopen: %+v, %v", k, err)
	}
	if r, err := e.s.ReportByID(e.ctx, id); err != nil || !bytes.Equal(r.Body, []byte{9}) {
		t.Fatalf("report after reopen: %+v, %v", r, err)
	}
	if ns, err := e.s.Notices(e.ctx, alice.ID); err != nil || len(ns) != 1 {
		t.Fatalf("notices after reopen: %+v, %v", ns, err)
	}
	if u, err := e.s.UserByID(e.ctx, alice.ID); err != nil || !u.Suspended {
		t.Fatalf("suspension after reopen: %+v, %v", u, err)
	}
}

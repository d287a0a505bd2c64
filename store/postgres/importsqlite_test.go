package postgres

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/postgres/pgtest"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// TestImportSQLite: an operator moves a provider from the embedded SQLite
// store to PostgreSQL. Everything the SQLite store held reads back the
// same from PostgreSQL, IDs and Seqs go on from where SQLite left them
// (a delivered outbox entry's Seq is not handed out again), and a second
// import into the now non-empty database is refused.
func TestImportSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "provider.db")
	ls, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	u, err := ls.CreateUser(ctx, "alice", "+15550100")
	ok(err)
	ok(ls.SetDiscoverable(ctx, u.ID, true, false))
	ok(ls.CreateEnrollment(ctx, store.Enrollment{CodeHash: []byte("code"), UserID: u.ID, Expires: time.Now().Add(time.Hour)}))
	dev, err := ls.RegisterDevice(ctx, []byte("code"), "phone", []byte("authkey"), time.Now())
	ok(err)
	ok(ls.CreateSession(ctx, store.Session{TokenHash: []byte("tok"), DeviceID: dev.ID, Expires: time.Now().Add(time.Hour)}))
	ok(ls.AddKeyPackages(ctx, []store.KeyPackage{
		{Ref: []byte("kp1"), DeviceID: dev.ID, Suite: 1, Data: []byte("d1")},
		{Ref: []byte("kp2"), DeviceID: dev.ID, Suite: 1, Data: []byte("d2")},
		{Ref: []byte("kplr"), DeviceID: dev.ID, Suite: 1, Data: []byte("lr"), LastResort: true},
	}))
	ok(ls.CreateRoom(ctx, store.Room{ID: "room", CreatorID: u.ID, State: []byte("s0")},
		[]store.RoomMember{{UserID: u.ID, Role: store.RoleAdmin}}))
	_, err = ls.Submit(ctx, store.Submission{RoomID: "room", ClientID: "c1", Kind: store.KindCommit, NewEpoch: 1,
		NewState: []byte("s1"), Recipients: []int64{dev.ID}, Frank: []byte("frank"), Accepted: 42})
	ok(err)
	_, err = ls.Submit(ctx, store.Submission{RoomID: "room", ClientID: "a1", Kind: store.KindApplication, Epoch: 1,
		Payload: []byte("hello"), Recipients: []int64{dev.ID}})
	ok(err)
	ok(ls.EnqueueOutbound(ctx, []store.Outbound{
		{Destination: "blue.example", Path: "/p", ID: "o1", Body: []byte("b1"), Header: map[string]string{"X-A": "1"}},
		{Destination: "blue.example", Path: "/p", ID: "o2", Body: []byte("b2")},
	}))
	first, err := ls.NextOutbound(ctx, "blue.example")
	ok(err)
	second := first.Seq + 1
	ok(ls.DeleteOutbound(ctx, "blue.example", first.Seq))
	ok(ls.DeleteOutbound(ctx, "blue.example", second)) // the highest Seq is gone too
	ok(ls.EnqueueOutbound(ctx, []store.Outbound{{Destination: "green.example", Path: "/p", ID: "o3"}}))
	ok(ls.SetReachability(ctx, u.ID, store.ReachSome, []string{"blue.example"}))
	ok(ls.SetContact(ctx, u.ID, "mimi://blue.example/u/bob", store.ContactBlocked, time.Now()))
	ok(ls.PutAttachment(ctx, store.Attachment{ID: "att", OwnerID: u.ID, Data: []byte("ciphertext")}))
	rep, err := ls.AddReport(ctx, store.Report{Room: "mimi://x/r/room", AllegedAbuser: "mimi://blue.example/u/bob", Reason: 3, Body: []byte("b"), From: "local"})
	ok(err)
	_, err = ls.AddNotice(ctx, store.Notice{UserID: u.ID, Text: "be nice", Report: rep})
	ok(err)
	_, err = ls.SeenInbound(ctx, "blue.example", "in1", time.Now())
	ok(err)
	ok(ls.Close())

	dsn := pgtest.DSN(t)
	counts, err := ImportSQLite(ctx, path, dsn)
	ok(err)
	got := map[string]int64{}
	for _, c := range counts {
		got[c.Table] = c.Rows
	}
	if got["users"] != 1 || got["room_messages"] != 2 || got["device_queue"] != 2 || got["outbox"] != 1 || got["key_packages"] != 3 {
		t.Errorf("counts %v", counts)
	}

	s, err := Open(ctx, dsn)
	ok(err)
	defer s.Close()
	pu, err := s.UserByPhone(ctx, "+15550100")
	ok(err)
	if pu.ID != u.ID || !pu.DiscoverableByHandle || pu.DiscoverableByPhone || !pu.Created.Equal(u.Created) {
		t.Errorf("user %+v, was %+v", pu, u)
	}
	if d, err := s.SessionDevice(ctx, []byte("tok"), time.Now()); err != nil || d.ID != dev.ID {
		t.Errorf("session: %v %v", d, err)
	}
	kp, left, err := s.ClaimKeyPackage(ctx, dev.ID, 1)
	ok(err)
	if string(kp.Ref) != "kp1" || left != 1 {
		t.Errorf("claimed %s with %d left, want kp1 (the oldest) with 1", kp.Ref, left)
	}
	ds, err := s.Deliveries(ctx, dev.ID, 0, 10)
	ok(err)
	if len(ds) != 2 || string(ds[1].Message.Payload) != "hello" || !bytes.Equal(ds[0].Message.Frank, []byte("frank")) || ds[0].Message.Accepted != 42 {
		t.Errorf("deliveries %+v", ds)
	}
	r, err := s.Room(ctx, "room")
	ok(err)
	if r.Version != 1 || r.Epoch != 1 || string(r.State) != "s1" || r.LastSeq != 2 {
		t.Errorf("room %+v", r)
	}
	res, err := s.Submit(ctx, store.Submission{RoomID: "room", ClientID: "a2", Kind: store.KindApplication, Epoch: 1, Recipients: []int64{dev.ID}})
	ok(err)
	if res.Seq != 3 {
		t.Errorf("the next message took Seq %d, want 3", res.Seq)
	}
	ds, err = s.Deliveries(ctx, dev.ID, 0, 10)
	ok(err)
	if len(ds) != 3 || ds[2].Cursor <= ds[1].Cursor {
		t.Errorf("a new queue entry's cursor does not follow the imported ones: %+v", ds)
	}
	ok(s.EnqueueOutbound(ctx, []store.Outbound{{Destination: "blue.example", Path: "/p", ID: "o4"}}))
	e, err := s.NextOutbound(ctx, "blue.example")
	ok(err)
	if e.Seq <= second {
		t.Errorf("a new outbox entry got Seq %d, which SQLite had handed out already (up to %d)", e.Seq, second)
	}
	if reach, err := s.Reachability(ctx, u.ID); err != nil || !reach.Allows("blue.example") {
		t.Errorf("reachability %+v %v", reach, err)
	}
	if st, err := s.Contact(ctx, u.ID, "mimi://blue.example/u/bob"); err != nil || st != store.ContactBlocked {
		t.Errorf("contact %q %v", st, err)
	}
	if data, _, err := s.ReadAttachment(ctx, "att", 0, 0); err != nil || string(data) != "ciphertext" {
		t.Errorf("attachment %q %v", data, err)
	}
	if ns, err := s.Notices(ctx, u.ID); err != nil || len(ns) != 1 || ns[0].Report != rep {
		t.Errorf("notices %+v %v", ns, err)
	}
	if seen, err := s.SeenInbound(ctx, "blue.example", "in1", time.Now()); err != nil || !seen {
		t.Errorf("an imported inbound ID is not remembered: %v %v", seen, err)
	}
	if u2, err := s.CreateUser(ctx, "bob", ""); err != nil || u2.ID <= u.ID {
		t.Errorf("a new user got ID %d after imported %d: %v", u2.ID, u.ID, err)
	}

	if _, err := ImportSQLite(ctx, path, dsn); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a second import: %v, want a refusal", err)
	}
}

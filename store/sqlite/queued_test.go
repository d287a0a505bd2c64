package sqlite

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// A hub queues a room's messages one behind the other, each with the Seq
// it handed out, without waiting for the COMMIT of the ones before. When
// one of them does not take its Seq (here a retry of a message already
// logged), every one queued behind it is refused with ErrConflict rather
// than written after a gap; queued again with the right Seq it goes in.
func TestQueuedSubmissionsNeverLeaveAGap(t *testing.T) {
	ctx := t.Context()
	s, _ := aliceStore(t, true)
	if !s.QueuesSubmissions() {
		t.Fatal("SQLite's store does not queue submissions")
	}
	app := func(clientID string, seq int64) store.Submission {
		return store.Submission{RoomID: "!r", ClientID: clientID, Kind: store.KindApplication, Seq: seq, Payload: []byte(clientID)}
	}
	queue := func(sub store.Submission) func() (store.SubmitResult, error) {
		t.Helper()
		wait, err := s.SubmitQueued(ctx, sub)
		if err != nil {
			t.Fatal(err)
		}
		return wait
	}

	// Three in flight at once, each answered in turn.
	waits := []func() (store.SubmitResult, error){queue(app("first-01", 1)), queue(app("second-2", 2)), queue(app("third-03", 3))}
	for i, w := range waits {
		if res, err := w(); err != nil || res.Seq != int64(i+1) || res.Duplicate {
			t.Fatalf("message %d: %+v, %v", i+1, res, err)
		}
	}

	// A retry of the second message, queued as if it were new at Seq 4,
	// is a duplicate and leaves 4 unused: the message queued behind it at
	// 5 must not be logged after a gap.
	dup, next := queue(app("second-2", 4)), queue(app("fourth-4", 5))
	if res, err := dup(); err != nil || !res.Duplicate || res.Seq != 2 {
		t.Fatalf("the retry: %+v, %v", res, err)
	}
	if _, err := next(); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a message queued after a Seq left unused: %v, want ErrConflict", err)
	}
	if res, err := queue(app("fourth-4", 4))(); err != nil || res.Seq != 4 {
		t.Fatalf("queued again at the right Seq: %+v, %v", res, err)
	}

	// A Seq already taken is a conflict too, as in Submit.
	if _, err := queue(app("late-005", 3))(); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a Seq already taken: %v, want ErrConflict", err)
	}

	ms, err := s.RoomMessages(ctx, "!r", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, fmt.Sprintf("%d:%s", m.Seq, m.ClientID))
	}
	if want := "[1:first-01 2:second-2 3:third-03 4:fourth-4]"; fmt.Sprint(got) != want {
		t.Fatalf("the log is %v, want %s", got, want)
	}
}

// Reads run prepared statements, each prepared once and kept by its
// text, up to the same bound as the writer's; past it they still run.
func TestReadsPrepareEachStatementOnce(t *testing.T) {
	ctx := t.Context()
	s, u := aliceStore(t, false)
	read := func() {
		t.Helper()
		if got, err := s.UserByID(ctx, u.ID); err != nil || got.Handle != "alice" {
			t.Fatalf("UserByID: %+v, %v", got, err)
		}
		if _, err := s.UserByID(ctx, u.ID+100); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("an unknown user: %v, want ErrNotFound", err)
		}
	}
	read()
	kept := func() int {
		s.conns.rstmts.mu.RLock()
		defer s.conns.rstmts.mu.RUnlock()
		return len(s.conns.rstmts.stmts)
	}
	n := kept()
	for range 50 {
		read()
	}
	if kept() != n || n == 0 {
		t.Fatalf("the read pool keeps %d statements after 101 reads, %d after the first", kept(), n)
	}

	c, err := s.conns.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxStmts + 10 {
		var got int
		if err := c.QueryRow(fmt.Sprintf("SELECT %d + ?", i), 1).Scan(&got); err != nil || got != i+1 {
			t.Fatalf("statement %d: %d, %v", i, got, err)
		}
	}
	if kept() != maxStmts {
		t.Fatalf("the read pool keeps %d statements, want the bound %d", kept(), maxStmts)
	}
	read() // the hot statements are still there
}

// A message for several devices is queued for each of them in one
// statement: every device gets one entry, under cursors taken in the
// order given, and a list naming a device that does not exist queues
// nothing at all.
func TestAMessageIsQueuedForEachOfItsDevices(t *testing.T) {
	ctx := t.Context()
	s, u := aliceStore(t, false)
	var devs []int64
	for i := range 3 {
		code := []byte(fmt.Sprint("code", i))
		if err := s.CreateEnrollment(ctx, store.Enrollment{CodeHash: code, UserID: u.ID, Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		d, err := s.RegisterDevice(ctx, code, fmt.Sprint("d", i), []byte(fmt.Sprint("key", i)), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d.ID)
	}
	if err := s.CreateRoom(ctx, store.Room{ID: "!r", CreatorID: u.ID}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := s.Submit(ctx, store.Submission{RoomID: "!r", ClientID: "to-nobody", Kind: store.KindApplication,
		Recipients: []int64{devs[0], devs[2] + 100, devs[1]}})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a message for a device that does not exist: %v, want ErrNotFound", err)
	}
	if _, err := s.Submit(ctx, store.Submission{RoomID: "!r", ClientID: "to-all-3", Kind: store.KindApplication,
		Recipients: []int64{devs[2], devs[0], devs[1]}}); err != nil {
		t.Fatal(err)
	}
	cursors := map[int64]int64{}
	for _, d := range devs {
		ds, err := s.Deliveries(ctx, d, 0, 10)
		if err != nil || len(ds) != 1 || ds[0].Message.ClientID != "to-all-3" {
			t.Fatalf("device %d's queue: %+v, %v", d, ds, err)
		}
		cursors[d] = ds[0].Cursor
	}
	if !(cursors[devs[2]] < cursors[devs[0]] && cursors[devs[0]] < cursors[devs[1]]) {
		t.Fatalf("cursors %v are not in the order the devices were given", cursors)
	}
}

// aliceStore opens a fresh store, closed when the test ends, with the user
// alice and, if room is set, the room "!r" she created.
func aliceStore(t *testing.T, room bool) (*Store, store.User) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	u, err := s.CreateUser(t.Context(), "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if room {
		if err := s.CreateRoom(t.Context(), store.Room{ID: "!r", CreatorID: u.ID}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return s, u
}

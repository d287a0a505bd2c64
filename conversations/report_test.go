package conversations_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"

	_ "modernc.org/sqlite"
)

// TestReportAReceivedMessage: Bob reports a message Alice sent him; his
// provider and hers (the room's hub) verify it and queue the report. His
// own messages cannot be reported, nor can an unknown one.
func TestReportAReceivedMessage(t *testing.T) {
	l, err := node.StartLocal(t.TempDir(), []string{"green.test", "blue.test"}, node.LocalOptions{})
	ok(t, "providers", err)
	t.Cleanup(func() { l.Close() })
	alice := newPerson(t, l.Node(0), "alice", conversations.Options{NoTyping: true})
	bob := newPerson(t, l.Node(1), "bob", conversations.Options{NoTyping: true})
	ctx := context.Background()

	room, err := alice.m.Client().CreateRoom(ctx)
	ok(t, "alice creates a room", err)
	ok(t, "alice invites bob", alice.m.Client().Invite(ctx, room, "bob@blue.test"))
	rude, err := alice.m.Send(ctx, room, "You are a disgrace.")
	ok(t, "alice writes", err)
	bob.syncUntil("alice's message", bob.has(room, rude.ID))

	id, err := bob.m.Report(ctx, room, rude.ID, "insults")
	ok(t, "bob reports", err)
	reps, err := l.Node(1).Store.Reports(ctx)
	ok(t, "blue's reports", err)
	if len(reps) != 1 || reps[0].ID != id || reps[0].AllegedAbuser != "mimi://green.test/u/alice" || reps[0].Note != "insults" {
		t.Fatalf("blue's queue: %+v", reps)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		reps, err = l.Node(0).Store.Reports(ctx)
		ok(t, "green's reports", err)
		if len(reps) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("green never got the report: %+v", reps)
		}
		time.Sleep(20 * time.Millisecond)
	}

	own, err := bob.m.Send(ctx, room, "Please stop.")
	ok(t, "bob answers", err)
	if _, err := bob.m.Report(ctx, room, own.ID, ""); !errors.Is(err, conversations.ErrNotReportable) {
		t.Errorf("reporting his own message: %v, want ErrNotReportable", err)
	}
	alice.syncUntil("bob's answer", alice.has(room, own.ID))
	if _, err := alice.m.Report(ctx, room, rude.ID, ""); !errors.Is(err, conversations.ErrNotReportable) {
		t.Errorf("alice reporting her own message: %v", err)
	}
	var bogus [32]byte
	if _, err := bob.m.Report(ctx, room, bogus, ""); !errors.Is(err, conversations.ErrNoSuchMessage) {
		t.Errorf("reporting an unknown message: %v, want ErrNoSuchMessage", err)
	}
}

// TestHistoryFromBeforeFrankingOpens: a history.db written before
// messages kept their franks gets the new columns when it is opened, and
// keeps what it held.
func TestHistoryFromBeforeFrankingOpens(t *testing.T) {
	l, err := node.StartLocal(t.TempDir(), []string{"green.test"}, node.LocalOptions{})
	ok(t, "provider", err)
	t.Cleanup(func() { l.Close() })
	n := l.Node(0)
	ctx := context.Background()
	u, code, err := provider.AddUser(ctx, n.Store, "alice", "", time.Hour)
	ok(t, "alice", err)
	ok(t, "reachability", n.Store.SetReachability(ctx, u.ID, store.ReachAll, nil))
	dir := t.TempDir()
	c, err := client.Register(ctx, n.ClientURL, code, "phone", dir, client.Options{})
	ok(t, "register", err)
	t.Cleanup(func() { c.Close() })

	// The entries table as it was before franking.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "history.db"))
	ok(t, "old history", err)
	_, err = db.Exec(`CREATE TABLE entries (
		room TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, sender TEXT NOT NULL, own INTEGER NOT NULL,
		sent INTEGER NOT NULL, body TEXT NOT NULL, markdown INTEGER NOT NULL DEFAULT 0, reply_to TEXT NOT NULL DEFAULT '',
		edited INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0, expires INTEGER NOT NULL DEFAULT 0,
		file TEXT NOT NULL DEFAULT '', recipients TEXT NOT NULL DEFAULT '', PRIMARY KEY (room, id));
		INSERT INTO entries (room, id, seq, sender, own, sent, body) VALUES
		('r', '0000000000000000000000000000000000000000000000000000000000000001', 1, 'bob@blue.test', 0, 1, 'old words');`)
	ok(t, "old schema", err)
	db.Close()

	m, err := conversations.Open(c, dir, conversations.Options{})
	ok(t, "opening the old history", err)
	t.Cleanup(func() { m.Close() })
	es, err := m.History(ctx, "r", 0, 10)
	ok(t, "reading the old history", err)
	if len(es) != 1 || es[0].Text != "old words" {
		t.Fatalf("old history: %+v", es)
	}
	// An old message has no frank to report it with.
	if _, err := m.Report(ctx, "r", es[0].ID, ""); !errors.Is(err, conversations.ErrNotReportable) {
		t.Fatalf("reporting an old message: %v, want ErrNotReportable", err)
	}
}

package sqlite

import (
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlstore"
	"github.com/switchboard-chat/switchboard/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.RunWithReopen(t, func(t *testing.T, dir string) store.Store {
		s, err := Open(filepath.Join(dir, "switchboard.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// BenchmarkSubmit measures Submit throughput with 1 and 64 concurrent
// submitters, each in its own room, sending 200-byte payloads to 5
// recipient devices. The maxbatch=1 runs turn group commit off (one
// transaction, so one fsync, per message) to show what it buys.
//
// Measured on the project's machine (2 cores, virtual disk,
// synchronous=FULL), -benchtime 3s, in two runs whose fsync latency
// differed (about 1.3 ms, then about 0.3 ms):
//
//	                           run A msgs/s   run B msgs/s   msgs/commit
//	submitters=1                    653          3,295           1
//	submitters=64                 8,198         13,879          30
//	submitters=1/maxbatch=1         796          3,288           1
//	submitters=64/maxbatch=1        758          3,146           1
//
// One submitter waits for an fsync per message either way; 64 share each
// fsync among about 30 messages. docs/storage.md has the discussion.
func BenchmarkSubmit(b *testing.B) {
	for _, c := range []struct {
		name       string
		submitters int
		opts       []Option
	}{
		{"submitters=1", 1, nil},
		{"submitters=64", 64, nil},
		{"submitters=1/maxbatch=1", 1, []Option{WithMaxBatch(1)}},
		{"submitters=64/maxbatch=1", 64, []Option{WithMaxBatch(1)}},
	} {
		b.Run(c.name, func(b *testing.B) { benchSubmit(b, c.submitters, c.opts...) })
	}
	// One room, its messages queued behind one another (SubmitQueued, as
	// the hub does), at most 64 waiting for their COMMIT: what one busy
	// room gets now that the hub does not hold the room across a COMMIT.
	b.Run("one-room/queued=64", func(b *testing.B) { benchSubmitQueued(b, 64) })
}

func benchSubmit(b *testing.B, submitters int, opts ...Option) {
	ctx := b.Context()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	recipients := benchRecipients(b, s, submitters)
	payload := make([]byte, 200)
	rand.Read(payload)

	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := range submitters {
		wg.Go(func() {
			room := fmt.Sprint("!room", i)
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				_, err := s.Submit(ctx, store.Submission{
					RoomID: room, ClientID: fmt.Sprint(n), SenderDevice: recipients[0],
					Kind: store.KindApplication, Payload: payload, Recipients: recipients,
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	// The average group size, setup included (a few groups of one).
	b.ReportMetric(float64(s.conns.w.batched.Load())/float64(s.conns.w.batches.Load()), "msgs/commit")
}

// benchSubmitQueued queues b.N messages to one room, each with the next
// Seq, keeping at most window waiting for their COMMIT.
func benchSubmitQueued(b *testing.B, window int) {
	ctx := b.Context()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	recipients := benchRecipients(b, s, 1)
	payload := make([]byte, 200)
	rand.Read(payload)
	waits := make(chan func() (store.SubmitResult, error), window)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for w := range waits {
			if _, err := w(); err != nil {
				b.Error(err)
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for n := 1; n <= b.N; n++ {
		w, err := s.SubmitQueued(ctx, store.Submission{
			RoomID: "!room0", ClientID: fmt.Sprint(n), SenderDevice: recipients[0], Seq: int64(n),
			Kind: store.KindApplication, Payload: payload, Recipients: recipients,
		})
		if err != nil {
			b.Fatal(err)
		}
		waits <- w
	}
	close(waits)
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(float64(s.conns.w.batched.Load())/float64(s.conns.w.batches.Load()), "msgs/commit")
}

// benchRecipients makes a user with 5 devices and rooms !room0...
func benchRecipients(b *testing.B, s *Store, rooms int) []int64 {
	ctx := b.Context()
	u, err := s.CreateUser(ctx, "bench", "")
	if err != nil {
		b.Fatal(err)
	}
	var recipients []int64
	for i := range 5 {
		code := []byte(fmt.Sprint("code", i))
		if err := s.CreateEnrollment(ctx, store.Enrollment{CodeHash: code, UserID: u.ID, Expires: time.Now().Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		d, err := s.RegisterDevice(ctx, code, fmt.Sprint("d", i), []byte(fmt.Sprint("key", i)), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		recipients = append(recipients, d.ID)
	}
	for i := range rooms {
		if err := s.CreateRoom(ctx, store.Room{ID: fmt.Sprint("!room", i), CreatorID: u.ID}, nil); err != nil {
			b.Fatal(err)
		}
	}
	return recipients
}

// BenchmarkDeliveriesWhileSubmitting measures a device reading a page of
// 50 from its queue while 16 submitters keep the writer busy: reads run on
// their own connections and do not wait for the writer's commits.
func BenchmarkDeliveriesWhileSubmitting(b *testing.B) {
	ctx := b.Context()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	u, _ := s.CreateUser(ctx, "bench", "")
	code := []byte("code")
	s.CreateEnrollment(ctx, store.Enrollment{CodeHash: code, UserID: u.ID, Expires: time.Now().Add(time.Hour)})
	d, err := s.RegisterDevice(ctx, code, "d", []byte("key"), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	if err := s.CreateRoom(ctx, store.Room{ID: "!r", CreatorID: u.ID}, nil); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 200)
	for i := range 200 {
		if _, err := s.Submit(ctx, store.Submission{RoomID: "!r", ClientID: fmt.Sprint("seed", i),
			Kind: store.KindApplication, Payload: payload, Recipients: []int64{d.ID}}); err != nil {
			b.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var n atomic.Int64
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Recipients none: the reader's queue stays the same size.
				s.Submit(ctx, store.Submission{RoomID: "!r", ClientID: fmt.Sprint("w", n.Add(1)),
					Kind: store.KindApplication, Payload: payload})
			}
		})
	}
	b.ResetTimer()
	for b.Loop() {
		ds, err := s.Deliveries(ctx, d.ID, 0, 50)
		if err != nil || len(ds) != 50 {
			b.Fatal(len(ds), err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
}

// TestMigrationKeepsDataFromVersion1 opens a database written by a binary
// that knew only the first schema: Open must add the outbox tables and
// keep what was there.
func TestMigrationKeepsDataFromVersion1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE schema_version (version INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := applyMigration(ctx, conn, 1, migrations[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO users (handle, created) VALUES ('alice', 1)`); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if u, err := s.UserByHandle(ctx, "alice"); err != nil || u.ID != 1 {
		t.Errorf("user from version 1 = %+v, %v", u, err)
	}
	var v int
	if err := s.conns.rdb.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v); err != nil || v != len(migrations) {
		t.Errorf("schema version after Open = %d, %v; want %d", v, err, len(migrations))
	}
	if err := s.EnqueueOutbound(ctx, []store.Outbound{{Destination: "blue.test", Path: "/p", ID: "1"}}); err != nil {
		t.Errorf("outbox after migration: %v", err)
	}
}

// openAtVersion2 creates a database as a binary that knew only the first
// two schema versions left it: the migrations' DDL applied by hand, with
// foreign keys on (unless fkOff) so the data written after it is checked
// the way that binary checked it, then fill run on it.
func openAtVersion2(t *testing.T, path string, fkOff bool, fill string) {
	t.Helper()
	ctx := t.Context()
	dsn := path + "?_pragma=foreign_keys(1)"
	if fkOff {
		dsn = path + "?_pragma=foreign_keys(0)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE schema_version (version INTEGER NOT NULL)`,
		migrations[0], `INSERT INTO schema_version (version) VALUES (1)`,
		migrations[1], `INSERT INTO schema_version (version) VALUES (2)`,
		fill,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("building the version 2 database: %v\n%s", err, q)
		}
	}
}

// TestMigrationKeepsDataFromVersion2 opens a database written at schema
// version 2, with a user, a device, a room, a message in its log queued for
// the device and an outbox entry: migration 3 rebuilds rooms, and
// everything must come through, the room as one hosted here (Hub "") with
// its creator, the message with no Sender, the entry with no Header, and
// foreign keys enforced again afterwards.
func TestMigrationKeepsDataFromVersion2(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v2.db")
	openAtVersion2(t, path, false, `
INSERT INTO users (handle, created) VALUES ('alice', 1);
INSERT INTO devices (user_id, name, auth_key, created) VALUES (1, 'laptop', x'01', 2);
INSERT INTO rooms (id, creator_id, epoch, version, state, created) VALUES ('!r', 1, 3, 4, x'5354', 5);
INSERT INTO room_members (room_id, user_id, role) VALUES ('!r', 1, 'admin');
INSERT INTO room_messages (room_id, seq, client_id, sender_device, kind, epoch, payload, created)
	VALUES ('!r', 1, 'm1', 1, 'application', 3, x'ff00', 6);
UPDATE counters SET value = 1 WHERE name = 'cursor';
INSERT INTO device_queue (device_id, cursor, message_id) VALUES (1, 1, 1);
INSERT INTO outbox (destination, delivery_id, kind, path, body, created)
	VALUES ('blue.test', 'o1', 'notify', '/p', x'00', 7);
`)

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	if err := s.conns.rdb.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v); err != nil || v != len(migrations) {
		t.Errorf("schema version after Open = %d, %v; want %d", v, err, len(migrations))
	}
	r, err := s.Room(ctx, "!r")
	if err != nil {
		t.Fatal(err)
	}
	if r.Hub != "" || r.CreatorID != 1 || r.Epoch != 3 || r.Version != 4 || string(r.State) != "ST" ||
		r.Created.UnixNano() != 5 || r.LastSeq != 1 {
		t.Errorf("room after migration = %+v; want hosted here, creator 1, epoch 3, version 4, LastSeq 1", r)
	}
	if ms, err := s.RoomMembers(ctx, "!r"); err != nil || len(ms) != 1 || ms[0].UserID != 1 || ms[0].Role != store.RoleAdmin {
		t.Errorf("members after migration = %+v, %v", ms, err)
	}
	want := store.Message{RoomID: "!r", Seq: 1, ClientID: "m1", SenderDevice: 1, Sender: "", Kind: store.KindApplication,
		Epoch: 3, Payload: []byte{0xff, 0}, Created: time.Unix(0, 6).UTC()}
	same := func(what string, m store.Message) {
		t.Helper()
		if m.RoomID != want.RoomID || m.Seq != want.Seq || m.ClientID != want.ClientID || m.SenderDevice != want.SenderDevice ||
			m.Sender != want.Sender || m.Kind != want.Kind || m.Epoch != want.Epoch || string(m.Payload) != string(want.Payload) ||
			!m.Created.Equal(want.Created) {
			t.Errorf("%s after migration = %+v, want %+v", what, m, want)
		}
	}
	if log, err := s.RoomMessages(ctx, "!r", 0, 10); err != nil || len(log) != 1 {
		t.Errorf("log after migration = %+v, %v", log, err)
	} else {
		same("log", log[0])
	}
	if ds, err := s.Deliveries(ctx, 1, 0, 10); err != nil || len(ds) != 1 || ds[0].Cursor != 1 {
		t.Errorf("queue after migration = %+v, %v", ds, err)
	} else {
		same("delivery", ds[0].Message)
	}
	if o, err := s.NextOutbound(ctx, "blue.test"); err != nil || o.ID != "o1" || o.Header != nil || string(o.Body) != "\x00" {
		t.Errorf("outbox entry after migration = %+v, %v", o, err)
	}

	// The rebuilt rooms table is still the one the logs and member rows
	// refer to, and nothing dangles.
	var bad int
	if err := s.conns.rdb.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&bad); err != nil || bad != 0 {
		t.Errorf("foreign_key_check after migration: %d rows, %v", bad, err)
	}
	for _, table := range []string{"room_members", "room_messages"} {
		var parent string
		if err := s.conns.rdb.QueryRowContext(ctx, `SELECT "table" FROM pragma_foreign_key_list(?) WHERE "from" = 'room_id'`, table).
			Scan(&parent); err != nil || parent != "rooms" {
			t.Errorf("%s.room_id refers to %q (%v), want rooms", table, parent, err)
		}
	}
	// Foreign keys are enforced again on the writer: a room with an
	// unknown creator and a message for an unknown device are refused.
	if err := s.CreateRoom(ctx, store.Room{ID: "!x", CreatorID: 99}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("room with an unknown creator after migration: %v, want ErrNotFound", err)
	}
	if _, err := s.Submit(ctx, store.Submission{RoomID: "!r", ClientID: "m2", Kind: store.KindApplication,
		Recipients: []int64{99}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("message for an unknown device after migration: %v, want ErrNotFound", err)
	}
	// And the new columns work on the old data.
	res, err := s.Submit(ctx, store.Submission{RoomID: "!r", ClientID: "m3", Sender: "mimi://blue.test/d/alice/laptop",
		SenderDevice: 1, Kind: store.KindApplication, Seq: 5, Recipients: []int64{1}})
	if err != nil || res.Seq != 5 {
		t.Errorf("submit after migration = %+v, %v", res, err)
	}
	if m, err := s.MessageByClientID(ctx, "!r", "m3"); err != nil || m.Sender != "mimi://blue.test/d/alice/laptop" {
		t.Errorf("m3 after migration = %+v, %v", m, err)
	}
	if err := s.CreateRoom(ctx, store.Room{ID: "!f", Hub: "green.test"}, nil); err != nil {
		t.Errorf("follower copy after migration: %v", err)
	}
}

// TestMigrationRefusesDanglingReferences: a database whose data already
// breaks a foreign key (written with enforcement off) fails migration 3's
// foreign_key_check, and is left as it was, at version 2.
func TestMigrationRefusesDanglingReferences(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v2.db")
	openAtVersion2(t, path, true, `
INSERT INTO users (handle, created) VALUES ('alice', 1);
INSERT INTO rooms (id, creator_id, epoch, version, state, created) VALUES ('!r', 1, 0, 0, x'', 1);
INSERT INTO room_messages (room_id, seq, client_id, sender_device, kind, epoch, payload, created)
	VALUES ('!r', 1, 'm1', 1, 'application', 0, x'', 1);
INSERT INTO device_queue (device_id, cursor, message_id) VALUES (42, 1, 1); -- no device 42
`)
	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open migrated a database with a dangling reference")
	}
	if !strings.Contains(err.Error(), "migration 3") || !strings.Contains(err.Error(), "foreign_key_check") {
		t.Errorf("Open: %v; want migration 3 to fail its foreign_key_check", err)
	}

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v); err != nil || v != 2 {
		t.Errorf("schema version after the failed migration = %d, %v; want 2", v, err)
	}
	var ddl string
	if err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE name = 'rooms'`).Scan(&ddl); err != nil ||
		!strings.Contains(ddl, "NOT NULL REFERENCES users") || strings.Contains(ddl, "hub") {
		t.Errorf("rooms after the failed migration: %q, %v; want version 2's table", ddl, err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'rooms_v3'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the failed migration left rooms_v3 behind (%d, %v)", n, err)
	}
}

// TestWriterPreparesEachStatementOnce: the writer keeps every statement
// it runs prepared on its connection, by text. After a first Submit, a
// hundred more prepare nothing new (the hot path parses no SQL), and
// statements past the cache's bound still run, unprepared.
func TestWriterPreparesEachStatementOnce(t *testing.T) {
	ctx := t.Context()
	s, _ := aliceStore(t, true)
	submit := func(i int) {
		t.Helper()
		if _, err := s.Submit(ctx, store.Submission{RoomID: "!r", ClientID: fmt.Sprint(i), Kind: store.KindApplication,
			Outbound: []store.Outbound{{Destination: "blue.test", Path: "/p", ID: fmt.Sprint(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	submit(0)
	// The writer's map is read here only between ops: Submit returned
	// after the writer answered, so what it did happened before.
	prepared := len(s.conns.w.stmts)
	for i := 1; i <= 100; i++ {
		submit(i)
	}
	// At least BEGIN, the room's head, the message, the outbox entry and
	// COMMIT.
	if n := len(s.conns.w.stmts); n != prepared || n < 5 {
		t.Errorf("the writer holds %d prepared statements after 101 Submits, %d after the first", n, prepared)
	}

	err := s.conns.Write(ctx, func(c sqlstore.Conn) error {
		for i := range maxStmts + 10 {
			var got int
			if err := c.QueryRow(fmt.Sprintf("SELECT %d + ?", i), 1).Scan(&got); err != nil || got != i+1 {
				return fmt.Errorf("statement %d: %d, %v", i, got, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.conns.w.stmts); n != maxStmts {
		t.Errorf("the writer holds %d prepared statements, want the bound %d", n, maxStmts)
	}
	submit(101) // the hot statements are still there
}

// processCPU is the CPU time the process has used, user and system: on a
// shared machine it varies less with the load than the time per op does.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

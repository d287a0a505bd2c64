package sqlite

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
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
}

func benchSubmit(b *testing.B, submitters int, opts ...Option) {
	ctx := b.Context()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
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
	for i := range submitters {
		if err := s.CreateRoom(ctx, store.Room{ID: fmt.Sprint("!room", i), CreatorID: u.ID}, nil); err != nil {
			b.Fatal(err)
		}
	}
	payload := make([]byte, 200)
	rand.Read(payload)

	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
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
	// The average group size, setup included (a few groups of one).
	b.ReportMetric(float64(s.w.batched.Load())/float64(s.w.batches.Load()), "msgs/commit")
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
	if err := s.rdb.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v); err != nil || v != len(migrations) {
		t.Errorf("schema version after Open = %d, %v; want %d", v, err, len(migrations))
	}
	if err := s.EnqueueOutbound(ctx, []store.Outbound{{Destination: "blue.test", Path: "/p", ID: "1"}}); err != nil {
		t.Errorf("outbox after migration: %v", err)
	}
}

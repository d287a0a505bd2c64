package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/postgres/pgtest"
)

// TestReplicasAgreeOnRoomOrder: two replicas (two Stores, two pools) on
// one database receive commits for the same room at the same time, each
// proposing the next epoch from the version it last read. Exactly one
// commit wins each epoch, the loser gets store.ErrConflict and retries
// from the new version, application messages interleave, and the room's
// log ends gap-free with every device's queue in log order.
func TestReplicasAgreeOnRoomOrder(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	a, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dsn) // migrations already applied: a no-op
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	u, err := a.CreateUser(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CreateEnrollment(ctx, store.Enrollment{CodeHash: []byte("c"), UserID: u.ID, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	dev, err := b.RegisterDevice(ctx, []byte("c"), "phone", []byte("key"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CreateRoom(ctx, store.Room{ID: "r", CreatorID: u.ID}, nil); err != nil {
		t.Fatal(err)
	}

	const epochs, perReplica = 20, 4
	var mu sync.Mutex
	winners := map[uint64]string{} // epoch -> ClientID of its commit
	conflicts := 0
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				r, err := s.Room(ctx, "r")
				if err != nil {
					t.Error(err)
					return
				}
				if r.Epoch >= epochs {
					return
				}
				id := fmt.Sprintf("w%d-%d", i, n)
				_, err = s.Submit(ctx, store.Submission{RoomID: "r", ClientID: id, Kind: store.KindCommit,
					Epoch: r.Epoch, PrevVersion: r.Version, NewEpoch: r.Epoch + 1, NewState: []byte(id),
					Recipients: []int64{dev.ID}})
				switch {
				case err == nil:
					mu.Lock()
					if w, ok := winners[r.Epoch+1]; ok {
						t.Errorf("epoch %d won twice: %s and %s", r.Epoch+1, w, id)
					}
					winners[r.Epoch+1] = id
					mu.Unlock()
				case errors.Is(err, store.ErrConflict):
					mu.Lock()
					conflicts++
					mu.Unlock()
				default:
					t.Error(err)
					return
				}
				for k := range perReplica {
					if _, err := s.Submit(ctx, store.Submission{RoomID: "r", ClientID: fmt.Sprintf("%s/app%d", id, k),
						Kind: store.KindApplication, Epoch: r.Epoch, Recipients: []int64{dev.ID}}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(winners) != epochs {
		t.Fatalf("%d epochs won, want %d", len(winners), epochs)
	}
	t.Logf("%d commits lost their epoch to another replica's and got ErrConflict", conflicts)

	log, err := a.RoomMessages(ctx, "r", 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	commits := 0
	for i, m := range log {
		if m.Seq != int64(i+1) {
			t.Fatalf("log position %d has Seq %d: the log has a gap", i+1, m.Seq)
		}
		if m.Kind == store.KindCommit {
			commits++
			if winners[m.Epoch+1] != m.ClientID {
				t.Errorf("commit %s in the log is not epoch %d's winner %s", m.ClientID, m.Epoch+1, winners[m.Epoch+1])
			}
		}
	}
	if commits != epochs {
		t.Errorf("%d commits in the log, want %d", commits, epochs)
	}
	room, err := b.Room(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if room.Epoch != epochs || room.Version != epochs || string(room.State) != winners[epochs] {
		t.Errorf("room at epoch %d version %d state %q, want %d, %d, %q", room.Epoch, room.Version, room.State, epochs, epochs, winners[epochs])
	}
	// The device's queue holds the log in log order, cursors rising.
	ds, err := b.Deliveries(ctx, dev.ID, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != len(log) {
		t.Fatalf("%d queued, %d logged", len(ds), len(log))
	}
	for i, d := range ds {
		if d.Message.Seq != int64(i+1) || (i > 0 && d.Cursor <= ds[i-1].Cursor) {
			t.Fatalf("queue entry %d: cursor %d, Seq %d: not in log order", i, d.Cursor, d.Message.Seq)
		}
	}
}

// TestUnreachableIsRetryable: a store whose server cannot be reached
// answers store.ErrUnavailable, which the provider turns into 503.
func TestUnreachableIsRetryable(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Kill every connection of the pool, as a restarting server would,
	// then point nothing new at it: the next call's fresh connection
	// works, because pgxpool reconnects by itself.
	if _, err := s.conns.pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE pid != pg_backend_pid() AND application_name = current_setting('application_name')`); err != nil {
		t.Logf("terminate: %v", err)
	}
	if _, err := s.CreateUser(context.Background(), "after", ""); err != nil && !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a call on a killed connection: %v, want success or ErrUnavailable", err)
	}
	if _, err := s.CreateUser(context.Background(), "again", ""); err != nil {
		t.Fatalf("the pool did not recover: %v", err)
	}

	// A server that is not there at all.
	down, err := Open(context.Background(), "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if err == nil {
		down.Close()
		t.Fatal("Open on a closed port succeeded")
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open on a closed port: %v, want store.ErrUnavailable", err)
	}
}

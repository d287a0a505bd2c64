package sqlite

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlstore"
)

// heldWriter opens a store with a scratch table and returns it with hold,
// which occupies the writer until the returned release is called: the ops
// queued meanwhile make up its next group.
func heldWriter(t *testing.T) (*Store, func() (release func())) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.conns.Write(t.Context(), func(c sqlstore.Conn) error {
		if _, err := c.Exec(`CREATE TABLE scratch (k TEXT PRIMARY KEY)`); err != nil {
			return err
		}
		_, err := c.Exec(`INSERT INTO scratch VALUES ('a')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	hold := func() func() {
		started, release := make(chan struct{}), make(chan struct{})
		go s.conns.Write(t.Context(), func(sqlstore.Conn) error {
			close(started)
			<-release
			return nil
		})
		<-started
		return func() { close(release) }
	}
	return s, hold
}

// groupsSince is how many groups the writer has committed since it had
// committed before, once it has committed want (or a second has passed):
// the writer counts a group after answering its ops, so an answered op's
// group may be counted a moment later.
func groupsSince(s *Store, before, want int64) int64 {
	deadline := time.Now().Add(time.Second)
	for s.conns.w.batches.Load()-before < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // and no more come
	return s.conns.w.batches.Load() - before
}

func scratchKeys(t *testing.T, s *Store) []string {
	t.Helper()
	c, err := s.conns.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(`SELECT k FROM scratch ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// TestAFailedWriteInAGroupCostsTheOthersNothing: three writes wait for the
// writer and share a COMMIT. The middle one inserts a row, then fails on a
// key already taken. The other two keep their changes, the failed one
// keeps none, and each hears its own outcome.
func TestAFailedWriteInAGroupCostsTheOthersNothing(t *testing.T) {
	s, hold := heldWriter(t)
	insert := func(keys ...string) func(sqlstore.Conn) error {
		return func(c sqlstore.Conn) error {
			for _, k := range keys {
				if _, err := c.Exec(`INSERT INTO scratch VALUES (?)`, k); err != nil {
					return err
				}
			}
			return nil
		}
	}
	release := hold()
	var waits []func() error
	for _, fn := range []func(sqlstore.Conn) error{insert("b"), insert("c", "a"), insert("d")} {
		w, err := s.conns.WriteQueued(t.Context(), fn)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	before := s.conns.w.batches.Load()
	release()
	var errs []error
	for _, w := range waits {
		errs = append(errs, w())
	}
	if errs[0] != nil || !errors.Is(errs[1], store.ErrExists) || errs[2] != nil {
		t.Errorf("outcomes %v, want nil, ErrExists, nil", errs)
	}
	if got := scratchKeys(t, s); !slices.Equal(got, []string{"a", "b", "d"}) {
		t.Errorf("rows %q, want a b d", got)
	}
	// The held write's group, then the three's.
	if n := groupsSince(s, before, 2); n != 2 {
		t.Errorf("%d groups committed, want 2", n)
	}
}

// TestAnAcknowledgementRidesWithTheNextWrite: a lazy write (an
// acknowledgement) waiting with an ordinary one shares its COMMIT, and
// one alone is committed all the same.
func TestAnAcknowledgementRidesWithTheNextWrite(t *testing.T) {
	s, hold := heldWriter(t)
	release := hold()
	lazy := make(chan error, 1)
	go func() {
		lazy <- s.conns.WriteLazy(t.Context(), func(c sqlstore.Conn) error {
			_, err := c.Exec(`INSERT INTO scratch VALUES ('lazy')`)
			return err
		})
	}()
	// The lazy write is queued before the ordinary one: wait for it.
	for len(s.conns.w.ops) == 0 {
		runtime.Gosched()
	}
	w, err := s.conns.WriteQueued(t.Context(), func(c sqlstore.Conn) error {
		_, err := c.Exec(`INSERT INTO scratch VALUES ('now')`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	before := s.conns.w.batches.Load()
	release()
	if err := w(); err != nil {
		t.Fatal(err)
	}
	if err := <-lazy; err != nil {
		t.Fatal(err)
	}
	if n := groupsSince(s, before, 2); n != 2 {
		t.Errorf("%d groups committed, want 2: the held one, then the two writes together", n)
	}

	for i := range 3 {
		if err := s.conns.WriteLazy(t.Context(), func(c sqlstore.Conn) error {
			_, err := c.Exec(`INSERT INTO scratch VALUES (?)`, fmt.Sprint("alone", i))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := scratchKeys(t, s); !slices.Equal(got, []string{"a", "alone0", "alone1", "alone2", "lazy", "now"}) {
		t.Errorf("rows %q", got)
	}
}

// TestAFailedWriteAloneKeepsNothing: a write committed alone that
// inserts a row and then fails leaves no row, and the next write works.
func TestAFailedWriteAloneKeepsNothing(t *testing.T) {
	s, _ := heldWriter(t)
	err := s.conns.Write(t.Context(), func(c sqlstore.Conn) error {
		if _, err := c.Exec(`INSERT INTO scratch VALUES ('x')`); err != nil {
			return err
		}
		_, err := c.Exec(`INSERT INTO scratch VALUES ('a')`)
		return err
	})
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("the failing write: %v, want ErrExists", err)
	}
	if err := s.conns.Write(t.Context(), func(c sqlstore.Conn) error {
		_, err := c.Exec(`INSERT INTO scratch VALUES ('y')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := scratchKeys(t, s); !slices.Equal(got, []string{"a", "y"}) {
		t.Errorf("rows %q, want a y", got)
	}
}

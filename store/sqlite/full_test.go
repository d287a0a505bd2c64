package sqlite

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlstore"
)

// setMaxPages caps the database at n pages (0: at its size now), which is
// how SQLite reports a full disk (SQLITE_FULL) without filling one; test/
// diskfull fills a real one.
func setMaxPages(t *testing.T, s *Store, n int64) {
	t.Helper()
	if err := s.conns.Write(t.Context(), func(c sqlstore.Conn) error {
		if n == 0 {
			if err := c.QueryRow(`PRAGMA page_count`).Scan(&n); err != nil {
				return err
			}
		}
		_, err := c.Exec(`PRAGMA max_page_count = ` + strconv.FormatInt(n, 10))
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestAFullDatabaseRefusesWritesAndRecovers: the database can grow no
// more. A write that needs a new page fails with SQLITE_FULL, on which
// SQLite rolls back the whole transaction: every write of its group,
// a small one that fitted included, is told ErrStorageFull, and none of
// their rows is kept (an acknowledged one would be lost). Reads go on.
// Once there is room again the same writer stores the refused writes,
// without a restart, and the file is sound.
func TestAFullDatabaseRefusesWritesAndRecovers(t *testing.T) {
	s, hold := heldWriter(t)
	setMaxPages(t, s, 0)
	big := func(k string) func(sqlstore.Conn) error {
		return func(c sqlstore.Conn) error {
			_, err := c.Exec(`INSERT INTO scratch VALUES (?)`, k+strings.Repeat("x", 64<<10))
			return err
		}
	}
	small := func(c sqlstore.Conn) error {
		_, err := c.Exec(`INSERT INTO scratch VALUES ('small')`)
		return err
	}
	release := hold()
	var waits []func() error
	for _, fn := range []func(sqlstore.Conn) error{big("b"), small, big("c")} {
		w, err := s.conns.WriteQueued(t.Context(), fn)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	release()
	for i, w := range waits {
		if err := w(); !errors.Is(err, store.ErrStorageFull) {
			t.Errorf("write %d of the group on a full database: %v, want ErrStorageFull", i, err)
		}
	}
	if got := scratchKeys(t, s); !slices.Equal(got, []string{"a"}) {
		t.Errorf("rows %q after the refused writes, want a alone", got)
	}

	setMaxPages(t, s, 1<<30)
	for i, fn := range []func(sqlstore.Conn) error{big("b"), small, big("c")} {
		if err := s.conns.Write(t.Context(), fn); err != nil {
			t.Fatalf("write %d once there is room: %v", i, err)
		}
	}
	if got := scratchKeys(t, s); len(got) != 4 {
		t.Errorf("%d rows once there is room, want 4", len(got))
	}
	var ok string
	if err := s.conns.Write(t.Context(), func(c sqlstore.Conn) error {
		return c.QueryRow(`PRAGMA integrity_check`).Scan(&ok)
	}); err != nil || ok != "ok" {
		t.Errorf("integrity_check: %q %v", ok, err)
	}
}

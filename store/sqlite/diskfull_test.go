package sqlite

import (
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlstore"
)

// tmpfs mounts a tmpfs of size on a new directory for the test, and
// unmounts it at the end; the test is skipped without root (or when mount
// is refused), except that SWITCHBOARD_REQUIRE_SERVICES=1 as root makes a
// refusal a failure. test/diskfull does the same for a whole provider.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full disk needs root to mount a small tmpfs; run the test as root")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("SWITCHBOARD_REQUIRE_SERVICES") == "1" {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("mount tmpfs refused: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if exec.Command("umount", dir).Run() != nil {
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// TestTheDiskFillsUp: the store's own writes fill a small filesystem,
// with checkpoints every few pages (some of which then fail, unable to
// grow the database file). Each write is either acknowledged or refused
// with ErrStorageFull; reads go on; a checkpoint tried from another
// connection while the disk is full harms nothing. Once space is freed
// the same store writes again, and closed and opened again it holds
// exactly the acknowledged rows, and passes integrity_check.
func TestTheDiskFillsUp(t *testing.T) {
	dir := tmpfs(t, "2m")
	reserve := filepath.Join(dir, "reserve")
	if err := os.WriteFile(reserve, make([]byte, 512<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "full.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if err := s.conns.Write(t.Context(), func(c sqlstore.Conn) error {
		if _, err := c.Exec(`PRAGMA wal_autocheckpoint = 20`); err != nil {
			return err
		}
		_, err := c.Exec(`CREATE TABLE scratch (k INTEGER PRIMARY KEY, v BLOB)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	insert := func(k int) error {
		return s.conns.Write(t.Context(), func(c sqlstore.Conn) error {
			_, err := c.Exec(`INSERT INTO scratch VALUES (?, ?)`, k, make([]byte, 12<<10))
			return err
		})
	}
	count := func() int {
		t.Helper()
		c, err := s.conns.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(`SELECT count(*) FROM scratch`).Scan(&n); err != nil {
			t.Fatalf("reading the table: %v", err)
		}
		return n
	}

	acked, refused, k := 0, 0, 0
	for ; k < 2000 && refused < 20; k++ {
		switch err := insert(k); {
		case err == nil:
			acked++
		case errors.Is(err, store.ErrStorageFull):
			refused++
		default:
			t.Fatalf("write %d: %v, want success or ErrStorageFull", k, err)
		}
	}
	if refused == 0 {
		t.Fatalf("%d writes of 12 KiB on a 2 MiB disk were all stored", k)
	}
	t.Logf("%d writes acknowledged, %d refused", acked, refused)
	if n := count(); n != acked {
		t.Errorf("the table holds %d rows on the full disk; %d writes were acknowledged", n, acked)
	}

	// Someone checkpoints from outside while the disk is full.
	outside, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	_, cerr := outside.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	outside.Close()
	t.Logf("a checkpoint on the full disk: %v", cerr)
	if err := insert(k); !errors.Is(err, store.ErrStorageFull) && err != nil {
		t.Fatalf("a write after the checkpoint: %v", err)
	} else if err == nil {
		acked++
	}
	k++

	if err := os.Remove(reserve); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := insert(k); err != nil {
			t.Fatalf("a write once there is room: %v", err)
		}
		k++
		acked++
	}
	if n := count(); n != acked {
		t.Errorf("the table holds %d rows once there is room; %d writes were acknowledged", n, acked)
	}
	if err := s.Close(); err != nil && !strings.Contains(err.Error(), "full") {
		t.Errorf("closing: %v", err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatalf("opening again: %v", err)
	}
	if n := count(); n != acked {
		t.Errorf("opened again, the table holds %d rows; %d writes were acknowledged", n, acked)
	}
	var ok string
	if err := s.conns.Write(t.Context(), func(c sqlstore.Conn) error {
		return c.QueryRow(`PRAGMA integrity_check`).Scan(&ok)
	}); err != nil || ok != "ok" {
		t.Errorf("integrity_check: %q %v", ok, err)
	}
}

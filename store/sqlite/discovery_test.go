package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// TestMigrationKeepsUsersFromVersion3 opens a database written at schema
// version 3 with two users: migration 4 must keep them as they were, with
// neither discoverable (nobody said so), and let them choose afterwards.
func TestMigrationKeepsUsersFromVersion3(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v3.db")
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	steps := []string{`CREATE TABLE schema_version (version INTEGER NOT NULL)`}
	for v := range 3 {
		steps = append(steps, migrations[v], fmt.Sprintf(`INSERT INTO schema_version (version) VALUES (%d)`, v+1))
	}
	steps = append(steps, `
INSERT INTO users (handle, phone, created) VALUES ('alice', '+41446681800', 1);
INSERT INTO users (handle, created) VALUES ('bob', 2);
INSERT INTO devices (user_id, name, auth_key, created) VALUES (1, 'phone', x'01', 3);`)
	for _, q := range steps {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("building the version 3 database: %v\n%s", err, q)
		}
	}
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	if err := s.conns.rdb.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v); err != nil || v != len(migrations) || v < 4 {
		t.Errorf("schema version after Open = %d, %v; want %d (at least 4)", v, err, len(migrations))
	}
	alice, err := s.UserByPhone(ctx, "+41446681800")
	if err != nil || alice.ID != 1 || alice.Handle != "alice" || alice.Created.UnixNano() != 1 ||
		alice.DiscoverableByHandle || alice.DiscoverableByPhone {
		t.Errorf("alice after migration = %+v, %v", alice, err)
	}
	bob, err := s.UserByHandle(ctx, "bob")
	if err != nil || bob.ID != 2 || bob.Phone != "" || bob.DiscoverableByHandle || bob.DiscoverableByPhone {
		t.Errorf("bob after migration = %+v, %v", bob, err)
	}
	if ds, err := s.DevicesOfUser(ctx, 1); err != nil || len(ds) != 1 || ds[0].Name != "phone" {
		t.Errorf("alice's devices after migration = %+v, %v", ds, err)
	}
	if err := s.SetDiscoverable(ctx, alice.ID, false, true); err != nil {
		t.Fatal(err)
	}
	if alice, err = s.UserByHandle(ctx, "alice"); err != nil || alice.DiscoverableByHandle || !alice.DiscoverableByPhone {
		t.Errorf("alice after SetDiscoverable(false, true) = %+v, %v", alice, err)
	}
}

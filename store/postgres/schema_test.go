package postgres

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/postgres/pgtest"
	"github.com/switchboard-chat/switchboard/store/sqlite"
	"github.com/switchboard-chat/switchboard/store/sqlstore"
)

// pgOnly are the columns the PostgreSQL schema has and SQLite's has not:
// key_packages.added stands for SQLite's implicit rowid.
var pgOnly = pgOnlyColumns

// TestSchemaIsTheListsInBothDatabases: one list of migrations makes both
// schemas. A fresh SQLite database and a fresh PostgreSQL one each have
// exactly the tables and named indexes the list creates, and the same
// columns, of the same kinds, in every table.
func TestSchemaIsTheListsInBothDatabases(t *testing.T) {
	ctx := context.Background()
	tables, indexes := listed(sqlstore.SQLite.Migrations())
	tables = append(tables, "schema_version") // made by migrate, before the list
	slices.Sort(tables)
	slices.Sort(indexes)
	if len(tables) < 15 || len(indexes) < 5 {
		t.Fatalf("read %d tables and %d indexes from the migrations: the reading missed the list", len(tables), len(indexes))
	}

	lite := sqliteSchema(t)
	s, err := Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pg := postgresSchema(t, s)

	for _, db := range []struct {
		name string
		got  schema
	}{{"SQLite", lite}, {"PostgreSQL", pg}} {
		if !slices.Equal(db.got.tables, tables) {
			t.Errorf("%s has tables %v; the migrations make %v", db.name, db.got.tables, tables)
		}
		if !slices.Equal(db.got.indexes, indexes) {
			t.Errorf("%s has indexes %v; the migrations make %v", db.name, db.got.indexes, indexes)
		}
	}
	var onlyLite, onlyPG []string
	for _, c := range lite.columns {
		if !slices.Contains(pg.columns, c) {
			onlyLite = append(onlyLite, c)
		}
	}
	for _, c := range pg.columns {
		if !slices.Contains(lite.columns, c) {
			onlyPG = append(onlyPG, c)
		}
	}
	if len(onlyLite) > 0 || len(onlyPG) > 0 {
		t.Errorf("the columns differ:\n  only in SQLite: %s\n  only in PostgreSQL: %s",
			strings.Join(onlyLite, ", "), strings.Join(onlyPG, ", "))
	}
}

// listed reads which tables and named indexes the migrations leave
// behind: created, less dropped, renamed followed.
func listed(migrations []string) (tables, indexes []string) {
	re := regexp.MustCompile(`CREATE TABLE (\w+)|CREATE (?:UNIQUE )?INDEX (\w+)|DROP TABLE (\w+)|DROP INDEX (\w+)|ALTER TABLE (\w+) RENAME TO (\w+)`)
	for _, m := range migrations {
		for _, g := range re.FindAllStringSubmatch(m, -1) {
			switch {
			case g[1] != "":
				tables = append(tables, g[1])
			case g[2] != "":
				indexes = append(indexes, g[2])
			case g[3] != "":
				tables = slices.DeleteFunc(tables, func(s string) bool { return s == g[3] })
			case g[4] != "":
				indexes = slices.DeleteFunc(indexes, func(s string) bool { return s == g[4] })
			default:
				tables = slices.DeleteFunc(tables, func(s string) bool { return s == g[5] })
				tables = append(tables, g[6])
			}
		}
	}
	return tables, indexes
}

// schema is what a database says of its tables: sorted names, and columns
// as "table.column kind" with kind integer, text or blob.
type schema struct {
	tables, indexes, columns []string
}

var kinds = map[string]string{
	"INTEGER": "integer", "bigint": "integer", "TEXT": "text", "text": "text", "BLOB": "blob", "bytea": "blob",
}

func sqliteSchema(t *testing.T) schema {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	ls, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ls.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	strs := func(q string) []string {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var a, b, c string
			if err := rows.Scan(&a, &b, &c); err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.TrimSpace(a+b+c))
		}
		slices.Sort(out)
		return out
	}
	var out schema
	out.tables = strs(`SELECT name, '', '' FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	out.indexes = strs(`SELECT name, '', '' FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'`)
	for _, c := range strs(`SELECT m.name || '.' || p.name, ' ', p.type FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`) {
		name, typ, _ := strings.Cut(c, " ")
		out.columns = append(out.columns, name+" "+kinds[typ])
	}
	return out
}

func postgresSchema(t *testing.T, s *Store) schema {
	t.Helper()
	ctx := context.Background()
	strs := func(q string) []string {
		rows, err := s.conns.pool.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	var out schema
	out.tables = strs(`SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()`)
	// Named indexes only: primary keys and UNIQUE constraints are implied
	// by the columns' constraints in both.
	out.indexes = strs(`SELECT i.indexname::text FROM pg_indexes i
		WHERE i.schemaname = current_schema() AND NOT EXISTS
		(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)`)
	for _, c := range strs(`SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
		WHERE table_schema = current_schema()`) {
		name, typ, _ := strings.Cut(c, " ")
		if !pgOnly[name] {
			out.columns = append(out.columns, name+" "+kinds[typ])
		}
	}
	return out
}

// TestLegacySchemaIsUpgraded: a PostgreSQL database made before the schema
// was shared (its version 1 was everything, with BOOLEAN flags) opens: its
// data reads back as it was, it records versions 2 to 8 as applied, and
// its schema is then exactly a fresh database's, to the column types,
// defaults, constraints and index definitions.
func TestLegacySchemaIsUpgraded(t *testing.T) {
	ctx := context.Background()
	ddl, err := os.ReadFile("testdata/legacy_v1.sql")
	if err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.DSN(t)
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_version (version BIGINT NOT NULL)`, string(ddl), `INSERT INTO schema_version (version) VALUES (1)`,
		`INSERT INTO users (handle, created, discoverable_handle, suspended) VALUES ('alice', 1, true, true)`,
		`INSERT INTO devices (user_id, name, auth_key, created) VALUES (1, 'phone', '\x01', 2)`,
		`INSERT INTO key_packages (ref, device_id, suite, data, last_resort, claimed) VALUES
			('\x0a', 1, 1, '\x00', false, true), ('\x0b', 1, 1, '\x01', false, false), ('\x0c', 1, 1, '\x02', true, false)`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("building the legacy database: %v\n%s", err, q)
		}
	}
	c.Close(ctx)

	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	alice, err := s.UserByHandle(ctx, "alice")
	if err != nil || !alice.DiscoverableByHandle || alice.DiscoverableByPhone || !alice.Suspended {
		t.Errorf("alice after the upgrade = %+v, %v; want discoverable by handle only, suspended", alice, err)
	}
	if n, err := s.CountKeyPackages(ctx, 1, 1); err != nil || n != 1 {
		t.Errorf("fresh key packages after the upgrade = %d, %v; want 1", n, err)
	}
	for _, want := range []string{"\x0b", "\x0c", "\x0c"} {
		kp, _, err := s.ClaimKeyPackage(ctx, 1, 1)
		if err != nil || string(kp.Ref) != want || kp.LastResort != (want == "\x0c") {
			t.Errorf("claim after the upgrade = %q (last resort %v), %v; want %q", kp.Ref, kp.LastResort, err, want)
		}
	}
	if err := s.SetDiscoverable(ctx, alice.ID, false, true); err != nil {
		t.Fatal(err)
	}
	var want []int64
	for v := range len(migrations) {
		want = append(want, int64(v+1))
	}
	if got := recorded(t, s); !slices.Equal(got, want) {
		t.Errorf("recorded versions after the upgrade: %v, want %v", got, want)
	}

	fresh, err := Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	upgraded, made := catalog(t, s), catalog(t, fresh)
	for _, l := range upgraded {
		if !slices.Contains(made, l) {
			t.Errorf("only in the upgraded database: %s", l)
		}
	}
	for _, l := range made {
		if !slices.Contains(upgraded, l) {
			t.Errorf("only in a fresh database: %s", l)
		}
	}

	// Opening again changes nothing, and the store goes on working.
	again, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	if got := recorded(t, s); !slices.Equal(got, want) {
		t.Errorf("recorded versions after opening again: %v, want %v", got, want)
	}
	if u, err := s.CreateUser(ctx, "bob", ""); err != nil || u.ID != 2 {
		t.Errorf("a new user after the upgrade = %+v, %v", u, err)
	}
	if err := s.AddKeyPackages(ctx, []store.KeyPackage{{Ref: []byte("new"), DeviceID: 1, Suite: 1, Data: []byte("d"), LastResort: true}}); err != nil {
		t.Errorf("a new last-resort key package after the upgrade: %v", err)
	}
}

// recorded lists the versions schema_version records.
func recorded(t *testing.T, s *Store) []int64 {
	t.Helper()
	rows, err := s.conns.pool.Query(context.Background(), `SELECT version FROM schema_version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// catalog describes a PostgreSQL schema to the letter: every column with
// its type, nullability, default and identity, every constraint and every
// index with its definition (the schema's own name taken out).
func catalog(t *testing.T, s *Store) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := s.conns.pool.Query(ctx, `
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' nullable=' || is_nullable ||
			' default=' || coalesce(column_default, '') || ' identity=' || is_identity
			FROM information_schema.columns WHERE table_schema = current_schema()
		UNION ALL SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
			FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
		UNION ALL SELECT 'index ' || replace(indexdef, current_schema() || '.', '')
			FROM pg_indexes WHERE schemaname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 100 {
		t.Fatalf("read %d lines of the catalog: the query missed the schema", len(out))
	}
	slices.Sort(out)
	return out
}

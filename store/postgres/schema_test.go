package postgres

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// pgOnly are the columns the PostgreSQL schema has and SQLite's has not:
// key_packages.added stands for SQLite's implicit rowid.
var pgOnly = map[string]bool{"key_packages.added": true}

// TestSchemasMatch: the PostgreSQL schema and the SQLite one have the same
// tables, the same columns in each, and the same named indexes, so that a
// migration added to one store and not the other fails here.
func TestSchemasMatch(t *testing.T) {
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
	var lite []string
	rows, err := db.QueryContext(ctx, `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		lite = append(lite, table+"."+col)
	}
	rows.Close()
	rows, err = db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		rows.Scan(&name)
		lite = append(lite, "index "+name)
	}
	rows.Close()

	s, err := Open(ctx, TestDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var pg []string
	prows, err := s.pool.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	for prows.Next() {
		var table, col string
		if err := prows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		if !pgOnly[table+"."+col] {
			pg = append(pg, table+"."+col)
		}
	}
	prows.Close()
	// Named indexes only: primary keys and UNIQUE constraints are implied
	// by the columns' constraints in both.
	prows, err = s.pool.Query(ctx, `SELECT i.indexname FROM pg_indexes i
		WHERE i.schemaname = current_schema() AND NOT EXISTS
		(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)`)
	if err != nil {
		t.Fatal(err)
	}
	for prows.Next() {
		var name string
		prows.Scan(&name)
		pg = append(pg, "index "+name)
	}
	prows.Close()

	if len(lite) < 80 || len(pg) < 80 {
		t.Fatalf("read %d SQLite and %d PostgreSQL columns and indexes: the queries missed the schema", len(lite), len(pg))
	}
	slices.Sort(lite)
	slices.Sort(pg)
	if !slices.Equal(lite, pg) {
		var onlyLite, onlyPG []string
		for _, c := range lite {
			if !slices.Contains(pg, c) {
				onlyLite = append(onlyLite, c)
			}
		}
		for _, c := range pg {
			if !slices.Contains(lite, c) {
				onlyPG = append(onlyPG, c)
			}
		}
		t.Errorf("the schemas differ:\n  only in SQLite: %s\n  only in PostgreSQL: %s",
			strings.Join(onlyLite, ", "), strings.Join(onlyPG, ", "))
	}
}

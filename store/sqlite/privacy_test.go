package sqlite

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// privacyDoc is docs/privacy.md, relative to this package's directory,
// where go test runs.
const privacyDoc = "../../docs/privacy.md"

// privacySection is the heading of the table that lists every stored
// column, one row each: | table | column | what | kept |.
const privacySection = "## Stored by a provider"

// TestPrivacyDocListsEveryColumn keeps docs/privacy.md honest: every column
// of a freshly migrated database must have its row in the document's
// storage table, saying what it holds and how long it is kept, and every
// row there must name a column that exists. A migration that adds a
// column fails here until the document says what the column is for.
func TestPrivacyDocListsEveryColumn(t *testing.T) {
	doc, err := readPrivacyTable(privacyDoc)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc) == 0 {
		t.Fatalf("%s: no rows under %q", privacyDoc, privacySection)
	}
	schema := schemaColumns(t)

	for col := range schema {
		if _, ok := doc[col]; !ok {
			t.Errorf("column %s is stored but %s does not list it under %q", col, privacyDoc, privacySection)
		}
	}
	for col, row := range doc {
		if !schema[col] {
			t.Errorf("%s line %d lists %s, which the schema does not have", privacyDoc, row.line, col)
		}
		if row.what == "" || row.kept == "" {
			t.Errorf("%s line %d: %s needs both what it holds and how long it is kept", privacyDoc, row.line, col)
		}
	}
}

// docRow is one row of the document's storage table.
type docRow struct {
	line       int
	what, kept string
}

// readPrivacyTable reads the table under privacySection into rows keyed
// "table.column". It stops at the next "## " heading. Cells may be
// written as code (`users`); the header and separator rows are skipped.
// A row without four cells, or a column listed twice, is an error: the
// document must stay easy to check.
func readPrivacyTable(path string) (map[string]docRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows := map[string]docRow{}
	in, n := false, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			in = line == privacySection
			continue
		}
		if !in || !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i, c := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(c), "`")
		}
		if len(cells) != 4 {
			return nil, &tableError{path, n, "a row needs four cells: | table | column | what | kept |"}
		}
		if cells[0] == "table" || strings.Trim(cells[0], "-:") == "" {
			continue // the header, or the separator under it
		}
		key := cells[0] + "." + cells[1]
		if prev, ok := rows[key]; ok {
			return nil, &tableError{path, n, key + " is listed twice (first at line " + strconv.Itoa(prev.line) + ")"}
		}
		rows[key] = docRow{line: n, what: cells[2], kept: cells[3]}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return rows, nil
}

type tableError struct {
	path string
	line int
	msg  string
}

func (e *tableError) Error() string { return e.path + " line " + strconv.Itoa(e.line) + ": " + e.msg }

// schemaColumns opens a fresh store, which migrates to the newest schema,
// and lists its columns as "table.column": every table's, SQLite's
// sqlite_sequence (the highest ID of each AUTOINCREMENT table) included;
// SQLite's other internal tables (statistics, made by ANALYZE) left out.
func schemaColumns(t *testing.T) map[string]bool {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "privacy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	rows, err := s.conns.rdb.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(name, "sqlite_") && name != "sqlite_sequence" {
			continue
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if !slices.Contains(tables, "users") || !slices.Contains(tables, "sqlite_sequence") {
		t.Fatalf("the fresh database has tables %v, not the schema's", tables)
	}

	cols := map[string]bool{}
	for _, table := range tables {
		rows, err := s.conns.rdb.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			cols[table+"."+name] = true
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if n == 0 {
			t.Fatalf("table %s has no columns: pragma_table_info did not answer", table)
		}
	}
	return cols
}

// TestPrivacyTableParser checks the parser on its own, so that a broken
// parser cannot make the document check pass by reading nothing.
func TestPrivacyTableParser(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		p := filepath.Join(dir, "doc.md")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "# Doc\n\n| table | column | x | y |\n|---|---|---|---|\n| `a` | `b` | no | no |\n\n" +
		privacySection + "\n\nText.\n\n| table | column | what | kept |\n|---|---|---|---|\n" +
		"| `users` | `id` | the number | for ever |\n| users | handle | a | b |\n\n" +
		"## Next\n\n| table | column | what | kept |\n|---|---|---|---|\n| `c` | `d` | e | f |\n"
	rows, err := readPrivacyTable(write(good))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range rows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"users.handle", "users.id"}) {
		t.Errorf("rows %v, want users.handle and users.id only", keys)
	}
	if r := rows["users.id"]; r.what != "the number" || r.kept != "for ever" || r.line != 13 {
		t.Errorf("users.id = %+v, want what %q, kept %q, line 13", r, "the number", "for ever")
	}

	for name, bad := range map[string]string{
		"twice":       privacySection + "\n| table | column | what | kept |\n|---|---|---|---|\n| a | b | c | d |\n| a | b | e | f |\n",
		"three cells": privacySection + "\n| table | column | what | kept |\n|---|---|---|---|\n| a | b | c |\n",
	} {
		if _, err := readPrivacyTable(write(bad)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// importOrder lists every table of the schema with its rows' order of
// insertion: parents before the rows that refer to them.
var importOrder = []string{
	"users", "devices", "enrollments", "sessions", "key_packages",
	"rooms", "room_members", "room_messages", "device_queue", "counters",
	"outbox", "inbound_seen", "attachments", "user_reachable",
	"contacts", "message_requests", "franking_keys", "reports", "notices",
}

// identities are the identity columns whose next value must follow what
// the SQLite store handed out (AUTOINCREMENT: never reused, even once the
// highest row is gone, as outbox entries are once delivered).
var identities = map[string]string{
	"users": "id", "devices": "id", "room_messages": "id", "outbox": "seq", "reports": "id", "notices": "id",
}

// TableCount is how many rows ImportSQLite copied into a table.
type TableCount struct {
	Table string
	Rows  int64
}

// ImportSQLite copies every table of the SQLite store at sqlitePath (a
// stopped provider's provider.db) into the empty PostgreSQL store at dsn,
// in one transaction: all of it or, on any error, nothing. Both schemas
// are first brought up to date. A PostgreSQL store that already holds
// users, rooms or any other data is refused.
func ImportSQLite(ctx context.Context, sqlitePath, dsn string) ([]TableCount, error) {
	ls, err := sqlite.Open(sqlitePath) // migrates the file to the newest schema
	if err != nil {
		return nil, err
	}
	if err := ls.Close(); err != nil {
		return nil, err
	}
	src, err := sql.Open("sqlite", sqlitePath+"?_pragma=query_only(1)")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer dst.Close()

	var counts []TableCount
	err = pgx.BeginFunc(ctx, dst.conns.pool, func(tx pgx.Tx) error {
		for _, table := range importOrder {
			if table == "counters" {
				continue
			}
			var n int64
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("the PostgreSQL store is not empty: %s has %d rows", table, n)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM counters`); err != nil {
			return err
		}
		for _, table := range importOrder {
			n, err := copyTable(ctx, src, tx, table)
			if err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
			counts = append(counts, TableCount{table, n})
		}
		for table, col := range identities {
			var next int64
			err := src.QueryRowContext(ctx, `SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0),
				coalesce((SELECT max(`+col+`) FROM `+table+`), 0)) + 1`, table).Scan(&next)
			if err != nil {
				return fmt.Errorf("%s: next %s: %w", table, col, err)
			}
			if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), $3, false)`, table, col, next); err != nil {
				return fmt.Errorf("%s: next %s: %w", table, col, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: import: %w", mapErr(err))
	}
	return counts, nil
}

// copyTable copies one table's rows, column by column as the PostgreSQL
// schema names them. Both stores keep the same values in their columns
// (flags too are 0/1 integers); only what the SQLite driver hands back for
// a blob or a text needs a word.
func copyTable(ctx context.Context, src *sql.DB, tx pgx.Tx, table string) (int64, error) {
	rows, err := tx.Query(ctx, `SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, table)
	if err != nil {
		return 0, err
	}
	var cols, types []string
	var nullable []bool
	for rows.Next() {
		var c, t string
		var null bool
		if err := rows.Scan(&c, &t, &null); err != nil {
			return 0, err
		}
		if pgOnlyColumns[table+"."+c] {
			continue
		}
		cols, types, nullable = append(cols, c), append(types, t), append(nullable, null)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(cols) == 0 {
		return 0, errors.New("no such table in the PostgreSQL schema")
	}
	order := ""
	if table == "key_packages" {
		order = " ORDER BY rowid" // the order ClaimKeyPackage hands them out in
	}
	srows, err := src.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+table+order) // #nosec G202 -- table is from the fixed list of tables, and cols are its columns in our own schema
	if err != nil {
		return 0, err
	}
	defer srows.Close()
	var data [][]any
	for srows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := srows.Scan(ptrs...); err != nil {
			return 0, err
		}
		for i, v := range vals {
			switch types[i] {
			case "bytea":
				if s, ok := v.(string); ok {
					vals[i] = []byte(s)
				} else if b, ok := v.([]byte); (v == nil || ok && b == nil) && !nullable[i] {
					vals[i] = []byte{} // the driver reads an empty BLOB as nil
				}
			case "text":
				if b, ok := v.([]byte); ok {
					vals[i] = string(b)
				}
			}
		}
		data = append(data, vals)
	}
	if err := srows.Err(); err != nil {
		return 0, err
	}
	return tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(data))
}

// pgOnlyColumns are the PostgreSQL columns SQLite has not (see
// store/sqlstore's migrations): they are left to their defaults on import.
var pgOnlyColumns = map[string]bool{"key_packages.added": true}

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/switchboard-chat/switchboard/store/sqlstore"
)

// migrations are the schema's history in SQLite's words
// (store/sqlstore holds it, for both stores): migrations[i] moves a
// database from version i to version i+1.
var migrations = sqlstore.SQLite.Migrations()

// migrate brings the database on conn up to the newest schema, one
// migration per transaction, recording each in schema_version. It refuses a
// database written by a newer binary rather than guess at its meaning.
func migrate(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: schema_version: %w", err)
	}
	var have int
	if err := conn.QueryRowContext(ctx,
		`SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&have); err != nil {
		return fmt.Errorf("sqlite: reading schema version: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("sqlite: database schema version %d is newer than this binary's %d", have, len(migrations))
	}
	for v := have; v < len(migrations); v++ {
		if err := applyMigration(ctx, conn, v+1, migrations[v]); err != nil {
			return err
		}
	}
	return nil
}

// applyMigration runs one migration in its own transaction, with foreign
// key enforcement off so that a migration may rebuild a table others refer
// to. PRAGMA foreign_keys is a no-op inside a transaction, so it is turned
// off before BEGIN and on again after COMMIT (or ROLLBACK); in between,
// PRAGMA foreign_key_check must find no dangling reference, else the
// migration is rolled back. The connection goes on to be the writer's, so
// applyMigration makes sure enforcement is back on before it returns.
func applyMigration(ctx context.Context, conn *sql.Conn, version int, ddl string) (err error) {
	fail := func(err error) error { return fmt.Errorf("sqlite: migration %d: %w", version, err) }
	if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
		return fail(err)
	}
	defer func() {
		if _, ferr := conn.ExecContext(context.Background(), "PRAGMA foreign_keys = ON"); ferr != nil && err == nil {
			err = fail(ferr)
			return
		}
		var on int
		if ferr := conn.QueryRowContext(context.Background(), "PRAGMA foreign_keys").Scan(&on); (ferr != nil || on != 1) && err == nil {
			err = fail(fmt.Errorf("foreign keys are not back on (%d, %v)", on, ferr))
		}
	}()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fail(err)
	}
	defer func() {
		if err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK") // #nosec G104 -- on an error path: the first error is the one returned
		}
	}()
	if _, err := conn.ExecContext(ctx, ddl); err != nil {
		return fail(err)
	}
	if err := foreignKeyCheck(ctx, conn); err != nil {
		return fail(err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, version); err != nil {
		return fail(err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fail(err)
	}
	return nil
}

// foreignKeyCheck fails if PRAGMA foreign_key_check reports any row: a
// reference to a row that is not there. It names the first few.
func foreignKeyCheck(ctx context.Context, conn *sql.Conn) error {
	rows, err := conn.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return err
	}
	defer rows.Close()
	var bad []string
	n := 0
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fk int
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return err
		}
		n++
		if len(bad) < 5 {
			bad = append(bad, fmt.Sprintf("%s row %v refers to a missing %s", table, rowid.Int64, parent))
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("foreign_key_check found %d dangling references: %s", n, strings.Join(bad, "; "))
	}
	return nil
}

package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-chat/switchboard/store/sqlstore"
)

// migrations are the schema's history in PostgreSQL's words
// (store/sqlstore holds it, for both stores): migrations[i] moves a
// database from version i to version i+1.
var migrations = sqlstore.Postgres.Migrations()

// Before the schema was shared, this store had its own list, whose
// migration 1 was SQLite's 1 to 8 at once (with BOOLEAN flags and an
// INTEGER suite). A database made then records version 1 and has every
// table of version 8; legacyUpgrade makes its schema the shared list's at
// version 8, and records versions 2 to 8, in one transaction.
const (
	legacyVersion = 8
	legacyUpgrade = `
DROP INDEX key_packages_available;
ALTER TABLE users ALTER COLUMN discoverable_handle DROP DEFAULT;
ALTER TABLE users ALTER COLUMN discoverable_handle TYPE BIGINT USING CASE WHEN discoverable_handle THEN 1 ELSE 0 END;
ALTER TABLE users ALTER COLUMN discoverable_handle SET DEFAULT 0;
ALTER TABLE users ALTER COLUMN discoverable_phone DROP DEFAULT;
ALTER TABLE users ALTER COLUMN discoverable_phone TYPE BIGINT USING CASE WHEN discoverable_phone THEN 1 ELSE 0 END;
ALTER TABLE users ALTER COLUMN discoverable_phone SET DEFAULT 0;
ALTER TABLE users ALTER COLUMN suspended DROP DEFAULT;
ALTER TABLE users ALTER COLUMN suspended TYPE BIGINT USING CASE WHEN suspended THEN 1 ELSE 0 END;
ALTER TABLE users ALTER COLUMN suspended SET DEFAULT 0;
ALTER TABLE key_packages ALTER COLUMN suite TYPE BIGINT;
ALTER TABLE key_packages ALTER COLUMN last_resort TYPE BIGINT USING CASE WHEN last_resort THEN 1 ELSE 0 END;
ALTER TABLE key_packages ALTER COLUMN claimed DROP DEFAULT;
ALTER TABLE key_packages ALTER COLUMN claimed TYPE BIGINT USING CASE WHEN claimed THEN 1 ELSE 0 END;
ALTER TABLE key_packages ALTER COLUMN claimed SET DEFAULT 0;
CREATE INDEX key_packages_available
	ON key_packages (device_id, suite, last_resort) WHERE claimed = 0;
INSERT INTO schema_version (version) SELECT generate_series(2, 8);
`
)

// migrateLock is the advisory lock key replicas take while they migrate,
// so that several starting at once apply each migration exactly once: the
// others wait, then find the schema current. (It is "sbschema" in ASCII.)
const migrateLock int64 = 0x7362736368656d61

// migrate brings the database up to the newest schema: under the advisory
// lock, each missing migration in its own transaction, recorded in
// schema_version. A database written by a newer binary is refused.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("postgres: migration lock: %w", mapErr(err))
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, migrateLock)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("postgres: schema_version: %w", mapErr(err))
	}
	var have int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&have); err != nil {
		return fmt.Errorf("postgres: reading schema version: %w", mapErr(err))
	}
	if have == 1 {
		// A database at the shared list's version 1 has no notices
		// table yet (version 8 makes it); one that says 1 and has it
		// was made by the store's own list before it was shared.
		var legacy bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass('notices') IS NOT NULL`).Scan(&legacy); err != nil {
			return fmt.Errorf("postgres: reading schema version: %w", mapErr(err))
		}
		if legacy {
			if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, legacyUpgrade)
				return err
			}); err != nil {
				return fmt.Errorf("postgres: upgrading a schema made before it was shared: %w", mapErr(err))
			}
			have = legacyVersion
		}
	}
	if have > len(migrations) {
		return fmt.Errorf("postgres: database schema version %d is newer than this binary's %d", have, len(migrations))
	}
	for v := have; v < len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, v+1)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %d: %w", v+1, mapErr(err))
		}
	}
	return nil
}

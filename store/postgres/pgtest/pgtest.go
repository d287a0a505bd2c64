// Package pgtest gives tests a PostgreSQL schema of their own.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultTestDSN is the PostgreSQL tests use when SWITCHBOARD_POSTGRES is
// not set: the machine's own server, database test.
const DefaultTestDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DSN gives a test a DSN of its own: a fresh schema, with a random
// name, in the database named by $SWITCHBOARD_POSTGRES (default
// DefaultTestDSN), set as the search_path, and dropped when the test ends.
// Without a reachable server the test is skipped, saying why, unless
// SWITCHBOARD_REQUIRE_SERVICES=1, which makes it fail instead.
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SWITCHBOARD_POSTGRES")
	if base == "" {
		base = DefaultTestDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("SWITCHBOARD_REQUIRE_SERVICES") == "1" {
			t.Fatalf("PostgreSQL at %s is required (SWITCHBOARD_REQUIRE_SERVICES=1) but unreachable: %v", base, err)
		}
		t.Skipf("skipping: no PostgreSQL at %s (set SWITCHBOARD_POSTGRES to one; .ci/run starts it): %v", base, err)
	}
	defer conn.Close(context.Background())
	b := make([]byte, 8)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, base, schema)
}

// withSearchPath adds search_path=schema to a postgres:// DSN.
func withSearchPath(t testing.TB, dsn, schema string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("SWITCHBOARD_POSTGRES must be a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema) // lets a test find its own connections
	// Tests do not crash the server, so they need not wait for each
	// commit's WAL flush; the suite is several times faster without.
	// (pgx sends unknown URL parameters as run-time settings.)
	if !q.Has("synchronous_commit") {
		q.Set("synchronous_commit", "off")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

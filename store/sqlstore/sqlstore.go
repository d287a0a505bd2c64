// Package sqlstore is store.Store written once in SQL, for both databases
// the provider runs on: SQLite (store/sqlite) and PostgreSQL
// (store/postgres). It holds the schema's versioned migrations as one
// list, every method's statements and logic, and a Dialect for the few
// places where the two databases must be told different things
// (placeholders, row locks, queue cursors, the outbox's per-destination
// lock, the DDL's type names).
//
// A backend package brings the connections, as a DB: somewhere to read,
// a way to run a write as one transaction, and its driver's errors turned
// into the store's (no row is store.ErrNotFound, a unique violation
// store.ErrExists, a foreign-key violation store.ErrNotFound), so the code
// here never sees a driver's types. docs/storage.md describes the layer.
package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/store"
)

// DB is a backend's connections, as the shared store uses them.
type DB interface {
	// Read returns a Conn for reads outside any transaction, bound to
	// ctx, or store.ErrClosed once the DB is closed.
	Read(ctx context.Context) (Conn, error)
	// Write runs fn as one transaction: all of its changes or none. It
	// returns once they are durable. fn may be run again (PostgreSQL
	// retries a serialization failure), so it must start from scratch
	// each time and touch the database only through its Conn.
	Write(ctx context.Context, fn func(Conn) error) error
	Close() error
}

// QueuedWriter is a DB whose writes run one after the other in the order
// they were handed over (SQLite's single writer). WriteQueued returns as
// soon as fn is queued; wait gives fn's outcome once it is durable. A
// caller can therefore queue a room's next message behind the previous
// one without waiting for the previous one's COMMIT.
type QueuedWriter interface {
	WriteQueued(ctx context.Context, fn func(Conn) error) (wait func() error, err error)
}

// LazyWriter is a DB that can hold a small write back for a few
// milliseconds so that it shares the COMMIT of the next one (SQLite's
// single writer, where a COMMIT is an fsync): for acknowledgements, which
// nobody is waiting for.
type LazyWriter interface {
	WriteLazy(ctx context.Context, fn func(Conn) error) error
}

// Conn runs statements written in the backend's own placeholders (the
// shared code rebinds them first) on the context it was made with.
type Conn interface {
	// Exec runs a statement and returns how many rows it changed (for an
	// UPDATE, how many it matched).
	Exec(query string, args ...any) (int64, error)
	Query(query string, args ...any) (Rows, error)
	// QueryRow's Row reports store.ErrNotFound when there is no row.
	QueryRow(query string, args ...any) Row
}

// Rows is a query's result, read with Next and Scan; Close may be called
// more than once.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is one row of a query's result.
type Row interface {
	Scan(dest ...any) error
}

// Store is store.Store on a DB, speaking its Dialect. Its methods are safe
// for concurrent use as far as the DB's are.
type Store struct {
	db  DB
	d   *Dialect
	now func() time.Time
}

var _ store.Store = (*Store)(nil)

// New returns the store over db; now stamps the times the store sets
// itself (nil: time.Now).
func New(db DB, d *Dialect, now func() time.Time) *Store {
	if now == nil {
		now = clock.Now
	}
	return &Store{db: db, d: d, now: now}
}

// Close closes the DB.
func (s *Store) Close() error { return s.db.Close() }

// tx is a Conn seen through the dialect: statements are written with ?
// and rebound on their way to the database.
type tx struct {
	c Conn
	d *Dialect
}

func (t tx) exec(q string, args ...any) (int64, error) { return t.c.Exec(t.d.rebind(q), args...) }
func (t tx) query(q string, args ...any) (Rows, error) { return t.c.Query(t.d.rebind(q), args...) }
func (t tx) queryRow(q string, args ...any) Row        { return t.c.QueryRow(t.d.rebind(q), args...) }

// exists is nil if the query finds a row and store.ErrNotFound if not.
func (t tx) exists(q string, args ...any) error {
	var one int
	return t.queryRow(q, args...).Scan(&one)
}

// locking adds the dialect's row lock to a SELECT: the rows it reads stay
// locked until the transaction ends. In SQLite, where one writer runs
// every change, it adds nothing.
func (t tx) locking(q string) string {
	if t.d.rowLocks {
		return q + " FOR UPDATE"
	}
	return q
}

// write runs fn as one transaction of the DB.
func (s *Store) write(ctx context.Context, fn func(t tx) error) error {
	return s.db.Write(ctx, func(c Conn) error { return fn(tx{c, s.d}) })
}

// writeLazy is write for a change that may wait to share a COMMIT.
func (s *Store) writeLazy(ctx context.Context, fn func(t tx) error) error {
	if l, ok := s.db.(LazyWriter); ok {
		return l.WriteLazy(ctx, func(c Conn) error { return fn(tx{c, s.d}) })
	}
	return s.write(ctx, fn)
}

// read returns a tx for reads outside a transaction.
func (s *Store) read(ctx context.Context) (tx, error) {
	c, err := s.db.Read(ctx)
	if err != nil {
		return tx{}, err
	}
	return tx{c, s.d}, nil
}

// fail names the dialect and the method in an error, keeping it for
// errors.Is.
func (s *Store) fail(what string, err error) error {
	return fmt.Errorf("%s: %s: %w", s.d.name, what, err)
}

// result is a query's outcome, for collect.
type result struct {
	rows Rows
	err  error
}

// rows runs a query for collect.
func (t tx) rows(q string, args ...any) result {
	r, err := t.query(q, args...)
	return result{r, err}
}

// collect reads every row of a query with scan, closing the rows. It
// returns a nil slice for no rows.
func collect[T any](q result, scan func(Rows) (T, error)) ([]T, error) {
	rows, err := q.rows, q.err
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Times are stored as Unix nanoseconds (UTC): comparisons are integer
// comparisons, and no driver formats a time.
func unixNano(t time.Time) int64 { return t.UnixNano() }
func fromNano(n int64) time.Time { return time.Unix(0, n).UTC() }

// Epochs are uint64 but both databases' integers are int64: store the
// bits, so the whole range round-trips.
func epochIn(e uint64) int64  { return int64(e) }  // #nosec G115 -- the bits, deliberately: see above
func epochOut(e int64) uint64 { return uint64(e) } // #nosec G115 -- the bits, deliberately: see above

// Flags are 0 or 1 integers in both databases, so that one statement text
// serves both; Go sees bools.
func flag(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// nonNil turns a nil slice into an empty one: the blob columns are NOT
// NULL, and nil and empty mean the same to every caller.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// nullBytes stores an empty slice as NULL, so "no frank" is one value.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// nullString stores the empty string as NULL (a phone number: NULLs do not
// collide in a UNIQUE column).
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// mustAffect turns "changed no row" into store.ErrNotFound.
func mustAffect(n int64, err error) error {
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// Package postgres implements store.Store on PostgreSQL
// (github.com/jackc/pgx/v5), for a provider run as several identical
// replicas that share one database. Every change is one transaction of its
// own; what must be serialised across replicas is, by row locks taken in
// the transaction (a room's row for Submit, the cursor counter for queue
// entries, an advisory lock per outbox destination). The statements and
// the logic of every method are store/sqlstore's, shared with
// store/sqlite, in its Postgres dialect; this package brings the pool, the
// migrations' advisory lock, the retry of serialization failures and the
// mapping of PostgreSQL's errors to the store's. docs/storage.md explains
// the choices.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlstore"
)

// Store is a store.Store on a PostgreSQL database. Its methods are safe for
// concurrent use, and any number of Stores (in one process or many) may
// share the database.
type Store struct {
	*sqlstore.Store
	conns *conns
}

var _ store.Store = (*Store)(nil)

// conns are the store's pool, as store/sqlstore uses it (a sqlstore.DB).
type conns struct {
	pool   *pgxpool.Pool
	closed atomic.Bool
}

type config struct {
	now func() time.Time
}

// Option changes how Open sets up the store.
type Option func(*config)

// WithClock replaces time.Now for the times the store stamps itself.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value string, as libpq takes; pool settings such as
// pool_max_conns go in it too) and brings its schema up to date. A
// search_path in the DSN (options=-csearch_path=NAME) puts the tables in
// that schema. Close releases the pool.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	cfg := config{now: clock.Now}
	for _, o := range opts {
		o(&cfg)
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", mapErr(err))
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	c := &conns{pool: pool}
	return &Store{Store: sqlstore.New(c, sqlstore.Postgres, cfg.now), conns: c}, nil
}

// Close closes the pool; calls after it fail with store.ErrClosed.
func (c *conns) Close() error {
	if !c.closed.Swap(true) {
		c.pool.Close()
	}
	return nil
}

// db returns the pool, or store.ErrClosed once Close has been called.
func (c *conns) db() (*pgxpool.Pool, error) {
	if c.closed.Load() {
		return nil, store.ErrClosed
	}
	return c.pool, nil
}

// Read returns the pool, for reads outside a transaction.
func (c *conns) Read(ctx context.Context) (sqlstore.Conn, error) {
	pool, err := c.db()
	if err != nil {
		return nil, err
	}
	return conn{ctx, pool}, nil
}

// Write runs fn in a transaction and commits it. A serialization failure
// or deadlock (which PostgreSQL resolves by failing one side) is retried
// a few times: fn must only read and write through its Conn.
func (c *conns) Write(ctx context.Context, fn func(sqlstore.Conn) error) error {
	pool, err := c.db()
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return fn(conn{ctx, tx}) })
		var pe *pgconn.PgError
		if attempt < 5 && errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") {
			continue
		}
		if err != nil && c.closed.Load() && ctx.Err() == nil {
			// Close cut this call off on its way (the pool cancels the
			// connections it is still making, "failed to connect ...
			// context canceled"): whatever pgx says, the store is closed.
			// As with any failure on the way, the caller retries with the
			// same client ID on the next start, which finds a stored one.
			return fmt.Errorf("%w (%v)", store.ErrClosed, err)
		}
		return mapErr(err)
	}
}

// mapErr turns PostgreSQL's and pgx's failures into the store's errors, so
// callers can use errors.Is without knowing the driver; the original error
// stays wrapped for the log.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) ||
		errors.Is(err, store.ErrExpired) || errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrUnavailable) ||
		errors.Is(err, store.ErrStorageFull) {
		return err
	}
	if s := err.Error(); strings.HasSuffix(s, "closed pool") {
		return fmt.Errorf("%w (%v)", store.ErrClosed, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return fmt.Errorf("%w (%v)", store.ErrExists, err)
		case pe.Code == "53100":
			// disk_full: the server is up but cannot store the change.
			return fmt.Errorf("%w (%v)", store.ErrStorageFull, err)
		case pe.Code == "23503":
			// A reference to a row that is not there: an unknown
			// user, device or room.
			return fmt.Errorf("%w (%v)", store.ErrNotFound, err)
		case len(pe.Code) == 5 && (pe.Code[:2] == "08" || pe.Code[:2] == "53" || pe.Code[:2] == "57"):
			// Connection exceptions, insufficient resources and
			// operator intervention (shutdown, "the database system
			// is starting up"): the server, not the request.
			return fmt.Errorf("%w (%v)", store.ErrUnavailable, err)
		}
		return err
	}
	// Anything else that is not the server's answer is the way to it: a
	// refused or broken connection, a DNS failure.
	var ce *pgconn.ConnectError
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ce) || errors.As(err, &ne) || errors.As(err, &oe) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "conn closed") {
		return fmt.Errorf("%w (%v)", store.ErrUnavailable, err)
	}
	return err
}

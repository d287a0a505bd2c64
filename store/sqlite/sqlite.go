// Package sqlite implements store.Store on SQLite, the embedded default: a
// single database file in WAL mode, pure Go (modernc.org/sqlite, no cgo).
//
// One goroutine owns the only writing connection and runs every change.
// Concurrent changes are grouped into one transaction (group commit): each
// runs inside its own SAVEPOINT, so one that fails does not fail the
// others, and the transaction commits once for the whole group. A caller is
// answered only after the COMMIT that holds its change has returned, and
// with synchronous=FULL that COMMIT has reached the disk. Readers use a
// separate pool of read-only connections, which WAL lets run alongside the
// writer. The statements and the logic of every method are
// store/sqlstore's, shared with store/postgres; this package brings the
// connections: the file, its pragmas, the writer and the read pool.
// docs/storage.md explains the choices and shows the measurements.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlstore"
)

// Store is a store.Store on one SQLite database file. Its methods are safe
// for concurrent use.
type Store struct {
	*sqlstore.Store
	conns *conns
}

var _ store.Store = (*Store)(nil)

// conns are the store's connections, as store/sqlstore uses them (a
// sqlstore.DB): the writer for every change, the read pool for the rest.
type conns struct {
	wdb *sql.DB // exactly one connection: the writer's
	rdb *sql.DB // read-only connections

	w       *writer
	rstmts  readStmts
	closed  atomic.Bool
	closeMu sync.Mutex
	cerr    error
}

type config struct {
	readConns int
	maxBatch  int
	queueLen  int
	busy      time.Duration
	now       func() time.Time
}

// Option changes how Open sets up the store.
type Option func(*config)

// WithReadConns sets how many read-only connections may be open at once
// (default: max(4, GOMAXPROCS)). Reads never wait for the writer, only
// for a free read connection.
func WithReadConns(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.readConns = n
		}
	}
}

// WithMaxBatch bounds how many changes one transaction groups (default
// 256). A bigger group shares one fsync among more callers but holds the
// write lock longer and makes the first caller in it wait for the rest.
func WithMaxBatch(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxBatch = n
		}
	}
}

// WithBusyTimeout sets how long a connection waits for a lock held by
// another process (default 5s). Within one Store nothing contends, since
// there is one writer and WAL readers do not block it.
func WithBusyTimeout(d time.Duration) Option {
	return func(c *config) { c.busy = d }
}

// WithClock replaces time.Now for the times the store stamps itself
// (User.Created, Device.Created, Message.Created, a Room's zero Created).
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// Open opens (creating if needed) the database at path and brings its
// schema up to date. Close releases it.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := config{
		readConns: max(4, runtime.GOMAXPROCS(0)),
		maxBatch:  256,
		queueLen:  1024,
		busy:      5 * time.Second,
		now:       clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	// The driver reads everything after the first '?' as parameters, and
	// a path starting "file:" as a URI; neither should be a surprise.
	if path == "" || strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: unusable database path %q", path)
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)",
		cfg.busy.Milliseconds())

	// journal_mode=WAL is persistent in the file; setting it on the
	// writer is enough, and must happen before any reader opens.
	// temp_store=MEMORY keeps the sub-journal in memory: every op of a
	// group runs in a savepoint, for which SQLite copies each page it
	// changes to the sub-journal first, and past 64 KiB it wrote them to a
	// temporary file, a write call per page (a fifth of the CPU of a busy
	// room of 50). The sub-journal only serves ROLLBACK TO within the
	// transaction, so memory loses nothing of the durability.
	wdb, err := sql.Open("sqlite", path+"?"+common+"&_pragma=journal_mode(WAL)&_pragma=temp_store(MEMORY)")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)

	ctx := context.Background()
	conn, err := wdb.Conn(ctx)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		conn.Close() // #nosec G104 -- on an error path: the first error is the one returned
		wdb.Close()
		return nil, fmt.Errorf("sqlite: %s: journal_mode is %q, want wal (%v)", path, mode, err)
	}
	if err := migrate(ctx, conn); err != nil {
		conn.Close() // #nosec G104 -- on an error path: the first error is the one returned
		wdb.Close()
		return nil, err
	}

	// query_only makes a read connection refuse writes, so a bug that
	// writes through the read pool fails loudly instead of racing the
	// writer for the lock.
	rdb, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		conn.Close() // #nosec G104 -- on an error path: the first error is the one returned
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(cfg.readConns)
	rdb.SetMaxIdleConns(cfg.readConns)

	w := newWriter(conn, cfg.maxBatch, cfg.queueLen)
	c := &conns{wdb: wdb, rdb: rdb, w: w}
	return &Store{Store: sqlstore.New(c, sqlstore.SQLite, cfg.now), conns: c}, nil
}

// Close stops accepting calls, lets the writer finish every change already
// handed to it (their callers get their answers), and closes the database.
// Calling Close again returns the first call's result.
func (c *conns) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed.Swap(true) {
		return c.cerr
	}
	c.rstmts.close()
	c.cerr = errors.Join(c.w.close(), c.rdb.Close(), c.wdb.Close())
	return c.cerr
}

// Read returns the read pool, or store.ErrClosed once Close has begun.
func (c *conns) Read(ctx context.Context) (sqlstore.Conn, error) {
	if c.closed.Load() {
		return nil, store.ErrClosed
	}
	return readConn{ctx, c.rdb, &c.rstmts}, nil
}

// Write hands fn to the writer, which runs it in a savepoint of its
// current group and answers after the group's COMMIT.
func (c *conns) Write(ctx context.Context, fn func(sqlstore.Conn) error) error {
	return c.w.do(ctx, fn)
}

// WriteLazy is Write for a change that may wait a few milliseconds to
// share a later change's COMMIT (sqlstore.LazyWriter).
func (c *conns) WriteLazy(ctx context.Context, fn func(sqlstore.Conn) error) error {
	return c.w.doLazy(ctx, fn)
}

// WriteQueued hands fn to the writer without waiting: the writer runs
// writes in the order they were queued (sqlstore.QueuedWriter).
func (c *conns) WriteQueued(ctx context.Context, fn func(sqlstore.Conn) error) (func() error, error) {
	return c.w.queue(ctx, fn)
}

// mapErr turns SQLite's constraint failures and a full disk into the store's errors, so
// callers can use errors.Is without knowing the driver. The original error
// stays wrapped for the log.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "sql: database is closed") {
		return fmt.Errorf("%w (%v)", store.ErrClosed, err)
	}
	if errors.Is(err, store.ErrStorageFull) {
		return err
	}
	// ENOSPC from a file write SQLite makes (its unix VFS turns it into
	// SQLITE_FULL; a write of ours would carry it as it is).
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w (%v)", store.ErrStorageFull, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		if se.Code()&0xff == sqlite3.SQLITE_FULL {
			// The disk is full (or max_page_count reached): nothing of
			// the statement was kept.
			return fmt.Errorf("%w (%v)", store.ErrStorageFull, err)
		}
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w (%v)", store.ErrExists, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// A reference to a row that is not there: an unknown
			// user, device or room.
			return fmt.Errorf("%w (%v)", store.ErrNotFound, err)
		}
	}
	return err
}

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/switchboard-chat/switchboard/store"
)

// writer owns the database's only writing connection. Every change is an
// op handed to its goroutine, which groups whatever ops are waiting into
// one transaction:
//
//	BEGIN IMMEDIATE
//	  SAVEPOINT op; <op 1>; RELEASE op      (or ROLLBACK TO op on failure)
//	  SAVEPOINT op; <op 2>; RELEASE op
//	  ...
//	COMMIT                                   one fsync for the whole group
//
// and answers each op's caller after the COMMIT. It does not wait for a
// group to fill: while one COMMIT is syncing, the next callers queue up,
// so the group grows with the load and a lone caller pays no extra
// latency.
type writer struct {
	conn     *sql.Conn
	stmts    stmts
	maxBatch int

	// batches and batched count groups and the ops in them, so a
	// benchmark can show how big the groups get.
	batches, batched atomic.Int64

	mu     sync.RWMutex // held for reading while sending on ops
	closed bool
	ops    chan *op
	done   chan struct{}
}

// op is one change: fn runs inside its own savepoint, and err receives the
// outcome once the transaction holding it has committed (or failed).
type op struct {
	ctx context.Context
	fn  func(tx *wtx) error
	err chan error // buffered: the writer never blocks on a caller
}

// wtx is what an op sees: the writer's connection, inside the group's
// transaction, and statements prepared on it once. Ops run on a context
// of their own rather than the caller's, because a cancelled statement
// interrupts the connection, and SQLite may then roll back the whole
// transaction: every other caller in the group would lose its change.
type wtx struct {
	ctx  context.Context
	conn *sql.Conn
	*stmts
}

func (t *wtx) exec(query string, args ...any) (sql.Result, error) {
	return t.conn.ExecContext(t.ctx, query, args...)
}

func (t *wtx) queryRow(query string, args ...any) *sql.Row {
	return t.conn.QueryRowContext(t.ctx, query, args...)
}

func newWriter(conn *sql.Conn, maxBatch, queueLen int) (*writer, error) {
	w := &writer{
		conn:     conn,
		maxBatch: maxBatch,
		ops:      make(chan *op, queueLen),
		done:     make(chan struct{}),
	}
	if err := w.stmts.prepare(context.Background(), conn); err != nil {
		w.stmts.close()
		return nil, err
	}
	go w.run()
	return w, nil
}

// do hands fn to the writer and waits until it is committed. If ctx ends
// first, do returns ctx's error; the change may still be committed, which
// is why every retried write in the store is idempotent or unique-keyed.
func (w *writer) do(ctx context.Context, fn func(tx *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o := &op{ctx: ctx, fn: fn, err: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return store.ErrClosed
	}
	select {
	case w.ops <- o:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	select {
	case err := <-o.err:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close refuses new ops, waits for the writer to finish the ones it was
// given, and closes the connection.
func (w *writer) close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ops) // no sender is left: do sends only under RLock while !closed
	}
	w.mu.Unlock()
	<-w.done
	w.stmts.close()
	return w.conn.Close()
}

func (w *writer) run() {
	defer close(w.done)
	batch := make([]*op, 0, w.maxBatch)
	for first := range w.ops {
		batch = append(batch[:0], first)
	gather:
		for len(batch) < w.maxBatch {
			select {
			case o, ok := <-w.ops:
				if !ok {
					break gather
				}
				batch = append(batch, o)
			default:
				break gather
			}
		}
		w.commit(batch)
		w.batches.Add(1)
		w.batched.Add(int64(len(batch)))
		clear(batch) // drop references to finished ops
	}
}

// commit runs one group as one transaction and answers every op in it.
func (w *writer) commit(batch []*op) {
	ctx := context.Background()
	tx := &wtx{ctx: ctx, conn: w.conn, stmts: &w.stmts}
	errs := make([]error, len(batch))
	ran := false

	fail := func(err error) {
		for i, o := range batch {
			if errs[i] == nil {
				o.err <- err
			} else {
				o.err <- errs[i]
			}
		}
	}

	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		fail(fmt.Errorf("sqlite: begin: %w", err))
		return
	}
	for i, o := range batch {
		// A caller that has already given up gets nothing done.
		if err := o.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := w.conn.ExecContext(ctx, "SAVEPOINT op"); err != nil {
			w.abort(ctx)
			fail(fmt.Errorf("sqlite: savepoint: %w", err))
			return
		}
		if err := o.fn(tx); err != nil {
			errs[i] = mapErr(err)
			// Some errors (disk full, I/O) make SQLite roll the whole
			// transaction back; then the savepoint is gone and the
			// group cannot commit.
			if _, rerr := w.conn.ExecContext(ctx, "ROLLBACK TO op"); rerr != nil {
				w.abort(ctx)
				fail(fmt.Errorf("sqlite: transaction lost after %v: %w", err, rerr))
				return
			}
		} else {
			ran = true
		}
		if _, err := w.conn.ExecContext(ctx, "RELEASE op"); err != nil {
			w.abort(ctx)
			fail(fmt.Errorf("sqlite: release savepoint: %w", err))
			return
		}
	}
	var cerr error
	if ran {
		_, cerr = w.conn.ExecContext(ctx, "COMMIT")
	} else {
		// Nothing to keep: skip the fsync.
		_, cerr = w.conn.ExecContext(ctx, "ROLLBACK")
	}
	if cerr != nil {
		w.abort(ctx)
		fail(fmt.Errorf("sqlite: commit: %w", cerr))
		return
	}
	for i, o := range batch {
		o.err <- errs[i]
	}
}

// abort rolls back whatever is left of a failed group. The error is of no
// use: either the rollback worked or SQLite had already rolled back.
func (w *writer) abort(ctx context.Context) {
	w.conn.ExecContext(ctx, "ROLLBACK")
}

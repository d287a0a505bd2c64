package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlstore"
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
	ctx      context.Context // what ops run on: see op
	maxBatch int

	// stmts are the writer's statements, prepared on its connection the
	// first time each is run and kept by their text, so that Submit, run
	// thousands of times a second, does not parse SQL. Only the writer's
	// goroutine touches them. The statements are store/sqlstore's
	// constants, a few dozen; past maxStmts (a statement built per call)
	// they run unprepared.
	stmts map[string]*sql.Stmt

	// batches and batched count groups and the ops in them, so a
	// benchmark can show how big the groups get.
	batches, batched atomic.Int64

	mu     sync.RWMutex // held for reading while sending on ops
	closed bool
	ops    chan *op
	done   chan struct{}
}

// maxStmts bounds the writer's prepared statements.
const maxStmts = 256

// op is one change: fn runs inside its own savepoint, and err receives the
// outcome once the transaction holding it has committed (or failed). Ops
// run on the writer's context rather than the caller's, because a
// cancelled statement interrupts the connection, and SQLite may then roll
// back the whole transaction: every other caller in the group would lose
// its change.
type op struct {
	ctx context.Context
	fn  func(sqlstore.Conn) error
	err chan error // buffered: the writer never blocks on a caller
	// lazy ops (acknowledgements) may wait up to lazyWait for company:
	// see run.
	lazy bool
}

// lazyWait is how long a group of lazy ops alone waits for another op to
// share its COMMIT. A device acknowledges what it received, so at a low
// rate each message would cost two COMMITs and two fsyncs, the message's
// and its acknowledgement's; waiting puts the acknowledgement in the next
// message's group. Nobody waits on an acknowledgement but the stream that
// reads the next one.
const lazyWait = 5 * time.Millisecond

func newWriter(conn *sql.Conn, maxBatch, queueLen int) *writer {
	w := &writer{
		conn:     conn,
		ctx:      context.Background(),
		maxBatch: maxBatch,
		stmts:    map[string]*sql.Stmt{},
		ops:      make(chan *op, queueLen),
		done:     make(chan struct{}),
	}
	go w.run()
	return w
}

// stmt returns q prepared on the writer's connection, preparing it the
// first time; nil (and no error) once maxStmts are kept, for q to run
// unprepared.
func (w *writer) stmt(q string) (*sql.Stmt, error) {
	if st, ok := w.stmts[q]; ok {
		return st, nil
	}
	if len(w.stmts) >= maxStmts {
		return nil, nil
	}
	st, err := w.conn.PrepareContext(w.ctx, q)
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare %q: %w", q, err)
	}
	w.stmts[q] = st
	return st, nil
}

// do hands fn to the writer and waits until it is committed. If ctx ends
// first, do returns ctx's error; the change may still be committed, which
// is why every retried write in the store is idempotent or unique-keyed.
func (w *writer) do(ctx context.Context, fn func(sqlstore.Conn) error) error {
	wait, err := w.send(ctx, fn, false)
	if err != nil {
		return err
	}
	return wait()
}

// doLazy is do for a change that can wait a little for another one to
// commit with (lazyWait).
func (w *writer) doLazy(ctx context.Context, fn func(sqlstore.Conn) error) error {
	wait, err := w.send(ctx, fn, true)
	if err != nil {
		return err
	}
	return wait()
}

// queue hands fn to the writer and returns at once; wait blocks until
// fn's group is committed (or ctx ends) and gives fn's outcome. The writer
// runs ops in the order they were queued, so a caller that queues several
// in turn knows they run, and commit, in that order.
func (w *writer) queue(ctx context.Context, fn func(sqlstore.Conn) error) (wait func() error, err error) {
	return w.send(ctx, fn, false)
}

func (w *writer) send(ctx context.Context, fn func(sqlstore.Conn) error, lazy bool) (wait func() error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := &op{ctx: ctx, fn: fn, err: make(chan error, 1), lazy: lazy}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return nil, store.ErrClosed
	}
	select {
	case w.ops <- o:
	case <-ctx.Done():
		w.mu.RUnlock()
		return nil, ctx.Err()
	}
	w.mu.RUnlock()
	return func() error {
		select {
		case err := <-o.err:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil
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
	for _, st := range w.stmts {
		st.Close() // #nosec G104 -- shutting down: nothing is left to do with a failed close
	}
	return w.conn.Close()
}

func (w *writer) run() {
	defer close(w.done)
	batch := make([]*op, 0, w.maxBatch)
	timer := time.NewTimer(lazyWait)
	timer.Stop()
	for first := range w.ops {
		batch = append(batch[:0], first)
		w.gather(&batch)
		lazy := true
		for _, o := range batch {
			lazy = lazy && o.lazy
		}
		if lazy {
			// Only acknowledgements: wait for an op that must be
			// committed now, and take it (and what follows) along.
			timer.Reset(lazyWait)
		wait:
			for len(batch) < w.maxBatch {
				select {
				case o, ok := <-w.ops:
					if !ok {
						break wait
					}
					batch = append(batch, o)
					if !o.lazy {
						w.gather(&batch)
						break wait
					}
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
		}
		w.commit(batch)
		w.batches.Add(1)
		w.batched.Add(int64(len(batch)))
		clear(batch) // drop references to finished ops
	}
}

// gather adds the ops waiting now to the batch, up to maxBatch.
func (w *writer) gather(batch *[]*op) {
	for len(*batch) < w.maxBatch {
		select {
		case o, ok := <-w.ops:
			if !ok {
				return
			}
			*batch = append(*batch, o)
		default:
			return
		}
	}
}

// commit runs one group as one transaction and answers every op in it.
// (Running a group without savepoints, and again with them only when an
// op fails, or an op alone without one, showed no gain in BenchmarkSubmit
// that the shared machine could tell: see docs/performance.md.)
func (w *writer) commit(batch []*op) {
	c := writeConn{w}
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

	if err := w.begin(); err != nil {
		fail(fmt.Errorf("sqlite: begin: %w", mapErr(err)))
		return
	}
	for i, o := range batch {
		// A caller that has already given up gets nothing done.
		if err := o.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := w.exec("SAVEPOINT op"); err != nil {
			w.abort()
			fail(fmt.Errorf("sqlite: savepoint: %w", mapErr(err)))
			return
		}
		if err := o.fn(c); err != nil {
			errs[i] = mapErr(err)
			// Some errors (disk full, I/O) make SQLite roll the whole
			// transaction back; then the savepoint is gone and the
			// group cannot commit.
			// The others of the group then get the op's error too
			// (wrapped, so that a full disk stays ErrStorageFull for
			// every one of them): none of them is acknowledged.
			if _, rerr := w.exec("ROLLBACK TO op"); rerr != nil {
				w.abort()
				fail(fmt.Errorf("sqlite: transaction lost after %w: %w", errs[i], mapErr(rerr)))
				return
			}
		} else {
			ran = true
		}
		if _, err := w.exec("RELEASE op"); err != nil {
			w.abort()
			fail(fmt.Errorf("sqlite: release savepoint: %w", mapErr(err)))
			return
		}
	}
	var cerr error
	if ran {
		_, cerr = w.exec("COMMIT")
	} else {
		// Nothing to keep: skip the fsync.
		_, cerr = w.exec("ROLLBACK")
	}
	if cerr != nil {
		// A full disk fails the COMMIT itself (SQLite appends the
		// group's pages to the WAL only then): nothing of the group is
		// on disk, so every op in it is told so, and the writer goes on
		// with the next group, which may find space again.
		w.abort()
		fail(fmt.Errorf("sqlite: commit: %w", mapErr(cerr)))
		return
	}
	for i, o := range batch {
		o.err <- errs[i]
	}
}

// exec runs one of the transaction's own statements (BEGIN, SAVEPOINT,
// COMMIT, ...), prepared once like the ops' statements.
func (w *writer) exec(q string) (sql.Result, error) {
	st, err := w.stmt(q)
	if err != nil || st == nil {
		return w.conn.ExecContext(w.ctx, q)
	}
	return st.ExecContext(w.ctx)
}

// begin starts a group's transaction. A connection still inside a
// transaction (a failed group whose ROLLBACK failed too, as it may when
// the disk is full) is rolled back first and the BEGIN tried once more,
// so that one bad moment does not refuse every later group.
func (w *writer) begin() error {
	_, err := w.exec("BEGIN IMMEDIATE")
	if err != nil && strings.Contains(err.Error(), "within a transaction") {
		w.abort()
		_, err = w.exec("BEGIN IMMEDIATE")
	}
	return err
}

// abort rolls back whatever is left of a failed group. The error is of no
// use: either the rollback worked or SQLite had already rolled back.
func (w *writer) abort() {
	w.exec("ROLLBACK") // #nosec G104 -- either the rollback worked or SQLite had already rolled back (above)
}

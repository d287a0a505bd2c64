package sqlite

import (
	"context"
	"database/sql"
	"sync"

	"github.com/switchboard-chat/switchboard/store/sqlstore"
)

// readConn runs store/sqlstore's reads on the read pool, each statement
// prepared once (see readStmts).
type readConn struct {
	ctx context.Context
	db  *sql.DB
	st  *readStmts
}

func (c readConn) Exec(q string, args ...any) (int64, error) {
	return affected(c.db.ExecContext(c.ctx, q, args...))
}

func (c readConn) Query(q string, args ...any) (sqlstore.Rows, error) {
	st, err := c.st.get(c.ctx, c.db, q)
	if err != nil {
		return nil, mapErr(err)
	}
	if st == nil {
		return wrapRows(c.db.QueryContext(c.ctx, q, args...))
	}
	return wrapRows(st.QueryContext(c.ctx, args...))
}

func (c readConn) QueryRow(q string, args ...any) sqlstore.Row {
	st, err := c.st.get(c.ctx, c.db, q)
	if err != nil {
		return errRow{mapErr(err)}
	}
	if st == nil {
		return row{c.db.QueryRowContext(c.ctx, q, args...)}
	}
	return row{st.QueryRowContext(c.ctx, args...)}
}

// readStmts are the read pool's prepared statements, kept by their text.
// Parsing a statement cost more CPU than running it (a profile of the
// bench put SQLite's parser at a tenth of the process), and the reads
// are store/sqlstore's constants, a few dozen; past maxStmts (a statement
// built per call) they run unprepared. A *sql.Stmt of the pool prepares
// itself on each connection the first time it runs there.
type readStmts struct {
	mu     sync.RWMutex
	stmts  map[string]*sql.Stmt
	closed bool
}

// get returns q prepared on the pool; nil (and no error) once maxStmts
// are kept or the cache is closed, for q to run unprepared.
func (r *readStmts) get(ctx context.Context, db *sql.DB, q string) (*sql.Stmt, error) {
	r.mu.RLock()
	st, ok := r.stmts[q]
	full := r.closed || len(r.stmts) >= maxStmts
	r.mu.RUnlock()
	if ok || full {
		return st, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.stmts[q]; ok || r.closed || len(r.stmts) >= maxStmts {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if r.stmts == nil {
		r.stmts = map[string]*sql.Stmt{}
	}
	r.stmts[q] = st
	return st, nil
}

// close closes the statements; reads that still come run unprepared
// (and find the pool closed).
func (r *readStmts) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, st := range r.stmts {
		st.Close() // #nosec G104 -- shutting down: nothing is left to do with a failed close
	}
	r.stmts = nil
}

// writeConn runs an op's statements on the writer's connection, each
// prepared once (see writer.stmt). It is used only by the writer's
// goroutine, inside the group's transaction.
type writeConn struct{ w *writer }

func (c writeConn) Exec(q string, args ...any) (int64, error) {
	st, err := c.w.stmt(q)
	if err != nil {
		return 0, mapErr(err)
	}
	if st == nil {
		return affected(c.w.conn.ExecContext(c.w.ctx, q, args...))
	}
	return affected(st.ExecContext(c.w.ctx, args...))
}

func (c writeConn) Query(q string, args ...any) (sqlstore.Rows, error) {
	st, err := c.w.stmt(q)
	if err != nil {
		return nil, mapErr(err)
	}
	if st == nil {
		return wrapRows(c.w.conn.QueryContext(c.w.ctx, q, args...))
	}
	return wrapRows(st.QueryContext(c.w.ctx, args...))
}

func (c writeConn) QueryRow(q string, args ...any) sqlstore.Row {
	st, err := c.w.stmt(q)
	if err != nil {
		return errRow{mapErr(err)}
	}
	if st == nil {
		return row{c.w.conn.QueryRowContext(c.w.ctx, q, args...)}
	}
	return row{st.QueryRowContext(c.w.ctx, args...)}
}

// affected is a statement's count of changed rows, with its error mapped.
func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, mapErr(err)
	}
	n, err := res.RowsAffected()
	return n, mapErr(err)
}

// row and rows map the driver's errors to the store's.
type row struct{ r *sql.Row }

func (r row) Scan(dest ...any) error { return mapErr(r.r.Scan(dest...)) }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type rows struct{ r *sql.Rows }

func wrapRows(r *sql.Rows, err error) (sqlstore.Rows, error) {
	if err != nil {
		return nil, mapErr(err)
	}
	return rows{r}, nil
}

func (r rows) Next() bool             { return r.r.Next() }
func (r rows) Scan(dest ...any) error { return mapErr(r.r.Scan(dest...)) }
func (r rows) Err() error             { return mapErr(r.r.Err()) }
func (r rows) Close()                 { r.r.Close() }

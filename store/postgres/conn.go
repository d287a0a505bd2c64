package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-chat/switchboard/store/sqlstore"
)

// querier is what both the pool and a transaction offer.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// conn runs store/sqlstore's statements on the pool or in a transaction,
// with PostgreSQL's errors mapped to the store's. pgx prepares each
// statement once per connection and keeps it by its text.
type conn struct {
	ctx context.Context
	q   querier
}

func (c conn) Exec(q string, args ...any) (int64, error) {
	tag, err := c.q.Exec(c.ctx, q, args...)
	return tag.RowsAffected(), mapErr(err)
}

func (c conn) Query(q string, args ...any) (sqlstore.Rows, error) {
	r, err := c.q.Query(c.ctx, q, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	return rows{r}, nil
}

func (c conn) QueryRow(q string, args ...any) sqlstore.Row {
	return row{c.q.QueryRow(c.ctx, q, args...)}
}

type row struct{ r pgx.Row }

func (r row) Scan(dest ...any) error { return mapErr(r.r.Scan(dest...)) }

type rows struct{ r pgx.Rows }

func (r rows) Next() bool             { return r.r.Next() }
func (r rows) Scan(dest ...any) error { return mapErr(r.r.Scan(dest...)) }
func (r rows) Err() error             { return mapErr(r.r.Err()) }
func (r rows) Close()                 { r.r.Close() }

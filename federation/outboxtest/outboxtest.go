// Package outboxtest lets tests send batches from an SQLite store's
// outbox. Batched delivery needs a store that reads several of a
// destination's entries at once (federation.OutboundBatchReader), which
// store.Store does not offer yet; SQLite stands in for that method, with
// the store's own NextOutbound query and a LIMIT of n, on a connection of
// its own to the same database file.
package outboxtest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"

	_ "modernc.org/sqlite" // the driver store/sqlite uses
)

// SQLite returns a reader of the outbox of the SQLite store at path
// (store/sqlite; a node's is provider.db in its data directory): a
// federation.OutboundBatchReader. The file is opened at the first read,
// so the reader may be made before the store; it is closed when t ends.
// (The package does not import federation, so that federation's own
// tests can use it.)
func SQLite(t testing.TB, path string) *Reader {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &Reader{db}
}

// Reader reads an SQLite store's outbox.
type Reader struct{ db *sql.DB }

// NextOutboundBatch returns up to limit of dest's oldest entries, oldest
// first, or store.ErrNotFound.
func (r *Reader) NextOutboundBatch(ctx context.Context, dest string, limit int) ([]store.OutboundEntry, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT seq, delivery_id, kind, path, body, header, attempts, not_before, last_error, created
		FROM outbox WHERE destination = ? ORDER BY seq LIMIT ?`, dest, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.OutboundEntry
	for rows.Next() {
		e := store.OutboundEntry{Outbound: store.Outbound{Destination: dest}}
		var notBefore, created int64
		var header string
		if err := rows.Scan(&e.Seq, &e.ID, &e.Kind, &e.Path, &e.Body, &header, &e.Attempts, &notBefore, &e.LastError, &created); err != nil {
			return nil, err
		}
		if header != "" {
			if err := json.Unmarshal([]byte(header), &e.Header); err != nil {
				return nil, fmt.Errorf("outbox header %q: %w", header, err)
			}
		}
		if notBefore != 0 {
			e.NotBefore = time.Unix(0, notBefore).UTC()
		}
		e.Created = time.Unix(0, created).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, store.ErrNotFound
	}
	return out, nil
}

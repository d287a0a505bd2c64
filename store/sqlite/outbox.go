package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// checkOutbound refuses entries the sender could not deliver or the
// receiver could not de-duplicate, before anything reaches the writer.
func checkOutbound(out []store.Outbound) error {
	for i, o := range out {
		if o.Destination == "" || o.Path == "" || o.ID == "" {
			return fmt.Errorf("outbound entry %d (%q to %q): destination, path and ID are required", i, o.ID, o.Destination)
		}
	}
	return nil
}

// insertOutbound stores entries in the current savepoint. An entry whose
// (destination, ID) is already queued is skipped by the statement itself
// (ON CONFLICT DO NOTHING), which is what makes a retried enqueue harmless.
func (s *Store) insertOutbound(tx *wtx, out []store.Outbound) error {
	if len(out) == 0 {
		return nil
	}
	created := unixNano(s.now())
	for _, o := range out {
		header, err := encodeHeader(o.Header)
		if err != nil {
			return err
		}
		if _, err := tx.insOutbound.ExecContext(tx.ctx, o.Destination, o.ID, o.Kind, o.Path, nonNil(o.Body), header, created); err != nil {
			return err
		}
	}
	return nil
}

// encodeHeader turns an entry's headers into the outbox.header column: a
// JSON object, or the empty string when there are none (nil or empty
// alike).
func encodeHeader(h map[string]string) (string, error) {
	if len(h) == 0 {
		return "", nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeHeader reads the outbox.header column back. An entry without
// headers (the empty string, or an empty object) reads back as nil, never
// an empty map.
func decodeHeader(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	var h map[string]string
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return nil, fmt.Errorf("sqlite: outbox header %q: %w", s, err)
	}
	if len(h) == 0 {
		return nil, nil
	}
	return h, nil
}

// EnqueueOutbound stores all of out in one savepoint, or none of it.
func (s *Store) EnqueueOutbound(ctx context.Context, out []store.Outbound) error {
	if err := checkOutbound(out); err != nil {
		return fmt.Errorf("sqlite: enqueue outbound: %w", err)
	}
	if len(out) == 0 {
		return nil
	}
	err := s.w.do(ctx, func(tx *wtx) error { return s.insertOutbound(tx, out) })
	if err != nil {
		return fmt.Errorf("sqlite: enqueue outbound: %w", err)
	}
	return nil
}

// OutboundDestinations lists the destinations with queued entries, sorted.
// The scan walks outbox_next, so it reads each destination's first entry
// rather than sorting the table.
func (s *Store) OutboundDestinations(ctx context.Context) ([]string, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT destination FROM outbox ORDER BY destination`)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

// NextOutbound returns the destination's entry with the lowest Seq. Its
// Header is nil when the entry was stored without headers.
func (s *Store) NextOutbound(ctx context.Context, dest string) (store.OutboundEntry, error) {
	db, err := s.reader()
	if err != nil {
		return store.OutboundEntry{}, err
	}
	e := store.OutboundEntry{Outbound: store.Outbound{Destination: dest}}
	var notBefore, created int64
	var header string
	err = db.QueryRowContext(ctx, `SELECT seq, delivery_id, kind, path, body, header, attempts, not_before, last_error, created
		FROM outbox WHERE destination = ? ORDER BY seq LIMIT 1`, dest).
		Scan(&e.Seq, &e.ID, &e.Kind, &e.Path, &e.Body, &header, &e.Attempts, &notBefore, &e.LastError, &created)
	if err != nil {
		return store.OutboundEntry{}, mapErr(err)
	}
	if e.Header, err = decodeHeader(header); err != nil {
		return store.OutboundEntry{}, err
	}
	if notBefore != 0 {
		e.NotBefore = fromNano(notBefore)
	}
	e.Created = fromNano(created)
	return e, nil
}

// MarkOutboundFailed records a failed attempt. The destination is part of
// the key so that a caller's mix-up of destinations is ErrNotFound rather
// than a change to someone else's entry.
func (s *Store) MarkOutboundFailed(ctx context.Context, dest string, seq int64, attempts int, notBefore time.Time, lastError string) error {
	var nb int64
	if !notBefore.IsZero() {
		nb = unixNano(notBefore)
	}
	err := s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`UPDATE outbox SET attempts = ?, not_before = ?, last_error = ?
			WHERE destination = ? AND seq = ?`, attempts, nb, lastError, dest, seq)
		return oneRow(res, err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: mark outbound failed: %w", err)
	}
	return nil
}

// DeleteOutbound removes a delivered or abandoned entry.
func (s *Store) DeleteOutbound(ctx context.Context, dest string, seq int64) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`DELETE FROM outbox WHERE destination = ? AND seq = ?`, dest, seq)
		return oneRow(res, err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete outbound: %w", err)
	}
	return nil
}

// oneRow turns a statement that touched no row into store.ErrNotFound.
func oneRow(res interface{ RowsAffected() (int64, error) }, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// SeenInbound records a delivery ID and says whether it was already there.
// The look-up and the write run in one op on the single writer, so no other
// call can slip in between them: of concurrent calls for one ID exactly one
// finds nothing. It must be a write even for a repeat, to keep the ID's time
// fresh while its sender keeps retrying.
func (s *Store) SeenInbound(ctx context.Context, fromDomain, id string, now time.Time) (bool, error) {
	var seen bool
	err := s.w.do(ctx, func(tx *wtx) error {
		var one int
		err := tx.queryRow(`SELECT 1 FROM inbound_seen WHERE from_domain = ? AND delivery_id = ?`, fromDomain, id).Scan(&one)
		switch {
		case err == nil:
			seen = true
		case errors.Is(mapErr(err), store.ErrNotFound):
			seen = false
		default:
			return err
		}
		_, err = tx.exec(`INSERT INTO inbound_seen (from_domain, delivery_id, seen) VALUES (?, ?, ?)
			ON CONFLICT (from_domain, delivery_id) DO UPDATE SET seen = max(seen, excluded.seen)`,
			fromDomain, id, unixNano(now))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: seen inbound: %w", err)
	}
	return seen, nil
}

// TrimInbound forgets delivery IDs last seen before before.
func (s *Store) TrimInbound(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`DELETE FROM inbound_seen WHERE seen < ?`, unixNano(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: trim inbound: %w", err)
	}
	return n, nil
}

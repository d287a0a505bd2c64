package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-chat/switchboard/store"
)

// checkOutbound refuses entries without what a sender needs.
func checkOutbound(out []store.Outbound) error {
	for i, o := range out {
		if o.Destination == "" || o.Path == "" || o.ID == "" {
			return fmt.Errorf("outbound entry %d (%q to %q): destination, path and ID are required", i, o.ID, o.Destination)
		}
	}
	return nil
}

// outboxLockClass is the first key of the per-destination advisory locks.
const outboxLockClass = 0x53424f58 // "SBOX"

// insertOutbound stores out in tx. It first takes, for each destination
// (in sorted order, so two transactions cannot deadlock), an advisory lock
// held until commit: a destination's entries then commit in the order of
// their Seq, so a sender never sees a newer entry before an older one that
// was still being written by another replica.
func (s *Store) insertOutbound(ctx context.Context, tx pgx.Tx, out []store.Outbound) error {
	if len(out) == 0 {
		return nil
	}
	var dests []string
	for _, o := range out {
		dests = append(dests, o.Destination)
	}
	slices.Sort(dests)
	for _, d := range slices.Compact(dests) {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(outboxLockClass), d); err != nil {
			return err
		}
	}
	created := unixNano(s.now())
	for _, o := range out {
		header, err := encodeHeader(o.Header)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO outbox (destination, delivery_id, kind, path, body, header, created)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (destination, delivery_id) DO NOTHING`,
			o.Destination, o.ID, o.Kind, o.Path, nonNil(o.Body), header, created); err != nil {
			return err
		}
	}
	return nil
}

// encodeHeader is the JSON of an entry's headers, "" for none, as in the
// SQLite store.
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

func decodeHeader(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	var h map[string]string
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return nil, fmt.Errorf("postgres: outbox header %q: %w", s, err)
	}
	if len(h) == 0 {
		return nil, nil
	}
	return h, nil
}

// EnqueueOutbound stores all of out or none.
func (s *Store) EnqueueOutbound(ctx context.Context, out []store.Outbound) error {
	if err := checkOutbound(out); err != nil {
		return fmt.Errorf("postgres: enqueue outbound: %w", err)
	}
	if len(out) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx pgx.Tx) error { return s.insertOutbound(ctx, tx, out) })
	if err != nil {
		return fmt.Errorf("postgres: enqueue outbound: %w", err)
	}
	return nil
}

// OutboundDestinations lists, sorted, the destinations with queued entries.
func (s *Store) OutboundDestinations(ctx context.Context) ([]string, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT DISTINCT destination FROM outbox ORDER BY destination`)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, mapErr(err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// NextOutbound returns the destination's oldest queued entry.
func (s *Store) NextOutbound(ctx context.Context, dest string) (store.OutboundEntry, error) {
	db, err := s.db()
	if err != nil {
		return store.OutboundEntry{}, err
	}
	e := store.OutboundEntry{Outbound: store.Outbound{Destination: dest}}
	var notBefore, created int64
	var header string
	err = db.QueryRow(ctx, `SELECT seq, delivery_id, kind, path, body, header, attempts, not_before, last_error, created
		FROM outbox WHERE destination = $1 ORDER BY seq LIMIT 1`, dest).
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

// MarkOutboundFailed records a failed attempt on an entry.
func (s *Store) MarkOutboundFailed(ctx context.Context, dest string, seq int64, attempts int, notBefore time.Time, lastError string) error {
	var nb int64
	if !notBefore.IsZero() {
		nb = unixNano(notBefore)
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		return mustAffect(tx.Exec(ctx, `UPDATE outbox SET attempts = $1, not_before = $2, last_error = $3
			WHERE destination = $4 AND seq = $5`, attempts, nb, lastError, dest, seq))
	})
	if err != nil {
		return fmt.Errorf("postgres: mark outbound failed: %w", err)
	}
	return nil
}

// DeleteOutbound removes a delivered entry.
func (s *Store) DeleteOutbound(ctx context.Context, dest string, seq int64) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		return mustAffect(tx.Exec(ctx, `DELETE FROM outbox WHERE destination = $1 AND seq = $2`, dest, seq))
	})
	if err != nil {
		return fmt.Errorf("postgres: delete outbound: %w", err)
	}
	return nil
}

// SeenInbound records a delivery ID and says whether it had been recorded
// before. One upsert does both: xmax is 0 only on a row this statement
// inserted, and a concurrent insert of the same ID waits for the first
// and then takes the update path, so exactly one caller answers false.
func (s *Store) SeenInbound(ctx context.Context, fromDomain, id string, now time.Time) (bool, error) {
	var inserted bool
	err := s.write(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO inbound_seen (from_domain, delivery_id, seen) VALUES ($1, $2, $3)
			ON CONFLICT (from_domain, delivery_id) DO UPDATE SET seen = greatest(inbound_seen.seen, excluded.seen)
			RETURNING xmax = 0`, fromDomain, id, unixNano(now)).Scan(&inserted)
	})
	if err != nil {
		return false, fmt.Errorf("postgres: seen inbound: %w", err)
	}
	return !inserted, nil
}

// TrimInbound forgets IDs last seen before before.
func (s *Store) TrimInbound(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM inbound_seen WHERE seen < $1`, unixNano(before))
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: trim inbound: %w", err)
	}
	return n, nil
}

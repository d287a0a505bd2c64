package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// checkOutbound refuses entries the sender could not deliver or the
// receiver could not de-duplicate, before anything is written.
func checkOutbound(out []store.Outbound) error {
	for i, o := range out {
		if o.Destination == "" || o.Path == "" || o.ID == "" {
			return fmt.Errorf("outbound entry %d (%q to %q): destination, path and ID are required", i, o.ID, o.Destination)
		}
	}
	return nil
}

// insertOutbound stores entries in the current transaction. An entry whose
// (destination, ID) is already queued is skipped by the statement itself
// (ON CONFLICT DO NOTHING), which is what makes a retried enqueue harmless.
//
// Where the dialect has an outbox lock, it is first taken for each
// destination (in sorted order, so two transactions cannot deadlock) and
// held until commit: a destination's entries then commit in the order of
// their Seq, so a sender never sees a newer entry before an older one that
// another writer was still storing. (SQLite's one writer commits in order
// anyway.)
func (s *Store) insertOutbound(t tx, out []store.Outbound) error {
	if len(out) == 0 {
		return nil
	}
	if t.d.outboxLock != "" {
		dests := make([]string, 0, len(out))
		for _, o := range out {
			dests = append(dests, o.Destination)
		}
		slices.Sort(dests)
		for _, d := range slices.Compact(dests) {
			if _, err := t.exec(t.d.outboxLock, d); err != nil {
				return err
			}
		}
	}
	created := unixNano(s.now())
	for _, o := range out {
		header, err := encodeHeader(o.Header)
		if err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO outbox (destination, delivery_id, kind, path, body, header, created)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (destination, delivery_id) DO NOTHING`,
			o.Destination, o.ID, o.Kind, o.Path, nonNil(o.Body), header, created); err != nil {
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
		return nil, fmt.Errorf("outbox header %q: %w", s, err)
	}
	if len(h) == 0 {
		return nil, nil
	}
	return h, nil
}

// EnqueueOutbound stores all of out in one transaction, or none of it.
func (s *Store) EnqueueOutbound(ctx context.Context, out []store.Outbound) error {
	if err := checkOutbound(out); err != nil {
		return s.fail("enqueue outbound", err)
	}
	if len(out) == 0 {
		return nil
	}
	err := s.write(ctx, func(t tx) error { return s.insertOutbound(t, out) })
	if err != nil {
		return s.fail("enqueue outbound", err)
	}
	return nil
}

// OutboundDestinations lists the destinations with queued entries, sorted.
// The scan walks outbox_next, so it reads each destination's first entry
// rather than sorting the table.
func (s *Store) OutboundDestinations(ctx context.Context) ([]string, error) {
	t, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	out, err := collect(t.rows(`SELECT DISTINCT destination FROM outbox ORDER BY destination`),
		func(r Rows) (string, error) {
			var d string
			return d, r.Scan(&d)
		})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// NextOutbound returns the destination's entry with the lowest Seq. Its
// Header is nil when the entry was stored without headers.
func (s *Store) NextOutbound(ctx context.Context, dest string) (store.OutboundEntry, error) {
	es, err := s.NextOutboundBatch(ctx, dest, 1)
	if err != nil {
		return store.OutboundEntry{}, err
	}
	return es[0], nil
}

// NextOutboundBatch returns up to limit of the destination's entries,
// oldest first: what one batched request to it carries.
func (s *Store) NextOutboundBatch(ctx context.Context, dest string, limit int) ([]store.OutboundEntry, error) {
	if limit < 1 {
		return nil, fmt.Errorf("a batch of %d outbox entries: at least one is needed", limit)
	}
	t, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	es, err := collect(t.rows(`SELECT seq, delivery_id, kind, path, body, header, attempts, not_before, last_error, created
		FROM outbox WHERE destination = ? ORDER BY seq LIMIT ?`, dest, limit), func(r Rows) (store.OutboundEntry, error) {
		e := store.OutboundEntry{Outbound: store.Outbound{Destination: dest}}
		var notBefore, created int64
		var header string
		if err := r.Scan(&e.Seq, &e.ID, &e.Kind, &e.Path, &e.Body, &header, &e.Attempts, &notBefore, &e.LastError, &created); err != nil {
			return e, err
		}
		if e.Header, err = decodeHeader(header); err != nil {
			return e, s.fail("next outbound", err)
		}
		if notBefore != 0 {
			e.NotBefore = fromNano(notBefore)
		}
		e.Created = fromNano(created)
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, store.ErrNotFound
	}
	return es, nil
}

// MarkOutboundFailed records a failed attempt. The destination is part of
// the key so that a caller's mix-up of destinations is ErrNotFound rather
// than a change to someone else's entry.
func (s *Store) MarkOutboundFailed(ctx context.Context, dest string, seq int64, attempts int, notBefore time.Time, lastError string) error {
	var nb int64
	if !notBefore.IsZero() {
		nb = unixNano(notBefore)
	}
	err := s.write(ctx, func(t tx) error {
		return mustAffect(t.exec(`UPDATE outbox SET attempts = ?, not_before = ?, last_error = ?
			WHERE destination = ? AND seq = ?`, attempts, nb, lastError, dest, seq))
	})
	if err != nil {
		return s.fail("mark outbound failed", err)
	}
	return nil
}

// DeleteOutbound removes a delivered or abandoned entry.
func (s *Store) DeleteOutbound(ctx context.Context, dest string, seq int64) error {
	err := s.write(ctx, func(t tx) error {
		return mustAffect(t.exec(`DELETE FROM outbox WHERE destination = ? AND seq = ?`, dest, seq))
	})
	if err != nil {
		return s.fail("delete outbound", err)
	}
	return nil
}

// SeenInbound records a delivery ID and says whether it was already there.
// The insert answers: it adds a row only for an ID not yet recorded. Of
// concurrent calls for one ID exactly one inserts, in both databases: in
// SQLite the one writer runs them in turn; in PostgreSQL a second insert
// of the same key waits for the first transaction and, once it commits,
// finds the conflict. A repeat must still write, to keep the ID's time
// fresh while its sender keeps retrying.
func (s *Store) SeenInbound(ctx context.Context, fromDomain, id string, now time.Time) (bool, error) {
	var seen bool
	err := s.write(ctx, func(t tx) error {
		n, err := t.exec(`INSERT INTO inbound_seen (from_domain, delivery_id, seen) VALUES (?, ?, ?)
			ON CONFLICT (from_domain, delivery_id) DO NOTHING`, fromDomain, id, unixNano(now))
		if err != nil {
			return err
		}
		seen = n == 0
		if !seen {
			return nil
		}
		_, err = t.exec(`UPDATE inbound_seen SET seen = ? WHERE from_domain = ? AND delivery_id = ? AND seen < ?`,
			unixNano(now), fromDomain, id, unixNano(now))
		return err
	})
	if err != nil {
		return false, s.fail("seen inbound", err)
	}
	return seen, nil
}

// TrimInbound forgets delivery IDs last seen before before.
func (s *Store) TrimInbound(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(t tx) error {
		var err error
		n, err = t.exec(`DELETE FROM inbound_seen WHERE seen < ?`, unixNano(before))
		return err
	})
	if err != nil {
		return 0, s.fail("trim inbound", err)
	}
	return n, nil
}

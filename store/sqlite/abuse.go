package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Franking keys, abuse reports, notices and suspension (docs/abuse.md).

// nullBytes stores an empty slice as NULL, so "no frank" is one value.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// MessageByFrank finds the message of a room stored with exactly frank.
func (s *Store) MessageByFrank(ctx context.Context, roomID string, frank []byte) (store.Message, error) {
	if len(frank) == 0 {
		return store.Message{}, store.ErrNotFound
	}
	db, err := s.reader()
	if err != nil {
		return store.Message{}, err
	}
	row := db.QueryRowContext(ctx, `SELECT `+messageCols+` FROM room_messages m
		WHERE m.room_id = ? AND m.frank = ? ORDER BY m.seq LIMIT 1`, roomID, frank)
	return scanMessage(row)
}

// FrankingKey returns the key of a signature scheme.
func (s *Store) FrankingKey(ctx context.Context, scheme string) (store.FrankingKey, error) {
	db, err := s.reader()
	if err != nil {
		return store.FrankingKey{}, err
	}
	k := store.FrankingKey{Scheme: scheme}
	var created int64
	err = db.QueryRowContext(ctx, `SELECT private_key, public_key, hub_key, created FROM franking_keys WHERE scheme = ?`,
		scheme).Scan(&k.PrivateKey, &k.PublicKey, &k.HubKey, &created)
	if err != nil {
		return store.FrankingKey{}, mapErr(err)
	}
	k.Created = fromNano(created)
	return k, nil
}

// AddFrankingKey stores k unless its scheme has a key, and returns the
// stored one.
func (s *Store) AddFrankingKey(ctx context.Context, k store.FrankingKey) (store.FrankingKey, error) {
	if k.Scheme == "" || len(k.PrivateKey) == 0 || len(k.PublicKey) == 0 || len(k.HubKey) == 0 {
		return store.FrankingKey{}, errors.New("sqlite: add franking key: scheme, keys and hub key are required")
	}
	err := s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO franking_keys (scheme, private_key, public_key, hub_key, created)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (scheme) DO NOTHING`,
			k.Scheme, k.PrivateKey, k.PublicKey, k.HubKey, unixNano(s.now()))
		return err
	})
	if err != nil {
		return store.FrankingKey{}, fmt.Errorf("sqlite: add franking key: %w", err)
	}
	return s.FrankingKey(ctx, k.Scheme)
}

// AddReport stores an open report and its outbound requests, in one
// savepoint.
func (s *Store) AddReport(ctx context.Context, r store.Report) (int64, error) {
	if err := checkOutbound(r.Outbound); err != nil {
		return 0, fmt.Errorf("sqlite: add report: %w", err)
	}
	var id int64
	err := s.w.do(ctx, func(tx *wtx) error {
		if err := tx.queryRow(`INSERT INTO reports (created, room, reporter, alleged_abuser, reason, note, body, origin, verified_by, delivery_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			unixNano(s.now()), r.Room, r.Reporter, r.AllegedAbuser, r.Reason, r.Note, nonNil(r.Body), r.From, r.VerifiedBy, r.DeliveryID).Scan(&id); err != nil {
			return err
		}
		return s.insertOutbound(tx, r.Outbound)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: add report: %w", err)
	}
	return id, nil
}

const reportCols = `id, created, room, reporter, alleged_abuser, reason, note, body, origin, verified_by, state, action, action_note, handled, delivery_id`

func scanReport(row interface{ Scan(...any) error }) (store.Report, error) {
	var r store.Report
	var created, handled int64
	if err := row.Scan(&r.ID, &created, &r.Room, &r.Reporter, &r.AllegedAbuser, &r.Reason, &r.Note, &r.Body,
		&r.From, &r.VerifiedBy, &r.State, &r.Action, &r.ActionNote, &handled, &r.DeliveryID); err != nil {
		return store.Report{}, mapErr(err)
	}
	r.Created = fromNano(created)
	if handled != 0 {
		r.Handled = fromNano(handled)
	}
	return r, nil
}

// Reports lists the queue, oldest first.
func (s *Store) Reports(ctx context.Context) ([]store.Report, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT `+reportCols+` FROM reports ORDER BY id`)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []store.Report{}
	for rows.Next() {
		r, err := scanReport(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, mapErr(rows.Err())
}

// ReportByID reads one report.
func (s *Store) ReportByID(ctx context.Context, id int64) (store.Report, error) {
	db, err := s.reader()
	if err != nil {
		return store.Report{}, err
	}
	return scanReport(db.QueryRowContext(ctx, `SELECT `+reportCols+` FROM reports WHERE id = ?`, id))
}

// HandleReport marks an open report handled.
func (s *Store) HandleReport(ctx context.Context, id int64, action, note string, at time.Time) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		var state string
		if err := tx.queryRow(`SELECT state FROM reports WHERE id = ?`, id).Scan(&state); err != nil {
			return err
		}
		if state != store.ReportOpen {
			return store.ErrConflict
		}
		_, err := tx.exec(`UPDATE reports SET state = 'handled', action = ?, action_note = ?, handled = ? WHERE id = ?`,
			action, note, unixNano(at), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: handle report: %w", err)
	}
	return nil
}

// AddNotice stores a notice for a user.
func (s *Store) AddNotice(ctx context.Context, n store.Notice) (int64, error) {
	var id int64
	err := s.w.do(ctx, func(tx *wtx) error {
		if err := tx.queryRow(`SELECT id FROM users WHERE id = ?`, n.UserID).Scan(&id); err != nil {
			return err
		}
		return tx.queryRow(`INSERT INTO notices (user_id, text, report, created) VALUES (?, ?, ?, ?) RETURNING id`,
			n.UserID, n.Text, n.Report, unixNano(s.now())).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: add notice: %w", err)
	}
	return id, nil
}

// Notices lists a user's notices, oldest first; an unknown user is
// store.ErrNotFound.
func (s *Store) Notices(ctx context.Context, userID int64) ([]store.Notice, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	if err := exists(ctx, db, `SELECT 1 FROM users WHERE id = ?`, userID); err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT id, user_id, text, report, created FROM notices WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []store.Notice{}
	for rows.Next() {
		var n store.Notice
		var created int64
		if err := rows.Scan(&n.ID, &n.UserID, &n.Text, &n.Report, &created); err != nil {
			return nil, mapErr(err)
		}
		n.Created = fromNano(created)
		out = append(out, n)
	}
	return out, mapErr(rows.Err())
}

// SetSuspended sets whether a user is suspended.
func (s *Store) SetSuspended(ctx context.Context, userID int64, suspended bool) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		return mustAffect(tx.exec(`UPDATE users SET suspended = ? WHERE id = ?`, suspended, userID))
	})
	if err != nil {
		return fmt.Errorf("sqlite: set suspended: %w", err)
	}
	return nil
}

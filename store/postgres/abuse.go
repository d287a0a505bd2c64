package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-chat/switchboard/store"
)

// FrankingKey returns the key of a signature scheme, or store.ErrNotFound.
func (s *Store) FrankingKey(ctx context.Context, scheme string) (store.FrankingKey, error) {
	db, err := s.db()
	if err != nil {
		return store.FrankingKey{}, err
	}
	k := store.FrankingKey{Scheme: scheme}
	var created int64
	err = db.QueryRow(ctx, `SELECT private_key, public_key, hub_key, created FROM franking_keys WHERE scheme = $1`,
		scheme).Scan(&k.PrivateKey, &k.PublicKey, &k.HubKey, &created)
	if err != nil {
		return store.FrankingKey{}, mapErr(err)
	}
	k.Created = fromNano(created)
	return k, nil
}

// AddFrankingKey stores k unless its scheme has a key, and returns the
// scheme's stored key either way: replicas making one at once agree.
func (s *Store) AddFrankingKey(ctx context.Context, k store.FrankingKey) (store.FrankingKey, error) {
	if k.Scheme == "" || len(k.PrivateKey) == 0 || len(k.PublicKey) == 0 || len(k.HubKey) == 0 {
		return store.FrankingKey{}, errors.New("postgres: add franking key: scheme, keys and hub key are required")
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO franking_keys (scheme, private_key, public_key, hub_key, created)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scheme) DO NOTHING`,
			k.Scheme, k.PrivateKey, k.PublicKey, k.HubKey, unixNano(s.now()))
		return err
	})
	if err != nil {
		return store.FrankingKey{}, fmt.Errorf("postgres: add franking key: %w", err)
	}
	return s.FrankingKey(ctx, k.Scheme)
}

// AddReport stores a report, open, with its outbox entries.
func (s *Store) AddReport(ctx context.Context, r store.Report) (int64, error) {
	if err := checkOutbound(r.Outbound); err != nil {
		return 0, fmt.Errorf("postgres: add report: %w", err)
	}
	var id int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO reports (created, room, reporter, alleged_abuser, reason, note, body, origin, verified_by, delivery_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
			unixNano(s.now()), r.Room, r.Reporter, r.AllegedAbuser, int64(r.Reason), r.Note, nonNil(r.Body), r.From, r.VerifiedBy, r.DeliveryID).Scan(&id); err != nil {
			return err
		}
		return s.insertOutbound(ctx, tx, r.Outbound)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: add report: %w", err)
	}
	return id, nil
}

const reportCols = `id, created, room, reporter, alleged_abuser, reason, note, body, origin, verified_by, state, action, action_note, handled, delivery_id`

func scanReport(row pgx.Row) (store.Report, error) {
	var r store.Report
	var created, handled, reason int64
	if err := row.Scan(&r.ID, &created, &r.Room, &r.Reporter, &r.AllegedAbuser, &reason, &r.Note, &r.Body,
		&r.From, &r.VerifiedBy, &r.State, &r.Action, &r.ActionNote, &handled, &r.DeliveryID); err != nil {
		return store.Report{}, mapErr(err)
	}
	r.Reason = uint8(reason)
	r.Created = fromNano(created)
	if handled != 0 {
		r.Handled = fromNano(handled)
	}
	return r, nil
}

// Reports lists the queue, oldest first.
func (s *Store) Reports(ctx context.Context) ([]store.Report, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT `+reportCols+` FROM reports ORDER BY id`)
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
	db, err := s.db()
	if err != nil {
		return store.Report{}, err
	}
	return scanReport(db.QueryRow(ctx, `SELECT `+reportCols+` FROM reports WHERE id = $1`, id))
}

// HandleReport marks an open report handled; the row is locked, so of two
// operators handling it at once the second gets store.ErrConflict.
func (s *Store) HandleReport(ctx context.Context, id int64, action, note string, at time.Time) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, `SELECT state FROM reports WHERE id = $1 FOR UPDATE`, id).Scan(&state); err != nil {
			return mapErr(err)
		}
		if state != store.ReportOpen {
			return store.ErrConflict
		}
		_, err := tx.Exec(ctx, `UPDATE reports SET state = 'handled', action = $1, action_note = $2, handled = $3 WHERE id = $4`,
			action, note, unixNano(at), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: handle report: %w", err)
	}
	return nil
}

// AddNotice stores a notice for a user and returns its ID.
func (s *Store) AddNotice(ctx context.Context, n store.Notice) (int64, error) {
	var id int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO notices (user_id, text, report, created) VALUES ($1, $2, $3, $4) RETURNING id`,
			n.UserID, n.Text, n.Report, unixNano(s.now())).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: add notice: %w", err)
	}
	return id, nil
}

// Notices lists a user's notices, oldest first.
func (s *Store) Notices(ctx context.Context, userID int64) ([]store.Notice, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	if err := exists(ctx, db, `SELECT 1 FROM users WHERE id = $1`, userID); err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT id, user_id, text, report, created FROM notices WHERE user_id = $1 ORDER BY id`, userID)
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

// PutAttachment stores an attachment.
func (s *Store) PutAttachment(ctx context.Context, a store.Attachment) error {
	created := a.Created
	if created.IsZero() {
		created = s.now()
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO attachments (id, owner_id, size, created, data) VALUES ($1, $2, $3, $4, $5)`,
			a.ID, a.OwnerID, len(a.Data), unixNano(created), nonNil(a.Data))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: put attachment: %w", err)
	}
	return nil
}

// ReadAttachment returns up to limit bytes of an attachment from offset on
// and the whole size; substring on BYTEA reads only the range it needs
// from a TOASTed value stored uncompressed.
func (s *Store) ReadAttachment(ctx context.Context, id string, offset, limit int64) ([]byte, int64, error) {
	if offset < 0 {
		return nil, 0, fmt.Errorf("postgres: read attachment: negative offset %d", offset)
	}
	db, err := s.db()
	if err != nil {
		return nil, 0, err
	}
	var data []byte
	var size int64
	if limit > 0 {
		err = db.QueryRow(ctx, `SELECT size, substring(data from $1::int for $2::int) FROM attachments WHERE id = $3`,
			offset+1, min(limit, 1<<30), id).Scan(&size, &data)
	} else {
		err = db.QueryRow(ctx, `SELECT size, substring(data from $1::int) FROM attachments WHERE id = $2`,
			offset+1, id).Scan(&size, &data)
	}
	if err != nil {
		err = mapErr(err)
		if errors.Is(err, store.ErrNotFound) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("postgres: read attachment: %w", err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, size, nil
}

// TrimAttachments removes attachments created before before.
func (s *Store) TrimAttachments(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM attachments WHERE created < $1`, unixNano(before))
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: trim attachments: %w", err)
	}
	return n, nil
}

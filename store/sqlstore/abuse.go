package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Franking keys, abuse reports, notices and attachments (docs/abuse.md,
// docs/attachments.md).

// FrankingKey returns the key of a signature scheme, or store.ErrNotFound.
func (s *Store) FrankingKey(ctx context.Context, scheme string) (store.FrankingKey, error) {
	t, err := s.read(ctx)
	if err != nil {
		return store.FrankingKey{}, err
	}
	k := store.FrankingKey{Scheme: scheme}
	var created int64
	err = t.queryRow(`SELECT private_key, public_key, hub_key, created FROM franking_keys WHERE scheme = ?`,
		scheme).Scan(&k.PrivateKey, &k.PublicKey, &k.HubKey, &created)
	if err != nil {
		return store.FrankingKey{}, err
	}
	k.Created = fromNano(created)
	return k, nil
}

// AddFrankingKey stores k unless its scheme has a key, and returns the
// scheme's stored key either way: writers making one at once agree.
func (s *Store) AddFrankingKey(ctx context.Context, k store.FrankingKey) (store.FrankingKey, error) {
	if k.Scheme == "" || len(k.PrivateKey) == 0 || len(k.PublicKey) == 0 || len(k.HubKey) == 0 {
		return store.FrankingKey{}, s.fail("add franking key", errors.New("scheme, keys and hub key are required"))
	}
	err := s.write(ctx, func(t tx) error {
		_, err := t.exec(`INSERT INTO franking_keys (scheme, private_key, public_key, hub_key, created)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (scheme) DO NOTHING`,
			k.Scheme, k.PrivateKey, k.PublicKey, k.HubKey, unixNano(s.now()))
		return err
	})
	if err != nil {
		return store.FrankingKey{}, s.fail("add franking key", err)
	}
	return s.FrankingKey(ctx, k.Scheme)
}

// AddReport stores an open report and its outbound requests, in one
// transaction.
func (s *Store) AddReport(ctx context.Context, r store.Report) (int64, error) {
	if err := checkOutbound(r.Outbound); err != nil {
		return 0, s.fail("add report", err)
	}
	var id int64
	err := s.write(ctx, func(t tx) error {
		if err := t.queryRow(`INSERT INTO reports (created, room, reporter, alleged_abuser, reason, note, body, origin, verified_by, delivery_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			unixNano(s.now()), r.Room, r.Reporter, r.AllegedAbuser, int64(r.Reason), r.Note, nonNil(r.Body), r.From,
			r.VerifiedBy, r.DeliveryID).Scan(&id); err != nil {
			return err
		}
		return s.insertOutbound(t, r.Outbound)
	})
	if err != nil {
		return 0, s.fail("add report", err)
	}
	return id, nil
}

const reportCols = `id, created, room, reporter, alleged_abuser, reason, note, body, origin, verified_by, state, action, action_note, handled, delivery_id`

func scanReport(row Row) (store.Report, error) {
	var r store.Report
	var created, handled, reason int64
	if err := row.Scan(&r.ID, &created, &r.Room, &r.Reporter, &r.AllegedAbuser, &reason, &r.Note, &r.Body,
		&r.From, &r.VerifiedBy, &r.State, &r.Action, &r.ActionNote, &handled, &r.DeliveryID); err != nil {
		return store.Report{}, err
	}
	r.Reason = uint8(reason) // #nosec G115 -- written from a uint8
	r.Created = fromNano(created)
	if handled != 0 {
		r.Handled = fromNano(handled)
	}
	return r, nil
}

// Reports lists the queue, oldest first.
func (s *Store) Reports(ctx context.Context) ([]store.Report, error) {
	t, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	out, err := collect(t.rows(`SELECT `+reportCols+` FROM reports ORDER BY id`),
		func(r Rows) (store.Report, error) { return scanReport(r) })
	if out == nil && err == nil {
		out = []store.Report{}
	}
	return out, err
}

// ReportByID reads one report.
func (s *Store) ReportByID(ctx context.Context, id int64) (store.Report, error) {
	t, err := s.read(ctx)
	if err != nil {
		return store.Report{}, err
	}
	return scanReport(t.queryRow(`SELECT `+reportCols+` FROM reports WHERE id = ?`, id))
}

// HandleReport marks an open report handled; the row is locked, so of two
// operators handling it at once the second gets store.ErrConflict.
func (s *Store) HandleReport(ctx context.Context, id int64, action, note string, at time.Time) error {
	err := s.write(ctx, func(t tx) error {
		var state string
		if err := t.queryRow(t.locking(`SELECT state FROM reports WHERE id = ?`), id).Scan(&state); err != nil {
			return err
		}
		if state != store.ReportOpen {
			return store.ErrConflict
		}
		_, err := t.exec(`UPDATE reports SET state = 'handled', action = ?, action_note = ?, handled = ? WHERE id = ?`,
			action, note, unixNano(at), id)
		return err
	})
	if err != nil {
		return s.fail("handle report", err)
	}
	return nil
}

// AddNotice stores a notice for a user and returns its ID; an unknown user
// is store.ErrNotFound.
func (s *Store) AddNotice(ctx context.Context, n store.Notice) (int64, error) {
	var id int64
	err := s.write(ctx, func(t tx) error {
		if err := t.exists(`SELECT 1 FROM users WHERE id = ?`, n.UserID); err != nil {
			return err
		}
		return t.queryRow(`INSERT INTO notices (user_id, text, report, created) VALUES (?, ?, ?, ?) RETURNING id`,
			n.UserID, n.Text, n.Report, unixNano(s.now())).Scan(&id)
	})
	if err != nil {
		return 0, s.fail("add notice", err)
	}
	return id, nil
}

// Notices lists a user's notices, oldest first; an unknown user is
// store.ErrNotFound.
func (s *Store) Notices(ctx context.Context, userID int64) ([]store.Notice, error) {
	t, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	if err := t.exists(`SELECT 1 FROM users WHERE id = ?`, userID); err != nil {
		return nil, err
	}
	out, err := collect(t.rows(`SELECT id, user_id, text, report, created FROM notices WHERE user_id = ? ORDER BY id`, userID),
		func(r Rows) (store.Notice, error) {
			var n store.Notice
			var created int64
			err := r.Scan(&n.ID, &n.UserID, &n.Text, &n.Report, &created)
			n.Created = fromNano(created)
			return n, err
		})
	if out == nil && err == nil {
		out = []store.Notice{}
	}
	return out, err
}

// PutAttachment stores an attachment whole. A taken ID is store.ErrExists,
// an unknown owner store.ErrNotFound (the foreign key).
func (s *Store) PutAttachment(ctx context.Context, a store.Attachment) error {
	created := a.Created
	if created.IsZero() {
		created = s.now()
	}
	err := s.write(ctx, func(t tx) error {
		_, err := t.exec(`INSERT INTO attachments (id, owner_id, size, created, data) VALUES (?, ?, ?, ?, ?)`,
			a.ID, a.OwnerID, len(a.Data), unixNano(created), nonNil(a.Data))
		return err
	})
	if err != nil {
		return s.fail("put attachment", err)
	}
	return nil
}

// maxRange bounds the offset and length of a range read: both databases
// take them as 32-bit integers, and no attachment comes near (PostgreSQL
// keeps at most 1 GiB in a value).
const maxRange = 1 << 30

// ReadAttachment returns up to limit bytes of the attachment's data from
// offset on (limit <= 0: to the end), and its whole size. substr counts
// bytes of a blob from 1, in both databases, and PostgreSQL reads only the
// range it needs of a value stored uncompressed.
func (s *Store) ReadAttachment(ctx context.Context, id string, offset, limit int64) ([]byte, int64, error) {
	if offset < 0 {
		return nil, 0, s.fail("read attachment", fmt.Errorf("negative offset %d", offset))
	}
	t, err := s.read(ctx)
	if err != nil {
		return nil, 0, err
	}
	var data []byte
	var size int64
	from := min(offset, maxRange) + 1
	if limit > 0 {
		err = t.queryRow(`SELECT size, substr(data, ?, ?) FROM attachments WHERE id = ?`,
			from, min(limit, maxRange), id).Scan(&size, &data)
	} else {
		err = t.queryRow(`SELECT size, substr(data, ?) FROM attachments WHERE id = ?`, from, id).Scan(&size, &data)
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, 0, err
		}
		return nil, 0, s.fail("read attachment", err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, size, nil
}

// TrimAttachments removes the attachments created before before.
func (s *Store) TrimAttachments(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(t tx) error {
		var err error
		n, err = t.exec(`DELETE FROM attachments WHERE created < ?`, unixNano(before))
		return err
	})
	if err != nil {
		return 0, s.fail("trim attachments", err)
	}
	return n, nil
}

package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// PutAttachment stores an attachment whole. A taken ID is store.ErrExists,
// an unknown owner store.ErrNotFound (the foreign key).
func (s *Store) PutAttachment(ctx context.Context, a store.Attachment) error {
	created := a.Created
	if created.IsZero() {
		created = s.now()
	}
	err := s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO attachments (id, owner_id, size, created, data) VALUES (?, ?, ?, ?, ?)`,
			a.ID, a.OwnerID, len(a.Data), unixNano(created), nonNil(a.Data))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put attachment: %w", err)
	}
	return nil
}

// ReadAttachment returns up to limit bytes of the attachment's data from
// offset on (limit <= 0: to the end), and its whole size. substr counts
// bytes in a BLOB, from 1.
func (s *Store) ReadAttachment(ctx context.Context, id string, offset, limit int64) ([]byte, int64, error) {
	if offset < 0 {
		return nil, 0, fmt.Errorf("sqlite: read attachment: negative offset %d", offset)
	}
	db, err := s.reader()
	if err != nil {
		return nil, 0, err
	}
	var data []byte
	var size int64
	if limit > 0 {
		err = db.QueryRowContext(ctx, `SELECT size, substr(data, ?, ?) FROM attachments WHERE id = ?`,
			offset+1, limit, id).Scan(&size, &data)
	} else {
		err = db.QueryRowContext(ctx, `SELECT size, substr(data, ?) FROM attachments WHERE id = ?`,
			offset+1, id).Scan(&size, &data)
	}
	if err != nil {
		err = mapErr(err)
		if errors.Is(err, store.ErrNotFound) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("sqlite: read attachment: %w", err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, size, nil
}

// TrimAttachments removes the attachments created before before.
func (s *Store) TrimAttachments(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`DELETE FROM attachments WHERE created < ?`, unixNano(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: trim attachments: %w", err)
	}
	return n, nil
}

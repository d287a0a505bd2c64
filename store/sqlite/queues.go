package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Deliveries returns up to limit entries of the device's queue with a
// cursor greater than after, oldest first, each joined to the one stored
// copy of its message. An unknown device is store.ErrNotFound. A limit of
// 0 or less is treated as 1.
func (s *Store) Deliveries(ctx context.Context, deviceID int64, after int64, limit int) ([]store.Delivery, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT q.cursor, `+messageCols+`
		FROM device_queue q JOIN room_messages m ON m.id = q.message_id
		WHERE q.device_id = ? AND q.cursor > ? ORDER BY q.cursor LIMIT ?`, deviceID, after, max(limit, 1))
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		var d store.Delivery
		if d.Message, err = scanMessage(rows, &d.Cursor); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	if len(out) == 0 {
		if err := exists(ctx, db, `SELECT 1 FROM devices WHERE id = ?`, deviceID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Ack removes the device's entries with a cursor up to and including
// cursor. Acknowledging again, or past the end, is not an error; an
// unknown device is store.ErrNotFound.
func (s *Store) Ack(ctx context.Context, deviceID int64, cursor int64) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`DELETE FROM device_queue WHERE device_id = ? AND cursor <= ?`, deviceID, cursor)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		var one int
		return tx.queryRow(`SELECT 1 FROM devices WHERE id = ?`, deviceID).Scan(&one)
	})
	if err != nil {
		return fmt.Errorf("sqlite: ack: %w", err)
	}
	return nil
}

// TrimQueues removes queue entries whose message was created before
// before, whoever they were queued for; the room logs keep the messages.
// It walks the queues, not the logs: queues are short-lived and small,
// logs grow forever.
func (s *Store) TrimQueues(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`DELETE FROM device_queue
			WHERE (SELECT created FROM room_messages m WHERE m.id = device_queue.message_id) < ?`,
			unixNano(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: trim queues: %w", err)
	}
	return n, nil
}

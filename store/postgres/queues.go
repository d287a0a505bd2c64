package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-chat/switchboard/store"
)

// Deliveries returns up to limit entries of the device's queue after
// cursor, oldest first; an unknown device is store.ErrNotFound.
func (s *Store) Deliveries(ctx context.Context, deviceID int64, after int64, limit int) ([]store.Delivery, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT q.cursor, `+messageCols+`
		FROM device_queue q JOIN room_messages m ON m.id = q.message_id
		WHERE q.device_id = $1 AND q.cursor > $2 ORDER BY q.cursor LIMIT $3`, deviceID, after, max(limit, 1))
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
		if err := exists(ctx, db, `SELECT 1 FROM devices WHERE id = $1`, deviceID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Ack removes the device's entries up to and including cursor; an
// unknown device is store.ErrNotFound.
func (s *Store) Ack(ctx context.Context, deviceID int64, cursor int64) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM device_queue WHERE device_id = $1 AND cursor <= $2`, deviceID, cursor)
		if err != nil || tag.RowsAffected() > 0 {
			return err
		}
		return exists(ctx, tx, `SELECT 1 FROM devices WHERE id = $1`, deviceID)
	})
	if err != nil {
		return fmt.Errorf("postgres: ack: %w", err)
	}
	return nil
}

// TrimQueues removes queue entries whose message was created before
// before.
func (s *Store) TrimQueues(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM device_queue q USING room_messages m
			WHERE m.id = q.message_id AND m.created < $1`, unixNano(before))
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: trim queues: %w", err)
	}
	return n, nil
}

// AddKeyPackages adds all of kps or none; a last-resort package replaces
// the device's previous one of the same suite.
func (s *Store) AddKeyPackages(ctx context.Context, kps []store.KeyPackage) error {
	if len(kps) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		for _, kp := range kps {
			if kp.LastResort {
				if _, err := tx.Exec(ctx, `
					UPDATE key_packages SET claimed = true, data = ''::bytea
					WHERE device_id = $1 AND suite = $2 AND last_resort AND NOT claimed`,
					kp.DeviceID, int32(kp.Suite)); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO key_packages (ref, device_id, suite, data, last_resort)
				VALUES ($1, $2, $3, $4, $5)`,
				nonNil(kp.Ref), kp.DeviceID, int32(kp.Suite), nonNil(kp.Data), kp.LastResort); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: add key packages: %w", err)
	}
	return nil
}

// ClaimKeyPackage hands out the device's oldest fresh KeyPackage of the
// suite, or else its last-resort one.
func (s *Store) ClaimKeyPackage(ctx context.Context, deviceID int64, suite uint16) (store.KeyPackage, int, error) {
	var kp store.KeyPackage
	var remaining int
	err := s.write(ctx, func(tx pgx.Tx) error {
		kp = store.KeyPackage{DeviceID: deviceID, Suite: suite}
		// Claims for one device run one after the other, on any replica,
		// so each answers the count its own claim left.
		if err := exists(ctx, tx, `SELECT 1 FROM devices WHERE id = $1 FOR UPDATE`, deviceID); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `
			SELECT ref, data, last_resort FROM key_packages
			WHERE device_id = $1 AND suite = $2 AND NOT claimed AND NOT last_resort
			ORDER BY added LIMIT 1`, deviceID, int32(suite)).
			Scan(&kp.Ref, &kp.Data, &kp.LastResort)
		if errors.Is(err, pgx.ErrNoRows) {
			err = tx.QueryRow(ctx, `
				SELECT ref, data, last_resort FROM key_packages
				WHERE device_id = $1 AND suite = $2 AND NOT claimed AND last_resort
				ORDER BY added LIMIT 1`, deviceID, int32(suite)).
				Scan(&kp.Ref, &kp.Data, &kp.LastResort)
		}
		if err != nil {
			return mapErr(err)
		}
		if !kp.LastResort {
			if _, err := tx.Exec(ctx, `UPDATE key_packages SET claimed = true, data = ''::bytea WHERE ref = $1`, kp.Ref); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, `
			SELECT count(*) FROM key_packages
			WHERE device_id = $1 AND suite = $2 AND NOT last_resort AND NOT claimed`,
			deviceID, int32(suite)).Scan(&remaining)
	})
	if err != nil {
		return store.KeyPackage{}, 0, fmt.Errorf("postgres: claim key package: %w", err)
	}
	return kp, remaining, nil
}

// KeyPackageDevice finds the device a KeyPackage belongs to.
func (s *Store) KeyPackageDevice(ctx context.Context, ref []byte) (int64, error) {
	db, err := s.db()
	if err != nil {
		return 0, err
	}
	var id int64
	if err := db.QueryRow(ctx, `SELECT device_id FROM key_packages WHERE ref = $1`, nonNil(ref)).Scan(&id); err != nil {
		return 0, mapErr(err)
	}
	return id, nil
}

// CountKeyPackages counts the device's fresh KeyPackages of the suite.
func (s *Store) CountKeyPackages(ctx context.Context, deviceID int64, suite uint16) (int, error) {
	db, err := s.db()
	if err != nil {
		return 0, err
	}
	var n int
	err = db.QueryRow(ctx, `
		SELECT count(*) FROM key_packages
		WHERE device_id = $1 AND suite = $2 AND NOT last_resort AND NOT claimed`,
		deviceID, int32(suite)).Scan(&n)
	return n, mapErr(err)
}

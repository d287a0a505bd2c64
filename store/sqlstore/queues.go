package sqlstore

import (
	"context"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Deliveries returns up to limit entries of the device's queue with a
// cursor greater than after, oldest first, each joined to the one stored
// copy of its message. An unknown device is store.ErrNotFound. A limit of
// 0 or less is treated as 1.
func (s *Store) Deliveries(ctx context.Context, deviceID int64, after int64, limit int) ([]store.Delivery, error) {
	t, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	out, err := collect(t.rows(`SELECT q.cursor, `+messageCols+`
		FROM device_queue q JOIN room_messages m ON m.id = q.message_id
		WHERE q.device_id = ? AND q.cursor > ? ORDER BY q.cursor LIMIT ?`, deviceID, after, max(limit, 1)),
		func(r Rows) (store.Delivery, error) {
			var d store.Delivery
			var err error
			d.Message, err = scanMessage(r, &d.Cursor)
			return d, err
		})
	if err == nil && len(out) == 0 {
		err = t.exists(`SELECT 1 FROM devices WHERE id = ?`, deviceID)
	}
	return out, err
}

// Ack removes the device's entries with a cursor up to and including
// cursor. Acknowledging again, or past the end, is not an error; an
// unknown device is store.ErrNotFound.
func (s *Store) Ack(ctx context.Context, deviceID int64, cursor int64) error {
	// An acknowledgement is waited for by nobody but the stream reading
	// the next one: it may share the next message's COMMIT.
	err := s.writeLazy(ctx, func(t tx) error {
		n, err := t.exec(`DELETE FROM device_queue WHERE device_id = ? AND cursor <= ?`, deviceID, cursor)
		if err != nil || n > 0 {
			return err
		}
		return t.exists(`SELECT 1 FROM devices WHERE id = ?`, deviceID)
	})
	if err != nil {
		return s.fail("ack", err)
	}
	return nil
}

// TrimQueues removes queue entries whose message was created before
// before, whoever they were queued for; the room logs keep the messages.
// It walks the queues, not the logs: queues are short-lived and small,
// logs grow forever.
func (s *Store) TrimQueues(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(t tx) error {
		var err error
		n, err = t.exec(`DELETE FROM device_queue
			WHERE (SELECT created FROM room_messages m WHERE m.id = device_queue.message_id) < ?`,
			unixNano(before))
		return err
	})
	if err != nil {
		return 0, s.fail("trim queues", err)
	}
	return n, nil
}

// AddKeyPackages stores the packages, all or none: a ref already stored is
// store.ErrExists, an unknown device store.ErrNotFound. A last-resort
// package replaces the device's earlier last-resort package of its suite;
// the replaced one is kept without its data so that KeyPackageDevice still
// finds it (it may have been handed out already).
func (s *Store) AddKeyPackages(ctx context.Context, kps []store.KeyPackage) error {
	if len(kps) == 0 {
		return nil
	}
	err := s.write(ctx, func(t tx) error {
		for _, kp := range kps {
			if kp.LastResort {
				if _, err := t.exec(`
					UPDATE key_packages SET claimed = 1, data = ?
					WHERE device_id = ? AND suite = ? AND last_resort = 1 AND claimed = 0`,
					[]byte{}, kp.DeviceID, int64(kp.Suite)); err != nil {
					return err
				}
			}
			if _, err := t.exec(`
				INSERT INTO key_packages (ref, device_id, suite, data, last_resort)
				VALUES (?, ?, ?, ?, ?)`,
				nonNil(kp.Ref), kp.DeviceID, int64(kp.Suite), nonNil(kp.Data), flag(kp.LastResort)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail("add key packages", err)
	}
	return nil
}

// ClaimKeyPackage hands out the device's oldest fresh package of the suite
// and uses it up (its data is dropped, its ref kept for KeyPackageDevice),
// or else the last-resort one, which stays. Claims for one device run one
// after the other (the device's row is locked; in SQLite the one writer
// runs them in turn), so two claims never see the same fresh package and
// each answers the count its own claim left. No package at all is
// store.ErrNotFound.
func (s *Store) ClaimKeyPackage(ctx context.Context, deviceID int64, suite uint16) (store.KeyPackage, int, error) {
	var kp store.KeyPackage
	var remaining int
	err := s.write(ctx, func(t tx) error {
		kp = store.KeyPackage{DeviceID: deviceID, Suite: suite}
		if err := t.exists(t.locking(`SELECT 1 FROM devices WHERE id = ?`), deviceID); err != nil {
			return err
		}
		var lastResort int64
		err := t.queryRow(`
			SELECT ref, data, last_resort FROM key_packages
			WHERE device_id = ? AND suite = ? AND claimed = 0
			ORDER BY last_resort, `+t.d.keyPackageOrder+` LIMIT 1`, deviceID, int64(suite)).
			Scan(&kp.Ref, &kp.Data, &lastResort)
		if err != nil {
			return err
		}
		kp.LastResort = lastResort != 0
		if !kp.LastResort {
			if _, err := t.exec(`UPDATE key_packages SET claimed = 1, data = ? WHERE ref = ?`, []byte{}, kp.Ref); err != nil {
				return err
			}
		}
		return t.queryRow(`
			SELECT count(*) FROM key_packages
			WHERE device_id = ? AND suite = ? AND last_resort = 0 AND claimed = 0`,
			deviceID, int64(suite)).Scan(&remaining)
	})
	if err != nil {
		return store.KeyPackage{}, 0, s.fail("claim key package", err)
	}
	return kp, remaining, nil
}

// KeyPackageDevice returns the device a package (stored, claimed or
// replaced) belongs to, or store.ErrNotFound.
func (s *Store) KeyPackageDevice(ctx context.Context, ref []byte) (int64, error) {
	t, err := s.read(ctx)
	if err != nil {
		return 0, err
	}
	var id int64
	if err := t.queryRow(`SELECT device_id FROM key_packages WHERE ref = ?`, nonNil(ref)).Scan(&id); err != nil {
		return 0, err
	}
	return id, nil
}

// KeyPackageWelcomed reports whether a stored Welcome used the package
// (claimed = 2, set with the Welcome in Submit).
func (s *Store) KeyPackageWelcomed(ctx context.Context, ref []byte) (bool, error) {
	t, err := s.read(ctx)
	if err != nil {
		return false, err
	}
	var claimed int64
	if err := t.queryRow(`SELECT claimed FROM key_packages WHERE ref = ?`, nonNil(ref)).Scan(&claimed); err != nil {
		return false, err
	}
	return claimed == 2, nil
}

// CountKeyPackages counts the device's fresh, unclaimed packages of the
// suite; the last-resort one does not count.
func (s *Store) CountKeyPackages(ctx context.Context, deviceID int64, suite uint16) (int, error) {
	t, err := s.read(ctx)
	if err != nil {
		return 0, err
	}
	var n int
	err = t.queryRow(`
		SELECT count(*) FROM key_packages
		WHERE device_id = ? AND suite = ? AND last_resort = 0 AND claimed = 0`,
		deviceID, int64(suite)).Scan(&n)
	return n, err
}

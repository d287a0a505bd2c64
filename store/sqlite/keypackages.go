package sqlite

import (
	"context"
	"fmt"

	"github.com/switchboard-chat/switchboard/store"
)

// AddKeyPackages stores the packages, all or none: a ref already stored is
// store.ErrExists, an unknown device store.ErrNotFound. A last-resort
// package replaces the device's earlier last-resort package of its suite;
// the replaced one is kept without its data so that KeyPackageDevice still
// finds it (it may have been handed out already).
func (s *Store) AddKeyPackages(ctx context.Context, kps []store.KeyPackage) error {
	if len(kps) == 0 {
		return nil
	}
	err := s.w.do(ctx, func(tx *wtx) error {
		for _, kp := range kps {
			if kp.LastResort {
				if _, err := tx.exec(`
					UPDATE key_packages SET claimed = 1, data = x''
					WHERE device_id = ? AND suite = ? AND last_resort = 1 AND claimed = 0`,
					kp.DeviceID, kp.Suite); err != nil {
					return err
				}
			}
			if _, err := tx.exec(`
				INSERT INTO key_packages (ref, device_id, suite, data, last_resort)
				VALUES (?, ?, ?, ?, ?)`,
				nonNil(kp.Ref), kp.DeviceID, kp.Suite, nonNil(kp.Data), kp.LastResort); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: add key packages: %w", err)
	}
	return nil
}

// ClaimKeyPackage hands out the device's oldest fresh package of the suite
// and uses it up (its data is dropped, its ref kept for KeyPackageDevice),
// or else the last-resort one, which stays. It runs on the writer, so two
// claims never see the same fresh package. No package at all is
// store.ErrNotFound.
func (s *Store) ClaimKeyPackage(ctx context.Context, deviceID int64, suite uint16) (store.KeyPackage, int, error) {
	var kp store.KeyPackage
	var remaining int
	err := s.w.do(ctx, func(tx *wtx) error {
		kp = store.KeyPackage{DeviceID: deviceID, Suite: suite}
		err := tx.queryRow(`
			SELECT ref, data, last_resort FROM key_packages
			WHERE device_id = ? AND suite = ? AND claimed = 0
			ORDER BY last_resort, rowid LIMIT 1`, deviceID, suite).
			Scan(&kp.Ref, &kp.Data, &kp.LastResort)
		if err != nil {
			return err
		}
		if !kp.LastResort {
			if _, err := tx.exec(`UPDATE key_packages SET claimed = 1, data = x'' WHERE ref = ?`, kp.Ref); err != nil {
				return err
			}
		}
		return tx.queryRow(`
			SELECT count(*) FROM key_packages
			WHERE device_id = ? AND suite = ? AND last_resort = 0 AND claimed = 0`,
			deviceID, suite).Scan(&remaining)
	})
	if err != nil {
		return store.KeyPackage{}, 0, fmt.Errorf("sqlite: claim key package: %w", err)
	}
	return kp, remaining, nil
}

// KeyPackageDevice returns the device a package (stored, claimed or
// replaced) belongs to, or store.ErrNotFound.
func (s *Store) KeyPackageDevice(ctx context.Context, ref []byte) (int64, error) {
	db, err := s.reader()
	if err != nil {
		return 0, err
	}
	var id int64
	if err := db.QueryRowContext(ctx, `SELECT device_id FROM key_packages WHERE ref = ?`, nonNil(ref)).Scan(&id); err != nil {
		return 0, mapErr(err)
	}
	return id, nil
}

// CountKeyPackages counts the device's fresh, unclaimed packages of the
// suite; the last-resort one does not count.
func (s *Store) CountKeyPackages(ctx context.Context, deviceID int64, suite uint16) (int, error) {
	db, err := s.reader()
	if err != nil {
		return 0, err
	}
	var n int
	err = db.QueryRowContext(ctx, `
		SELECT count(*) FROM key_packages
		WHERE device_id = ? AND suite = ? AND last_resort = 0 AND claimed = 0`,
		deviceID, suite).Scan(&n)
	return n, mapErr(err)
}

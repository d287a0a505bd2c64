package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// CreateUser adds an account. A taken handle or phone is store.ErrExists.
func (s *Store) CreateUser(ctx context.Context, handle, phone string) (store.User, error) {
	u := store.User{Handle: handle, Phone: phone, Created: s.now().UTC()}
	err := s.w.do(ctx, func(tx *wtx) error {
		return tx.queryRow(`INSERT INTO users (handle, phone, created) VALUES (?, ?, ?) RETURNING id`,
			handle, nullString(phone), unixNano(u.Created)).Scan(&u.ID)
	})
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: create user: %w", err)
	}
	u.Created = fromNano(unixNano(u.Created))
	return u, nil
}

const userCols = `id, handle, coalesce(phone, ''), created, discoverable_handle, discoverable_phone, suspended`

func scanUser(row *sql.Row) (store.User, error) {
	var u store.User
	var created int64
	if err := row.Scan(&u.ID, &u.Handle, &u.Phone, &created, &u.DiscoverableByHandle, &u.DiscoverableByPhone, &u.Suspended); err != nil {
		return store.User{}, mapErr(err)
	}
	u.Created = fromNano(created)
	return u, nil
}

func (s *Store) userWhere(ctx context.Context, where string, arg any) (store.User, error) {
	db, err := s.reader()
	if err != nil {
		return store.User{}, err
	}
	return scanUser(db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE `+where, arg))
}

// UserByID returns the user with the ID, or store.ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (store.User, error) {
	return s.userWhere(ctx, `id = ?`, id)
}

// UserByHandle returns the user with the handle, or store.ErrNotFound.
func (s *Store) UserByHandle(ctx context.Context, handle string) (store.User, error) {
	return s.userWhere(ctx, `handle = ?`, handle)
}

// UserByPhone returns the user with the phone number, or
// store.ErrNotFound. The empty phone belongs to nobody.
func (s *Store) UserByPhone(ctx context.Context, phone string) (store.User, error) {
	if phone == "" {
		return store.User{}, store.ErrNotFound
	}
	return s.userWhere(ctx, `phone = ?`, phone)
}

// SetDiscoverable sets whether the user may be found by handle and by
// phone number; an unknown user is store.ErrNotFound.
func (s *Store) SetDiscoverable(ctx context.Context, userID int64, byHandle, byPhone bool) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		// RowsAffected counts matched rows in SQLite, so setting the
		// values a user already has still finds the user.
		return mustAffect(tx.exec(`UPDATE users SET discoverable_handle = ?, discoverable_phone = ? WHERE id = ?`,
			byHandle, byPhone, userID))
	})
	if err != nil {
		return fmt.Errorf("sqlite: set discoverable: %w", err)
	}
	return nil
}

// CreateEnrollment stores an enrollment code's hash for its user.
func (s *Store) CreateEnrollment(ctx context.Context, e store.Enrollment) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO enrollments (code_hash, user_id, expires) VALUES (?, ?, ?)`,
			nonNil(e.CodeHash), e.UserID, unixNano(e.Expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: create enrollment: %w", err)
	}
	return nil
}

// RegisterDevice uses up the enrollment code and adds the device in one
// savepoint: if the device cannot be added (a taken name or auth key), the
// code is not used up. An expired code is left in place, so it stays
// ErrExpired rather than turning into ErrNotFound.
func (s *Store) RegisterDevice(ctx context.Context, codeHash []byte, name string, authKey []byte, now time.Time) (store.Device, error) {
	d := store.Device{Name: name, AuthKey: append([]byte(nil), authKey...), Created: s.now().UTC()}
	err := s.w.do(ctx, func(tx *wtx) error {
		var expires int64
		if err := tx.queryRow(`SELECT user_id, expires FROM enrollments WHERE code_hash = ?`,
			nonNil(codeHash)).Scan(&d.UserID, &expires); err != nil {
			return err
		}
		if !now.Before(fromNano(expires)) {
			return store.ErrExpired
		}
		if _, err := tx.exec(`DELETE FROM enrollments WHERE code_hash = ?`, nonNil(codeHash)); err != nil {
			return err
		}
		return tx.queryRow(`INSERT INTO devices (user_id, name, auth_key, created) VALUES (?, ?, ?, ?) RETURNING id`,
			d.UserID, name, nonNil(authKey), unixNano(d.Created)).Scan(&d.ID)
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlite: register device: %w", err)
	}
	d.Created = fromNano(unixNano(d.Created))
	return d, nil
}

const deviceCols = `id, user_id, name, auth_key, created`

type scanner interface{ Scan(...any) error }

func scanDevice(row scanner) (store.Device, error) {
	var d store.Device
	var created int64
	if err := row.Scan(&d.ID, &d.UserID, &d.Name, &d.AuthKey, &created); err != nil {
		return store.Device{}, mapErr(err)
	}
	d.Created = fromNano(created)
	return d, nil
}

// DeviceByID returns the device, or store.ErrNotFound.
func (s *Store) DeviceByID(ctx context.Context, id int64) (store.Device, error) {
	db, err := s.reader()
	if err != nil {
		return store.Device{}, err
	}
	return scanDevice(db.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id))
}

// DeviceByAuthKey returns the device with the public key, or
// store.ErrNotFound.
func (s *Store) DeviceByAuthKey(ctx context.Context, authKey []byte) (store.Device, error) {
	db, err := s.reader()
	if err != nil {
		return store.Device{}, err
	}
	return scanDevice(db.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE auth_key = ?`, nonNil(authKey)))
}

// DevicesOfUser returns the user's devices in the order they were added;
// an unknown user is store.ErrNotFound.
func (s *Store) DevicesOfUser(ctx context.Context, userID int64) ([]store.Device, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	if len(out) == 0 {
		if err := exists(ctx, db, `SELECT 1 FROM users WHERE id = ?`, userID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CreateSession stores a session token's hash for a device.
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO sessions (token_hash, device_id, expires) VALUES (?, ?, ?)`,
			nonNil(sess.TokenHash), sess.DeviceID, unixNano(sess.Expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: create session: %w", err)
	}
	return nil
}

// SessionDevice returns the device of a live session: an unknown token is
// store.ErrNotFound, one whose expiry is not after now store.ErrExpired.
func (s *Store) SessionDevice(ctx context.Context, tokenHash []byte, now time.Time) (store.Device, error) {
	db, err := s.reader()
	if err != nil {
		return store.Device{}, err
	}
	var expires int64
	var d store.Device
	var created int64
	err = db.QueryRowContext(ctx, `
		SELECT s.expires, d.id, d.user_id, d.name, d.auth_key, d.created
		FROM sessions s JOIN devices d ON d.id = s.device_id
		WHERE s.token_hash = ?`, nonNil(tokenHash)).
		Scan(&expires, &d.ID, &d.UserID, &d.Name, &d.AuthKey, &created)
	if err != nil {
		return store.Device{}, mapErr(err)
	}
	if !now.Before(fromNano(expires)) {
		return store.Device{}, store.ErrExpired
	}
	d.Created = fromNano(created)
	return d, nil
}

// DeleteSession removes a session; an unknown one is store.ErrNotFound.
func (s *Store) DeleteSession(ctx context.Context, tokenHash []byte) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		return mustAffect(tx.exec(`DELETE FROM sessions WHERE token_hash = ?`, nonNil(tokenHash)))
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete session: %w", err)
	}
	return nil
}

// mustAffect turns "changed no row" into store.ErrNotFound.
func mustAffect(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// exists is nil if the query finds a row and store.ErrNotFound if not. The
// list methods use it to tell "nothing in it" from "no such thing" only
// when the list came back empty, so the common case costs one query.
func exists(ctx context.Context, db *sql.DB, query string, args ...any) error {
	var one int
	err := db.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return mapErr(err)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-chat/switchboard/store"
)

// CreateUser adds an account. A taken handle or phone is store.ErrExists.
func (s *Store) CreateUser(ctx context.Context, handle, phone string) (store.User, error) {
	u := store.User{Handle: handle, Phone: phone, Created: fromNano(unixNano(s.now()))}
	err := s.write(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO users (handle, phone, created) VALUES ($1, $2, $3) RETURNING id`,
			handle, nullString(phone), unixNano(u.Created)).Scan(&u.ID)
	})
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: create user: %w", err)
	}
	return u, nil
}

const userCols = `id, handle, coalesce(phone, ''), created, discoverable_handle, discoverable_phone, suspended`

func (s *Store) userWhere(ctx context.Context, where string, arg any) (store.User, error) {
	db, err := s.db()
	if err != nil {
		return store.User{}, err
	}
	var u store.User
	var created int64
	if err := db.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE `+where, arg).Scan(
		&u.ID, &u.Handle, &u.Phone, &created, &u.DiscoverableByHandle, &u.DiscoverableByPhone, &u.Suspended); err != nil {
		return store.User{}, mapErr(err)
	}
	u.Created = fromNano(created)
	return u, nil
}

// UserByID returns the user with the ID, or store.ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (store.User, error) {
	return s.userWhere(ctx, `id = $1`, id)
}

// UserByHandle returns the user with the handle, or store.ErrNotFound.
func (s *Store) UserByHandle(ctx context.Context, handle string) (store.User, error) {
	return s.userWhere(ctx, `handle = $1`, handle)
}

// UserByPhone returns the user with the phone number, or
// store.ErrNotFound. The empty phone belongs to nobody.
func (s *Store) UserByPhone(ctx context.Context, phone string) (store.User, error) {
	if phone == "" {
		return store.User{}, store.ErrNotFound
	}
	return s.userWhere(ctx, `phone = $1`, phone)
}

// SetDiscoverable sets whether the user may be found by handle and by
// phone number; an unknown user is store.ErrNotFound.
func (s *Store) SetDiscoverable(ctx context.Context, userID int64, byHandle, byPhone bool) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		return mustAffect(tx.Exec(ctx, `UPDATE users SET discoverable_handle = $1, discoverable_phone = $2 WHERE id = $3`,
			byHandle, byPhone, userID))
	})
	if err != nil {
		return fmt.Errorf("postgres: set discoverable: %w", err)
	}
	return nil
}

// SetSuspended sets User.Suspended; an unknown user is store.ErrNotFound.
func (s *Store) SetSuspended(ctx context.Context, userID int64, suspended bool) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		return mustAffect(tx.Exec(ctx, `UPDATE users SET suspended = $1 WHERE id = $2`, suspended, userID))
	})
	if err != nil {
		return fmt.Errorf("postgres: set suspended: %w", err)
	}
	return nil
}

// CreateEnrollment stores an enrollment code's hash for its user.
func (s *Store) CreateEnrollment(ctx context.Context, e store.Enrollment) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO enrollments (code_hash, user_id, expires) VALUES ($1, $2, $3)`,
			nonNil(e.CodeHash), e.UserID, unixNano(e.Expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create enrollment: %w", err)
	}
	return nil
}

// RegisterDevice uses up the enrollment code and adds the device in one
// transaction. The code's row is locked, so of two replicas registering
// with one code at once, the second finds it gone (store.ErrNotFound).
func (s *Store) RegisterDevice(ctx context.Context, codeHash []byte, name string, authKey []byte, now time.Time) (store.Device, error) {
	d := store.Device{Name: name, AuthKey: append([]byte(nil), authKey...), Created: fromNano(unixNano(s.now()))}
	err := s.write(ctx, func(tx pgx.Tx) error {
		var expires int64
		if err := tx.QueryRow(ctx, `SELECT user_id, expires FROM enrollments WHERE code_hash = $1 FOR UPDATE`,
			nonNil(codeHash)).Scan(&d.UserID, &expires); err != nil {
			return mapErr(err)
		}
		if !now.Before(fromNano(expires)) {
			return store.ErrExpired
		}
		if _, err := tx.Exec(ctx, `DELETE FROM enrollments WHERE code_hash = $1`, nonNil(codeHash)); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO devices (user_id, name, auth_key, created) VALUES ($1, $2, $3, $4) RETURNING id`,
			d.UserID, name, nonNil(authKey), unixNano(d.Created)).Scan(&d.ID)
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("postgres: register device: %w", err)
	}
	return d, nil
}

const deviceCols = `id, user_id, name, auth_key, created`

func scanDevice(row pgx.Row) (store.Device, error) {
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
	db, err := s.db()
	if err != nil {
		return store.Device{}, err
	}
	return scanDevice(db.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id))
}

// DeviceByAuthKey returns the device with the public key, or
// store.ErrNotFound.
func (s *Store) DeviceByAuthKey(ctx context.Context, authKey []byte) (store.Device, error) {
	db, err := s.db()
	if err != nil {
		return store.Device{}, err
	}
	return scanDevice(db.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE auth_key = $1`, nonNil(authKey)))
}

// DevicesOfUser returns the user's devices in the order they were added;
// an unknown user is store.ErrNotFound.
func (s *Store) DevicesOfUser(ctx context.Context, userID int64) ([]store.Device, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE user_id = $1 ORDER BY id`, userID)
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
		if err := exists(ctx, db, `SELECT 1 FROM users WHERE id = $1`, userID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CreateSession stores a session token's hash for a device.
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO sessions (token_hash, device_id, expires) VALUES ($1, $2, $3)`,
			nonNil(sess.TokenHash), sess.DeviceID, unixNano(sess.Expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create session: %w", err)
	}
	return nil
}

// SessionDevice returns the device of a live session: an unknown token is
// store.ErrNotFound, one whose expiry is not after now store.ErrExpired.
func (s *Store) SessionDevice(ctx context.Context, tokenHash []byte, now time.Time) (store.Device, error) {
	db, err := s.db()
	if err != nil {
		return store.Device{}, err
	}
	var expires, created int64
	var d store.Device
	err = db.QueryRow(ctx, `
		SELECT s.expires, d.id, d.user_id, d.name, d.auth_key, d.created
		FROM sessions s JOIN devices d ON d.id = s.device_id
		WHERE s.token_hash = $1`, nonNil(tokenHash)).
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		return mustAffect(tx.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, nonNil(tokenHash)))
	})
	if err != nil {
		return fmt.Errorf("postgres: delete session: %w", err)
	}
	return nil
}

// Reachability returns the user's reachability; an unknown user is
// store.ErrNotFound.
func (s *Store) Reachability(ctx context.Context, userID int64) (store.Reachability, error) {
	db, err := s.db()
	if err != nil {
		return store.Reachability{}, err
	}
	var out store.Reachability
	var partners []string
	err = db.QueryRow(ctx, `SELECT u.reachability,
			coalesce((SELECT array_agg(domain ORDER BY domain) FROM user_reachable WHERE user_id = u.id), '{}')
		FROM users u WHERE u.id = $1`, userID).Scan(&out.Mode, &partners)
	if err != nil {
		return store.Reachability{}, fmt.Errorf("postgres: reachability: %w", mapErr(err))
	}
	if out.Mode == store.ReachSome && len(partners) > 0 {
		out.Partners = partners
	}
	return out, nil
}

// SetReachability replaces the user's reachability and partner list.
func (s *Store) SetReachability(ctx context.Context, userID int64, mode store.ReachMode, partners []string) error {
	if !mode.Valid() {
		return fmt.Errorf("postgres: set reachability: unknown mode %q", mode)
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := mustAffect(tx.Exec(ctx, `UPDATE users SET reachability = $1 WHERE id = $2`, string(mode), userID)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM user_reachable WHERE user_id = $1`, userID); err != nil {
			return err
		}
		if mode != store.ReachSome {
			return nil
		}
		for _, d := range partners {
			if _, err := tx.Exec(ctx, `INSERT INTO user_reachable (user_id, domain) VALUES ($1, $2) ON CONFLICT DO NOTHING`, userID, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: set reachability: %w", err)
	}
	return nil
}

package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// CreateUser adds an account. A taken handle or phone is store.ErrExists.
func (s *Store) CreateUser(ctx context.Context, handle, phone string) (store.User, error) {
	created := unixNano(s.now())
	u := store.User{Handle: handle, Phone: phone, Created: fromNano(created)}
	err := s.write(ctx, func(t tx) error {
		return t.queryRow(`INSERT INTO users (handle, phone, created) VALUES (?, ?, ?) RETURNING id`,
			handle, nullString(phone), created).Scan(&u.ID)
	})
	if err != nil {
		return store.User{}, s.fail("create user", err)
	}
	return u, nil
}

const userCols = `id, handle, coalesce(phone, ''), created, discoverable_handle, discoverable_phone, suspended`

func scanUser(row Row) (store.User, error) {
	var u store.User
	var created, byHandle, byPhone, suspended int64
	if err := row.Scan(&u.ID, &u.Handle, &u.Phone, &created, &byHandle, &byPhone, &suspended); err != nil {
		return store.User{}, err
	}
	u.Created = fromNano(created)
	u.DiscoverableByHandle, u.DiscoverableByPhone, u.Suspended = byHandle != 0, byPhone != 0, suspended != 0
	return u, nil
}

func (s *Store) userWhere(ctx context.Context, where string, arg any) (store.User, error) {
	t, err := s.read(ctx)
	if err != nil {
		return store.User{}, err
	}
	return scanUser(t.queryRow(`SELECT `+userCols+` FROM users WHERE `+where, arg))
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
// phone number; an unknown user is store.ErrNotFound. Both databases count
// the rows an UPDATE matched, so setting the values a user already has
// still finds the user.
func (s *Store) SetDiscoverable(ctx context.Context, userID int64, byHandle, byPhone bool) error {
	err := s.write(ctx, func(t tx) error {
		return mustAffect(t.exec(`UPDATE users SET discoverable_handle = ?, discoverable_phone = ? WHERE id = ?`,
			flag(byHandle), flag(byPhone), userID))
	})
	if err != nil {
		return s.fail("set discoverable", err)
	}
	return nil
}

// SetSuspended sets User.Suspended; an unknown user is store.ErrNotFound.
func (s *Store) SetSuspended(ctx context.Context, userID int64, suspended bool) error {
	err := s.write(ctx, func(t tx) error {
		return mustAffect(t.exec(`UPDATE users SET suspended = ? WHERE id = ?`, flag(suspended), userID))
	})
	if err != nil {
		return s.fail("set suspended", err)
	}
	return nil
}

// CreateEnrollment stores an enrollment code's hash for its user.
func (s *Store) CreateEnrollment(ctx context.Context, e store.Enrollment) error {
	err := s.write(ctx, func(t tx) error {
		_, err := t.exec(`INSERT INTO enrollments (code_hash, user_id, expires) VALUES (?, ?, ?)`,
			nonNil(e.CodeHash), e.UserID, unixNano(e.Expires))
		return err
	})
	if err != nil {
		return s.fail("create enrollment", err)
	}
	return nil
}

// RegisterDevice uses up the enrollment code and adds the device in one
// transaction: if the device cannot be added (a taken name or auth key),
// the code is not used up. An expired code is left in place, so it stays
// ErrExpired rather than turning into ErrNotFound. The code's row is
// locked, so of two writers registering with one code at once, the second
// finds it gone (store.ErrNotFound).
func (s *Store) RegisterDevice(ctx context.Context, codeHash []byte, name string, authKey []byte, now time.Time) (store.Device, error) {
	created := unixNano(s.now())
	d := store.Device{Name: name, AuthKey: append([]byte(nil), authKey...), Created: fromNano(created)}
	err := s.write(ctx, func(t tx) error {
		var expires int64
		if err := t.queryRow(t.locking(`SELECT user_id, expires FROM enrollments WHERE code_hash = ?`),
			nonNil(codeHash)).Scan(&d.UserID, &expires); err != nil {
			return err
		}
		if !now.Before(fromNano(expires)) {
			return store.ErrExpired
		}
		if _, err := t.exec(`DELETE FROM enrollments WHERE code_hash = ?`, nonNil(codeHash)); err != nil {
			return err
		}
		return t.queryRow(`INSERT INTO devices (user_id, name, auth_key, created) VALUES (?, ?, ?, ?) RETURNING id`,
			d.UserID, name, nonNil(authKey), created).Scan(&d.ID)
	})
	if err != nil {
		return store.Device{}, s.fail("register device", err)
	}
	return d, nil
}

const deviceCols = `id, user_id, name, auth_key, created`

func scanDevice(row Row) (store.Device, error) {
	var d store.Device
	var created int64
	if err := row.Scan(&d.ID, &d.UserID, &d.Name, &d.AuthKey, &created); err != nil {
		return store.Device{}, err
	}
	d.Created = fromNano(created)
	return d, nil
}

// DeviceByID returns the device, or store.ErrNotFound.
func (s *Store) DeviceByID(ctx context.Context, id int64) (store.Device, error) {
	t, err := s.read(ctx)
	if err != nil {
		return store.Device{}, err
	}
	return scanDevice(t.queryRow(`SELECT `+deviceCols+` FROM devices WHERE id = ?`, id))
}

// DeviceByAuthKey returns the device with the public key, or
// store.ErrNotFound.
func (s *Store) DeviceByAuthKey(ctx context.Context, authKey []byte) (store.Device, error) {
	t, err := s.read(ctx)
	if err != nil {
		return store.Device{}, err
	}
	return scanDevice(t.queryRow(`SELECT `+deviceCols+` FROM devices WHERE auth_key = ?`, nonNil(authKey)))
}

// DevicesOfUser returns the user's devices in the order they were added;
// an unknown user is store.ErrNotFound. The list methods tell "nothing in
// it" from "no such thing" only when the list came back empty, so the
// common case costs one query.
func (s *Store) DevicesOfUser(ctx context.Context, userID int64) ([]store.Device, error) {
	t, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	out, err := collect(t.rows(`SELECT `+deviceCols+` FROM devices WHERE user_id = ? ORDER BY id`, userID),
		func(r Rows) (store.Device, error) { return scanDevice(r) })
	if err == nil && len(out) == 0 {
		err = t.exists(`SELECT 1 FROM users WHERE id = ?`, userID)
	}
	return out, err
}

// CreateSession stores a session token's hash for a device.
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	err := s.write(ctx, func(t tx) error {
		_, err := t.exec(`INSERT INTO sessions (token_hash, device_id, expires) VALUES (?, ?, ?)`,
			nonNil(sess.TokenHash), sess.DeviceID, unixNano(sess.Expires))
		return err
	})
	if err != nil {
		return s.fail("create session", err)
	}
	return nil
}

// SessionDevice returns the device of a live session: an unknown token is
// store.ErrNotFound, an expired one store.ErrExpired.
func (s *Store) SessionDevice(ctx context.Context, tokenHash []byte, now time.Time) (store.Device, error) {
	_, d, err := s.LiveSession(ctx, tokenHash, now)
	return d, err
}

// LiveSession is SessionDevice with the session itself, whose expiry a
// cache of sessions must honour.
func (s *Store) LiveSession(ctx context.Context, tokenHash []byte, now time.Time) (store.Session, store.Device, error) {
	t, err := s.read(ctx)
	if err != nil {
		return store.Session{}, store.Device{}, err
	}
	var expires, created int64
	var d store.Device
	err = t.queryRow(`
		SELECT s.expires, d.id, d.user_id, d.name, d.auth_key, d.created
		FROM sessions s JOIN devices d ON d.id = s.device_id
		WHERE s.token_hash = ?`, nonNil(tokenHash)).
		Scan(&expires, &d.ID, &d.UserID, &d.Name, &d.AuthKey, &created)
	if err != nil {
		return store.Session{}, store.Device{}, err
	}
	if !now.Before(fromNano(expires)) {
		return store.Session{}, store.Device{}, store.ErrExpired
	}
	d.Created = fromNano(created)
	return store.Session{TokenHash: tokenHash, DeviceID: d.ID, Expires: fromNano(expires)}, d, nil
}

// DeleteSession removes a session; an unknown one is store.ErrNotFound.
func (s *Store) DeleteSession(ctx context.Context, tokenHash []byte) error {
	err := s.write(ctx, func(t tx) error {
		return mustAffect(t.exec(`DELETE FROM sessions WHERE token_hash = ?`, nonNil(tokenHash)))
	})
	if err != nil {
		return s.fail("delete session", err)
	}
	return nil
}

// Reachability returns the user's third-party reachability; an unknown
// user is store.ErrNotFound. One statement reads the mode and the list
// together, so a concurrent SetReachability is seen whole or not at all.
func (s *Store) Reachability(ctx context.Context, userID int64) (store.Reachability, error) {
	t, err := s.read(ctx)
	if err != nil {
		return store.Reachability{}, err
	}
	type row struct {
		mode   store.ReachMode
		domain *string // NULL: the user has no partner rows
	}
	rows, err := collect(t.rows(`SELECT u.reachability, r.domain FROM users u
		LEFT JOIN user_reachable r ON r.user_id = u.id WHERE u.id = ? ORDER BY r.domain`, userID),
		func(r Rows) (row, error) {
			var x row
			return x, r.Scan(&x.mode, &x.domain)
		})
	if err != nil {
		return store.Reachability{}, s.fail("reachability", err)
	}
	if len(rows) == 0 {
		return store.Reachability{}, s.fail("reachability", store.ErrNotFound)
	}
	out := store.Reachability{Mode: rows[0].mode}
	for _, r := range rows {
		if r.domain != nil && out.Mode == store.ReachSome {
			out.Partners = append(out.Partners, *r.domain)
		}
	}
	return out, nil
}

// SetReachability replaces the user's mode and partner list in one
// transaction.
func (s *Store) SetReachability(ctx context.Context, userID int64, mode store.ReachMode, partners []string) error {
	if !mode.Valid() {
		return s.fail("set reachability", fmt.Errorf("unknown mode %q", mode))
	}
	err := s.write(ctx, func(t tx) error {
		if err := mustAffect(t.exec(`UPDATE users SET reachability = ? WHERE id = ?`, string(mode), userID)); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM user_reachable WHERE user_id = ?`, userID); err != nil {
			return err
		}
		if mode != store.ReachSome {
			return nil
		}
		for _, d := range partners {
			if _, err := t.exec(`INSERT INTO user_reachable (user_id, domain) VALUES (?, ?) ON CONFLICT DO NOTHING`,
				userID, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail("set reachability", err)
	}
	return nil
}

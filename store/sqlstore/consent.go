package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Consent: contacts and message requests (docs/consent.md). A user's
// consent changes lock the user's row (where the dialect locks rows), so
// that changes from several writers run one after the other.

// userLocked is nil for a known user, whose row it locks, and
// store.ErrNotFound otherwise.
func userLocked(t tx, userID int64) error {
	return t.exists(t.locking(`SELECT 1 FROM users WHERE id = ?`), userID)
}

// pendingLocked is nil if the request is pending, whose row it locks, and
// store.ErrNotFound if not.
func pendingLocked(t tx, userID int64, peer, roomID string) error {
	return t.exists(t.locking(`SELECT 1 FROM message_requests
		WHERE user_id = ? AND peer = ? AND room_id = ? AND state = 'pending'`), userID, peer, roomID)
}

// dropRoomQueued removes the entries of a room from the queues of the
// user's devices: what a declined room had waiting is never delivered.
func dropRoomQueued(t tx, userID int64, roomID string) error {
	if roomID == "" {
		return nil
	}
	_, err := t.exec(`DELETE FROM device_queue
		WHERE device_id IN (SELECT id FROM devices WHERE user_id = ?)
		AND message_id IN (SELECT id FROM room_messages WHERE room_id = ?)`, userID, roomID)
	return err
}

// declinePending declines the given pending requests and drops their
// rooms' queued entries.
func declinePending(t tx, userID int64, peer string, rooms []string) error {
	for _, room := range rooms {
		if _, err := t.exec(`UPDATE message_requests SET state = 'declined'
			WHERE user_id = ? AND peer = ? AND room_id = ? AND state = 'pending'`, userID, peer, room); err != nil {
			return err
		}
		if err := dropRoomQueued(t, userID, room); err != nil {
			return err
		}
	}
	return nil
}

// pendingRooms lists the rooms of a peer's pending requests to the user.
func pendingRooms(t tx, userID int64, peer string) ([]string, error) {
	return collect(t.rows(`SELECT room_id FROM message_requests
		WHERE user_id = ? AND peer = ? AND state = 'pending' ORDER BY room_id`, userID, peer),
		func(r Rows) (string, error) {
			var room string
			return room, r.Scan(&room)
		})
}

func putContact(t tx, userID int64, peer string, state store.ContactState, now time.Time) error {
	_, err := t.exec(`INSERT INTO contacts (user_id, peer, state, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, peer) DO UPDATE SET state = excluded.state, updated = excluded.updated`,
		userID, peer, string(state), unixNano(now))
	return err
}

func removePending(t tx, userID int64, peer string) error {
	_, err := t.exec(`DELETE FROM message_requests WHERE user_id = ? AND peer = ? AND state = 'pending'`, userID, peer)
	return err
}

// Contact returns the user's decision about a peer.
func (s *Store) Contact(ctx context.Context, userID int64, peer string) (store.ContactState, error) {
	t, err := s.read(ctx)
	if err != nil {
		return "", err
	}
	var st string
	err = t.queryRow(`SELECT state FROM contacts WHERE user_id = ? AND peer = ?`, userID, peer).Scan(&st)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.ContactNone, nil
	case err != nil:
		return "", s.fail("contact", err)
	}
	return store.ContactState(st), nil
}

// SetContact records the user's decision and its effects in one
// transaction.
func (s *Store) SetContact(ctx context.Context, userID int64, peer string, state store.ContactState, now time.Time) error {
	if !state.Valid() {
		return s.fail("set contact", fmt.Errorf("unknown state %q", state))
	}
	err := s.write(ctx, func(t tx) error {
		if err := userLocked(t, userID); err != nil {
			return err
		}
		switch state {
		case store.ContactNone:
			_, err := t.exec(`DELETE FROM contacts WHERE user_id = ? AND peer = ?`, userID, peer)
			return err
		case store.ContactAccepted:
			if err := removePending(t, userID, peer); err != nil {
				return err
			}
		case store.ContactBlocked:
			rooms, err := pendingRooms(t, userID, peer)
			if err != nil {
				return err
			}
			if err := declinePending(t, userID, peer, rooms); err != nil {
				return err
			}
		}
		return putContact(t, userID, peer, state, now)
	})
	if err != nil {
		return s.fail("set contact", err)
	}
	return nil
}

// AddContact accepts a peer the user has made no decision about.
func (s *Store) AddContact(ctx context.Context, userID int64, peer string, now time.Time) (store.ContactState, error) {
	var held store.ContactState
	err := s.write(ctx, func(t tx) error {
		if err := userLocked(t, userID); err != nil {
			return err
		}
		var st string
		err := t.queryRow(`SELECT state FROM contacts WHERE user_id = ? AND peer = ?`, userID, peer).Scan(&st)
		switch {
		case err == nil && store.ContactState(st) == store.ContactBlocked:
			held = store.ContactBlocked
			return nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		held = store.ContactAccepted
		if err := removePending(t, userID, peer); err != nil {
			return err
		}
		if err == nil {
			return nil // accepted already
		}
		return putContact(t, userID, peer, store.ContactAccepted, now)
	})
	if err != nil {
		return "", s.fail("add contact", err)
	}
	return held, nil
}

// Contacts lists the user's contacts in a state, by peer.
func (s *Store) Contacts(ctx context.Context, userID int64, state store.ContactState) ([]store.Contact, error) {
	t, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	out, err := collect(t.rows(`SELECT peer, updated FROM contacts WHERE user_id = ? AND state = ? ORDER BY peer`,
		userID, string(state)),
		func(r Rows) (store.Contact, error) {
			c := store.Contact{UserID: userID, State: state}
			var updated int64
			err := r.Scan(&c.Peer, &updated)
			c.Updated = fromNano(updated)
			return c, err
		})
	if err != nil {
		return nil, s.fail("contacts", err)
	}
	if out == nil {
		out = []store.Contact{}
	}
	return out, nil
}

// AddRequest records a pending request unless the same one is stored.
func (s *Store) AddRequest(ctx context.Context, r store.MessageRequest) error {
	err := s.write(ctx, func(t tx) error {
		_, err := t.exec(`INSERT INTO message_requests (user_id, peer, room_id, state, created)
			VALUES (?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING`, r.UserID, r.Peer, r.RoomID, unixNano(r.Created))
		return err
	})
	if err != nil {
		return s.fail("add request", err)
	}
	return nil
}

// RemoveRequest removes a pending request.
func (s *Store) RemoveRequest(ctx context.Context, userID int64, peer, roomID string) error {
	err := s.write(ctx, func(t tx) error {
		return mustAffect(t.exec(`DELETE FROM message_requests
			WHERE user_id = ? AND peer = ? AND room_id = ? AND state = 'pending'`, userID, peer, roomID))
	})
	if err != nil {
		return s.fail("remove request", err)
	}
	return nil
}

// Requests lists the user's pending requests, oldest first.
func (s *Store) Requests(ctx context.Context, userID int64) ([]store.MessageRequest, error) {
	t, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	out, err := collect(t.rows(`SELECT peer, room_id, created FROM message_requests
		WHERE user_id = ? AND state = 'pending' ORDER BY created, peer, room_id`, userID),
		func(r Rows) (store.MessageRequest, error) {
			m := store.MessageRequest{UserID: userID, State: store.RequestPending}
			var created int64
			err := r.Scan(&m.Peer, &m.RoomID, &created)
			m.Created = fromNano(created)
			return m, err
		})
	if err != nil {
		return nil, s.fail("requests", err)
	}
	if out == nil {
		out = []store.MessageRequest{}
	}
	return out, nil
}

// DeclineRequest declines a pending request and drops its room's queued
// entries for the user's devices.
func (s *Store) DeclineRequest(ctx context.Context, userID int64, peer, roomID string) error {
	err := s.write(ctx, func(t tx) error {
		if err := pendingLocked(t, userID, peer, roomID); err != nil {
			return err
		}
		return declinePending(t, userID, peer, []string{roomID})
	})
	if err != nil {
		return s.fail("decline request", err)
	}
	return nil
}

// AcceptRequest accepts a pending request with its answer to the peer.
func (s *Store) AcceptRequest(ctx context.Context, userID int64, peer, roomID string, now time.Time, out []store.Outbound) error {
	if err := checkOutbound(out); err != nil {
		return s.fail("accept request", err)
	}
	err := s.write(ctx, func(t tx) error {
		if err := pendingLocked(t, userID, peer, roomID); err != nil {
			return err
		}
		if err := removePending(t, userID, peer); err != nil {
			return err
		}
		if err := putContact(t, userID, peer, store.ContactAccepted, now); err != nil {
			return err
		}
		return s.insertOutbound(t, out)
	})
	if err != nil {
		return s.fail("accept request", err)
	}
	return nil
}

// Refusing finds, in one query, the users who declined the room or
// blocked the sender. The IN lists name the users one placeholder each.
func (s *Store) Refusing(ctx context.Context, roomID, sender string, users []int64) ([]int64, error) {
	if len(users) == 0 {
		return nil, nil
	}
	t, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	// Asked for every message: one statement text per dialect and case,
	// the users as one JSON argument (Dialect.idList).
	ids := jsonIDs(users)
	var q result
	if sender == "" {
		q = t.rows(`SELECT user_id FROM message_requests WHERE room_id = ? AND state = 'declined'
			AND user_id IN (`+t.d.idList+`) ORDER BY 1`, roomID, ids)
	} else {
		q = t.rows(`SELECT user_id FROM message_requests WHERE room_id = ? AND state = 'declined'
			AND user_id IN (`+t.d.idList+`)
			UNION SELECT user_id FROM contacts WHERE peer = ? AND state = 'blocked'
			AND user_id IN (`+t.d.idList+`) ORDER BY 1`, roomID, ids, sender, ids)
	}
	out, err := collect(q, func(r Rows) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	})
	if err != nil {
		return nil, s.fail("refusing", err)
	}
	return out, nil
}

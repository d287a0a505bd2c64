package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Consent: contacts and message requests (docs/consent.md).

// userExists is nil for a known user and store.ErrNotFound otherwise.
func userExists(tx *wtx, userID int64) error {
	var one int
	return mapErr(tx.queryRow(`SELECT 1 FROM users WHERE id = ?`, userID).Scan(&one))
}

// dropRoomQueued removes the entries of a room from the queues of the
// user's devices: what a declined room had waiting is never delivered.
func dropRoomQueued(tx *wtx, userID int64, roomID string) error {
	if roomID == "" {
		return nil
	}
	_, err := tx.exec(`DELETE FROM device_queue
		WHERE device_id IN (SELECT id FROM devices WHERE user_id = ?)
		AND message_id IN (SELECT id FROM room_messages WHERE room_id = ?)`, userID, roomID)
	return err
}

// declinePending declines the given pending requests and drops their
// rooms' queued entries.
func declinePending(tx *wtx, userID int64, peer string, rooms []string) error {
	for _, room := range rooms {
		if _, err := tx.exec(`UPDATE message_requests SET state = 'declined'
			WHERE user_id = ? AND peer = ? AND room_id = ? AND state = 'pending'`, userID, peer, room); err != nil {
			return err
		}
		if err := dropRoomQueued(tx, userID, room); err != nil {
			return err
		}
	}
	return nil
}

// pendingRooms lists the rooms of a peer's pending requests to the user.
func pendingRooms(tx *wtx, userID int64, peer string) ([]string, error) {
	rows, err := tx.conn.QueryContext(tx.ctx, `SELECT room_id FROM message_requests
		WHERE user_id = ? AND peer = ? AND state = 'pending' ORDER BY room_id`, userID, peer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func putContact(tx *wtx, userID int64, peer string, state store.ContactState, now time.Time) error {
	_, err := tx.exec(`INSERT INTO contacts (user_id, peer, state, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, peer) DO UPDATE SET state = excluded.state, updated = excluded.updated`,
		userID, peer, string(state), unixNano(now))
	return err
}

func removePending(tx *wtx, userID int64, peer string) error {
	_, err := tx.exec(`DELETE FROM message_requests WHERE user_id = ? AND peer = ? AND state = 'pending'`, userID, peer)
	return err
}

// Contact returns the user's decision about a peer.
func (s *Store) Contact(ctx context.Context, userID int64, peer string) (store.ContactState, error) {
	db, err := s.reader()
	if err != nil {
		return "", err
	}
	var st string
	err = db.QueryRowContext(ctx, `SELECT state FROM contacts WHERE user_id = ? AND peer = ?`, userID, peer).Scan(&st)
	if err == sql.ErrNoRows {
		return store.ContactNone, nil
	} else if err != nil {
		return "", fmt.Errorf("sqlite: contact: %w", mapErr(err))
	}
	return store.ContactState(st), nil
}

// SetContact records the user's decision and its effects in one
// transaction.
func (s *Store) SetContact(ctx context.Context, userID int64, peer string, state store.ContactState, now time.Time) error {
	if !state.Valid() {
		return fmt.Errorf("sqlite: set contact: unknown state %q", state)
	}
	err := s.w.do(ctx, func(tx *wtx) error {
		if err := userExists(tx, userID); err != nil {
			return err
		}
		switch state {
		case store.ContactNone:
			_, err := tx.exec(`DELETE FROM contacts WHERE user_id = ? AND peer = ?`, userID, peer)
			return err
		case store.ContactAccepted:
			if err := removePending(tx, userID, peer); err != nil {
				return err
			}
		case store.ContactBlocked:
			rooms, err := pendingRooms(tx, userID, peer)
			if err != nil {
				return err
			}
			if err := declinePending(tx, userID, peer, rooms); err != nil {
				return err
			}
		}
		return putContact(tx, userID, peer, state, now)
	})
	if err != nil {
		return fmt.Errorf("sqlite: set contact: %w", err)
	}
	return nil
}

// AddContact accepts a peer the user has made no decision about.
func (s *Store) AddContact(ctx context.Context, userID int64, peer string, now time.Time) (store.ContactState, error) {
	var held store.ContactState
	err := s.w.do(ctx, func(tx *wtx) error {
		if err := userExists(tx, userID); err != nil {
			return err
		}
		var st string
		err := tx.queryRow(`SELECT state FROM contacts WHERE user_id = ? AND peer = ?`, userID, peer).Scan(&st)
		switch {
		case err == nil && store.ContactState(st) == store.ContactBlocked:
			held = store.ContactBlocked
			return nil
		case err != nil && err != sql.ErrNoRows:
			return err
		}
		held = store.ContactAccepted
		if err := removePending(tx, userID, peer); err != nil {
			return err
		}
		if err == nil {
			return nil // accepted already
		}
		return putContact(tx, userID, peer, store.ContactAccepted, now)
	})
	if err != nil {
		return "", fmt.Errorf("sqlite: add contact: %w", err)
	}
	return held, nil
}

// Contacts lists the user's contacts in a state, by peer.
func (s *Store) Contacts(ctx context.Context, userID int64, state store.ContactState) ([]store.Contact, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT peer, updated FROM contacts WHERE user_id = ? AND state = ? ORDER BY peer`, userID, string(state))
	if err != nil {
		return nil, fmt.Errorf("sqlite: contacts: %w", mapErr(err))
	}
	defer rows.Close()
	out := []store.Contact{}
	for rows.Next() {
		c := store.Contact{UserID: userID, State: state}
		var updated int64
		if err := rows.Scan(&c.Peer, &updated); err != nil {
			return nil, fmt.Errorf("sqlite: contacts: %w", mapErr(err))
		}
		c.Updated = fromNano(updated)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: contacts: %w", mapErr(err))
	}
	return out, nil
}

// AddRequest records a pending request unless the same one is stored.
func (s *Store) AddRequest(ctx context.Context, r store.MessageRequest) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO message_requests (user_id, peer, room_id, state, created)
			VALUES (?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING`, r.UserID, r.Peer, r.RoomID, unixNano(r.Created))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: add request: %w", err)
	}
	return nil
}

// RemoveRequest removes a pending request.
func (s *Store) RemoveRequest(ctx context.Context, userID int64, peer, roomID string) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		return mustAffect(tx.exec(`DELETE FROM message_requests
			WHERE user_id = ? AND peer = ? AND room_id = ? AND state = 'pending'`, userID, peer, roomID))
	})
	if err != nil {
		return fmt.Errorf("sqlite: remove request: %w", err)
	}
	return nil
}

// Requests lists the user's pending requests, oldest first.
func (s *Store) Requests(ctx context.Context, userID int64) ([]store.MessageRequest, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT peer, room_id, created FROM message_requests
		WHERE user_id = ? AND state = 'pending' ORDER BY created, peer, room_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: requests: %w", mapErr(err))
	}
	defer rows.Close()
	out := []store.MessageRequest{}
	for rows.Next() {
		r := store.MessageRequest{UserID: userID, State: store.RequestPending}
		var created int64
		if err := rows.Scan(&r.Peer, &r.RoomID, &created); err != nil {
			return nil, fmt.Errorf("sqlite: requests: %w", mapErr(err))
		}
		r.Created = fromNano(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: requests: %w", mapErr(err))
	}
	return out, nil
}

// existsPending is nil if the request is pending, ErrNotFound if not.
func existsPending(tx *wtx, userID int64, peer, roomID string) error {
	var one int
	return mapErr(tx.queryRow(`SELECT 1 FROM message_requests
		WHERE user_id = ? AND peer = ? AND room_id = ? AND state = 'pending'`, userID, peer, roomID).Scan(&one))
}

// DeclineRequest declines a pending request and drops its room's queued
// entries for the user's devices.
func (s *Store) DeclineRequest(ctx context.Context, userID int64, peer, roomID string) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		if err := existsPending(tx, userID, peer, roomID); err != nil {
			return err
		}
		return declinePending(tx, userID, peer, []string{roomID})
	})
	if err != nil {
		return fmt.Errorf("sqlite: decline request: %w", err)
	}
	return nil
}

// AcceptRequest accepts a pending request with its answer to the peer.
func (s *Store) AcceptRequest(ctx context.Context, userID int64, peer, roomID string, now time.Time, out []store.Outbound) error {
	if err := checkOutbound(out); err != nil {
		return fmt.Errorf("sqlite: accept request: %w", err)
	}
	err := s.w.do(ctx, func(tx *wtx) error {
		if err := existsPending(tx, userID, peer, roomID); err != nil {
			return err
		}
		if err := removePending(tx, userID, peer); err != nil {
			return err
		}
		if err := putContact(tx, userID, peer, store.ContactAccepted, now); err != nil {
			return err
		}
		return s.insertOutbound(tx, out)
	})
	if err != nil {
		return fmt.Errorf("sqlite: accept request: %w", err)
	}
	return nil
}

// Refusing finds, in one query, the users who declined the room or
// blocked the sender.
func (s *Store) Refusing(ctx context.Context, roomID, sender string, users []int64) ([]int64, error) {
	if len(users) == 0 {
		return nil, nil
	}
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	in := "?" + strings.Repeat(", ?", len(users)-1)
	args := make([]any, 0, 2*len(users)+2)
	args = append(args, roomID)
	for _, u := range users {
		args = append(args, u)
	}
	q := `SELECT user_id FROM message_requests WHERE room_id = ? AND state = 'declined' AND user_id IN (` + in + `)`
	if sender != "" {
		q += ` UNION SELECT user_id FROM contacts WHERE peer = ? AND state = 'blocked' AND user_id IN (` + in + `)`
		args = append(args, sender)
		for _, u := range users {
			args = append(args, u)
		}
	}
	q += ` ORDER BY 1`
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: refusing: %w", mapErr(err))
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: refusing: %w", mapErr(err))
		}
		if len(out) == 0 || out[len(out)-1] != id {
			out = append(out, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: refusing: %w", mapErr(err))
	}
	return out, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-chat/switchboard/store"
)

// userLocked checks the user exists and locks its row, so that a user's
// consent changes from several replicas run one after the other.
func userLocked(ctx context.Context, tx pgx.Tx, userID int64) error {
	return exists(ctx, tx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, userID)
}

func dropRoomQueued(ctx context.Context, tx pgx.Tx, userID int64, roomID string) error {
	if roomID == "" {
		return nil
	}
	_, err := tx.Exec(ctx, `DELETE FROM device_queue
		WHERE device_id IN (SELECT id FROM devices WHERE user_id = $1)
		AND message_id IN (SELECT id FROM room_messages WHERE room_id = $2)`, userID, roomID)
	return err
}

func declinePending(ctx context.Context, tx pgx.Tx, userID int64, peer string, rooms []string) error {
	for _, room := range rooms {
		if _, err := tx.Exec(ctx, `UPDATE message_requests SET state = 'declined'
			WHERE user_id = $1 AND peer = $2 AND room_id = $3 AND state = 'pending'`, userID, peer, room); err != nil {
			return err
		}
		if err := dropRoomQueued(ctx, tx, userID, room); err != nil {
			return err
		}
	}
	return nil
}

func putContact(ctx context.Context, tx pgx.Tx, userID int64, peer string, state store.ContactState, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO contacts (user_id, peer, state, updated) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, peer) DO UPDATE SET state = excluded.state, updated = excluded.updated`,
		userID, peer, string(state), unixNano(now))
	return err
}

func removePending(ctx context.Context, tx pgx.Tx, userID int64, peer string) error {
	_, err := tx.Exec(ctx, `DELETE FROM message_requests WHERE user_id = $1 AND peer = $2 AND state = 'pending'`, userID, peer)
	return err
}

// Contact returns the user's decision about a peer.
func (s *Store) Contact(ctx context.Context, userID int64, peer string) (store.ContactState, error) {
	db, err := s.db()
	if err != nil {
		return "", err
	}
	var st string
	err = db.QueryRow(ctx, `SELECT state FROM contacts WHERE user_id = $1 AND peer = $2`, userID, peer).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ContactNone, nil
	} else if err != nil {
		return "", fmt.Errorf("postgres: contact: %w", mapErr(err))
	}
	return store.ContactState(st), nil
}

// SetContact records the user's decision about a peer with its effects.
func (s *Store) SetContact(ctx context.Context, userID int64, peer string, state store.ContactState, now time.Time) error {
	if !state.Valid() {
		return fmt.Errorf("postgres: set contact: unknown state %q", state)
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := userLocked(ctx, tx, userID); err != nil {
			return err
		}
		switch state {
		case store.ContactNone:
			_, err := tx.Exec(ctx, `DELETE FROM contacts WHERE user_id = $1 AND peer = $2`, userID, peer)
			return err
		case store.ContactAccepted:
			if err := removePending(ctx, tx, userID, peer); err != nil {
				return err
			}
		case store.ContactBlocked:
			rows, err := tx.Query(ctx, `SELECT room_id FROM message_requests
				WHERE user_id = $1 AND peer = $2 AND state = 'pending' ORDER BY room_id`, userID, peer)
			if err != nil {
				return err
			}
			rooms, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			if err := declinePending(ctx, tx, userID, peer, rooms); err != nil {
				return err
			}
		}
		return putContact(ctx, tx, userID, peer, state, now)
	})
	if err != nil {
		return fmt.Errorf("postgres: set contact: %w", err)
	}
	return nil
}

// AddContact makes the peer an accepted contact unless it is blocked.
func (s *Store) AddContact(ctx context.Context, userID int64, peer string, now time.Time) (store.ContactState, error) {
	var held store.ContactState
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := userLocked(ctx, tx, userID); err != nil {
			return err
		}
		var st string
		err := tx.QueryRow(ctx, `SELECT state FROM contacts WHERE user_id = $1 AND peer = $2`, userID, peer).Scan(&st)
		switch {
		case err == nil && store.ContactState(st) == store.ContactBlocked:
			held = store.ContactBlocked
			return nil
		case err != nil && !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		held = store.ContactAccepted
		if err := removePending(ctx, tx, userID, peer); err != nil {
			return err
		}
		if err == nil {
			return nil
		}
		return putContact(ctx, tx, userID, peer, store.ContactAccepted, now)
	})
	if err != nil {
		return "", fmt.Errorf("postgres: add contact: %w", err)
	}
	return held, nil
}

// Contacts lists the user's contacts in a state, by peer.
func (s *Store) Contacts(ctx context.Context, userID int64, state store.ContactState) ([]store.Contact, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT peer, updated FROM contacts WHERE user_id = $1 AND state = $2 ORDER BY peer`, userID, string(state))
	if err != nil {
		return nil, fmt.Errorf("postgres: contacts: %w", mapErr(err))
	}
	defer rows.Close()
	out := []store.Contact{}
	for rows.Next() {
		c := store.Contact{UserID: userID, State: state}
		var updated int64
		if err := rows.Scan(&c.Peer, &updated); err != nil {
			return nil, fmt.Errorf("postgres: contacts: %w", mapErr(err))
		}
		c.Updated = fromNano(updated)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: contacts: %w", mapErr(err))
	}
	return out, nil
}

// AddRequest records a pending message request unless one is stored.
func (s *Store) AddRequest(ctx context.Context, r store.MessageRequest) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO message_requests (user_id, peer, room_id, state, created)
			VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT DO NOTHING`, r.UserID, r.Peer, r.RoomID, unixNano(r.Created))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: add request: %w", err)
	}
	return nil
}

// RemoveRequest removes a pending request.
func (s *Store) RemoveRequest(ctx context.Context, userID int64, peer, roomID string) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		return mustAffect(tx.Exec(ctx, `DELETE FROM message_requests
			WHERE user_id = $1 AND peer = $2 AND room_id = $3 AND state = 'pending'`, userID, peer, roomID))
	})
	if err != nil {
		return fmt.Errorf("postgres: remove request: %w", err)
	}
	return nil
}

// Requests lists the user's pending requests, oldest first.
func (s *Store) Requests(ctx context.Context, userID int64) ([]store.MessageRequest, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT peer, room_id, created FROM message_requests
		WHERE user_id = $1 AND state = 'pending' ORDER BY created, peer, room_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: requests: %w", mapErr(err))
	}
	defer rows.Close()
	out := []store.MessageRequest{}
	for rows.Next() {
		r := store.MessageRequest{UserID: userID, State: store.RequestPending}
		var created int64
		if err := rows.Scan(&r.Peer, &r.RoomID, &created); err != nil {
			return nil, fmt.Errorf("postgres: requests: %w", mapErr(err))
		}
		r.Created = fromNano(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: requests: %w", mapErr(err))
	}
	return out, nil
}

func pendingLocked(ctx context.Context, tx pgx.Tx, userID int64, peer, roomID string) error {
	return exists(ctx, tx, `SELECT 1 FROM message_requests
		WHERE user_id = $1 AND peer = $2 AND room_id = $3 AND state = 'pending' FOR UPDATE`, userID, peer, roomID)
}

// DeclineRequest declines a pending request and drops the room's queued
// entries for the user's devices.
func (s *Store) DeclineRequest(ctx context.Context, userID int64, peer, roomID string) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := pendingLocked(ctx, tx, userID, peer, roomID); err != nil {
			return err
		}
		return declinePending(ctx, tx, userID, peer, []string{roomID})
	})
	if err != nil {
		return fmt.Errorf("postgres: decline request: %w", err)
	}
	return nil
}

// AcceptRequest accepts a pending request, with its outbox entries.
func (s *Store) AcceptRequest(ctx context.Context, userID int64, peer, roomID string, now time.Time, out []store.Outbound) error {
	if err := checkOutbound(out); err != nil {
		return fmt.Errorf("postgres: accept request: %w", err)
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := pendingLocked(ctx, tx, userID, peer, roomID); err != nil {
			return err
		}
		if err := removePending(ctx, tx, userID, peer); err != nil {
			return err
		}
		if err := putContact(ctx, tx, userID, peer, store.ContactAccepted, now); err != nil {
			return err
		}
		return s.insertOutbound(ctx, tx, out)
	})
	if err != nil {
		return fmt.Errorf("postgres: accept request: %w", err)
	}
	return nil
}

// Refusing returns those of users whose devices must not get a message of
// roomID, sorted, each once.
func (s *Store) Refusing(ctx context.Context, roomID, sender string, users []int64) ([]int64, error) {
	if len(users) == 0 {
		return nil, nil
	}
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT user_id FROM message_requests
			WHERE room_id = $1 AND state = 'declined' AND user_id = ANY($2)
		UNION SELECT user_id FROM contacts
			WHERE $3 != '' AND peer = $3 AND state = 'blocked' AND user_id = ANY($2)
		ORDER BY 1`, roomID, users, sender)
	if err != nil {
		return nil, fmt.Errorf("postgres: refusing: %w", mapErr(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("postgres: refusing: %w", mapErr(err))
	}
	return out, nil
}

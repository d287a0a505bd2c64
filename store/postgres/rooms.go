package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-chat/switchboard/store"
)

// CreateRoom adds a room and its members. A taken ID is store.ErrExists, an
// unknown creator store.ErrNotFound; a hosted room must name its creator.
func (s *Store) CreateRoom(ctx context.Context, r store.Room, members []store.RoomMember) error {
	if r.Hub == "" && r.CreatorID == 0 {
		return fmt.Errorf("postgres: create room: a hosted room needs its creator: %w", store.ErrNotFound)
	}
	if r.Created.IsZero() {
		r.Created = s.now()
	}
	var creator any
	if r.CreatorID != 0 {
		creator = r.CreatorID
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO rooms (id, hub, creator_id, epoch, version, state, created)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			r.ID, r.Hub, creator, epochIn(r.Epoch), r.Version, nonNil(r.State), unixNano(r.Created)); err != nil {
			return err
		}
		return insertMembers(ctx, tx, r.ID, members)
	})
	if err != nil {
		return fmt.Errorf("postgres: create room: %w", err)
	}
	return nil
}

func insertMembers(ctx context.Context, tx pgx.Tx, roomID string, members []store.RoomMember) error {
	for _, m := range members {
		if _, err := tx.Exec(ctx, `INSERT INTO room_members (room_id, user_id, role) VALUES ($1, $2, $3)`,
			roomID, m.UserID, string(m.Role)); err != nil {
			return err
		}
	}
	return nil
}

// Room returns the room, or store.ErrNotFound.
func (s *Store) Room(ctx context.Context, id string) (store.Room, error) {
	db, err := s.db()
	if err != nil {
		return store.Room{}, err
	}
	r := store.Room{ID: id}
	var epoch, created int64
	err = db.QueryRow(ctx, `SELECT r.hub, coalesce(r.creator_id, 0), r.epoch, r.version, r.state, r.created,
			coalesce((SELECT max(seq) FROM room_messages WHERE room_id = r.id), 0)
		FROM rooms r WHERE r.id = $1`, id).
		Scan(&r.Hub, &r.CreatorID, &epoch, &r.Version, &r.State, &created, &r.LastSeq)
	if err != nil {
		return store.Room{}, mapErr(err)
	}
	r.Epoch, r.Created = epochOut(epoch), fromNano(created)
	return r, nil
}

// RoomMembers returns the room's members ordered by user ID; an unknown
// room is store.ErrNotFound.
func (s *Store) RoomMembers(ctx context.Context, id string) ([]store.RoomMember, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT user_id, role FROM room_members WHERE room_id = $1 ORDER BY user_id`, id)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []store.RoomMember
	for rows.Next() {
		m := store.RoomMember{RoomID: id}
		if err := rows.Scan(&m.UserID, &m.Role); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	if len(out) == 0 {
		if err := exists(ctx, db, `SELECT 1 FROM rooms WHERE id = $1`, id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func isHandshake(k store.Kind) bool {
	return k == store.KindCommit || k == store.KindProposal
}

// Submit appends the message to the room's log and queues it, in one
// transaction, with the same order of checks as the SQLite store (a
// duplicate ClientID first, then the room, then Seq, then Version).
//
// Replicas agree on the room's order because the transaction first locks
// the room's row (SELECT ... FOR UPDATE): two Submits to one room, from
// any replicas, run one after the other, so the second sees the first's
// Version and last Seq. Seqs are therefore gap-free (unless a follower
// names the hub's), and of two commits for one epoch exactly one wins;
// the other is store.ErrConflict.
func (s *Store) Submit(ctx context.Context, sub store.Submission) (store.SubmitResult, error) {
	if err := checkOutbound(sub.Outbound); err != nil {
		return store.SubmitResult{}, fmt.Errorf("postgres: submit: %w", err)
	}
	recipients := dedupe(sub.Recipients)
	var res store.SubmitResult
	err := s.write(ctx, func(tx pgx.Tx) error {
		res = store.SubmitResult{}
		var version int64
		if err := tx.QueryRow(ctx, `SELECT version FROM rooms WHERE id = $1 FOR UPDATE`, sub.RoomID).Scan(&version); err != nil {
			return mapErr(err)
		}
		err := tx.QueryRow(ctx, `SELECT seq FROM room_messages WHERE room_id = $1 AND client_id = $2`,
			sub.RoomID, sub.ClientID).Scan(&res.Seq)
		if err == nil {
			res.Duplicate = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var last int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM room_messages WHERE room_id = $1`,
			sub.RoomID).Scan(&last); err != nil {
			return err
		}
		res.Seq = last + 1
		if sub.Seq != 0 {
			if sub.Seq <= last {
				return fmt.Errorf("seq %d is not after the log's last %d: %w", sub.Seq, last, store.ErrConflict)
			}
			res.Seq = sub.Seq
		}
		if isHandshake(sub.Kind) {
			if version != sub.PrevVersion {
				return store.ErrConflict
			}
			if _, err := tx.Exec(ctx, `UPDATE rooms SET version = version + 1, state = $1, epoch = $2 WHERE id = $3`,
				nonNil(sub.NewState), epochIn(sub.NewEpoch), sub.RoomID); err != nil {
				return err
			}
		}
		if sub.Members != nil {
			if _, err := tx.Exec(ctx, `DELETE FROM room_members WHERE room_id = $1`, sub.RoomID); err != nil {
				return err
			}
			if err := insertMembers(ctx, tx, sub.RoomID, sub.Members); err != nil {
				return err
			}
		}
		m := store.Message{RoomID: sub.RoomID, Seq: res.Seq, ClientID: sub.ClientID, SenderDevice: sub.SenderDevice,
			Sender: sub.Sender, Kind: sub.Kind, Epoch: sub.Epoch, Payload: sub.Payload, Frank: sub.Frank, Accepted: sub.Accepted}
		if err := s.appendMessage(ctx, tx, m, recipients); err != nil {
			return err
		}
		if w := sub.Welcome; w != nil {
			m.Seq, m.ClientID, m.Kind, m.Epoch, m.Payload, m.Frank = res.Seq+1, sub.ClientID+"/welcome", store.KindWelcome, sub.NewEpoch, w.Payload, nil
			if err := s.appendMessage(ctx, tx, m, dedupe(w.Recipients)); err != nil {
				return err
			}
		}
		return s.insertOutbound(ctx, tx, sub.Outbound)
	})
	if err != nil {
		return store.SubmitResult{}, fmt.Errorf("postgres: submit: %w", err)
	}
	return res, nil
}

// appendMessage adds m to its room's log, stamped now, and queues it.
//
// Cursors come from the counters row, whose lock the transaction then
// holds until it commits: queue entries therefore become visible in
// cursor order, and a device that has read up to cursor c can never later
// find an entry below c appear (which a sequence, handing out numbers
// outside the transaction's order, would allow).
func (s *Store) appendMessage(ctx context.Context, tx pgx.Tx, m store.Message, recipients []int64) error {
	var msgID int64
	if err := tx.QueryRow(ctx, `INSERT INTO room_messages
		(room_id, seq, client_id, sender_device, sender, kind, epoch, payload, created, frank, accepted)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
		m.RoomID, m.Seq, m.ClientID, m.SenderDevice, m.Sender, string(m.Kind),
		epochIn(m.Epoch), nonNil(m.Payload), unixNano(s.now()), nullBytes(m.Frank), m.Accepted).Scan(&msgID); err != nil {
		return err
	}
	if len(recipients) == 0 {
		return nil
	}
	var top int64
	if err := tx.QueryRow(ctx, `UPDATE counters SET value = value + $1 WHERE name = 'cursor' RETURNING value`,
		len(recipients)).Scan(&top); err != nil {
		return err
	}
	cursors := make([]int64, len(recipients))
	for i := range recipients {
		cursors[i] = top - int64(len(recipients)) + int64(i) + 1
	}
	_, err := tx.Exec(ctx, `INSERT INTO device_queue (device_id, cursor, message_id)
		SELECT d, c, $3 FROM unnest($1::bigint[], $2::bigint[]) AS t(d, c)`, recipients, cursors, msgID)
	return err
}

// dedupe drops repeated device IDs, keeping the first of each.
func dedupe(ids []int64) []int64 {
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

const messageCols = `m.room_id, m.seq, m.client_id, m.sender_device, m.sender, m.kind, m.epoch, m.payload, m.created, m.frank, m.accepted`

func scanMessage(row pgx.Row, dst ...any) (store.Message, error) {
	var m store.Message
	var epoch, created int64
	args := append(dst, &m.RoomID, &m.Seq, &m.ClientID, &m.SenderDevice, &m.Sender, &m.Kind, &epoch, &m.Payload, &created, &m.Frank, &m.Accepted)
	if err := row.Scan(args...); err != nil {
		return store.Message{}, mapErr(err)
	}
	m.Epoch, m.Created = epochOut(epoch), fromNano(created)
	return m, nil
}

// RoomMessages returns up to limit messages of the room's log after seq.
func (s *Store) RoomMessages(ctx context.Context, roomID string, after int64, limit int) ([]store.Message, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT `+messageCols+` FROM room_messages m
		WHERE m.room_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3`, roomID, after, max(limit, 1))
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	if len(out) == 0 {
		if err := exists(ctx, db, `SELECT 1 FROM rooms WHERE id = $1`, roomID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MessageByClientID finds the message submitted under an idempotency key.
func (s *Store) MessageByClientID(ctx context.Context, roomID, clientID string) (store.Message, error) {
	db, err := s.db()
	if err != nil {
		return store.Message{}, err
	}
	return scanMessage(db.QueryRow(ctx, `SELECT `+messageCols+` FROM room_messages m
		WHERE m.room_id = $1 AND m.client_id = $2`, roomID, clientID))
}

// MessageByFrank finds the message of a room's log stored with the frank.
func (s *Store) MessageByFrank(ctx context.Context, roomID string, frank []byte) (store.Message, error) {
	if len(frank) == 0 {
		return store.Message{}, store.ErrNotFound
	}
	db, err := s.db()
	if err != nil {
		return store.Message{}, err
	}
	return scanMessage(db.QueryRow(ctx, `SELECT `+messageCols+` FROM room_messages m
		WHERE m.room_id = $1 AND m.frank = $2 ORDER BY m.seq LIMIT 1`, roomID, frank))
}

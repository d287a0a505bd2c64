package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/switchboard-chat/switchboard/store"
)

// CreateRoom adds a room and its members. A taken ID is store.ErrExists, an
// unknown creator store.ErrNotFound. A zero Created is stamped now.
// Members' RoomID fields are ignored: they join r.ID. r.LastSeq is ignored.
//
// A follower's copy (r.Hub set) may have CreatorID 0, stored as a NULL
// creator_id; a room this provider hosts must name its creator, so a
// hosted room with CreatorID 0 is store.ErrNotFound, as user 0 always was.
func (s *Store) CreateRoom(ctx context.Context, r store.Room, members []store.RoomMember) error {
	if r.Hub == "" && r.CreatorID == 0 {
		return fmt.Errorf("sqlite: create room: a hosted room needs its creator: %w", store.ErrNotFound)
	}
	if r.Created.IsZero() {
		r.Created = s.now()
	}
	var creator any // NULL for none
	if r.CreatorID != 0 {
		creator = r.CreatorID
	}
	err := s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(`
			INSERT INTO rooms (id, hub, creator_id, epoch, version, state, created)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Hub, creator, epochIn(r.Epoch), r.Version, nonNil(r.State), unixNano(r.Created)); err != nil {
			return err
		}
		return insertMembers(tx, r.ID, members)
	})
	if err != nil {
		return fmt.Errorf("sqlite: create room: %w", err)
	}
	return nil
}

func insertMembers(tx *wtx, roomID string, members []store.RoomMember) error {
	for _, m := range members {
		if _, err := tx.insMember.ExecContext(tx.ctx, roomID, m.UserID, string(m.Role)); err != nil {
			return err
		}
	}
	return nil
}

// Room returns the room, or store.ErrNotFound. A NULL creator (a
// follower's copy) reads back as CreatorID 0; LastSeq is read from the log
// in the same statement, so it is the log's last Seq when the room was read.
func (s *Store) Room(ctx context.Context, id string) (store.Room, error) {
	db, err := s.reader()
	if err != nil {
		return store.Room{}, err
	}
	r := store.Room{ID: id}
	var epoch, created int64
	err = db.QueryRowContext(ctx, `SELECT r.hub, coalesce(r.creator_id, 0), r.epoch, r.version, r.state, r.created,
			coalesce((SELECT max(seq) FROM room_messages WHERE room_id = r.id), 0)
		FROM rooms r WHERE r.id = ?`, id).
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
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT user_id, role FROM room_members WHERE room_id = ? ORDER BY user_id`, id)
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
		if err := exists(ctx, db, `SELECT 1 FROM rooms WHERE id = ?`, id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// isHandshake says whether a kind moves the room's state and so is
// ordered by Version.
func isHandshake(k store.Kind) bool {
	return k == store.KindCommit || k == store.KindProposal
}

// Submit appends the message to the room's log and queues it for each
// recipient, in one savepoint of the writer's current group; it returns
// after the group's COMMIT. The order of checks matters:
//
//  1. A ClientID already in the room's log is a retry: the original Seq is
//     returned with Duplicate set, even for a commit whose PrevVersion is
//     now stale (because that commit is the one that moved it) or a sub.Seq
//     that is no longer after the log's end (because that message is the
//     one that took it).
//  2. An unknown room is store.ErrNotFound.
//  3. A sub.Seq other than 0 that is not greater than the log's last Seq
//     is store.ErrConflict, and nothing is written.
//  4. A handshake message (commit, proposal) whose PrevVersion is not the
//     room's Version is store.ErrConflict, and nothing is written. Other
//     kinds, welcome included, neither check nor move Version.
//
// The message takes sub.Seq, or the log's last Seq + 1 if sub.Seq is 0; a
// sub.Welcome goes right after it, with the same Sender. The same code
// serves hosted rooms and followers' copies (Room.Hub set): a copy takes
// the hub's Seqs, and its Members replace the member rows as a hosted
// room's do. Recipients named twice are queued once; an unknown recipient
// device is store.ErrNotFound, and then nothing at all is written.
// sub.Outbound goes into the outbox in the same savepoint, so it shares
// the message's fate.
func (s *Store) Submit(ctx context.Context, sub store.Submission) (store.SubmitResult, error) {
	if err := checkOutbound(sub.Outbound); err != nil {
		return store.SubmitResult{}, fmt.Errorf("sqlite: submit: %w", err)
	}
	recipients := dedupe(sub.Recipients)
	var res store.SubmitResult
	err := s.w.do(ctx, func(tx *wtx) error {
		res = store.SubmitResult{}
		err := tx.dupSeq.QueryRowContext(tx.ctx, sub.RoomID, sub.ClientID).Scan(&res.Seq)
		if err == nil {
			res.Duplicate = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var version, last int64
		if err := tx.roomHead.QueryRowContext(tx.ctx, sub.RoomID).Scan(&version, &last); err != nil {
			return err // no rows: store.ErrNotFound
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
			if _, err := tx.moveRoom.ExecContext(tx.ctx, nonNil(sub.NewState), epochIn(sub.NewEpoch), sub.RoomID); err != nil {
				return err
			}
		}
		if sub.Members != nil {
			if _, err := tx.delMembers.ExecContext(tx.ctx, sub.RoomID); err != nil {
				return err
			}
			if err := insertMembers(tx, sub.RoomID, sub.Members); err != nil {
				return err
			}
		}
		m := store.Message{RoomID: sub.RoomID, Seq: res.Seq, ClientID: sub.ClientID, SenderDevice: sub.SenderDevice,
			Sender: sub.Sender, Kind: sub.Kind, Epoch: sub.Epoch, Payload: sub.Payload, Frank: sub.Frank, Accepted: sub.Accepted}
		if err := s.appendMessage(tx, m, recipients); err != nil {
			return err
		}
		if w := sub.Welcome; w != nil {
			m.Seq, m.ClientID, m.Kind, m.Epoch, m.Payload, m.Frank = res.Seq+1, sub.ClientID+"/welcome", store.KindWelcome, sub.NewEpoch, w.Payload, nil
			if err := s.appendMessage(tx, m, dedupe(w.Recipients)); err != nil {
				return err
			}
		}
		return s.insertOutbound(tx, sub.Outbound)
	})
	if err != nil {
		return store.SubmitResult{}, fmt.Errorf("sqlite: submit: %w", err)
	}
	return res, nil
}

// appendMessage adds m to its room's log at m.Seq, stamped now (m.Created
// is ignored), and queues it for the recipients.
func (s *Store) appendMessage(tx *wtx, m store.Message, recipients []int64) error {
	var msgID int64
	if err := tx.insMessage.QueryRowContext(tx.ctx,
		m.RoomID, m.Seq, m.ClientID, m.SenderDevice, m.Sender, string(m.Kind),
		epochIn(m.Epoch), nonNil(m.Payload), unixNano(s.now()), nullBytes(m.Frank), m.Accepted).Scan(&msgID); err != nil {
		return err
	}
	if len(recipients) == 0 {
		return nil
	}
	// Take len(recipients) cursors at once; the savepoint gives them back
	// if anything below fails.
	var top int64
	if err := tx.takeCursors.QueryRowContext(tx.ctx, len(recipients)).Scan(&top); err != nil {
		return err
	}
	cursor := top - int64(len(recipients))
	for _, dev := range recipients {
		cursor++
		if _, err := tx.enqueue.ExecContext(tx.ctx, dev, cursor, msgID); err != nil {
			return err
		}
	}
	return nil
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

func scanMessage(rows interface{ Scan(...any) error }, dst ...any) (store.Message, error) {
	var m store.Message
	var epoch, created int64
	args := append(dst, &m.RoomID, &m.Seq, &m.ClientID, &m.SenderDevice, &m.Sender, &m.Kind, &epoch, &m.Payload, &created, &m.Frank, &m.Accepted)
	if err := rows.Scan(args...); err != nil {
		return store.Message{}, mapErr(err)
	}
	m.Epoch, m.Created = epochOut(epoch), fromNano(created)
	return m, nil
}

// RoomMessages returns up to limit messages of the room's log with Seq
// greater than after, in order; an unknown room is store.ErrNotFound. A
// limit of 0 or less is treated as 1.
func (s *Store) RoomMessages(ctx context.Context, roomID string, after int64, limit int) ([]store.Message, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT `+messageCols+` FROM room_messages m
		WHERE m.room_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?`, roomID, after, max(limit, 1))
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
		if err := exists(ctx, db, `SELECT 1 FROM rooms WHERE id = ?`, roomID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MessageByClientID finds the message submitted to a room under an
// idempotency key.
func (s *Store) MessageByClientID(ctx context.Context, roomID, clientID string) (store.Message, error) {
	db, err := s.reader()
	if err != nil {
		return store.Message{}, err
	}
	row := db.QueryRowContext(ctx, `SELECT `+messageCols+` FROM room_messages m
		WHERE m.room_id = ? AND m.client_id = ?`, roomID, clientID)
	return scanMessage(row)
}

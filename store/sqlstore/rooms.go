package sqlstore

import (
	"context"
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
		return s.fail("create room", fmt.Errorf("a hosted room needs its creator: %w", store.ErrNotFound))
	}
	if r.Created.IsZero() {
		r.Created = s.now()
	}
	var creator any // NULL for none
	if r.CreatorID != 0 {
		creator = r.CreatorID
	}
	err := s.write(ctx, func(t tx) error {
		if _, err := t.exec(`
			INSERT INTO rooms (id, hub, creator_id, epoch, version, state, created)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Hub, creator, epochIn(r.Epoch), r.Version, nonNil(r.State), unixNano(r.Created)); err != nil {
			return err
		}
		return insertMembers(t, r.ID, members)
	})
	if err != nil {
		return s.fail("create room", err)
	}
	return nil
}

func insertMembers(t tx, roomID string, members []store.RoomMember) error {
	for _, m := range members {
		if _, err := t.exec(`INSERT INTO room_members (room_id, user_id, role) VALUES (?, ?, ?)`,
			roomID, m.UserID, string(m.Role)); err != nil {
			return err
		}
	}
	return nil
}

// Room returns the room, or store.ErrNotFound. A NULL creator (a
// follower's copy) reads back as CreatorID 0; LastSeq is read from the log
// in the same statement, so it is the log's last Seq when the room was read.
func (s *Store) Room(ctx context.Context, id string) (store.Room, error) {
	t, err := s.read(ctx)
	if err != nil {
		return store.Room{}, err
	}
	r := store.Room{ID: id}
	var epoch, created int64
	err = t.queryRow(`SELECT r.hub, coalesce(r.creator_id, 0), r.epoch, r.version, r.state, r.created,
			coalesce((SELECT max(seq) FROM room_messages WHERE room_id = r.id), 0)
		FROM rooms r WHERE r.id = ?`, id).
		Scan(&r.Hub, &r.CreatorID, &epoch, &r.Version, &r.State, &created, &r.LastSeq)
	if err != nil {
		return store.Room{}, err
	}
	r.Epoch, r.Created = epochOut(epoch), fromNano(created)
	return r, nil
}

// RoomMembers returns the room's members ordered by user ID; an unknown
// room is store.ErrNotFound.
func (s *Store) RoomMembers(ctx context.Context, id string) ([]store.RoomMember, error) {
	t, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	out, err := collect(t.rows(`SELECT user_id, role FROM room_members WHERE room_id = ? ORDER BY user_id`, id),
		func(r Rows) (store.RoomMember, error) {
			m := store.RoomMember{RoomID: id}
			return m, r.Scan(&m.UserID, &m.Role)
		})
	if err == nil && len(out) == 0 {
		err = t.exists(`SELECT 1 FROM rooms WHERE id = ?`, id)
	}
	return out, err
}

// isHandshake says whether a kind moves the room's state and so is
// ordered by Version.
func isHandshake(k store.Kind) bool {
	return k == store.KindCommit || k == store.KindProposal
}

// roomHead reads the room's Version and the last Seq of its log, for a
// Submit. With row locks it first locks the room's row, so Submits to one
// room, from any writer, run one after the other; the log's end is then
// read by a statement of its own, started after the lock was granted (in
// READ COMMITTED a statement that waited for a lock still reads with the
// snapshot it started with, and could miss the message the lock's holder
// had just committed). SQLite's one writer needs no lock, and reads both in
// one statement.
func roomHead(t tx, roomID string) (version, last int64, err error) {
	if !t.d.rowLocks {
		err = t.queryRow(`SELECT r.version,
			coalesce((SELECT max(seq) FROM room_messages WHERE room_id = r.id), 0)
			FROM rooms r WHERE r.id = ?`, roomID).Scan(&version, &last)
		return version, last, err
	}
	if err := t.queryRow(`SELECT version FROM rooms WHERE id = ? FOR UPDATE`, roomID).Scan(&version); err != nil {
		return 0, 0, err
	}
	err = t.queryRow(`SELECT coalesce(max(seq), 0) FROM room_messages WHERE room_id = ?`, roomID).Scan(&last)
	return version, last, err
}

// Submit appends the message to the room's log and queues it for each
// recipient, in one transaction (in SQLite, one savepoint of the writer's
// current group). The order of checks matters:
//
//  1. An unknown room is store.ErrNotFound.
//  2. A ClientID already in the room's log is a retry: the original Seq is
//     returned with Duplicate set, even for a commit whose PrevVersion is
//     now stale (because that commit is the one that moved it) or a sub.Seq
//     that is no longer after the log's end (because that message is the
//     one that took it). (A room that is not there has no log, so 1 and 2
//     in either order give the same answers.)
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
// sub.Outbound goes into the outbox in the same transaction, so it shares
// the message's fate.
//
// Writers agree on a room's order because roomHead serialises Submits to
// the room: Seqs are gap-free (unless a follower names the hub's), and of
// two commits for one epoch exactly one wins; the other is
// store.ErrConflict.
func (s *Store) Submit(ctx context.Context, sub store.Submission) (store.SubmitResult, error) {
	if err := checkOutbound(sub.Outbound); err != nil {
		return store.SubmitResult{}, s.fail("submit", err)
	}
	var res store.SubmitResult
	if err := s.write(ctx, s.submitFn(sub, false, &res)); err != nil {
		return store.SubmitResult{}, s.fail("submit", err)
	}
	return res, nil
}

// SubmitQueued is Submit without waiting for the COMMIT, where the DB
// runs its writes in order (a QueuedWriter: SQLite); elsewhere it is
// errors.ErrUnsupported. The submission is queued behind every one queued
// before it; wait gives its result once it is durable. Seq, if not 0,
// must be exactly the log's LastSeq+1 when the submission runs, else
// ErrConflict: a hub that queues a room's messages with the Seqs it
// handed out in turn learns that one before failed, and no gap is ever
// written in its log.
func (s *Store) SubmitQueued(ctx context.Context, sub store.Submission) (wait func() (store.SubmitResult, error), err error) {
	q, ok := s.db.(QueuedWriter)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	if err := checkOutbound(sub.Outbound); err != nil {
		return nil, s.fail("submit", err)
	}
	res := new(store.SubmitResult)
	fn := s.submitFn(sub, true, res)
	w, err := q.WriteQueued(ctx, func(c Conn) error { return fn(tx{c, s.d}) })
	if err != nil {
		return nil, s.fail("submit", err)
	}
	return func() (store.SubmitResult, error) {
		if err := w(); err != nil {
			return store.SubmitResult{}, s.fail("submit", err)
		}
		return *res, nil
	}, nil
}

// QueuesSubmissions reports whether SubmitQueued works on this store's DB.
func (s *Store) QueuesSubmissions() bool {
	_, ok := s.db.(QueuedWriter)
	return ok
}

// submitFn is Submit's transaction, writing its result to res; with
// contiguous, a Seq must directly follow the log's last.
func (s *Store) submitFn(sub store.Submission, contiguous bool, res *store.SubmitResult) func(t tx) error {
	recipients := dedupe(sub.Recipients)
	return func(t tx) error {
		*res = store.SubmitResult{}
		version, last, err := roomHead(t, sub.RoomID)
		if err != nil {
			return err
		}
		// A duplicate is answered as such whatever else is wrong with it.
		// A message that changes nothing but the log is looked for only
		// when something is (a Seq taken), or when its insert finds the
		// client ID taken: a statement fewer for the single writer on
		// every message. A handshake, which changes the room before its
		// insert, is looked for first.
		lookedFor := isHandshake(sub.Kind) || sub.Members != nil || sub.Welcome != nil
		if lookedFor {
			if dup, err := duplicateOf(t, sub, res); err != nil || dup {
				return err
			}
		}
		res.Seq = last + 1
		if sub.Seq != 0 {
			var conflict error
			if sub.Seq <= last {
				conflict = fmt.Errorf("seq %d is not after the log's last %d: %w", sub.Seq, last, store.ErrConflict)
			} else if contiguous && sub.Seq != last+1 {
				conflict = fmt.Errorf("seq %d does not follow the log's last %d: %w", sub.Seq, last, store.ErrConflict)
			}
			if conflict != nil {
				if !lookedFor {
					if dup, err := duplicateOf(t, sub, res); err != nil || dup {
						return err
					}
				}
				return conflict
			}
			res.Seq = sub.Seq
		}
		if isHandshake(sub.Kind) {
			if version != sub.PrevVersion {
				return store.ErrConflict
			}
			if _, err := t.exec(`UPDATE rooms SET version = version + 1, state = ?, epoch = ? WHERE id = ?`,
				nonNil(sub.NewState), epochIn(sub.NewEpoch), sub.RoomID); err != nil {
				return err
			}
		}
		if sub.Members != nil {
			if _, err := t.exec(`DELETE FROM room_members WHERE room_id = ?`, sub.RoomID); err != nil {
				return err
			}
			if err := insertMembers(t, sub.RoomID, sub.Members); err != nil {
				return err
			}
		}
		m := store.Message{RoomID: sub.RoomID, Seq: res.Seq, ClientID: sub.ClientID, SenderDevice: sub.SenderDevice,
			Sender: sub.Sender, Kind: sub.Kind, Epoch: sub.Epoch, Payload: sub.Payload, Frank: sub.Frank, Accepted: sub.Accepted}
		if err := s.appendMessage(t, m, recipients); errors.Is(err, errClientIDTaken) && !lookedFor {
			dup, err := duplicateOf(t, sub, res)
			if err == nil && !dup {
				err = fmt.Errorf("client ID %q taken and not found: %w", sub.ClientID, store.ErrConflict)
			}
			return err
		} else if err != nil {
			return err
		}
		if w := sub.Welcome; w != nil {
			m.Seq, m.ClientID, m.Kind, m.Epoch, m.Payload, m.Frank = res.Seq+1, sub.ClientID+"/welcome", store.KindWelcome, sub.NewEpoch, w.Payload, nil
			if err := s.appendMessage(t, m, dedupe(w.Recipients)); err != nil {
				return err
			}
			if err := useKeyPackages(t, w.KeyPackages); err != nil {
				return err
			}
		}
		if err := useKeyPackages(t, sub.KeyPackages); err != nil {
			return err
		}
		return s.insertOutbound(t, sub.Outbound)
	}
}

// useKeyPackages marks the KeyPackages used by a Welcome (claimed = 2),
// in the Welcome's transaction. The update's condition is the check: of
// two transactions marking one ref, the second (after the first's COMMIT,
// in PostgreSQL by the row lock, in SQLite by the one writer) updates no
// row and fails with store.ErrKeyPackageUsed. A last-resort package is
// never used up; a ref not stored here is left to the caller, which found
// it with KeyPackageDevice.
func useKeyPackages(t tx, refs [][]byte) error {
	for _, ref := range refs {
		n, err := t.exec(`UPDATE key_packages SET claimed = 2 WHERE ref = ? AND last_resort = 0 AND claimed <> 2`, nonNil(ref))
		if err != nil {
			return err
		}
		if n == 1 {
			continue
		}
		var claimed, lastResort int64
		err = t.queryRow(`SELECT claimed, last_resort FROM key_packages WHERE ref = ?`, nonNil(ref)).Scan(&claimed, &lastResort)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		if lastResort == 0 && claimed == 2 {
			return fmt.Errorf("key package %x: %w", ref, store.ErrKeyPackageUsed)
		}
	}
	return nil
}

// appendMessage adds m to its room's log at m.Seq, stamped now (m.Created
// is ignored), and queues it for the recipients, each under a cursor the
// dialect hands out.
func (s *Store) appendMessage(t tx, m store.Message, recipients []int64) error {
	var msgID int64
	// A client ID taken inserts nothing (and returns no row) rather than
	// failing the statement, which in PostgreSQL would end the
	// transaction.
	err := t.queryRow(`INSERT INTO room_messages
		(room_id, seq, client_id, sender_device, sender, kind, epoch, payload, created, frank, accepted)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (room_id, client_id) DO NOTHING RETURNING id`,
		m.RoomID, m.Seq, m.ClientID, m.SenderDevice, m.Sender, string(m.Kind),
		epochIn(m.Epoch), nonNil(m.Payload), unixNano(s.now()), nullBytes(m.Frank), m.Accepted).Scan(&msgID)
	if errors.Is(err, store.ErrNotFound) {
		return errClientIDTaken
	} else if err != nil {
		return err
	}
	if len(recipients) == 0 {
		return nil
	}
	return t.d.enqueue(t, msgID, recipients)
}

// errClientIDTaken is appendMessage's answer when the room's log holds a
// message with the same client ID.
var errClientIDTaken = fmt.Errorf("the room's log holds this client ID: %w", store.ErrExists)

// duplicateOf looks for the submission's client ID in the room's log:
// found, it fills in res as a duplicate's answer.
func duplicateOf(t tx, sub store.Submission, res *store.SubmitResult) (bool, error) {
	var seq int64
	err := t.queryRow(`SELECT seq FROM room_messages WHERE room_id = ? AND client_id = ?`, sub.RoomID, sub.ClientID).Scan(&seq)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	*res = store.SubmitResult{Seq: seq, Duplicate: true}
	return true, nil
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

// scanMessage reads messageCols, after the columns dst receives.
func scanMessage(row Row, dst ...any) (store.Message, error) {
	var m store.Message
	var epoch, created int64
	args := append(dst, &m.RoomID, &m.Seq, &m.ClientID, &m.SenderDevice, &m.Sender, &m.Kind, &epoch, &m.Payload, &created, &m.Frank, &m.Accepted)
	if err := row.Scan(args...); err != nil {
		return store.Message{}, err
	}
	m.Epoch, m.Created = epochOut(epoch), fromNano(created)
	return m, nil
}

// RoomMessages returns up to limit messages of the room's log with Seq
// greater than after, in order; an unknown room is store.ErrNotFound. A
// limit of 0 or less is treated as 1.
func (s *Store) RoomMessages(ctx context.Context, roomID string, after int64, limit int) ([]store.Message, error) {
	t, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	out, err := collect(t.rows(`SELECT `+messageCols+` FROM room_messages m
		WHERE m.room_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?`, roomID, after, max(limit, 1)),
		func(r Rows) (store.Message, error) { return scanMessage(r) })
	if err == nil && len(out) == 0 {
		err = t.exists(`SELECT 1 FROM rooms WHERE id = ?`, roomID)
	}
	return out, err
}

// MessageByClientID finds the message submitted to a room under an
// idempotency key.
func (s *Store) MessageByClientID(ctx context.Context, roomID, clientID string) (store.Message, error) {
	t, err := s.read(ctx)
	if err != nil {
		return store.Message{}, err
	}
	return scanMessage(t.queryRow(`SELECT `+messageCols+` FROM room_messages m
		WHERE m.room_id = ? AND m.client_id = ?`, roomID, clientID))
}

// MessageByFrank finds the message of a room stored with exactly frank.
func (s *Store) MessageByFrank(ctx context.Context, roomID string, frank []byte) (store.Message, error) {
	if len(frank) == 0 {
		return store.Message{}, store.ErrNotFound
	}
	t, err := s.read(ctx)
	if err != nil {
		return store.Message{}, err
	}
	return scanMessage(t.queryRow(`SELECT `+messageCols+` FROM room_messages m
		WHERE m.room_id = ? AND m.frank = ? ORDER BY m.seq LIMIT 1`, roomID, frank))
}

package conversations

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
)

// history is the device's local record of its conversations, in SQLite
// (history.db in the device's directory): the messages as people see them
// (edits and deletions applied, reactions gathered), the delivered and
// read reports of others, and each room's state for this person. It holds
// plaintext, so it lives only on the device.
type history struct {
	db *sql.DB
}

const historySchema = `
CREATE TABLE IF NOT EXISTS entries (
	room       TEXT    NOT NULL,
	id         TEXT    NOT NULL, -- the MIMI message ID, hex
	seq        INTEGER NOT NULL, -- the hub's order
	sender     TEXT    NOT NULL, -- user (handle, or handle@domain)
	own        INTEGER NOT NULL,
	sent       INTEGER NOT NULL, -- Unix ms
	body       TEXT    NOT NULL,
	markdown   INTEGER NOT NULL DEFAULT 0,
	reply_to   TEXT    NOT NULL DEFAULT '',
	edited     INTEGER NOT NULL DEFAULT 0,
	deleted    INTEGER NOT NULL DEFAULT 0,
	expires    INTEGER NOT NULL DEFAULT 0, -- Unix ms; 0: never
	file       TEXT    NOT NULL DEFAULT '', -- client.Attachment as JSON
	recipients TEXT    NOT NULL DEFAULT '', -- own messages: the other users then in the room, space-separated
	PRIMARY KEY (room, id)
);
CREATE INDEX IF NOT EXISTS entries_order ON entries (room, seq);
CREATE INDEX IF NOT EXISTS entries_expiry ON entries (expires) WHERE expires > 0;
CREATE TABLE IF NOT EXISTS reactions (
	room   TEXT NOT NULL,
	target TEXT NOT NULL,
	id     TEXT NOT NULL, -- the reaction's own message ID, which an unlike names
	sender TEXT NOT NULL,
	emoji  TEXT NOT NULL,
	PRIMARY KEY (room, id)
);
CREATE INDEX IF NOT EXISTS reactions_target ON reactions (room, target);
CREATE TABLE IF NOT EXISTS receipts (
	room   TEXT    NOT NULL,
	target TEXT    NOT NULL,
	reader TEXT    NOT NULL, -- user
	state  INTEGER NOT NULL, -- 1 delivered, 2 read
	PRIMARY KEY (room, target, reader)
);
CREATE TABLE IF NOT EXISTS rooms (
	room      TEXT    PRIMARY KEY,
	last_read INTEGER NOT NULL DEFAULT 0, -- seq of the last message this person read
	state     TEXT    NOT NULL DEFAULT '', -- '', 'request', 'accepted', 'declined'
	inviter   TEXT    NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS blocked (
	user TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
`

func openHistory(path string) (*history, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// One connection: the history is one device's, written by one process.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(historySchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("conversations: history: %w", err)
	}
	if err := addColumns(db, "entries", historyColumns); err != nil {
		db.Close()
		return nil, fmt.Errorf("conversations: history: %w", err)
	}
	return &history{db: db}, nil
}

// historyColumns are the entries columns added after the first schema:
// a history made before has them added when it is opened. A received
// message keeps its encoded content and the hub's frank, so that the
// person can report it (docs/abuse.md).
var historyColumns = []struct{ name, decl string }{
	{"content", "BLOB"},                        // the MIMI content as received
	{"frank", "BLOB"},                          // the hub's Frank encoding; NULL if none
	{"accepted", "INTEGER NOT NULL DEFAULT 0"}, // the hub's acceptance time, Unix ms
}

// addColumns adds those of cols the table lacks.
func addColumns(db *sql.DB, table string, cols []struct{ name, decl string }) error {
	rows, err := db.Query(`SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		have[n] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range cols {
		if have[c.name] {
			continue
		}
		if _, err := db.Exec(`ALTER TABLE ` + table + ` ADD COLUMN ` + c.name + ` ` + c.decl); err != nil {
			return err
		}
	}
	return nil
}

func (h *history) close() error { return h.db.Close() }

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// add records a message; one already recorded (a redelivery) is left as
// it is.
func (h *history) add(ctx context.Context, e *Entry) error {
	var file, reply string
	if e.File != nil {
		b, err := json.Marshal(e.File)
		if err != nil {
			return err
		}
		file = string(b)
	}
	if e.ReplyTo != nil {
		reply = e.ReplyTo.String()
	}
	var frank []byte
	var accepted uint64
	if e.frank != nil {
		frank, accepted = e.frank.Frank, e.frank.AcceptedTimestamp
	}
	_, err := h.db.ExecContext(ctx, `INSERT INTO entries
		(room, id, seq, sender, own, sent, body, markdown, reply_to, expires, file, recipients, content, frank, accepted)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		string(e.Room), e.ID.String(), e.Seq, e.Sender, e.Own, ms(e.Sent), e.Text, e.Markdown, reply,
		ms(e.Expires), file, strings.Join(e.recipients, " "), e.content, frank, int64(accepted))
	return err
}

// evidence is what a report of a received message needs: its sender, the
// content as received and the hub's frank (nil if it came without one).
func (h *history) evidence(ctx context.Context, room client.RoomID, id content.ID) (sender string, data []byte, frank *client.Frank, err error) {
	var f []byte
	var accepted int64
	err = h.db.QueryRowContext(ctx, `SELECT sender, content, frank, accepted FROM entries WHERE room = ? AND id = ?`,
		string(room), id.String()).Scan(&sender, &data, &f, &accepted)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, nil, ErrNoSuchMessage
	} else if err != nil {
		return "", nil, nil, err
	}
	if len(f) > 0 {
		frank = &client.Frank{Frank: f, AcceptedTimestamp: uint64(accepted)} // #nosec G115 -- a millisecond timestamp the provider gave, not negative
	}
	return sender, data, frank, nil
}

// edit replaces a message's text, if by was its sender.
func (h *history) edit(ctx context.Context, room client.RoomID, id content.ID, by, text string, markdown bool) (bool, error) {
	res, err := h.db.ExecContext(ctx, `UPDATE entries SET body = ?, markdown = ?, edited = 1
		WHERE room = ? AND id = ? AND sender = ? AND deleted = 0`, text, markdown, string(room), id.String(), by)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// remove deletes a message's content (its place stays, marked deleted),
// if by was its sender, and its reactions.
func (h *history) remove(ctx context.Context, room client.RoomID, id content.ID, by string) (bool, error) {
	res, err := h.db.ExecContext(ctx, `UPDATE entries SET body = '', file = '', deleted = 1
		WHERE room = ? AND id = ? AND sender = ?`, string(room), id.String(), by)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		_, err = h.db.ExecContext(ctx, `DELETE FROM reactions WHERE room = ? AND target = ?`, string(room), id.String())
	}
	return n > 0, err
}

func (h *history) react(ctx context.Context, room client.RoomID, target, id content.ID, by, emoji string) error {
	_, err := h.db.ExecContext(ctx, `INSERT INTO reactions (room, target, id, sender, emoji) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, string(room), target.String(), id.String(), by, emoji)
	return err
}

// unreact withdraws a reaction, if by made it.
func (h *history) unreact(ctx context.Context, room client.RoomID, reaction content.ID, by string) error {
	_, err := h.db.ExecContext(ctx, `DELETE FROM reactions WHERE room = ? AND id = ? AND sender = ?`,
		string(room), reaction.String(), by)
	return err
}

// ownReaction finds the ID of by's reaction with emoji to target.
func (h *history) ownReaction(ctx context.Context, room client.RoomID, target content.ID, by, emoji string) (content.ID, error) {
	var id string
	err := h.db.QueryRowContext(ctx, `SELECT id FROM reactions WHERE room = ? AND target = ? AND sender = ? AND emoji = ?`,
		string(room), target.String(), by, emoji).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return content.ID{}, ErrNoSuchMessage
	} else if err != nil {
		return content.ID{}, err
	}
	return content.ParseID(id)
}

// receipt records that reader got (state 1) or read (2) target; a
// lower state never replaces a higher one.
func (h *history) receipt(ctx context.Context, room client.RoomID, target content.ID, reader string, state Status) error {
	_, err := h.db.ExecContext(ctx, `INSERT INTO receipts (room, target, reader, state) VALUES (?, ?, ?, ?)
		ON CONFLICT (room, target, reader) DO UPDATE SET state = max(state, excluded.state)`,
		string(room), target.String(), reader, int(state))
	return err
}

const entryCols = `room, id, seq, sender, own, sent, body, markdown, reply_to, edited, deleted, expires, file, recipients`

func (h *history) scan(ctx context.Context, rows *sql.Rows) ([]Entry, error) {
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var room, id, reply, file, recipients string
		var sent, expires int64
		if err := rows.Scan(&room, &id, &e.Seq, &e.Sender, &e.Own, &sent, &e.Text, &e.Markdown, &reply,
			&e.Edited, &e.Deleted, &expires, &file, &recipients); err != nil {
			return nil, err
		}
		e.Room, e.Sent, e.Expires = client.RoomID(room), fromMS(sent), fromMS(expires)
		var err error
		if e.ID, err = content.ParseID(id); err != nil {
			return nil, err
		}
		if reply != "" {
			r, err := content.ParseID(reply)
			if err == nil {
				e.ReplyTo = &r
			}
		}
		if file != "" {
			e.File = new(client.Attachment)
			if err := json.Unmarshal([]byte(file), e.File); err != nil {
				return nil, err
			}
		}
		e.recipients = strings.Fields(recipients)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if err := h.decorate(ctx, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// decorate adds an entry's reactions and, for one's own, its status.
func (h *history) decorate(ctx context.Context, e *Entry) error {
	rows, err := h.db.QueryContext(ctx, `SELECT emoji, sender FROM reactions WHERE room = ? AND target = ? ORDER BY rowid`,
		string(e.Room), e.ID.String())
	if err != nil {
		return err
	}
	for rows.Next() {
		var emoji, who string
		if err := rows.Scan(&emoji, &who); err != nil {
			rows.Close()
			return err
		}
		if e.Reactions == nil {
			e.Reactions = map[string][]string{}
		}
		e.Reactions[emoji] = append(e.Reactions[emoji], who)
	}
	rows.Close()
	if !e.Own {
		return nil
	}
	e.Status = StatusSent
	if len(e.recipients) == 0 {
		return nil
	}
	states := map[string]Status{}
	rows, err = h.db.QueryContext(ctx, `SELECT reader, state FROM receipts WHERE room = ? AND target = ?`, string(e.Room), e.ID.String())
	if err != nil {
		return err
	}
	for rows.Next() {
		var who string
		var st int
		if err := rows.Scan(&who, &st); err != nil {
			rows.Close()
			return err
		}
		states[who] = Status(st)
	}
	rows.Close()
	// Delivered once every recipient has it on at least one device; read
	// once every recipient read it.
	least := StatusRead
	for _, r := range e.recipients {
		least = min(least, states[r])
	}
	e.Status = max(StatusSent, least)
	return nil
}

// entry reads one message.
func (h *history) entry(ctx context.Context, room client.RoomID, id content.ID) (*Entry, error) {
	rows, err := h.db.QueryContext(ctx, `SELECT `+entryCols+` FROM entries WHERE room = ? AND id = ?`, string(room), id.String())
	if err != nil {
		return nil, err
	}
	out, err := h.scan(ctx, rows)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrNoSuchMessage
	}
	return &out[0], nil
}

// page reads up to limit messages of a room before seq (0: the newest),
// oldest first.
func (h *history) page(ctx context.Context, room client.RoomID, before int64, limit int) ([]Entry, error) {
	if before <= 0 {
		before = 1 << 62
	}
	rows, err := h.db.QueryContext(ctx, `SELECT `+entryCols+` FROM (SELECT * FROM entries WHERE room = ? AND seq < ?
		ORDER BY seq DESC LIMIT ?) ORDER BY seq`, string(room), before, max(limit, 1))
	if err != nil {
		return nil, err
	}
	return h.scan(ctx, rows)
}

// search finds messages whose text contains query (case-insensitively),
// newest first.
func (h *history) search(ctx context.Context, query string, limit int) ([]Entry, error) {
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(query)
	rows, err := h.db.QueryContext(ctx, `SELECT `+entryCols+` FROM entries
		WHERE deleted = 0 AND body LIKE ? ESCAPE '\' ORDER BY sent DESC LIMIT ?`, "%"+esc+"%", max(limit, 1))
	if err != nil {
		return nil, err
	}
	return h.scan(ctx, rows)
}

// expire deletes the messages whose time is up, with their reactions and
// receipts, and returns the rooms they were in.
func (h *history) expire(ctx context.Context, now time.Time) ([]client.RoomID, error) {
	rows, err := h.db.QueryContext(ctx, `SELECT DISTINCT room FROM entries WHERE expires > 0 AND expires <= ?`, ms(now))
	if err != nil {
		return nil, err
	}
	var rooms []client.RoomID
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return nil, err
		}
		rooms = append(rooms, client.RoomID(r))
	}
	rows.Close()
	if len(rooms) == 0 {
		return nil, nil
	}
	for _, q := range []string{
		`DELETE FROM reactions WHERE (room, target) IN (SELECT room, id FROM entries WHERE expires > 0 AND expires <= ?)`,
		`DELETE FROM receipts WHERE (room, target) IN (SELECT room, id FROM entries WHERE expires > 0 AND expires <= ?)`,
		`DELETE FROM entries WHERE expires > 0 AND expires <= ?`,
	} {
		if _, err := h.db.ExecContext(ctx, q, ms(now)); err != nil {
			return nil, err
		}
	}
	return rooms, nil
}

// nextExpiry is when the next message expires (zero: none).
func (h *history) nextExpiry(ctx context.Context) (time.Time, error) {
	var v sql.NullInt64
	err := h.db.QueryRowContext(ctx, `SELECT min(expires) FROM entries WHERE expires > 0`).Scan(&v)
	if err != nil || !v.Valid {
		return time.Time{}, err
	}
	return fromMS(v.Int64), nil
}

// unreadIDs lists the messages of others in a room after its last read
// seq, and the newest seq among them.
func (h *history) unread(ctx context.Context, room client.RoomID) ([]content.ID, int64, error) {
	rows, err := h.db.QueryContext(ctx, `SELECT e.id, e.seq FROM entries e LEFT JOIN rooms r ON r.room = e.room
		WHERE e.room = ? AND e.own = 0 AND e.seq > coalesce(r.last_read, 0) ORDER BY e.seq`, string(room))
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var ids []content.ID
	var top int64
	for rows.Next() {
		var s string
		var seq int64
		if err := rows.Scan(&s, &seq); err != nil {
			return nil, 0, err
		}
		id, err := content.ParseID(s)
		if err != nil {
			return nil, 0, err
		}
		ids, top = append(ids, id), seq
	}
	return ids, top, rows.Err()
}

func (h *history) markRead(ctx context.Context, room client.RoomID, seq int64) error {
	_, err := h.db.ExecContext(ctx, `INSERT INTO rooms (room, last_read) VALUES (?, ?)
		ON CONFLICT (room) DO UPDATE SET last_read = max(last_read, excluded.last_read)`, string(room), seq)
	return err
}

// roomInfo is a room's counts and state for this person.
type roomInfo struct {
	unread  int
	last    *Entry
	state   string
	inviter string
}

func (h *history) roomInfo(ctx context.Context, room client.RoomID) (roomInfo, error) {
	var ri roomInfo
	err := h.db.QueryRowContext(ctx, `SELECT count(*) FROM entries e LEFT JOIN rooms r ON r.room = e.room
		WHERE e.room = ? AND e.own = 0 AND e.deleted = 0 AND e.seq > coalesce(r.last_read, 0)`, string(room)).Scan(&ri.unread)
	if err != nil {
		return ri, err
	}
	err = h.db.QueryRowContext(ctx, `SELECT state, inviter FROM rooms WHERE room = ?`, string(room)).Scan(&ri.state, &ri.inviter)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return ri, err
	}
	last, err := h.page(ctx, room, 0, 1)
	if err != nil {
		return ri, err
	}
	if len(last) == 1 {
		ri.last = &last[0]
	}
	return ri, nil
}

func (h *history) setRoomState(ctx context.Context, room client.RoomID, state, inviter string) error {
	_, err := h.db.ExecContext(ctx, `INSERT INTO rooms (room, state, inviter) VALUES (?, ?, ?)
		ON CONFLICT (room) DO UPDATE SET state = excluded.state,
		inviter = CASE WHEN excluded.inviter = '' THEN rooms.inviter ELSE excluded.inviter END`, string(room), state, inviter)
	return err
}

func (h *history) block(ctx context.Context, user string, blocked bool) error {
	q := `INSERT INTO blocked (user) VALUES (?) ON CONFLICT DO NOTHING`
	if !blocked {
		q = `DELETE FROM blocked WHERE user = ?`
	}
	_, err := h.db.ExecContext(ctx, q, user)
	return err
}

func (h *history) isBlocked(ctx context.Context, user string) (bool, error) {
	var one int
	err := h.db.QueryRowContext(ctx, `SELECT 1 FROM blocked WHERE user = ?`, user).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (h *history) setting(ctx context.Context, key string) (string, error) {
	var v string
	err := h.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

func (h *history) setSetting(ctx context.Context, key, value string) error {
	_, err := h.db.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

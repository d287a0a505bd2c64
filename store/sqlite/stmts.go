package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// stmts are the writer's hot statements, prepared once on its connection
// so that Submit, run thousands of times a second, does not parse SQL.
type stmts struct {
	dupSeq      *sql.Stmt
	roomHead    *sql.Stmt
	moveRoom    *sql.Stmt
	delMembers  *sql.Stmt
	insMember   *sql.Stmt
	insMessage  *sql.Stmt
	takeCursors *sql.Stmt
	enqueue     *sql.Stmt
	insOutbound *sql.Stmt
}

func (s *stmts) prepare(ctx context.Context, conn *sql.Conn) error {
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.dupSeq, `SELECT seq FROM room_messages WHERE room_id = ? AND client_id = ?`},
		// The room's version and the last Seq of its log, in one step.
		{&s.roomHead, `SELECT r.version,
			coalesce((SELECT max(seq) FROM room_messages WHERE room_id = r.id), 0)
			FROM rooms r WHERE r.id = ?`},
		{&s.moveRoom, `UPDATE rooms SET version = version + 1, state = ?, epoch = ? WHERE id = ?`},
		{&s.delMembers, `DELETE FROM room_members WHERE room_id = ?`},
		{&s.insMember, `INSERT INTO room_members (room_id, user_id, role) VALUES (?, ?, ?)`},
		{&s.insMessage, `INSERT INTO room_messages
			(room_id, seq, client_id, sender_device, sender, kind, epoch, payload, created, frank, accepted)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`},
		{&s.takeCursors, `UPDATE counters SET value = value + ? WHERE name = 'cursor' RETURNING value`},
		{&s.enqueue, `INSERT INTO device_queue (device_id, cursor, message_id) VALUES (?, ?, ?)`},
		// A hub's Submit stores one entry per follower provider. header
		// is the JSON of Outbound.Header, '' for none (see encodeHeader).
		{&s.insOutbound, `INSERT INTO outbox (destination, delivery_id, kind, path, body, header, created)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (destination, delivery_id) DO NOTHING`},
	} {
		st, err := conn.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", p.query, err)
		}
		*p.dst = st
	}
	return nil
}

func (s *stmts) close() {
	for _, st := range []*sql.Stmt{s.dupSeq, s.roomHead, s.moveRoom, s.delMembers, s.insMember, s.insMessage, s.takeCursors, s.enqueue, s.insOutbound} {
		if st != nil {
			st.Close()
		}
	}
}

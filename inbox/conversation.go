package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/conversations"
)

// row is a conversation as inbox.db holds it.
type row struct {
	id                          int64
	room                        client.RoomID
	customer, provider          string
	contact                     int64
	unlinked                    bool
	status                      Status
	assignee, team              int64
	created, lastMessage        int64
	waitingSince                int64
	firstCustomer, firstReponse int64
	resStart, resolved          int64
	frBreached, resBreached     bool
	lastSeq, readSeq            int64
	greeted                     bool
	awayUntil, csatAsked        int64
	csat                        int
}

const rowCols = `id, room, customer, provider, contact, unlinked, status, assignee, team, created, last_message,
	waiting_since, first_customer, first_response, res_start, resolved, fr_breached, res_breached,
	last_seq, read_seq, greeted, away_until, csat_asked, csat`

type scanner interface{ Scan(...any) error }

func scanRow(s scanner) (row, error) {
	var r row
	var room string
	err := s.Scan(&r.id, &room, &r.customer, &r.provider, &r.contact, &r.unlinked, &r.status, &r.assignee, &r.team,
		&r.created, &r.lastMessage, &r.waitingSince, &r.firstCustomer, &r.firstReponse, &r.resStart, &r.resolved,
		&r.frBreached, &r.resBreached, &r.lastSeq, &r.readSeq, &r.greeted, &r.awayUntil, &r.csatAsked, &r.csat)
	r.room = client.RoomID(room)
	return r, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func loadRow(ctx context.Context, q querier, id int64) (row, error) {
	r, err := scanRow(q.QueryRowContext(ctx, `SELECT `+rowCols+` FROM conversations WHERE id = ?`, id))
	return r, notFound(err, fmt.Sprintf("conversation %d", id))
}

func (d *Desk) rowByRoom(ctx context.Context, room client.RoomID) (row, error) {
	r, err := scanRow(d.db.QueryRowContext(ctx, `SELECT `+rowCols+` FROM conversations WHERE room = ?`, string(room)))
	return r, notFound(err, "room")
}

// audit appends to a conversation's audit trail.
func audit(ctx context.Context, x execer, conv int64, at time.Time, actor, action, detail string) error {
	_, err := x.ExecContext(ctx, `INSERT INTO audit (conversation, at, actor, action, detail) VALUES (?, ?, ?, ?, ?)`,
		conv, ms(at), actor, action, detail)
	return err
}

// view makes the console's Conversation of a row.
func (d *Desk) view(ctx context.Context, r row) (Conversation, error) {
	c := Conversation{
		ID: r.id, Room: r.room, Customer: r.customer, Provider: r.provider, Status: r.status,
		Assignee: r.assignee, Team: r.team, Created: fromMS(r.created), LastMessage: fromMS(r.lastMessage),
		WaitingSince: optMS(r.waitingSince), FirstResponse: optMS(r.firstReponse), Resolved: optMS(r.resolved),
	}
	if r.csat > 0 {
		v := r.csat
		c.CSAT = &v
	}
	var err error
	if c.Contact, err = d.contact(ctx, r.contact); err != nil {
		return c, err
	}
	if c.Labels, err = d.labelsOf(ctx, r.id); err != nil {
		return c, err
	}
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE conversation = ? AND seq > ?`,
		r.id, r.readSeq).Scan(&c.Unread); err != nil {
		return c, err
	}
	last, err := d.m.History(ctx, r.room, 0, 1)
	if err != nil {
		return c, err
	}
	if len(last) == 1 {
		c.Last = &last[0]
	}
	if r.team != 0 {
		t, err := d.team(ctx, r.team)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return c, err
		}
		c.SLA = r.sla(t)
	}
	return c, nil
}

// sla is a conversation's service-level state under its team's targets.
func (r row) sla(t Team) SLA {
	s := SLA{FirstResponseBreached: r.frBreached, ResolutionBreached: r.resBreached}
	if t.FirstResponse > 0 && r.firstCustomer != 0 && r.firstReponse == 0 {
		due := fromMS(r.firstCustomer).Add(t.FirstResponse)
		s.FirstResponseDue = &due
	}
	if t.Resolution > 0 && r.resStart != 0 && r.status != StatusResolved {
		due := fromMS(r.resStart).Add(t.Resolution)
		s.ResolutionDue = &due
	}
	return s
}

func validStatus(s Status) bool {
	return s == StatusOpen || s == StatusPending || s == StatusResolved
}

// List lists the conversations f selects: the open ones first, those
// waiting longest first, then the others, the most recent first.
func (d *Desk) List(ctx context.Context, f Filter) ([]Conversation, error) {
	var where []string
	var args []any
	if f.Status != "" {
		if !validStatus(f.Status) {
			return nil, fmt.Errorf("%w: status %q", ErrInvalid, f.Status)
		}
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	switch {
	case f.Assignee == -1:
		where = append(where, "assignee = 0")
	case f.Assignee > 0:
		where, args = append(where, "assignee = ?"), append(args, f.Assignee)
	case f.Assignee < -1:
		return nil, fmt.Errorf("%w: assignee %d", ErrInvalid, f.Assignee)
	}
	if f.Team != 0 {
		where, args = append(where, "team = ?"), append(args, f.Team)
	}
	if f.Label != "" {
		where, args = append(where, "id IN (SELECT conversation FROM labels WHERE label = ?)"), append(args, f.Label)
	}
	if err := d.checkBreaches(ctx); err != nil {
		return nil, err
	}
	q := `SELECT ` + rowCols + ` FROM conversations`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ") // #nosec G202 -- each clause is a constant of this function; values are arguments
	}
	q += ` ORDER BY status <> 'open', CASE WHEN status = 'open' AND waiting_since > 0 THEN waiting_since ELSE 1 << 62 END,
		last_message DESC, id DESC`
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var rs []row
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Conversation, 0, len(rs))
	for _, r := range rs {
		c, err := d.view(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Conversation returns one conversation.
func (d *Desk) Conversation(ctx context.Context, id int64) (Conversation, error) {
	if err := d.checkBreaches(ctx); err != nil {
		return Conversation{}, err
	}
	r, err := loadRow(ctx, d.db, id)
	if err != nil {
		return Conversation{}, err
	}
	return d.view(ctx, r)
}

// History returns up to limit (1 to 500) messages of a conversation
// before seq (0: the newest), oldest first, as Messenger.History does.
func (d *Desk) History(ctx context.Context, id int64, before int64, limit int) ([]conversations.Entry, error) {
	r, err := loadRow(ctx, d.db, id)
	if err != nil {
		return nil, err
	}
	return d.m.History(ctx, r.room, before, min(max(limit, 1), 500))
}

// MarkRead records that an agent read the conversation, and sends the
// customer a read mark.
func (d *Desk) MarkRead(ctx context.Context, id, agentID int64) error {
	if _, err := d.actorName(ctx, agentID); err != nil {
		return err
	}
	r, err := loadRow(ctx, d.db, id)
	if err != nil {
		return err
	}
	if err := d.m.MarkRead(ctx, r.room); err != nil {
		return err
	}
	if _, err := d.db.ExecContext(ctx, `UPDATE conversations SET read_seq = max(read_seq,
		(SELECT coalesce(max(seq), 0) FROM messages WHERE conversation = ?)) WHERE id = ?`, id, id); err != nil {
		return err
	}
	d.publish(Event{Kind: "conversation", Conversation: id})
	return nil
}

// maxReply bounds a reply's text.
const maxReply = 16 << 10

// Reply sends the customer a text from an agent, with canned short codes
// expanded. The first reply after the customer's first message is the
// first response; a reply to an unassigned conversation assigns it to
// the agent. Audited.
func (d *Desk) Reply(ctx context.Context, id, agentID int64, text string) (*conversations.Entry, error) {
	name, err := d.actorName(ctx, agentID)
	if err != nil {
		return nil, err
	}
	r, err := loadRow(ctx, d.db, id)
	if err != nil {
		return nil, err
	}
	text, err = d.Expand(ctx, text)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(text) == "" || len(text) > maxReply || !utf8.ValidString(text) {
		return nil, fmt.Errorf("%w: a reply has 1 to %d bytes of UTF-8", ErrInvalid, maxReply)
	}
	e, err := d.m.Send(ctx, r.room, text)
	if err != nil {
		return nil, err
	}
	return e, d.agentReplied(ctx, id, agentID, name, "replied", "")
}

// maxFile bounds a file an agent sends.
const maxFile = 64 << 20

// ReplyFile sends the customer a file from an agent; it counts as a reply.
func (d *Desk) ReplyFile(ctx context.Context, id, agentID int64, rd io.Reader, name, mediaType string) (*conversations.Entry, error) {
	agent, err := d.actorName(ctx, agentID)
	if err != nil {
		return nil, err
	}
	r, err := loadRow(ctx, d.db, id)
	if err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "/\\") || strings.ContainsFunc(name, isControl) || !utf8.ValidString(name) {
		return nil, fmt.Errorf("%w: file name %q", ErrInvalid, name)
	}
	if len(mediaType) > 255 || strings.ContainsFunc(mediaType, isControl) {
		return nil, fmt.Errorf("%w: media type", ErrInvalid)
	}
	data, err := io.ReadAll(io.LimitReader(rd, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("%w: a file has at most %d bytes", ErrInvalid, maxFile)
	}
	e, err := d.m.SendFile(ctx, r.room, strings.NewReader(string(data)), name, mediaType)
	if err != nil {
		return nil, err
	}
	return e, d.agentReplied(ctx, id, agentID, agent, "replied", "file "+name)
}

// agentReplied records an agent's reply: the first response, the end of
// the customer's wait, and the assignment of an unassigned conversation.
func (d *Desk) agentReplied(ctx context.Context, id, agentID int64, name, action, detail string) error {
	// A reply after the deadline is a breach: record it before the reply
	// meets the target.
	if err := d.checkBreaches(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	err := d.tx(ctx, func(tx *sql.Tx) error {
		r, err := loadRow(ctx, tx, id)
		if err != nil {
			return err
		}
		if r.firstCustomer != 0 && r.firstReponse == 0 {
			r.firstReponse = ms(now)
			detail = strings.TrimSpace("first response " + detail)
		}
		if r.assignee == 0 {
			r.assignee = agentID
			if err := audit(ctx, tx, id, now, name, "assigned", "to "+name+" (replied)"); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET first_response = ?, waiting_since = 0, last_message = ?,
			assignee = ? WHERE id = ?`, r.firstReponse, ms(now), r.assignee, id); err != nil {
			return err
		}
		return audit(ctx, tx, id, now, name, action, detail)
	})
	if err != nil {
		return err
	}
	d.publish(Event{Kind: "message", Conversation: id})
	return nil
}

// File downloads and decrypts the file of a message of the conversation.
func (d *Desk) File(ctx context.Context, id int64, msg content.ID) ([]byte, *client.Attachment, error) {
	r, err := loadRow(ctx, d.db, id)
	if err != nil {
		return nil, nil, err
	}
	data, a, err := d.m.SaveFile(ctx, r.room, msg)
	if errors.Is(err, conversations.ErrNoSuchMessage) || errors.Is(err, conversations.ErrNoFile) {
		return nil, nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return data, a, err
}

// maxNote bounds a note.
const maxNote = 16 << 10

// AddNote adds an agents' private note; it is never sent to the customer.
func (d *Desk) AddNote(ctx context.Context, id, agentID int64, text string) (Note, error) {
	name, err := d.actorName(ctx, agentID)
	if err != nil {
		return Note{}, err
	}
	text = strings.TrimSpace(text)
	if text == "" || len(text) > maxNote || !utf8.ValidString(text) {
		return Note{}, fmt.Errorf("%w: a note has 1 to %d bytes of UTF-8", ErrInvalid, maxNote)
	}
	if _, err := loadRow(ctx, d.db, id); err != nil {
		return Note{}, err
	}
	n := Note{Agent: agentID, AgentName: name, Text: text, At: time.UnixMilli(ms(d.now()))}
	res, err := d.db.ExecContext(ctx, `INSERT INTO notes (conversation, agent, agent_name, text, at) VALUES (?, ?, ?, ?, ?)`,
		id, agentID, name, text, ms(n.At))
	if err != nil {
		return Note{}, err
	}
	n.ID, _ = res.LastInsertId()
	d.publish(Event{Kind: "note", Conversation: id})
	return n, nil
}

// Notes lists a conversation's notes, oldest first.
func (d *Desk) Notes(ctx context.Context, id int64) ([]Note, error) {
	if _, err := loadRow(ctx, d.db, id); err != nil {
		return nil, err
	}
	rows, err := d.db.QueryContext(ctx, `SELECT id, agent, agent_name, text, at FROM notes WHERE conversation = ? ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Note
	for rows.Next() {
		var n Note
		var at int64
		if err := rows.Scan(&n.ID, &n.Agent, &n.AgentName, &n.Text, &at); err != nil {
			return nil, err
		}
		n.At = fromMS(at)
		out = append(out, n)
	}
	return out, rows.Err()
}

// maxLabels bounds a conversation's labels.
const maxLabels = 20

// normalizeLabels trims, checks, sorts and deduplicates labels.
func normalizeLabels(labels []string) ([]string, error) {
	var out []string
	for _, l := range labels {
		l = strings.TrimSpace(l)
		if l == "" || utf8.RuneCountInString(l) > 40 || !utf8.ValidString(l) || strings.ContainsFunc(l, isControl) {
			return nil, fmt.Errorf("%w: label %q (1 to 40 printable characters)", ErrInvalid, l)
		}
		out = append(out, l)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > maxLabels {
		return nil, fmt.Errorf("%w: at most %d labels", ErrInvalid, maxLabels)
	}
	return out, nil
}

// SetLabels replaces a conversation's labels. Audited.
func (d *Desk) SetLabels(ctx context.Context, id, agentID int64, labels []string) error {
	name, err := d.actorName(ctx, agentID)
	if err != nil {
		return err
	}
	labels, err = normalizeLabels(labels)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old, err := d.labelsOf(ctx, id)
	if err != nil {
		return err
	}
	if _, err := loadRow(ctx, d.db, id); err != nil {
		return err
	}
	if slices.Equal(old, labels) {
		return nil
	}
	var change []string
	for _, l := range labels {
		if !slices.Contains(old, l) {
			change = append(change, "+"+l)
		}
	}
	for _, l := range old {
		if !slices.Contains(labels, l) {
			change = append(change, "-"+l)
		}
	}
	err = d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM labels WHERE conversation = ?`, id); err != nil {
			return err
		}
		for _, l := range labels {
			if _, err := tx.ExecContext(ctx, `INSERT INTO labels (conversation, label) VALUES (?, ?)`, id, l); err != nil {
				return err
			}
		}
		return audit(ctx, tx, id, d.now(), name, "labels", strings.Join(change, " "))
	})
	if err != nil {
		return err
	}
	d.publish(Event{Kind: "conversation", Conversation: id})
	return nil
}

func (d *Desk) labelsOf(ctx context.Context, id int64) ([]string, error) {
	return d.strings(ctx, `SELECT label FROM labels WHERE conversation = ? ORDER BY label`, id)
}

func (d *Desk) strings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Labels lists every label in use.
func (d *Desk) Labels(ctx context.Context) ([]string, error) {
	return d.strings(ctx, `SELECT DISTINCT label FROM labels ORDER BY label`)
}

// Audit returns a conversation's audit trail, oldest first.
func (d *Desk) Audit(ctx context.Context, id int64) ([]AuditEvent, error) {
	if _, err := loadRow(ctx, d.db, id); err != nil {
		return nil, err
	}
	rows, err := d.db.QueryContext(ctx, `SELECT at, actor, action, detail FROM audit WHERE conversation = ? ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var at int64
		if err := rows.Scan(&at, &e.Actor, &e.Action, &e.Detail); err != nil {
			return nil, err
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// SetStatus changes a conversation's status. Resolving meets the
// resolution target and, if the business asks for satisfaction, sends
// the customer the question; reopening starts a new resolution clock.
// Audited.
func (d *Desk) SetStatus(ctx context.Context, id, byAgent int64, s Status) error {
	name, err := d.actorName(ctx, byAgent)
	if err != nil {
		return err
	}
	if !validStatus(s) {
		return fmt.Errorf("%w: status %q", ErrInvalid, s)
	}
	if err := d.checkBreaches(ctx); err != nil {
		return err
	}
	set, _ := d.Settings(ctx)
	d.mu.Lock()
	now := d.now()
	var ask bool
	var room client.RoomID
	err = d.tx(ctx, func(tx *sql.Tx) error {
		r, err := loadRow(ctx, tx, id)
		if err != nil || r.status == s {
			return err
		}
		room = r.room
		from := r.status // changeStatus moves r on
		if err := changeStatus(ctx, tx, &r, s, now); err != nil {
			return err
		}
		if s == StatusResolved && set.CSAT {
			ask = true
			if _, err := tx.ExecContext(ctx, `UPDATE conversations SET csat_asked = ? WHERE id = ?`, ms(now), id); err != nil {
				return err
			}
		}
		return audit(ctx, tx, id, now, name, "status", string(from)+" → "+string(s))
	})
	if err == nil {
		d.publish(Event{Kind: "conversation", Conversation: id})
		err = d.autoAssign(ctx)
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if ask {
		q := set.CSATQuestion
		if q == "" {
			q = DefaultCSATQuestion
		}
		if _, err := d.m.Send(ctx, room, q); err != nil {
			return fmt.Errorf("inbox: resolved, but the satisfaction question was not sent: %w", err)
		}
	}
	return nil
}

// changeStatus moves a conversation to status s at now: resolving closes
// the resolution clock; leaving resolved starts a new one.
func changeStatus(ctx context.Context, tx *sql.Tx, r *row, s Status, now time.Time) error {
	switch {
	case s == StatusResolved:
		r.resolved = ms(now)
		if r.resStart != 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO resolutions (conversation, started, at) VALUES (?, ?, ?)`,
				r.id, r.resStart, ms(now)); err != nil {
				return err
			}
		}
	case r.status == StatusResolved:
		// Reopened: a new resolution clock, and an unanswered
		// satisfaction question lapses.
		r.resolved, r.resBreached, r.resStart, r.csatAsked = 0, false, ms(now), 0
	}
	_, err := tx.ExecContext(ctx, `UPDATE conversations SET status = ?, resolved = ?, res_breached = ?, res_start = ?,
		csat_asked = ? WHERE id = ?`, string(s), r.resolved, r.resBreached, r.resStart, r.csatAsked, r.id)
	r.status = s
	return err
}

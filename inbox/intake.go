package inbox

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/conversations"
)

// csatWindow is how long after the question a bare digit is its answer.
const csatWindow = 7 * 24 * time.Hour

// reorderMargin is how far below the newest message taken in the desk
// looks again for messages it has not taken in: the hub orders a room,
// but a customer message may reach the device just after a reply the
// desk sent (and recorded) with a higher number.
const reorderMargin = 50

// takeIn brings a room up to date: a new room with a customer becomes a
// conversation (its request accepted), and the customer messages not yet
// taken in are. changed says the Messenger reported a change in the
// room, which the console is told of.
func (d *Desk) takeIn(ctx context.Context, room client.RoomID, changed bool) error {
	r, err := d.rowByRoom(ctx, room)
	if errors.Is(err, ErrNotFound) {
		var ok bool
		if r, ok, err = d.newConversation(ctx, room); err != nil || !ok {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := d.relink(ctx, r); err != nil {
		d.log.Warn("linking a contact", "conversation", r.id, "err", err)
	}
	// The room's messages down to the margin below the newest taken in.
	var fresh []conversations.Entry
	for before := int64(0); ; {
		page, err := d.m.History(ctx, room, before, 100)
		if err != nil {
			return err
		}
		fresh = append(page, fresh...)
		if len(page) < 100 || page[0].Seq <= r.lastSeq-reorderMargin {
			break
		}
		before = page[0].Seq
	}
	for _, e := range fresh {
		if e.Own || e.Seq <= r.lastSeq-reorderMargin {
			continue
		}
		if err := d.customerMessage(ctx, r.id, e); err != nil {
			return err
		}
	}
	// Reactions, receipts and edits change no state of the desk, but
	// the console shows them.
	if changed {
		d.publish(Event{Kind: "message", Conversation: r.id})
	}
	return nil
}

// newConversation makes the conversation of a room the business account
// is in with a customer. It accepts the room if it is a message request:
// a business answers every customer. ok is false for a room with nobody
// else in it (yet).
func (d *Desk) newConversation(ctx context.Context, room client.RoomID) (row, bool, error) {
	members, err := d.m.Client().Members(room)
	if err != nil {
		return row{}, false, err
	}
	others := slices.DeleteFunc(slices.Clone(members), func(u string) bool { return u == d.me })
	if len(others) == 0 {
		return row{}, false, nil
	}
	slices.Sort(others)
	customer := others[0] // a room with several others is listed under the first
	if err := d.m.Accept(ctx, room); err != nil {
		return row{}, false, err
	}
	provider := d.m.Client().Domain()
	if i := strings.LastIndexByte(customer, '@'); i >= 0 {
		provider = customer[i+1:]
	}
	set, _ := d.Settings(ctx)
	phone := d.verifiedPhone(room, customer)
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	var id int64
	err = d.tx(ctx, func(tx *sql.Tx) error {
		contact, err := contactFor(ctx, tx, customer, phone)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO conversations (room, customer, provider, contact, team, created, last_message)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room) DO NOTHING`, string(room), customer, provider, contact,
			set.DefaultTeam, ms(now), ms(now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		id, _ = res.LastInsertId()
		return audit(ctx, tx, id, now, "system", "created", "from "+customer+" on "+provider)
	})
	if err != nil {
		return row{}, false, err
	}
	r, err := d.rowByRoom(ctx, room)
	if err != nil {
		return row{}, false, err
	}
	if id != 0 {
		d.publish(Event{Kind: "conversation", Conversation: id})
		if err := d.autoAssign(ctx); err != nil {
			return row{}, false, err
		}
	}
	return r, true, nil
}

// customerMessage takes in one customer message, if it was not already:
// it may be a satisfaction answer; otherwise it starts the clocks of a
// first contact, reopens a pending or resolved conversation (audited),
// and may have the greeting and the away reply sent.
func (d *Desk) customerMessage(ctx context.Context, id int64, e conversations.Entry) error {
	set, _ := d.Settings(ctx)
	d.mu.Lock()
	now := d.now()
	var send []string
	var room client.RoomID
	took := false
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO messages (conversation, seq, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			id, e.Seq, ms(now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // taken in before
		}
		took = true
		r, err := loadRow(ctx, tx, id)
		if err != nil {
			return err
		}
		room = r.room
		r.lastSeq = max(r.lastSeq, e.Seq)
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET last_seq = ?, last_message = ? WHERE id = ?`,
			r.lastSeq, ms(now), id); err != nil {
			return err
		}
		// A bare digit soon after the question answers it, and leaves the
		// conversation as it is.
		if r.csatAsked != 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE conversations SET csat_asked = 0 WHERE id = ?`, id); err != nil {
				return err
			}
			if n, ok := csatAnswer(e); ok && now.Sub(fromMS(r.csatAsked)) <= csatWindow {
				if _, err := tx.ExecContext(ctx, `UPDATE conversations SET csat = ? WHERE id = ?`, n, id); err != nil {
					return err
				}
				return audit(ctx, tx, id, now, "system", "satisfaction", strings.TrimSpace(e.Text))
			}
		}
		if r.firstCustomer == 0 {
			r.firstCustomer = ms(now)
			if r.resStart == 0 {
				r.resStart = ms(now)
			}
		}
		if r.waitingSince == 0 {
			r.waitingSince = ms(now)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET first_customer = ?, res_start = ?, waiting_since = ? WHERE id = ?`,
			r.firstCustomer, r.resStart, r.waitingSince, id); err != nil {
			return err
		}
		if r.status != StatusOpen {
			from := r.status
			if err := changeStatus(ctx, tx, &r, StatusOpen, now); err != nil {
				return err
			}
			if err := audit(ctx, tx, id, now, "system", "status", string(from)+" → open (the customer wrote)"); err != nil {
				return err
			}
		}
		if !r.greeted && set.Greeting != "" {
			send = append(send, set.Greeting)
			if _, err := tx.ExecContext(ctx, `UPDATE conversations SET greeted = 1 WHERE id = ?`, id); err != nil {
				return err
			}
		}
		if set.AwayMessage != "" && !d.Open(now) {
			d.setMu.RLock()
			until := set.Hours.nextOpening(now, d.loc)
			d.setMu.RUnlock()
			if r.awayUntil != ms(until) {
				send = append(send, set.AwayMessage)
				if _, err := tx.ExecContext(ctx, `UPDATE conversations SET away_until = ? WHERE id = ?`, ms(until), id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil && took {
		d.publish(Event{Kind: "conversation", Conversation: id})
		err = d.autoAssign(ctx)
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	for _, text := range send {
		if _, err := d.m.Send(ctx, room, text); err != nil {
			return err
		}
	}
	return nil
}

// csatAnswer reads a satisfaction answer: a message that is just a digit
// from 1 to 5.
func csatAnswer(e conversations.Entry) (int, bool) {
	t := strings.TrimSpace(e.Text)
	if e.File != nil || e.Deleted || len(t) != 1 || t[0] < '1' || t[0] > '5' {
		return 0, false
	}
	return int(t[0] - '0'), true
}

package inbox

import (
	"context"
	"database/sql"
)

// Service levels. A conversation's clocks start at the customer's first
// message (first response and resolution) and, after a resolution, at
// the message that reopens it (a new resolution clock). The targets are
// those of the conversation's team at the time they are read. A breach is
// recorded once per clock, when detected: by the Run loop's sweep, or
// when a conversation is read, replied to or resolved.

// checkBreaches records the breaches that are due.
func (d *Desk) checkBreaches(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := ms(d.now())
	type due struct {
		id, clock, at int64
	}
	find := func(q string) ([]due, error) {
		rows, err := d.db.QueryContext(ctx, q, now)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []due
		for rows.Next() {
			var b due
			if err := rows.Scan(&b.id, &b.clock, &b.at); err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		return out, rows.Err()
	}
	first, err := find(`SELECT c.id, c.first_customer, c.first_customer + t.first_response FROM conversations c
		JOIN teams t ON t.id = c.team
		WHERE t.first_response > 0 AND c.first_customer > 0 AND c.first_response = 0 AND c.fr_breached = 0
		AND c.first_customer + t.first_response <= ?`)
	if err != nil {
		return err
	}
	resolution, err := find(`SELECT c.id, c.res_start, c.res_start + t.resolution FROM conversations c
		JOIN teams t ON t.id = c.team
		WHERE t.resolution > 0 AND c.res_start > 0 AND c.status <> 'resolved' AND c.res_breached = 0
		AND c.res_start + t.resolution <= ?`)
	if err != nil {
		return err
	}
	if len(first)+len(resolution) == 0 {
		return nil
	}
	err = d.tx(ctx, func(tx *sql.Tx) error {
		for _, k := range []struct {
			kind, column string
			list         []due
		}{{"first_response", "fr_breached", first}, {"resolution", "res_breached", resolution}} {
			for _, b := range k.list {
				if _, err := tx.ExecContext(ctx, `UPDATE conversations SET `+k.column+` = 1 WHERE id = ?`, b.id); err != nil { // #nosec G202 -- k.column is one of the two constants above
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO breaches (conversation, kind, clock, due, detected)
					VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, b.id, k.kind, b.clock, b.at, now); err != nil {
					return err
				}
				if err := audit(ctx, tx, b.id, fromMS(now), "system", "breach", k.kind+" target missed"); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, b := range append(first, resolution...) {
		d.publish(Event{Kind: "conversation", Conversation: b.id})
	}
	return nil
}

package inbox

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
)

// candidate is an online agent auto-assignment may consider.
type candidate struct {
	id       int64
	name     string
	capacity int
	load     int // open conversations assigned to them
	teams    []int64
}

// autoAssign gives each open unassigned conversation, longest waiting
// first, to the next online agent of its team (any agent, for a
// conversation without team) below their capacity, round robin. A
// conversation nobody can take waits for the next call: an agent coming
// online, a conversation resolving, a capacity or team change, or the
// Run loop's sweep. The caller holds d.mu.
func (d *Desk) autoAssign(ctx context.Context) error {
	d.setMu.RLock()
	on := d.settings.AutoAssign
	d.setMu.RUnlock()
	if !on {
		return nil
	}
	var agents []candidate
	rows, err := d.db.QueryContext(ctx, `SELECT a.id, a.name, a.capacity,
		(SELECT count(*) FROM conversations c WHERE c.assignee = a.id AND c.status = 'open')
		FROM agents a WHERE a.online = 1 ORDER BY a.id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var c candidate
		if err := rows.Scan(&c.id, &c.name, &c.capacity, &c.load); err != nil {
			rows.Close()
			return err
		}
		agents = append(agents, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(agents) == 0 {
		return err
	}
	for i := range agents {
		if agents[i].teams, err = d.agentTeams(ctx, agents[i].id); err != nil {
			return err
		}
	}
	type waiting struct{ id, team int64 }
	var queue []waiting
	rows, err = d.db.QueryContext(ctx, `SELECT id, team FROM conversations WHERE status = 'open' AND assignee = 0
		ORDER BY CASE WHEN waiting_since > 0 THEN waiting_since ELSE created END, id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var w waiting
		if err := rows.Scan(&w.id, &w.team); err != nil {
			rows.Close()
			return err
		}
		queue = append(queue, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, w := range queue {
		// The round-robin pointer is the last agent given a
		// conversation of this team; the next is the first eligible
		// agent after them, wrapping around.
		key := "rr:" + strconv.FormatInt(w.team, 10)
		v, err := d.setting(ctx, key)
		if err != nil {
			return err
		}
		last, _ := strconv.ParseInt(v, 10, 64)
		pick := -1
		for i, a := range agents {
			if a.load >= a.capacity || (w.team != 0 && !slices.Contains(a.teams, w.team)) {
				continue
			}
			if pick == -1 || (agents[pick].id <= last && a.id > last) {
				pick = i
			}
		}
		if pick == -1 {
			continue
		}
		a := &agents[pick]
		err = d.tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE conversations SET assignee = ? WHERE id = ? AND assignee = 0`, a.id, w.id)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil
			}
			if err := setSetting(ctx, tx, key, strconv.FormatInt(a.id, 10)); err != nil {
				return err
			}
			return audit(ctx, tx, w.id, d.now(), "system", "assigned", "to "+a.name+" (round robin)")
		})
		if err != nil {
			return err
		}
		a.load++
		d.publish(Event{Kind: "conversation", Conversation: w.id})
	}
	return nil
}

// Assign gives a conversation to an agent (0: unassigns it). Any agent
// may; capacity does not limit a manual assignment. Audited.
func (d *Desk) Assign(ctx context.Context, id, byAgent, toAgent int64) error {
	by, err := d.actorName(ctx, byAgent)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	detail := "nobody"
	if toAgent != 0 {
		a, err := d.Agent(ctx, toAgent)
		if err != nil {
			return err
		}
		detail = "to " + a.Name
	}
	action := "assigned"
	if toAgent == 0 {
		action = "unassigned"
	}
	changed := false
	err = d.tx(ctx, func(tx *sql.Tx) error {
		r, err := loadRow(ctx, tx, id)
		if err != nil || r.assignee == toAgent {
			return err
		}
		changed = true
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET assignee = ? WHERE id = ?`, toAgent, id); err != nil {
			return err
		}
		if toAgent == 0 {
			detail = ""
		}
		return audit(ctx, tx, id, d.now(), by, action, detail)
	})
	if err != nil || !changed {
		return err
	}
	d.publish(Event{Kind: "conversation", Conversation: id})
	return d.autoAssign(ctx)
}

// Transfer hands a conversation to another agent, to a team, or to an
// agent within a team. Transferred to a team alone, it is unassigned and
// goes to the team's next agent by auto-assignment. Audited.
func (d *Desk) Transfer(ctx context.Context, id, byAgent, toAgent, toTeam int64) error {
	by, err := d.actorName(ctx, byAgent)
	if err != nil {
		return err
	}
	if toAgent == 0 && toTeam == 0 {
		return fmt.Errorf("%w: a transfer names an agent or a team", ErrInvalid)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var detail string
	if toAgent != 0 {
		a, err := d.Agent(ctx, toAgent)
		if err != nil {
			return err
		}
		detail = "to " + a.Name
	}
	if toTeam != 0 {
		t, err := d.team(ctx, toTeam)
		if err != nil {
			return err
		}
		if detail == "" {
			detail = "to team " + t.Name
		} else {
			detail += " in team " + t.Name
		}
	}
	err = d.tx(ctx, func(tx *sql.Tx) error {
		r, err := loadRow(ctx, tx, id)
		if err != nil {
			return err
		}
		team := r.team
		if toTeam != 0 {
			team = toTeam
		}
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET assignee = ?, team = ? WHERE id = ?`, toAgent, team, id); err != nil {
			return err
		}
		return audit(ctx, tx, id, d.now(), by, "transferred", detail)
	})
	if err != nil {
		return err
	}
	d.publish(Event{Kind: "conversation", Conversation: id})
	return d.autoAssign(ctx)
}

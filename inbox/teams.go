package inbox

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// maxTarget bounds a service-level target.
const maxTarget = 365 * 24 * time.Hour

// Teams lists the teams.
func (d *Desk) Teams(ctx context.Context) ([]Team, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, name, first_response, resolution FROM teams ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Team
	for rows.Next() {
		var t Team
		var fr, res int64
		if err := rows.Scan(&t.ID, &t.Name, &fr, &res); err != nil {
			return nil, err
		}
		t.FirstResponse, t.Resolution = time.Duration(fr)*time.Millisecond, time.Duration(res)*time.Millisecond
		out = append(out, t)
	}
	return out, rows.Err()
}

func (d *Desk) team(ctx context.Context, id int64) (Team, error) {
	t := Team{ID: id}
	var fr, res int64
	err := d.db.QueryRowContext(ctx, `SELECT name, first_response, resolution FROM teams WHERE id = ?`, id).Scan(&t.Name, &fr, &res)
	if err != nil {
		return Team{}, notFound(err, fmt.Sprintf("team %d", id))
	}
	t.FirstResponse, t.Resolution = time.Duration(fr)*time.Millisecond, time.Duration(res)*time.Millisecond
	return t, nil
}

func validTeam(t Team) (Team, error) {
	name, err := validName(t.Name)
	if err != nil {
		return t, err
	}
	t.Name = name
	for _, v := range []time.Duration{t.FirstResponse, t.Resolution} {
		if v < 0 || v > maxTarget {
			return t, fmt.Errorf("%w: a target is 0 (none) to a year", ErrInvalid)
		}
	}
	return t, nil
}

// AddTeam adds a team with its service-level targets (0: none).
func (d *Desk) AddTeam(ctx context.Context, name string, firstResponse, resolution time.Duration) (Team, error) {
	t, err := validTeam(Team{Name: name, FirstResponse: firstResponse, Resolution: resolution})
	if err != nil {
		return Team{}, err
	}
	res, err := d.db.ExecContext(ctx, `INSERT INTO teams (name, first_response, resolution) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, t.Name, t.FirstResponse.Milliseconds(), t.Resolution.Milliseconds())
	if err != nil {
		return Team{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Team{}, fmt.Errorf("%w: team %q", ErrExists, t.Name)
	}
	t.ID, _ = res.LastInsertId()
	d.publish(Event{Kind: "agents"})
	return d.team(ctx, t.ID)
}

// SetTeam renames a team or changes its targets. The targets apply to
// its conversations' running clocks at once.
func (d *Desk) SetTeam(ctx context.Context, t Team) error {
	t, err := validTeam(t)
	if err != nil {
		return err
	}
	if _, err := d.team(ctx, t.ID); err != nil {
		return err
	}
	_, err = d.db.ExecContext(ctx, `UPDATE teams SET name = ?, first_response = ?, resolution = ? WHERE id = ?`,
		t.Name, t.FirstResponse.Milliseconds(), t.Resolution.Milliseconds(), t.ID)
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return fmt.Errorf("%w: team %q", ErrExists, t.Name)
	}
	if err == nil {
		d.publish(Event{Kind: "agents"})
	}
	return err
}

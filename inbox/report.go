package inbox

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// maxReportDays bounds a report's period.
const maxReportDays = 400

// Report gives the figures of the period [from, to): the conversations
// created, by customer provider; the median first-response time of the
// conversations first answered in the period and the median resolution
// time of the resolutions in it (each from the clock's start: the first
// customer message, or the reopening one); the breaches whose deadline
// fell in the period; and the same by day, days starting at midnight in
// the business's time zone.
func (d *Desk) Report(ctx context.Context, from, to time.Time) (Report, error) {
	if !from.Before(to) || to.Sub(from) > maxReportDays*24*time.Hour {
		return Report{}, fmt.Errorf("%w: a report's period runs forward, over at most %d days", ErrInvalid, maxReportDays)
	}
	if err := d.checkBreaches(ctx); err != nil {
		return Report{}, err
	}
	rep := Report{From: from, To: to, PerProvider: map[string]int{}}
	f, t := ms(from), ms(to)

	rows, err := d.db.QueryContext(ctx, `SELECT provider, count(*) FROM conversations WHERE created >= ? AND created < ? GROUP BY provider`, f, t)
	if err != nil {
		return Report{}, err
	}
	for rows.Next() {
		var p string
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			rows.Close()
			return Report{}, err
		}
		rep.PerProvider[p] = n
	}
	rows.Close()

	if rep.MedianFirstResponse, err = d.median(ctx, `SELECT first_response - first_customer FROM conversations
		WHERE first_response >= ? AND first_response < ? AND first_customer > 0`, f, t); err != nil {
		return Report{}, err
	}
	if rep.MedianResolution, err = d.median(ctx, `SELECT at - started FROM resolutions WHERE at >= ? AND at < ?`, f, t); err != nil {
		return Report{}, err
	}
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE kind = 'first_response'), count(*) FILTER (WHERE kind = 'resolution')
		FROM breaches WHERE due >= ? AND due < ?`, f, t).Scan(&rep.FirstResponseBreaches, &rep.ResolutionBreaches); err != nil {
		return Report{}, err
	}

	d.setMu.RLock()
	loc := d.loc
	d.setMu.RUnlock()
	for start := from; start.Before(to); {
		l := start.In(loc)
		end := time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
		if end.After(to) {
			end = to
		}
		day := DayFigures{Day: time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)}
		s, e := ms(start), ms(end)
		for _, q := range []struct {
			sql string
			n   *int
		}{
			{`SELECT count(*) FROM conversations WHERE created >= ? AND created < ?`, &day.Conversations},
			{`SELECT count(*) FROM resolutions WHERE at >= ? AND at < ?`, &day.Resolved},
			{`SELECT count(*) FROM breaches WHERE due >= ? AND due < ?`, &day.Breaches},
		} {
			if err := d.db.QueryRowContext(ctx, q.sql, s, e).Scan(q.n); err != nil {
				return Report{}, err
			}
		}
		rep.Days = append(rep.Days, day)
		start = end
	}
	return rep, nil
}

// median is the median of durations in ms a query returns (0 if none).
func (d *Desk) median(ctx context.Context, q string, args ...any) (time.Duration, error) {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var v []int64
	for rows.Next() {
		var x int64
		if err := rows.Scan(&x); err != nil {
			return 0, err
		}
		v = append(v, x)
	}
	if err := rows.Err(); err != nil || len(v) == 0 {
		return 0, err
	}
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return time.Duration(m) * time.Millisecond, nil
}

package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// DefaultCSATQuestion is asked when Settings.CSATQuestion is empty.
const DefaultCSATQuestion = "How did we do? Reply with a number from 1 (poor) to 5 (great)."

// maxMessage bounds the business's automatic messages.
const maxMessage = 4000

// Settings returns the business's settings.
func (d *Desk) Settings(ctx context.Context) (Settings, error) {
	d.setMu.RLock()
	defer d.setMu.RUnlock()
	s := d.settings
	for i := range s.Hours.Days {
		s.Hours.Days[i] = append([]Span(nil), s.Hours.Days[i]...)
	}
	return s, nil
}

func (d *Desk) loadSettings(ctx context.Context) error {
	v, err := d.setting(ctx, "settings")
	if err != nil || v == "" {
		return err
	}
	var s Settings
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return fmt.Errorf("inbox: the stored settings: %w", err)
	}
	loc, err := time.LoadLocation(s.Hours.Zone)
	if err != nil {
		return fmt.Errorf("inbox: the stored settings: %w", err)
	}
	d.setMu.Lock()
	d.settings, d.loc = s, loc
	d.setMu.Unlock()
	return nil
}

// SetSettings replaces the settings. Invalid ones (an unknown zone, a
// malformed or inverted span, an unknown default team, an overlong
// message) are ErrInvalid, and change nothing.
func (d *Desk) SetSettings(ctx context.Context, s Settings) error {
	loc, err := time.LoadLocation(s.Hours.Zone)
	if err != nil {
		return fmt.Errorf("%w: time zone %q", ErrInvalid, s.Hours.Zone)
	}
	for day, spans := range s.Hours.Days {
		if len(spans) > 8 {
			return fmt.Errorf("%w: at most 8 spans a day", ErrInvalid)
		}
		for _, sp := range spans {
			from, err1 := clockMinutes(sp.From)
			to, err2 := clockMinutes(sp.To)
			if err1 != nil || err2 != nil || from >= to {
				return fmt.Errorf("%w: %s span %q to %q (HH:MM, from before to, 24:00 ends the day)", ErrInvalid, time.Weekday(day), sp.From, sp.To)
			}
		}
	}
	for _, m := range []string{s.AwayMessage, s.Greeting, s.CSATQuestion} {
		if len(m) > maxMessage || !utf8.ValidString(m) {
			return fmt.Errorf("%w: a message has at most %d bytes of UTF-8", ErrInvalid, maxMessage)
		}
	}
	if s.DefaultTeam != 0 {
		if _, err := d.team(ctx, s.DefaultTeam); err != nil {
			return fmt.Errorf("%w: default team %d", ErrInvalid, s.DefaultTeam)
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := setSetting(ctx, d.db, "settings", string(b)); err != nil {
		return err
	}
	d.setMu.Lock()
	d.settings, d.loc = s, loc
	d.setMu.Unlock()
	d.publish(Event{Kind: "agents"})
	return d.autoAssign(ctx)
}

// clockMinutes parses "HH:MM" (00:00 to 24:00) into minutes of the day.
func clockMinutes(s string) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%w: time %q", ErrInvalid, s)
	}
	for _, c := range s[:2] + s[3:] {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: time %q", ErrInvalid, s)
		}
	}
	h, m = int(s[0]-'0')*10+int(s[1]-'0'), int(s[3]-'0')*10+int(s[4]-'0')
	if m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%w: time %q", ErrInvalid, s)
	}
	return h*60 + m, nil
}

// scheduled says whether the hours have any span: none means the
// business keeps no hours, and is always open.
func (h Hours) scheduled() bool {
	for _, spans := range h.Days {
		if len(spans) > 0 {
			return true
		}
	}
	return false
}

// Open says whether at is within business hours. Without any span, the
// business is always open.
func (d *Desk) Open(at time.Time) bool {
	d.setMu.RLock()
	h, loc := d.settings.Hours, d.loc
	d.setMu.RUnlock()
	return h.open(at, loc)
}

func (h Hours) open(at time.Time, loc *time.Location) bool {
	if !h.scheduled() {
		return true
	}
	t := at.In(loc)
	min := t.Hour()*60 + t.Minute()
	for _, sp := range h.Days[t.Weekday()] {
		from, _ := clockMinutes(sp.From)
		to, _ := clockMinutes(sp.To)
		if min >= from && min < to {
			return true
		}
	}
	return false
}

// nextOpening is when the business opens next after at (which is outside
// hours); zero if never within two weeks. It names a closed period: the
// away reply goes once per period.
func (h Hours) nextOpening(at time.Time, loc *time.Location) time.Time {
	t := at.In(loc)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	for i := 0; i < 15; i++ {
		d := day.AddDate(0, 0, i)
		var best time.Time
		for _, sp := range h.Days[d.Weekday()] {
			from, _ := clockMinutes(sp.From)
			open := time.Date(d.Year(), d.Month(), d.Day(), from/60, from%60, 0, 0, loc)
			if open.After(at) && (best.IsZero() || open.Before(best)) {
				best = open
			}
		}
		if !best.IsZero() {
			return best
		}
	}
	return time.Time{}
}

package console

import (
	"net/url"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/inbox"
)

// FuzzParseFilter: whatever query string an agent's browser sends, the
// list's filter is either refused or one the Desk can take, and encoding
// it again reads back the same filter.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "status=open", "assignee=me&team=2&label=vip", "assignee=unassigned", "assignee=-3",
		"status=closed", "team=x", "label=" + string(make([]byte, 70)), "assignee=9223372036854775808", "label=%ff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := parseFilter(q, 7)
		if err != nil {
			return
		}
		switch lq.Filter.Status {
		case "", inbox.StatusOpen, inbox.StatusPending, inbox.StatusResolved:
		default:
			t.Fatalf("status %q accepted", lq.Filter.Status)
		}
		if lq.Filter.Assignee < -1 || lq.Filter.Team < 0 {
			t.Fatalf("filter %+v accepted", lq.Filter)
		}
		q2, err := url.ParseQuery(lq.Encode())
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseFilter(q2, 7)
		if err != nil || again.Filter != lq.Filter {
			t.Fatalf("%q read back as %+v (%v), want %+v", lq.Encode(), again.Filter, err, lq.Filter)
		}
	})
}

// FuzzParseSpans: opening hours typed in the settings form are refused or
// come out as ordered, non-empty spans of valid times that format back to
// the same spans.
func FuzzParseSpans(f *testing.F) {
	for _, s := range []string{"", "09:00-17:00", "09:00-12:00, 13:00-17:30", "00:00-24:00", "17:00-09:00", "9:00-17:00",
		"09:00-12:00,11:00-13:00", "24:01-25:00", "+9:00-10:00", "09:00", "--", "09:60-10:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spans, err := parseSpans(s)
		if err != nil {
			return
		}
		last := -1
		for _, sp := range spans {
			a, errA := minuteOfDay(sp.From)
			b, errB := minuteOfDay(sp.To)
			if errA != nil || errB != nil || b <= a || a < last || b > 24*60 {
				t.Fatalf("%q gave the span %+v", s, sp)
			}
			last = b
		}
		again, err := parseSpans(formatSpans(spans))
		if err != nil || len(again) != len(spans) {
			t.Fatalf("%q formats as %q, which reads back as %+v (%v)", s, formatSpans(spans), again, err)
		}
	})
}

// FuzzReportPeriod: a report's dates are refused or give a period of one
// to 367 days, from before to.
func FuzzReportPeriod(f *testing.F) {
	for _, p := range [][2]string{{"", ""}, {"2026-12-01", "2026-12-03"}, {"2026-12-03", "2026-12-01"}, {"2020-01-01", "2026-01-01"}, {"x", ""}, {"2026-02-30", ""}} {
		f.Add(p[0], p[1])
	}
	now := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, from, to string) {
		a, b, err := reportPeriod(from, to, now, time.UTC)
		if err != nil {
			return
		}
		if b.Before(a) || b.Sub(a) > maxReportDays*24*time.Hour {
			t.Fatalf("%q..%q gave %v..%v", from, to, a, b)
		}
	})
}

package console

import (
	"context"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/inbox"
)

// maxReportDays bounds a report's period.
const maxReportDays = 366

// reportData is the report page's data.
type reportData struct {
	From, To  string // the form's dates, To inclusive
	Report    inbox.Report
	Providers []providerCount
	Chart     template.HTML
}

type providerCount struct {
	Provider string
	Count    int
}

// reportPeriod reads from and to (YYYY-MM-DD, both days included) in the
// business's zone; by default the last seven days up to today.
func reportPeriod(fromS, toS string, now time.Time, loc *time.Location) (from, to time.Time, err error) {
	today := time.Date(now.In(loc).Year(), now.In(loc).Month(), now.In(loc).Day(), 0, 0, 0, 0, loc)
	to = today
	if toS != "" {
		if to, err = time.ParseInLocation(time.DateOnly, toS, loc); err != nil {
			return from, to, badInput("to must be a date, YYYY-MM-DD")
		}
	}
	from = to.AddDate(0, 0, -6)
	if fromS != "" {
		if from, err = time.ParseInLocation(time.DateOnly, fromS, loc); err != nil {
			return from, to, badInput("from must be a date, YYYY-MM-DD")
		}
	}
	if to.Before(from) {
		return from, to, badInput("from must not be after to")
	}
	if to.Sub(from) > maxReportDays*24*time.Hour {
		return from, to, badInput("a report covers at most %d days", maxReportDays)
	}
	return from, to, nil
}

// zone is the business hours' time zone, in which days are counted.
func (s *server) zone(ctx context.Context) *time.Location {
	st, err := s.desk.Settings(ctx)
	if err != nil || st.Hours.Zone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(st.Hours.Zone)
	if err != nil {
		return time.UTC
	}
	return loc
}

func (s *server) reportPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	from, to, err := reportPeriod(q.Get("from"), q.Get("to"), s.now(), s.zone(ctx))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.desk.Report(ctx, from, to.AddDate(0, 0, 1))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data := &reportData{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), Report: rep, Chart: chart(rep.Days)}
	for _, p := range slices.Sorted(maps.Keys(rep.PerProvider)) {
		data.Providers = append(data.Providers, providerCount{p, rep.PerProvider[p]})
	}
	s.render(w, r, http.StatusOK, "report", &view{Title: "Report", Data: data})
}

// chart draws the days as grouped bars (conversations, resolved,
// breaches) in an inline SVG, on the server: no script, no library.
// Every number in it is formatted by the console, never taken as text.
func chart(days []inbox.DayFigures) template.HTML {
	const (
		height, top, bottom, left = 220, 16, 40, 36
		group, bar                = 30, 8
	)
	width := max(left+max(len(days), 1)*group+10, 380)
	peak := 1
	for _, d := range days {
		peak = max(peak, d.Conversations, d.Resolved, d.Breaches)
	}
	plot := height - top - bottom
	y := func(v int) int { return top + plot - v*plot/peak }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" data-testid="report-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="Conversations, resolved and breaches per day">`,
		width, height, width, height)
	// Axis and the peak's gridline.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, left, top+plot, width-5, top+plot)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ddd"/>`, left, top, width-5, top)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" text-anchor="end">%d</text>`, left-4, top+4, peak)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" text-anchor="end">0</text>`, left-4, top+plot+4)
	series := []struct {
		name, colour string
		v            func(inbox.DayFigures) int
	}{
		{"conversations", "#3b6fd8", func(d inbox.DayFigures) int { return d.Conversations }},
		{"resolved", "#2e9e5b", func(d inbox.DayFigures) int { return d.Resolved }},
		{"breaches", "#d8443b", func(d inbox.DayFigures) int { return d.Breaches }},
	}
	for i, d := range days {
		x0 := left + i*group + 3
		day := d.Day.Format(time.DateOnly)
		for j, s := range series {
			v := s.v(d)
			fmt.Fprintf(&b, `<rect data-series="%s" data-day="%s" data-value="%d" x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s: %d %s</title></rect>`,
				s.name, day, v, x0+j*bar, y(v), bar-1, top+plot-y(v), s.colour, day, v, s.name)
		}
		// A date under every bar group when few, else under every seventh.
		if len(days) <= 14 || i%7 == 0 {
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="9" text-anchor="middle">%s</text>`, x0+12, top+plot+14, d.Day.Format("01-02"))
		}
	}
	// The legend.
	for j, s := range series {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="8" height="8" fill="%s"/><text x="%d" y="%d" font-size="10">%s</text>`,
			left+j*110, height-14, s.colour, left+j*110+12, height-6, s.name)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec G203 -- built here from numbers, dates and constant names and colours
}

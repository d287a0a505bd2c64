package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/inbox/console"
)

// TestTheReportPage: two customers write on one day; the report of that
// day shows them per provider, in the chart and in the day's row.
func TestTheReportPage(t *testing.T) {
	b := newBusiness(t, console.Options{})
	bob, carol := b.customer("bob"), b.customer("carol")
	bob.writes("hello")
	carol.writes("hi there")
	bob.conversation()
	carol.conversation()

	ada := b.browser()
	ada.login("ada", adminPassword)
	day := b.clock.Now().UTC().Format(time.DateOnly)
	p := ada.get("/report?" + url.Values{"from": {day}, "to": {day}}.Encode())
	if p.status != http.StatusOK {
		t.Fatalf("the report: %d %s", p.status, p.body)
	}
	if !strings.Contains(p.body, `<svg class="chart"`) {
		t.Fatal("the report has no chart")
	}
	for _, want := range []string{
		`data-series="conversations" data-day="` + day + `" data-value="2"`,
		`<tr data-testid="provider-count" data-provider="blue.test"><td><span class="provider" title="customer's provider">blue.test</span></td><td>2</td>`,
		`<td>` + day + `</td><td>2</td>`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the report lacks %s\n%s", want, p.body)
		}
	}
	// The default period is the last seven days: one chart group each.
	if p := ada.get("/report"); count(p.body, `data-series="conversations"`) != 7 {
		t.Errorf("the default report has %d days", count(p.body, `data-series="conversations"`))
	}
}

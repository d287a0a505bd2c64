package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/inbox"
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

// TestTheSettingsForm: an admin sets the business hours, the messages
// and the switches with the form; the Desk has them, and the page shows
// them again.
func TestTheSettingsForm(t *testing.T) {
	b := newBusiness(t, console.Options{})
	ada := b.browser()
	ada.login("ada", adminPassword)
	form := url.Values{
		"zone": {"Europe/Berlin"}, "hours-monday": {"09:00-12:00, 13:00-17:30"}, "hours-friday": {"10:00-14:00"},
		"away": {"We are closed <now>."}, "greeting": {"Welcome!"}, "csat": {"on"}, "csat_question": {"How did we do, 1 to 5?"},
		"auto_assign": {"on"},
	}
	if p := ada.post("/admin/settings", form); p.status != http.StatusSeeOther {
		t.Fatalf("saving the settings: %d %s", p.status, p.body)
	}
	st, err := b.desk.Settings(context.Background())
	ok(t, "settings", err)
	if st.Hours.Zone != "Europe/Berlin" || len(st.Hours.Days[time.Monday]) != 2 || st.Hours.Days[time.Monday][1] != (inbox.Span{From: "13:00", To: "17:30"}) ||
		len(st.Hours.Days[time.Friday]) != 1 || len(st.Hours.Days[time.Sunday]) != 0 ||
		st.AwayMessage != "We are closed <now>." || st.Greeting != "Welcome!" || !st.CSAT || st.CSATQuestion != "How did we do, 1 to 5?" || !st.AutoAssign {
		t.Fatalf("the desk's settings: %+v", st)
	}
	p := ada.get("/admin/settings")
	for _, want := range []string{`value="09:00-12:00, 13:00-17:30"`, `value="Europe/Berlin"`, "We are closed &lt;now&gt;.", `name="csat" checked`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the settings page lacks %s", want)
		}
	}
}

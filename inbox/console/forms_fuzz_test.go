package console_test

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/inbox/console"
)

// FuzzConsoleForms posts whatever body a browser (or a script with an
// agent's cookie) could send to every form of the console, as the admin
// ada, in a desk with one customer's conversation and one team. The
// console must never fail inside (5xx), and a refused form (4xx) must
// leave every row of the Desk's database as it was.
func FuzzConsoleForms(f *testing.F) {
	b := newBusiness(f, console.Options{})
	ada := b.browser()
	ada.login("ada", adminPassword)
	bob := b.customer("bob")
	bob.writes("Where is my order?")
	conv := itoa(bob.conversation().ID)
	team, err := b.desk.AddTeam(context.Background(), "Billing", 10*time.Minute, time.Hour)
	ok(f, "adding a team", err)
	sam := itoa(b.agent.ID)
	paths := []string{
		"/c/" + conv + "/reply",
		"/c/" + conv + "/notes",
		"/c/" + conv + "/labels",
		"/c/" + conv + "/assign",
		"/c/" + conv + "/transfer",
		"/c/" + conv + "/status",
		"/admin/agents",
		"/admin/agents/" + sam,
		"/admin/teams",
		"/admin/teams/" + itoa(team.ID),
		"/admin/canned",
		"/admin/settings",
	}
	seeds := []url.Values{
		{"text": {"It left the warehouse today."}},
		{"text": {"customer asked twice"}},
		{"add": {"vip, shipping"}, "remove": {"new"}},
		{"agent": {sam}},
		{"team": {itoa(team.ID)}},
		{"status": {"resolved"}},
		{"login": {"kim"}, "name": {"Kim"}, "password": {"a long enough password"}, "role": {"agent"}},
		{"capacity": {"5"}, "team": {itoa(team.ID)}, "password": {"another long password"}},
		{"name": {"Returns"}, "first_response": {"15"}, "resolution": {"120"}},
		{"name": {"Billing"}, "first_response": {"5"}, "resolution": {"60"}},
		{"code": {"/thanks"}, "text": {"Thank you for writing!"}},
		{"zone": {"Europe/Zurich"}, "hours-monday": {"09:00-17:00"}, "away": {"We are closed."}, "csat": {"on"}},
	}
	for i := range paths {
		f.Add(uint8(i), []byte(seeds[i].Encode()))
		f.Add(uint8(i), []byte("%zz"))
		f.Add(uint8(i), []byte(""))
	}
	f.Add(uint8(11), []byte("zone=Mars%2FOlympus"))
	f.Add(uint8(11), []byte("hours-monday=17%3A00-09%3A00"))
	f.Add(uint8(8), []byte("name=X&first_response=soon"))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		before := deskDump(t, b.dir)
		req, err := http.NewRequest(http.MethodPost, ada.base+path, strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", ada.base)
		br := *ada // the same cookies, reporting to this input's t
		br.t = t
		p := br.do(req)
		switch {
		case p.status >= 500:
			t.Fatalf("POST %s %q failed inside: %d %s", path, body, p.status, p.body)
		case p.status >= 400:
			if after := deskDump(t, b.dir); after != before {
				t.Fatalf("POST %s %q was refused (%d) but changed the Desk", path, body, p.status)
			}
		}
	})
}

// deskDump renders every row of every table of the Desk's database, read
// by a connection of its own.
func deskDump(t testing.TB, dir string) string {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "inbox.db")+"?mode=ro")
	ok(t, "opening the Desk's database", err)
	defer db.Close()
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	ok(t, "listing tables", err)
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var out strings.Builder
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		ok(t, "reading "+table, err)
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		out.WriteString(table + "\n")
		for rows.Next() {
			ok(t, "scanning "+table, rows.Scan(ptrs...))
			for _, v := range vals {
				if b, isBytes := v.([]byte); isBytes {
					v = hex.EncodeToString(b)
				}
				fmt.Fprintf(&out, "%v|", v)
			}
			out.WriteByte('\n')
		}
		rows.Close()
	}
	return out.String()
}

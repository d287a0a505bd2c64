package console

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/inbox"
)

// adminData is the data of the admin pages.
type adminData struct {
	Dir      *directory
	Canned   []inbox.Canned
	Settings inbox.Settings
	Days     []dayHours
	Form     map[string]string // what the admin typed, redrawn after an error
}

type dayHours struct {
	Day   time.Weekday
	Field string // the form field: "hours-monday"
	Spans string // "09:00-12:00, 13:00-17:30"
}

func (s *server) adminView(r *http.Request, title string) (*view, error) {
	ctx := r.Context()
	d, err := s.directory(ctx)
	if err != nil {
		return nil, err
	}
	data := &adminData{Dir: d}
	if data.Canned, err = s.desk.Canned(ctx); err != nil {
		return nil, err
	}
	if data.Settings, err = s.desk.Settings(ctx); err != nil {
		return nil, err
	}
	for day := time.Sunday; day <= time.Saturday; day++ {
		data.Days = append(data.Days, dayHours{Day: day, Field: "hours-" + strings.ToLower(day.String()), Spans: formatSpans(data.Settings.Hours.Days[day])})
	}
	return &view{Title: title, Data: data}, nil
}

// adminPage renders one of the admin pages, with an error if one is given.
func (s *server) adminPage(w http.ResponseWriter, r *http.Request, page, title string, status int, problem error) {
	v, err := s.adminView(r, title)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if problem != nil {
		v.Error = errorText(problem)
		if r.PostForm != nil {
			form := map[string]string{}
			for k := range r.PostForm {
				if k != "password" {
					form[k] = r.PostForm.Get(k)
				}
			}
			v.Data.(*adminData).Form = form
		}
	}
	s.render(w, r, status, page, v)
}

// adminPost parses an admin form, runs act, and answers: back to the page
// on success, the page with the error otherwise.
func (s *server) adminPost(w http.ResponseWriter, r *http.Request, page, title, back string, act func() error) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, badInput("the form could not be read"))
		return
	}
	if err := act(); err != nil {
		status, _ := errorStatus(err)
		if status == http.StatusInternalServerError || fromScript(r) {
			s.fail(w, r, err)
			return
		}
		s.adminPage(w, r, page, title, status, err)
		return
	}
	done(w, r, back)
}

func (s *server) agentsPage(w http.ResponseWriter, r *http.Request) {
	s.adminPage(w, r, "agents", "Agents", http.StatusOK, nil)
}

func (s *server) addAgent(w http.ResponseWriter, r *http.Request) {
	s.adminPost(w, r, "agents", "Agents", "/admin/agents", func() error {
		f := r.PostForm
		role := inbox.Role(f.Get("role"))
		if role != inbox.RoleAdmin && role != inbox.RoleAgent {
			return badInput("role must be admin or agent")
		}
		_, err := s.desk.AddAgent(r.Context(), strings.TrimSpace(f.Get("login")), strings.TrimSpace(f.Get("name")), f.Get("password"), role)
		return err
	})
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, badInput("the number in the address is not valid")
	}
	return id, nil
}

// updateAgent sets an agent's capacity, teams and, if given, password.
func (s *server) updateAgent(w http.ResponseWriter, r *http.Request) {
	s.adminPost(w, r, "agents", "Agents", "/admin/agents", func() error {
		ctx := r.Context()
		id, err := pathID(r)
		if err != nil {
			return err
		}
		capacity, err := strconv.Atoi(strings.TrimSpace(r.PostForm.Get("capacity")))
		if err != nil || capacity < 0 || capacity > 1000 {
			return badInput("capacity must be a number from 0 to 1000")
		}
		var teams []int64
		for _, v := range r.PostForm["team"] {
			t, err := strconv.ParseInt(v, 10, 64)
			if err != nil || t <= 0 {
				return badInput("team must be a team's number")
			}
			teams = append(teams, t)
		}
		if err := s.desk.SetAgentCapacity(ctx, id, capacity); err != nil {
			return err
		}
		if err := s.desk.SetAgentTeams(ctx, id, teams); err != nil {
			return err
		}
		if p := r.PostForm.Get("password"); p != "" {
			return s.desk.SetPassword(ctx, id, p)
		}
		return nil
	})
}

func (s *server) removeAgent(w http.ResponseWriter, r *http.Request) {
	s.adminPost(w, r, "agents", "Agents", "/admin/agents", func() error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		if id == agentOf(r.Context()).ID {
			return badInput("an admin cannot remove themselves; ask another admin")
		}
		return s.desk.RemoveAgent(r.Context(), id)
	})
}

func (s *server) teamsPage(w http.ResponseWriter, r *http.Request) {
	s.adminPage(w, r, "teams", "Teams", http.StatusOK, nil)
}

// targets reads a team's targets, in minutes (empty or 0: none).
func targets(r *http.Request) (first, resolution time.Duration, err error) {
	read := func(field string) (time.Duration, error) {
		v := strings.TrimSpace(r.PostForm.Get(field))
		if v == "" {
			return 0, nil
		}
		m, err := strconv.Atoi(v)
		if err != nil || m < 0 || m > 60*24*90 {
			return 0, badInput("%s must be minutes, from 0 to 129600 (90 days)", field)
		}
		return time.Duration(m) * time.Minute, nil
	}
	if first, err = read("first_response"); err != nil {
		return
	}
	resolution, err = read("resolution")
	return
}

func (s *server) addTeam(w http.ResponseWriter, r *http.Request) {
	s.adminPost(w, r, "teams", "Teams", "/admin/teams", func() error {
		first, res, err := targets(r)
		if err != nil {
			return err
		}
		_, err = s.desk.AddTeam(r.Context(), strings.TrimSpace(r.PostForm.Get("name")), first, res)
		return err
	})
}

func (s *server) updateTeam(w http.ResponseWriter, r *http.Request) {
	s.adminPost(w, r, "teams", "Teams", "/admin/teams", func() error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		first, res, err := targets(r)
		if err != nil {
			return err
		}
		return s.desk.SetTeam(r.Context(), inbox.Team{ID: id, Name: strings.TrimSpace(r.PostForm.Get("name")), FirstResponse: first, Resolution: res})
	})
}

func (s *server) cannedPage(w http.ResponseWriter, r *http.Request) {
	s.adminPage(w, r, "canned", "Canned responses", http.StatusOK, nil)
}

// setCanned adds or changes a canned response; an empty text deletes it.
func (s *server) setCanned(w http.ResponseWriter, r *http.Request) {
	s.adminPost(w, r, "canned", "Canned responses", "/admin/canned", func() error {
		code := strings.TrimPrefix(strings.TrimSpace(r.PostForm.Get("code")), "/")
		text := strings.TrimSpace(r.PostForm.Get("text"))
		if r.PostForm.Get("delete") != "" {
			text = ""
		}
		return s.desk.SetCanned(r.Context(), code, text)
	})
}

func (s *server) settingsPage(w http.ResponseWriter, r *http.Request) {
	s.adminPage(w, r, "settings", "Settings", http.StatusOK, nil)
}

func (s *server) setSettings(w http.ResponseWriter, r *http.Request) {
	s.adminPost(w, r, "settings", "Settings", "/admin/settings", func() error {
		f := r.PostForm
		st := inbox.Settings{
			AwayMessage:  strings.TrimSpace(f.Get("away")),
			Greeting:     strings.TrimSpace(f.Get("greeting")),
			CSAT:         f.Get("csat") == "on",
			CSATQuestion: strings.TrimSpace(f.Get("csat_question")),
			AutoAssign:   f.Get("auto_assign") == "on",
		}
		zone := strings.TrimSpace(f.Get("zone"))
		if _, err := time.LoadLocation(zone); err != nil {
			return badInput("zone must be a time zone name such as Europe/Berlin, or empty for UTC")
		}
		st.Hours.Zone = zone
		for day := time.Sunday; day <= time.Saturday; day++ {
			spans, err := parseSpans(f.Get("hours-" + strings.ToLower(day.String())))
			if err != nil {
				return badInput("%s: %v", day, err)
			}
			st.Hours.Days[day] = spans
		}
		team, err := formID(r, "default_team")
		if err != nil {
			return err
		}
		st.DefaultTeam = team
		return s.desk.SetSettings(r.Context(), st)
	})
}

// parseSpans reads a day's opening hours as the settings form takes
// them: "09:00-12:00, 13:00-17:30", or empty for a closed day. Each span
// runs forward within the day, and the spans do not overlap.
func parseSpans(s string) ([]inbox.Span, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if len(s) > 200 || !utf8.ValidString(s) {
		return nil, badInput("opening hours are at most a few spans such as 09:00-17:00")
	}
	var spans []inbox.Span
	last := -1
	for part := range strings.SplitSeq(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(part), "-")
		if !ok {
			return nil, badInput("%q is not a span such as 09:00-17:00", part)
		}
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		a, errA := minuteOfDay(from)
		b, errB := minuteOfDay(to)
		if errA != nil || errB != nil {
			return nil, badInput("%q: times are HH:MM, from 00:00 to 24:00", part)
		}
		if b <= a {
			return nil, badInput("%q ends before it starts", part)
		}
		if a < last {
			return nil, badInput("%q overlaps or comes before the span before it", part)
		}
		last = b
		spans = append(spans, inbox.Span{From: from, To: to})
	}
	return spans, nil
}

// minuteOfDay reads "HH:MM" (00:00 to 24:00).
func minuteOfDay(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, badInput("not HH:MM")
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || s[0] == '+' || s[0] == '-' || s[3] == '+' || s[3] == '-' || h < 0 || m < 0 || m > 59 || h > 24 || h == 24 && m != 0 {
		return 0, badInput("not HH:MM")
	}
	return h*60 + m, nil
}

func formatSpans(spans []inbox.Span) string {
	parts := make([]string, len(spans))
	for i, sp := range spans {
		parts[i] = sp.From + "-" + sp.To
	}
	return strings.Join(parts, ", ")
}

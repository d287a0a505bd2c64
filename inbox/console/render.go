package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/inbox"
)

// view is what every page template gets: the signed-in agent, the page's
// title, an error to show, and the page's own data.
type view struct {
	Title   string
	Console string
	Agent   inbox.Agent
	Admin   bool
	Error   string
	Notice  string
	Now     time.Time
	Data    any
}

// pages are the parsed templates: each page is the layout, the shared
// partials and its own file.
type pages struct {
	byName map[string]*template.Template
}

// shared are the templates every page may use.
var shared = []string{"templates/layout.html", "templates/partials.html"}

func mustParsePages() *pages {
	p := &pages{byName: map[string]*template.Template{}}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, shared...))
	for _, f := range files {
		if f == shared[0] || f == shared[1] {
			continue
		}
		t := template.Must(template.Must(base.Clone()).ParseFS(templateFS, f))
		p.byName[strings.TrimSuffix(path.Base(f), ".html")] = t
	}
	return p
}

// render writes a whole page (the template "page" of name's set).
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	s.renderTemplate(w, r, status, name, "page", v)
}

// renderTemplate executes one template of a page's set into a buffer
// first, so a failure gives a clean 500 rather than half a page.
func (s *server) renderTemplate(w http.ResponseWriter, r *http.Request, status int, name, tmpl string, v *view) {
	t := s.pages.byName[name]
	if t == nil {
		s.log.Error("no such page", "page", name)
		http.Error(w, "internal: no such page", http.StatusInternalServerError)
		return
	}
	v.Console = s.opts.Title
	v.Now = s.now()
	if a := agentOf(r.Context()); a.ID != 0 {
		v.Agent, v.Admin = a, a.Role == inbox.RoleAdmin
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, tmpl, v); err != nil {
		s.log.Error("rendering", "page", name, "template", tmpl, "err", err)
		http.Error(w, "internal: the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorStatus maps the Desk's errors to HTTP statuses and stable codes.
func errorStatus(err error) (int, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, inbox.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, inbox.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, inbox.ErrInvalid), errors.Is(err, errBadInput):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, inbox.ErrExists):
		return http.StatusConflict, "conflict"
	}
	return http.StatusInternalServerError, "internal"
}

// errBadInput marks a request the console itself refuses.
var errBadInput = errors.New("bad request")

// badInput is a refusal with a message safe to show.
func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadInput}, args...)...)
}

// errorText is what an agent is shown of an error: the Desk's and the
// console's own refusals as they are, faults only as a code.
func errorText(err error) string {
	status, code := errorStatus(err)
	if status == http.StatusInternalServerError {
		return "Something went wrong on the server (" + code + "); nothing was changed."
	}
	return code + ": " + err.Error()
}

// fail answers a failed request: a fetch from the script gets the plain
// error, a page gets the error page.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, _ := errorStatus(err)
	if status == http.StatusInternalServerError {
		s.log.Error("request", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if fromScript(r) {
		http.Error(w, errorText(err), status)
		return
	}
	s.render(w, r, status, "error", &view{Title: "Error", Error: errorText(err)})
}

// fromScript tells a form the console's script sent with fetch, which
// wants no redirect, from a plain form POST.
func fromScript(r *http.Request) bool { return r.Header.Get("X-Console-Fetch") == "1" }

// done answers a successful POST: 204 to the script, a redirect to a page.
func done(w http.ResponseWriter, r *http.Request, to string) {
	if fromScript(r) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

var funcs = template.FuncMap{
	"since":   since,
	"until":   until,
	"preview": preview,
	"clock": func(t time.Time) string {
		return t.Format("2006-01-02 15:04")
	},
	"hasPrefix": strings.HasPrefix,
	"statuses":  func() []string { return []string{"open", "pending", "resolved"} },
	"join":      strings.Join,
	"add":       func(a, b int) int { return a + b },
	"minutes":   func(d time.Duration) int64 { return int64(d / time.Minute) },
	"dur":       human,
	"median": func(d time.Duration) string {
		if d == 0 {
			return "—"
		}
		return human(d)
	},
	"contains": func(list []int64, v int64) bool {
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	},
}

// human writes a duration as a person reads it: "3 d 4 h", "2 h 5 min",
// "12 min", "40 s".
func human(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%d d %d h", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%d h %d min", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return fmt.Sprintf("%d s", d/time.Second)
}

func since(now time.Time, t *time.Time) string {
	if t == nil {
		return ""
	}
	return human(now.Sub(*t))
}

func until(now time.Time, t *time.Time) string {
	if t == nil {
		return ""
	}
	if t.Before(now) {
		return "overdue " + human(now.Sub(*t))
	}
	return human(t.Sub(now)) + " left"
}

// preview cuts text to n characters for one line of a list.
func preview(n int, text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) <= n {
		return text
	}
	r := []rune(text)
	return string(r[:n]) + "…"
}

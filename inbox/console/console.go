// Package console is the business inbox's web console: the pages agents
// and admins use in a browser, server-rendered with html/template on top
// of an *inbox.Desk. Live updates come over Server-Sent Events; a small
// embedded script swaps fragments in without a reload, and every form also
// works as a plain POST without JavaScript. docs/inbox-console.md describes
// the pages, the cookies and the protections.
package console

import (
	"embed"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchboard-chat/switchboard/inbox"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Options tune the console.
type Options struct {
	// Log receives the faults of requests (nil: discarded).
	Log *slog.Logger
	// Now is the clock for waiting times, SLA countdowns and the login
	// limits (nil: time.Now). It should be the Desk's.
	Now func() time.Time
	// SecureCookies marks the session cookie Secure even when the request
	// did not come over TLS: it must be on behind a proxy that terminates
	// TLS, since the console then only sees plain HTTP. Requests that do
	// come over TLS always get a Secure cookie.
	SecureCookies bool
	// Title names the console in the pages (default "Inbox").
	Title string
	// MaxUpload is the largest file an agent may send, in bytes (default
	// 25 MiB).
	MaxUpload int64
}

// server holds the console's state beside the Desk: templates, the login
// limits and the count of live connections per agent.
type server struct {
	desk   *inbox.Desk
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	pages  *pages
	limits *loginLimits
	online *presence
}

// New returns the console's handler for desk. It refuses cross-origin
// unsafe requests (CSRF) with net/http's CrossOriginProtection.
func New(desk *inbox.Desk, opts Options) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Title == "" {
		opts.Title = "Inbox"
	}
	if opts.MaxUpload <= 0 {
		opts.MaxUpload = 25 << 20
	}
	s := &server{
		desk:   desk,
		opts:   opts,
		log:    opts.Log,
		now:    opts.Now,
		pages:  mustParsePages(),
		limits: newLoginLimits(),
		online: newPresence(desk),
	}
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.FileServerFS(assetFS))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)

	mux.HandleFunc("GET /{$}", s.agentOnly(s.listPage))
	mux.HandleFunc("GET /fragments/list", s.agentOnly(s.listFragment))
	mux.HandleFunc("GET /events", s.agentOnly(s.events))
	mux.HandleFunc("GET /search", s.agentOnly(s.searchPage))
	mux.HandleFunc("GET /report", s.agentOnly(s.reportPage))

	mux.HandleFunc("GET /c/{id}", s.agentOnly(s.conversationPage))
	mux.HandleFunc("GET /fragments/c/{id}/history", s.agentOnly(s.historyFragment))
	mux.HandleFunc("GET /fragments/c/{id}/meta", s.agentOnly(s.metaFragment))
	mux.HandleFunc("GET /c/{id}/files/{msg}", s.agentOnly(s.file))
	mux.HandleFunc("POST /c/{id}/reply", s.agentOnly(s.reply))
	mux.HandleFunc("POST /c/{id}/notes", s.agentOnly(s.addNote))
	mux.HandleFunc("POST /c/{id}/labels", s.agentOnly(s.labels))
	mux.HandleFunc("POST /c/{id}/assign", s.agentOnly(s.assign))
	mux.HandleFunc("POST /c/{id}/transfer", s.agentOnly(s.transfer))
	mux.HandleFunc("POST /c/{id}/status", s.agentOnly(s.setStatus))
	mux.HandleFunc("POST /c/{id}/unlink", s.agentOnly(s.unlink))

	mux.HandleFunc("GET /admin/agents", s.adminOnly(s.agentsPage))
	mux.HandleFunc("POST /admin/agents", s.adminOnly(s.addAgent))
	mux.HandleFunc("POST /admin/agents/{id}", s.adminOnly(s.updateAgent))
	mux.HandleFunc("POST /admin/agents/{id}/remove", s.adminOnly(s.removeAgent))
	mux.HandleFunc("GET /admin/teams", s.adminOnly(s.teamsPage))
	mux.HandleFunc("POST /admin/teams", s.adminOnly(s.addTeam))
	mux.HandleFunc("POST /admin/teams/{id}", s.adminOnly(s.updateTeam))
	mux.HandleFunc("GET /admin/canned", s.adminOnly(s.cannedPage))
	mux.HandleFunc("POST /admin/canned", s.adminOnly(s.setCanned))
	mux.HandleFunc("GET /admin/settings", s.adminOnly(s.settingsPage))
	mux.HandleFunc("POST /admin/settings", s.adminOnly(s.setSettings))

	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden: cross-origin request refused", http.StatusForbidden)
	}))
	return securityHeaders(csrf.Handler(mux))
}

// securityHeaders sets the headers every answer carries: scripts, styles
// and images only from the console itself, no framing, no sniffing.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "+
			"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

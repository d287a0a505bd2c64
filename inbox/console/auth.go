package console

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-chat/switchboard/inbox"
)

// sessionCookie names the cookie that carries an agent's session token.
const sessionCookie = "inbox_session"

// The login limits: per login name, a few tries and then one every 20
// seconds; per client address, more, since several agents may share one
// office address.
var (
	loginEvery, loginBurst = 20 * time.Second, 5
	addrEvery, addrBurst   = 2 * time.Second, 20
)

// loginLimits are the token buckets of login attempts, by login and by
// client address. Buckets that are full again are dropped when the map
// grows, so a flood of made-up logins cannot grow it without bound.
type loginLimits struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newLoginLimits() *loginLimits { return &loginLimits{buckets: map[string]*rate.Limiter{}} }

// allow takes one attempt from both the login's and the address's bucket;
// a refused attempt takes nothing from either.
func (l *loginLimits) allow(now time.Time, login, addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buckets) > 10000 {
		for k, b := range l.buckets {
			if b.TokensAt(now) >= float64(b.Burst()) {
				delete(l.buckets, k)
			}
		}
	}
	get := func(key string, every time.Duration, burst int) *rate.Limiter {
		b := l.buckets[key]
		if b == nil {
			b = rate.NewLimiter(rate.Every(every), burst)
			l.buckets[key] = b
		}
		return b
	}
	byLogin := get("login:"+strings.ToLower(login), loginEvery, loginBurst)
	byAddr := get("addr:"+addr, addrEvery, addrBurst)
	r1 := byLogin.ReserveN(now, 1)
	if !r1.OK() || r1.DelayFrom(now) > 0 {
		r1.CancelAt(now)
		return false
	}
	r2 := byAddr.ReserveN(now, 1)
	if !r2.OK() || r2.DelayFrom(now) > 0 {
		r2.CancelAt(now)
		r1.CancelAt(now)
		return false
	}
	return true
}

// clientAddr is the request's remote IP (behind a proxy, the proxy's).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *server) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.session(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", &view{Title: "Sign in"})
}

// login checks the login and password, and on success starts a session.
// Unknown logins and wrong passwords get the same answer.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusBadRequest, "login", &view{Title: "Sign in", Error: "The form could not be read."})
		return
	}
	login, password := strings.TrimSpace(r.PostForm.Get("login")), r.PostForm.Get("password")
	v := &view{Title: "Sign in", Data: login}
	if !s.limits.allow(s.now(), login, clientAddr(r)) {
		w.Header().Set("Retry-After", "20")
		v.Error = "Too many sign-in attempts. Wait a minute and try again."
		s.render(w, r, http.StatusTooManyRequests, "login", v)
		return
	}
	a, err := s.desk.Login(r.Context(), login, password)
	if err != nil {
		if !errors.Is(err, inbox.ErrBadLogin) {
			s.log.Error("login", "err", err)
		}
		v.Error = "The login or the password is wrong."
		s.render(w, r, http.StatusUnauthorized, "login", v)
		return
	}
	token, expires, err := s.desk.NewSession(r.Context(), a.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, s.cookie(r, token, expires))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// cookie is the session cookie: not readable by scripts, sent on
// top-level navigations from elsewhere (Lax) but not on their POSTs.
func (s *server) cookie(r *http.Request, token string, expires time.Time) *http.Cookie {
	c := &http.Cookie{ // #nosec G124 -- Secure over TLS or behind a TLS proxy (SecureCookies); plain HTTP is loopback only
		Name:     sessionCookie,
		Value:    token,
		Path:     "/",
		HttpOnly: true,
		Secure:   r.TLS != nil || s.opts.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	}
	if token == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires
	}
	return c
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		if err := s.desk.EndSession(r.Context(), c.Value); err != nil && !errors.Is(err, inbox.ErrNotFound) {
			s.log.Error("logout", "err", err)
		}
	}
	http.SetCookie(w, s.cookie(r, "", time.Time{}))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// session finds the agent of the request's session cookie.
func (s *server) session(r *http.Request) (inbox.Agent, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 256 {
		return inbox.Agent{}, false
	}
	a, err := s.desk.SessionAgent(r.Context(), c.Value)
	if err != nil {
		if !errors.Is(err, inbox.ErrNotFound) {
			s.log.Error("session", "err", err)
		}
		return inbox.Agent{}, false
	}
	return a, true
}

type agentKey struct{}

// agentOf is the signed-in agent of a request that passed agentOnly.
func agentOf(ctx context.Context) inbox.Agent {
	a, _ := ctx.Value(agentKey{}).(inbox.Agent)
	return a
}

// agentOnly lets only signed-in agents through: a page asked for without
// a session leads to the login form, anything else is refused with 401.
func (s *server) agentOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, ok := s.session(r)
		if !ok {
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/fragments/") && r.URL.Path != "/events" {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "unauthenticated: sign in first", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r.WithContext(context.WithValue(r.Context(), agentKey{}, a)))
	}
}

// adminOnly is agentOnly for admins; other agents get 403.
func (s *server) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return s.agentOnly(func(w http.ResponseWriter, r *http.Request) {
		if agentOf(r.Context()).Role != inbox.RoleAdmin {
			s.render(w, r, http.StatusForbidden, "error", &view{Title: "Forbidden", Error: "Only an admin may open this page."})
			return
		}
		h(w, r)
	})
}

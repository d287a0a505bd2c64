package console_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/inbox/console"
)

// TestSigningInAndOut: an agent signs in with the login form, gets a
// session cookie no script can read, works, and signs out; the old
// cookie is then worthless. Wrong passwords and unknown logins get the
// same answer and no cookie.
func TestSigningInAndOut(t *testing.T) {
	b := newBusiness(t, console.Options{})
	br := b.browser()

	if p := br.get("/"); p.status != http.StatusSeeOther || p.location != "/login" {
		t.Fatalf("the list without a session: %d %q, want the login page", p.status, p.location)
	}
	p := br.get("/login")
	for _, hook := range []string{`<form id="login"`, `name="login"`, `name="password"`, `<button type="submit">`} {
		if !strings.Contains(p.body, hook) {
			t.Errorf("the login page lacks %s", hook)
		}
	}

	wrong := br.post("/login", url.Values{"login": {"sam"}, "password": {"not-the-password"}})
	unknown := br.post("/login", url.Values{"login": {"nobody"}, "password": {agentPassword}})
	for _, p := range []page{wrong, unknown} {
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "The login or the password is wrong.") || p.header.Get("Set-Cookie") != "" {
			t.Errorf("a bad login answered %d, cookie %q", p.status, p.header.Get("Set-Cookie"))
		}
	}
	if strings.Replace(wrong.body, `value="sam"`, "", 1) != strings.Replace(unknown.body, `value="nobody"`, "", 1) {
		t.Error("a wrong password and an unknown login are told apart")
	}

	p = br.post("/login", url.Values{"login": {"sam"}, "password": {agentPassword}})
	if p.status != http.StatusSeeOther || p.location != "/" {
		t.Fatalf("signing in: %d %q", p.status, p.location)
	}
	cookie := sessionCookie(t, p.header)
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" || cookie.Secure {
		t.Errorf("the session cookie over plain http is %+v, want HttpOnly, SameSite=Lax, Path=/, not Secure", cookie)
	}
	if p := br.get("/"); p.status != http.StatusOK || !strings.Contains(p.body, "Sam Agent") || !strings.Contains(p.body, `data-testid="logout"`) {
		t.Fatalf("the list after signing in: %d", p.status)
	}

	if p := br.post("/logout", nil); p.status != http.StatusSeeOther || p.location != "/login" {
		t.Fatalf("signing out: %d %q", p.status, p.location)
	}
	if p := br.get("/"); p.status != http.StatusSeeOther {
		t.Errorf("the list after signing out: %d", p.status)
	}
	// The token itself ended: a copy of the old cookie gets nowhere.
	req, _ := http.NewRequest(http.MethodGet, b.console.URL+"/fragments/list", nil)
	req.AddCookie(cookie)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the old session cookie after signing out: %v %v", resp.StatusCode, err)
	}
}

func sessionCookie(t *testing.T, h http.Header) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "inbox_session" {
			return c
		}
	}
	t.Fatalf("no session cookie in %q", h.Values("Set-Cookie"))
	return nil
}

// TestSecureCookies: over TLS, or with SecureCookies (behind a proxy
// that terminates TLS), the session cookie is Secure.
func TestSecureCookies(t *testing.T) {
	b := newBusiness(t, console.Options{SecureCookies: true})
	p := b.browser().post("/login", url.Values{"login": {"sam"}, "password": {agentPassword}})
	if c := sessionCookie(t, p.header); !c.Secure {
		t.Errorf("with SecureCookies the cookie is %+v", c)
	}

	tlsServer := httptest.NewTLSServer(console.New(b.desk, console.Options{}))
	defer tlsServer.Close()
	c := tlsServer.Client()
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(tlsServer.URL+"/login", url.Values{"login": {"sam"}, "password": {agentPassword}})
	ok(t, "signing in over TLS", err)
	resp.Body.Close()
	if c := sessionCookie(t, resp.Header); !c.Secure {
		t.Errorf("over TLS the cookie is %+v", c)
	}
}

// TestLoginAttemptsAreLimited: after a few wrong passwords for one
// login, even the right one is refused for a while, with 429.
func TestLoginAttemptsAreLimited(t *testing.T) {
	b := newBusiness(t, console.Options{})
	br := b.browser()
	for i := range 5 {
		if p := br.post("/login", url.Values{"login": {"sam"}, "password": {"guess-" + string(rune('a'+i))}}); p.status != http.StatusUnauthorized {
			t.Fatalf("wrong attempt %d: %d", i+1, p.status)
		}
	}
	p := br.post("/login", url.Values{"login": {"sam"}, "password": {agentPassword}})
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" || p.header.Get("Set-Cookie") != "" {
		t.Fatalf("the sixth attempt in a row: %d, Retry-After %q", p.status, p.header.Get("Retry-After"))
	}
	// Another login from the same address still gets through.
	b.browser().login("ada", adminPassword)
	// Time heals: 20 seconds later one more attempt is allowed.
	b.clock.advance(21e9)
	br.login("sam", agentPassword)
}

// TestCrossOriginPostsAreRefused: a page on another site cannot make a
// signed-in admin's browser add an agent or an agent's browser write a
// note; the same forms from the console itself work.
func TestCrossOriginPostsAreRefused(t *testing.T) {
	b := newBusiness(t, console.Options{})
	br := b.browser()
	br.login("ada", adminPassword)
	form := url.Values{"login": {"mallory"}, "name": {"Mallory"}, "password": {"mallory-password"}, "role": {"admin"}}

	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "", "Origin": "https://evil.example"},
	} {
		req, _ := http.NewRequest(http.MethodPost, b.console.URL+"/admin/agents", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		resp, err := br.c.Do(req)
		ok(t, "the cross-origin post", err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("a cross-origin POST with %v answered %d, want 403", h, resp.StatusCode)
		}
	}
	agents, err := b.desk.Agents(context.Background())
	ok(t, "agents", err)
	for _, a := range agents {
		if a.Login == "mallory" {
			t.Fatal("a cross-origin POST added an agent")
		}
	}
	if p := br.post("/admin/agents", form); p.status != http.StatusSeeOther {
		t.Fatalf("the same form from the console: %d %s", p.status, p.body)
	}
	b.browser().login("mallory", "mallory-password")
}

// TestAgentsAndAdmins: an agent cannot open the admin pages; an admin
// adds an agent who can then sign in, and removing them ends their
// session at once.
func TestAgentsAndAdmins(t *testing.T) {
	b := newBusiness(t, console.Options{})
	sam := b.browser()
	sam.login("sam", agentPassword)
	for _, path := range []string{"/admin/agents", "/admin/teams", "/admin/canned", "/admin/settings"} {
		if p := sam.get(path); p.status != http.StatusForbidden {
			t.Errorf("an agent opening %s: %d, want 403", path, p.status)
		}
	}
	if p := sam.post("/admin/teams", url.Values{"name": {"Sneaky"}}); p.status != http.StatusForbidden {
		t.Errorf("an agent adding a team: %d, want 403", p.status)
	}
	if strings.Contains(sam.get("/").body, `href="/admin/agents"`) {
		t.Error("an agent's menu links the admin pages")
	}

	ada := b.browser()
	ada.login("ada", adminPassword)
	for _, path := range []string{"/admin/agents", "/admin/teams", "/admin/canned", "/admin/settings"} {
		if p := ada.get(path); p.status != http.StatusOK {
			t.Errorf("an admin opening %s: %d", path, p.status)
		}
	}
	// A too-short password is refused with the Desk's reason, and nothing is added.
	if p := ada.post("/admin/agents", url.Values{"login": {"kim"}, "name": {"Kim"}, "password": {"short"}, "role": {"agent"}}); p.status != http.StatusBadRequest || !strings.Contains(p.body, "bad_request") {
		t.Errorf("adding an agent with a short password: %d", p.status)
	}
	if p := ada.post("/admin/agents", url.Values{"login": {"kim"}, "name": {"Kim"}, "password": {"kim-password-1"}, "role": {"agent"}}); p.status != http.StatusSeeOther {
		t.Fatalf("adding kim: %d %s", p.status, p.body)
	}
	if p := ada.post("/admin/agents", url.Values{"login": {"kim"}, "name": {"Kim 2"}, "password": {"kim-password-1"}, "role": {"agent"}}); p.status != http.StatusConflict {
		t.Errorf("adding kim twice: %d, want 409", p.status)
	}
	kim := b.browser()
	kim.login("kim", "kim-password-1")
	if p := kim.get("/"); p.status != http.StatusOK {
		t.Fatalf("kim's list: %d", p.status)
	}
	var kimID int64
	agents, _ := b.desk.Agents(context.Background())
	for _, a := range agents {
		if a.Login == "kim" {
			kimID = a.ID
		}
	}
	if p := ada.post("/admin/agents/"+itoa(kimID)+"/remove", nil); p.status != http.StatusSeeOther {
		t.Fatalf("removing kim: %d %s", p.status, p.body)
	}
	if p := kim.get("/"); p.status != http.StatusSeeOther || p.location != "/login" {
		t.Errorf("kim's session after removal: %d %q", p.status, p.location)
	}
	if p := ada.post("/admin/agents/"+itoa(b.admin.ID)+"/remove", nil); p.status != http.StatusBadRequest {
		t.Errorf("the admin removing themselves: %d, want 400", p.status)
	}
}

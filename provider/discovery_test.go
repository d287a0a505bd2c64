package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// TestDiscoveryFederationSide: green's identifierQuery finds a user by
// handle only if they allow it, by phone only if they allow that, and
// answers notFound otherwise, as for a user who does not exist.
func TestDiscoveryFederationSide(t *testing.T) {
	green, blue := newFedNode(t, "green.example"), newFedNode(t, "blue.example")
	endpoint := green.serveFederation(t, loadTrust(t, blue.entry("https://blue.invalid")))
	caller := blue.peers(t, loadTrust(t, green.entry(endpoint)))
	ctx := context.Background()
	set := func(handle string, byHandle, byPhone bool) {
		t.Helper()
		u, err := green.st.UserByHandle(ctx, handle)
		if err != nil {
			t.Fatal(err)
		}
		if err := green.st.SetDiscoverable(ctx, u.ID, byHandle, byPhone); err != nil {
			t.Fatal(err)
		}
	}
	green.addDevice(t, "alice", "+41 44 668 18 00", "phone", 1, false) // by phone only
	green.addDevice(t, "bob", "+49 30 901820", "phone", 1, false)      // by handle only
	green.addDevice(t, "carol", "+44 20 7946 0018", "phone", 1, false) // neither
	green.addDevice(t, "dave", "+1 202 456 1111", "phone", 1, false)   // both
	set("alice", false, true)
	set("bob", true, false)
	set("dave", true, true)

	handle := func(v string) federation.QueryElement {
		return federation.QueryElement{SearchType: federation.SearchHandle, SearchValue: v}
	}
	phone := func(v string) federation.QueryElement {
		return federation.QueryElement{SearchType: federation.SearchPhone, SearchValue: v}
	}
	for _, c := range []struct {
		query []federation.QueryElement
		want  string // the user found; "" for notFound
	}{
		{[]federation.QueryElement{phone("+41446681800")}, "alice"},
		{[]federation.QueryElement{handle("alice")}, ""},
		{[]federation.QueryElement{handle("bob")}, "bob"},
		{[]federation.QueryElement{phone("+4930901820")}, ""},
		{[]federation.QueryElement{handle("carol")}, ""},
		{[]federation.QueryElement{phone("+442079460018")}, ""},
		{[]federation.QueryElement{handle("dave")}, "dave"},
		{[]federation.QueryElement{phone("+1 (202) 456-1111")}, "dave"},
		{[]federation.QueryElement{handle("dave"), phone("+12024561111")}, "dave"},
		// Every element must find the user, by a field they allow.
		{[]federation.QueryElement{handle("alice"), phone("+41446681800")}, ""},
		{[]federation.QueryElement{handle("nobody")}, ""},
	} {
		resp := post(t, caller, "/mimi/identifierQuery/green.example", mls.Marshal(&federation.IdentifierRequest{QueryElements: c.query}))
		if resp.Status != http.StatusOK {
			t.Fatalf("%v: status %d: %s", c.query, resp.Status, resp.Body)
		}
		var got federation.IdentifierResponse
		if err := mls.Unmarshal(resp.Body, &got); err != nil {
			t.Fatal(err)
		}
		switch {
		case c.want == "" && (got.ResponseCode != federation.IdentifierNotFound || len(got.URIs) != 0):
			t.Errorf("%v: %v %v, want notFound", c.query, got.ResponseCode, got.URIs)
		case c.want != "" && (got.ResponseCode != federation.IdentifierSuccess || len(got.URIs) != 1 ||
			string(got.URIs[0]) != "mimi://green.example/u/"+c.want):
			t.Errorf("%v: %v %v, want %s", c.query, got.ResponseCode, got.URIs, c.want)
		}
	}
}

// partnerFunc is a federation.Transport made of a function.
type partnerFunc func(ctx context.Context, domain, path string, body []byte) (*federation.Response, error)

func (f partnerFunc) Post(ctx context.Context, domain, path string, body []byte, _ http.Header) (*federation.Response, error) {
	return f(ctx, domain, path, body)
}

// identifierAnswer is a partner's answer naming uris (none: notFound).
func identifierAnswer(domain string, uris ...string) *federation.Response {
	ir := federation.IdentifierResponse{ResponseCode: federation.IdentifierNotFound}
	if len(uris) > 0 {
		ir.ResponseCode = federation.IdentifierSuccess
	}
	for _, u := range uris {
		ir.URIs = append(ir.URIs, federation.IdentifierURI(u))
	}
	return &federation.Response{Domain: domain, Status: http.StatusOK, Header: http.Header{}, Body: mls.Marshal(&ir)}
}

// discoveryEnv is green.example's client API with partners that answer
// through a function, and a signed-in user.
type discoveryEnv struct {
	t     *testing.T
	node  *fedNode
	url   string
	token string
	user  store.User
}

func newDiscoveryEnv(t *testing.T, partners []string, answer partnerFunc) *discoveryEnv {
	t.Helper()
	green := newFedNode(t, "green.example")
	var entries []trustEntry
	for _, d := range partners {
		entries = append(entries, newFedNode(t, d).entry("https://"+d+".invalid"))
	}
	green.srv.EnableFederation(Federation{Trust: loadTrust(t, entries...), Transport: answer})
	hs := httptest.NewServer(green.srv.Handler())
	t.Cleanup(hs.Close)
	green.addDevice(t, "alice", "+41 44 668 18 00", "phone", 0, false)
	ctx := context.Background()
	u, err := green.st.UserByHandle(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := green.st.DevicesOfUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok := "token-of-alice"
	if err := green.st.CreateSession(ctx, store.Session{TokenHash: hashSecret([]byte(tok)), DeviceID: ds[0].ID, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return &discoveryEnv{t: t, node: green, url: hs.URL, token: tok, user: u}
}

// call sends a JSON request and returns the status and the decoded body.
func (e *discoveryEnv) call(method, path string, in any) (int, map[string]any) {
	e.t.Helper()
	data, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, e.url+path, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// lookup posts a lookup that must succeed and returns its matches as
// "user in domain" and its unanswered partners.
func (e *discoveryEnv) lookup(in map[string]string) ([]string, []string) {
	e.t.Helper()
	status, out := e.call("POST", "/v1/discovery", in)
	if status != http.StatusOK {
		e.t.Fatalf("lookup %v: %d %v", in, status, out)
	}
	var matches, unanswered []string
	for _, m := range out["matches"].([]any) {
		m := m.(map[string]any)
		matches = append(matches, fmt.Sprintf("%v in %v", m["user"], m["domain"]))
	}
	for _, d := range out["unanswered"].([]any) {
		unanswered = append(unanswered, d.(string))
	}
	return matches, unanswered
}

func (e *discoveryEnv) wantError(method, path string, in any, status int, code string) {
	e.t.Helper()
	got, out := e.call(method, path, in)
	errBody, _ := out["error"].(map[string]any)
	if got != status || errBody == nil || errBody["code"] != code {
		e.t.Errorf("%s %s %v: %d %v, want %d %s", method, path, in, got, out, status, code)
	}
}

// TestDiscoveryLookup: a lookup asks every active partner at once, and a
// slow partner is left out once discoveryTimeout has passed, named in
// unanswered; a partner cannot pass off another provider's user as its own.
func TestDiscoveryLookup(t *testing.T) {
	defer func(d time.Duration) { discoveryTimeout = d }(discoveryTimeout)
	discoveryTimeout = 300 * time.Millisecond

	var mu sync.Mutex
	var asked []string
	release := make(chan struct{})
	e := newDiscoveryEnv(t, []string{"blue.example", "red.example", "slow.example", "liar.example"},
		func(ctx context.Context, domain, path string, body []byte) (*federation.Response, error) {
			var req federation.IdentifierRequest
			if err := mls.Unmarshal(body, &req); err != nil || len(req.QueryElements) != 1 {
				t.Errorf("%s was asked %x (%v)", domain, body, err)
			}
			q := req.QueryElements[0]
			mu.Lock()
			asked = append(asked, fmt.Sprintf("%s %s %v %s", domain, path, q.SearchType, q.SearchValue))
			mu.Unlock()
			switch domain {
			case "blue.example":
				if q.SearchValue == "bob" || q.SearchValue == "+4930901820" {
					return identifierAnswer(domain, "mimi://blue.example/u/bob"), nil
				}
			case "slow.example":
				// Ignores its deadline: the lookup must not wait for it.
				<-release
			case "liar.example":
				return identifierAnswer(domain, "mimi://blue.example/u/eve", "mimi://liar.example/u/bob"), nil
			}
			return identifierAnswer(domain), nil
		})
	defer close(release)

	// Discoverability: off by default, set as a whole.
	if status, out := e.call("GET", "/v1/me/discovery", nil); status != 200 || out["by_handle"] != false || out["by_phone"] != false {
		t.Fatalf("GET /v1/me/discovery = %d %v", status, out)
	}
	start := time.Now()
	matches, unanswered := e.lookup(map[string]string{"phone": "+49 30 901820"})
	if took := time.Since(start); took > discoveryTimeout+time.Second {
		t.Errorf("the lookup took %v with a partner that never answers; the deadline is %v", took, discoveryTimeout)
	}
	if want := []string{"bob@blue.example in blue.example", "bob@liar.example in liar.example"}; !slices.Equal(matches, want) {
		t.Errorf("matches %q, want %q", matches, want)
	}
	if !slices.Equal(unanswered, []string{"slow.example"}) {
		t.Errorf("unanswered %q, want [slow.example]", unanswered)
	}
	mu.Lock()
	slices.Sort(asked)
	if want := []string{
		"blue.example /identifierQuery/blue.example phone +4930901820",
		"liar.example /identifierQuery/liar.example phone +4930901820",
		"red.example /identifierQuery/red.example phone +4930901820",
		"slow.example /identifierQuery/slow.example phone +4930901820",
	}; !slices.Equal(asked, want) {
		t.Errorf("asked:\n%s\nwant:\n%s", strings.Join(asked, "\n"), strings.Join(want, "\n"))
	}
	asked = nil
	mu.Unlock()

	// One partner, named: only it is asked, handle@domain or domain alike.
	for _, in := range []map[string]string{{"handle": "Bob@Blue.Example"}, {"handle": "bob", "domain": "blue.example"}} {
		matches, unanswered = e.lookup(in)
		if !slices.Equal(matches, []string{"bob@blue.example in blue.example"}) || len(unanswered) != 0 {
			t.Errorf("lookup %v: %q, unanswered %q", in, matches, unanswered)
		}
	}
	mu.Lock()
	if len(asked) != 2 || !strings.HasPrefix(asked[0], "blue.example ") || !strings.HasPrefix(asked[1], "blue.example ") {
		t.Errorf("asked %q, want blue.example twice", asked)
	}
	mu.Unlock()

	// A local user is found too, once they allow it.
	matches, _ = e.lookup(map[string]string{"phone": "+41446681800", "domain": "green.example"})
	if len(matches) != 0 {
		t.Errorf("alice found by phone before allowing it: %q", matches)
	}
	if status, out := e.call("PUT", "/v1/me/discovery", map[string]bool{"by_handle": false, "by_phone": true}); status != 200 || out["by_phone"] != true || out["by_handle"] != false {
		t.Fatalf("PUT /v1/me/discovery = %d %v", status, out)
	}
	if status, out := e.call("GET", "/v1/me/discovery", nil); status != 200 || out["by_handle"] != false || out["by_phone"] != true {
		t.Fatalf("GET /v1/me/discovery = %d %v", status, out)
	}
	matches, _ = e.lookup(map[string]string{"phone": "+41 44 668 18 00", "domain": "green.example"})
	if !slices.Equal(matches, []string{"alice@green.example in green.example"}) {
		t.Errorf("alice by phone: %q", matches)
	}
	matches, _ = e.lookup(map[string]string{"handle": "alice@green.example"})
	if len(matches) != 0 {
		t.Errorf("alice found by handle, which she did not allow: %q", matches)
	}

	// Errors.
	e.wantError("POST", "/v1/discovery", map[string]string{"phone": "555 0100"}, 400, "bad_request")
	e.wantError("POST", "/v1/discovery", map[string]string{"phone": "not a number"}, 400, "bad_request")
	e.wantError("POST", "/v1/discovery", map[string]string{"handle": "a b"}, 400, "bad_request")
	e.wantError("POST", "/v1/discovery", map[string]string{}, 400, "bad_request")
	e.wantError("POST", "/v1/discovery", map[string]string{"handle": "bob", "phone": "+4930901820"}, 400, "bad_request")
	e.wantError("POST", "/v1/discovery", map[string]string{"handle": "bob@blue.example", "domain": "red.example"}, 400, "bad_request")
	e.wantError("POST", "/v1/discovery", map[string]string{"handle": "bob", "domain": "gray.example"}, 404, "not_found")
	e.wantError("POST", "/v1/discovery", map[string]string{"handle": "bob", "domain": "slow.example"}, 502, "partner_unreachable")
	e.wantError("POST", "/v1/discovery", map[string]string{"handle": "bob", "mail": "x"}, 400, "bad_request")
	e.wantError("PUT", "/v1/me/discovery", map[string]bool{"by_handle": true}, 400, "bad_request")
}

package provider_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/switchboard-chat/switchboard/provider"
)

// TestContactsAPI: bob blocks alice, a user of the same provider, and her
// claim of his KeyPackages is refused with no_consent, claiming nothing;
// requests about malformed peers or states are bad_request and change
// nothing; unblocking lets her claim again, which makes bob her contact.
func TestContactsAPI(t *testing.T) {
	p := newProvider(t, provider.Config{})
	alice, bob := p.newRawDevice("alice", "phone"), p.newRawDevice("bob", "phone")
	bob.uploadKeyPackages(2)
	aliceURI := url.PathEscape("mimi://" + domain + "/u/alice")
	type contact struct {
		Peer  string `json:"peer"`
		State string `json:"state"`
	}
	var put contact
	p.call("PUT", "/v1/contacts/"+aliceURI, bob.token, map[string]string{"state": "blocked"}, &put)
	if put.Peer != "mimi://"+domain+"/u/alice" || put.State != "blocked" {
		t.Fatalf("PUT answered %+v", put)
	}
	claim := func() int {
		r := p.request("POST", "/v1/users/bob/keypackages", alice.token, "application/json", []byte(`{"cipher_suite": 1}`))
		return r.status
	}
	before := p.dump()
	r := p.request("POST", "/v1/users/bob/keypackages", alice.token, "application/json", []byte(`{"cipher_suite": 1}`))
	p.expectError(r, http.StatusForbidden, "no_consent")
	// Refused requests, each changing nothing.
	for _, bad := range []struct{ path, body string }{
		{"/v1/contacts/" + url.PathEscape("mimi://"+domain+"/r/room"), `{"state": "blocked"}`},
		{"/v1/contacts/alice", `{"state": "blocked"}`},
		{"/v1/contacts/" + aliceURI, `{"state": "friend"}`},
		{"/v1/contacts/" + url.PathEscape("mimi://"+domain+"/u/bob"), `{"state": "blocked"}`},
	} {
		p.expectError(p.request("PUT", bad.path, bob.token, "application/json", []byte(bad.body)), http.StatusBadRequest, "bad_request")
	}
	p.expectError(p.request("POST", "/v1/requests/accept", bob.token, "application/json", []byte(`{"peer": "bob", "room": ""}`)), http.StatusBadRequest, "bad_request")
	p.expectError(p.request("POST", "/v1/requests/decline", bob.token, "application/json", []byte(`{"peer": "mimi://green.test/u/alice", "room": "nope"}`)), http.StatusNotFound, "not_found")
	p.expectError(p.request("GET", "/v1/contacts?state=friends", bob.token, "", nil), http.StatusBadRequest, "bad_request")
	if after := p.dump(); after != before {
		t.Errorf("refused requests changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	var list struct {
		Contacts []contact `json:"contacts"`
	}
	p.call("GET", "/v1/contacts?state=blocked", bob.token, nil, &list)
	if len(list.Contacts) != 1 || list.Contacts[0].Peer != "mimi://"+domain+"/u/alice" {
		t.Errorf("bob's blocked contacts %+v", list.Contacts)
	}

	// Unblock: the claim goes through, and bob is alice's contact now.
	p.call("PUT", "/v1/contacts/"+aliceURI, bob.token, map[string]string{"state": "none"}, nil)
	p.call("GET", "/v1/contacts", bob.token, nil, &list)
	if len(list.Contacts) != 0 {
		t.Errorf("after unblocking, bob's contacts %+v", list.Contacts)
	}
	if s := claim(); s != http.StatusOK {
		t.Fatalf("alice's claim after the unblock: %d", s)
	}
	p.call("GET", "/v1/contacts?state=accepted", alice.token, nil, &list)
	if len(list.Contacts) != 1 || list.Contacts[0].Peer != "mimi://"+domain+"/u/bob" || list.Contacts[0].State != "accepted" {
		t.Errorf("alice's accepted contacts after inviting bob %+v", list.Contacts)
	}
	var reqs struct {
		Requests []map[string]any `json:"requests"`
	}
	p.call("GET", "/v1/requests", bob.token, nil, &reqs)
	if reqs.Requests == nil || len(reqs.Requests) != 0 {
		t.Errorf("bob's requests %+v, want an empty list", reqs.Requests)
	}
}

package provider_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
)

// claim hands out one KeyPackage of each of a user's devices to d.
func (d *rawDevice) claim(handle string) []*mls.KeyPackage {
	d.p.t.Helper()
	var resp struct {
		KeyPackages []struct {
			KeyPackage []byte `json:"key_package"`
		} `json:"key_packages"`
	}
	d.p.call("POST", "/v1/users/"+handle+"/keypackages", d.token, map[string]any{"cipher_suite": 1}, &resp)
	var out []*mls.KeyPackage
	for _, k := range resp.KeyPackages {
		m, err := mls.ParseMLSMessage(k.KeyPackage)
		if err != nil || m.KeyPackage == nil {
			d.p.t.Fatalf("claimed KeyPackage: %v", err)
		}
		out = append(out, m.KeyPackage)
	}
	return out
}

func TestWelcomeGoesOnlyToTheMembersACommitAdds(t *testing.T) {
	p := newProvider(t, provider.Config{})
	mallory := p.newRawDevice("mallory", "phone")
	laptop := p.newRawDevice("mallory", "laptop")
	laptop.uploadKeyPackages(2)
	victor := p.newRawDevice("victor", "phone")
	victor.uploadKeyPackages(2)

	g, room := mallory.createRoom()
	// mallory may add her own laptop; she tries to slip victor a Welcome
	// made in a group of her own with it.
	side, _ := mallory.createRoom()
	sideRes, err := side.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalAdd, Add: mallory.claim("victor")[0]}}, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalAdd, Add: mallory.claim("mallory")[0]}}, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	before := victor.view()
	body, _ := json.Marshal(map[string]any{"client_id": "commit-with-foreign-welcome", "message": mls.Marshal(res.Commit), "welcome": mls.Marshal(sideRes.Welcome)})
	r := p.request("POST", "/v1/rooms/"+room+"/messages", mallory.token, "application/json", body)
	if r.status != 400 || !strings.Contains(string(r.body), "bad_request") {
		t.Fatalf("a commit with another group's welcome: %d %s", r.status, r.body)
	}
	if after := victor.view(); after != before {
		t.Fatalf("victor's view changed:\n%s\n%s", before, after)
	}
	// With its own Welcome the commit goes through.
	body, _ = json.Marshal(map[string]any{"client_id": "commit-with-its-welcome", "message": mls.Marshal(res.Commit), "welcome": mls.Marshal(res.Welcome)})
	if r := p.request("POST", "/v1/rooms/"+room+"/messages", mallory.token, "application/json", body); r.status != 200 {
		t.Fatalf("the genuine commit: %d %s", r.status, r.body)
	}
}

func TestPreSharedKeyProposalsAreRefused(t *testing.T) {
	p := newProvider(t, provider.Config{})
	mallory := p.newRawDevice("mallory", "phone")
	g, room := mallory.createRoom()
	id := mls.NewExternalPSKID(g.Suite(), []byte("nobody has this"))
	msg, _, err := g.Propose(&mls.Proposal{Type: mls.ProposalPSK, PSK: &id}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := mallory.submit(room, "psk-proposal", mls.Marshal(msg)); r.status != 403 || !strings.Contains(string(r.body), "forbidden") {
		t.Fatalf("a PSK proposal: %d %s", r.status, r.body)
	}
}

package provider_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
)

// TestCommitPathLeafMustKeepTheCommittersCredential: a commit with an
// UpdatePath replaces the committer's leaf. The new leaf's credential must
// verify and name the same device, as an Update proposal's must: otherwise
// a member could swap in a credential no one checked, naming a device of
// another provider (the hub would then fan the room out to that provider
// and list its user as a member there).
func TestCommitPathLeafMustKeepTheCommittersCredential(t *testing.T) {
	p := newProvider(t, provider.Config{})
	mallory := p.newRawDevice("mallory", "phone")
	victor := p.newRawDevice("victor", "phone")
	victor.uploadKeyPackages(1)
	g, room := mallory.createRoom()
	res, err := g.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalAdd, Add: mallory.claim("victor")[0]}}, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	p.call("POST", "/v1/rooms/"+room+"/messages", mallory.token, map[string]any{"client_id": "add-victor-1", "message": mls.Marshal(res.Commit), "welcome": mls.Marshal(res.Welcome)}, nil)
	if _, err := g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}

	// A credential of a CA nobody trusts, for mallory's own signature key,
	// naming carol of red.example.
	red, err := identity.NewCA("red.example")
	if err != nil {
		t.Fatal(err)
	}
	forged, err := red.IssueDevice(mallory.suite, mallory.signer.PublicKey(), "carol", "phone", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	leaf := g.Tree().Leaf(g.OwnLeaf()).Clone()
	leaf.Credential = forged
	if err := g.Tree().UpdateLeaf(g.OwnLeaf(), leaf); err != nil {
		t.Fatal(err)
	}
	res, err = g.Commit(mls.CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	before := victor.view(room)
	if r := mallory.submit(room, "swap-credential", mls.Marshal(res.Commit)); r.status != 403 {
		t.Fatalf("a commit whose path leaf carries an unverified credential: %d %s", r.status, r.body)
	}
	if after := victor.view(room); after != before || strings.Contains(after, "red.example") {
		t.Fatalf("victor's view changed:\n%s\n%s", before, after)
	}
}

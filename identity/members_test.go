package identity_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
)

// TestVerifyMembersOfARealGroup builds an MLS group across two providers with
// the credentials the CAs issue and verifies its tree as a joiner would.
func TestVerifyMembersOfARealGroup(t *testing.T) {
	green, blue := newCA(t, "green.example"), newCA(t, "blue.example")
	v := verifier(t, green, blue)
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)

	aliceKey := signer(t, s)
	alice := mls.Identity{Signer: aliceKey, Credential: issue(t, green, s, aliceKey.PublicKey(), "alice", "phone")}
	g, err := mls.CreateGroup(s, []byte("mimi://green.example/g/lunch"), alice, nil, mls.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var adds []*mls.Proposal
	for _, m := range []struct {
		ca           *identity.CA
		user, device string
	}{{blue, "bob", "laptop"}, {blue, "bob", "phone"}, {green, "alice", "laptop"}} {
		k := signer(t, s)
		kp, err := mls.NewKeyPackage(s, k, issue(t, m.ca, s, k.PublicKey(), m.user, m.device), mls.KeyPackageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, &mls.Proposal{Type: mls.ProposalAdd, Add: kp.KeyPackage})
	}
	if _, err := g.Commit(mls.CommitOptions{Proposals: adds}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}

	devices, err := v.VerifyMembers(s, g.Members(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := map[mls.LeafIndex]string{
		0: "mimi://green.example/d/alice/phone",
		1: "mimi://blue.example/d/bob/laptop",
		2: "mimi://blue.example/d/bob/phone",
		3: "mimi://green.example/d/alice/laptop",
	}
	if len(devices) != len(want) {
		t.Fatalf("%d devices, want %d", len(devices), len(want))
	}
	for i, uri := range want {
		if got := devices[i].URI.String(); got != uri {
			t.Errorf("leaf %d is %s, want %s", i, got, uri)
		}
	}

	// A verifier that does not trust blue refuses the group, naming the
	// first leaf it cannot accept.
	_, err = verifier(t, green).VerifyMembers(s, g.Members(), time.Now())
	wantErr(t, err, identity.ErrUnknownProvider,
		"identity: leaf 1: credential for mimi://blue.example/d/bob/laptop is signed by an unknown provider blue.example")
}

func TestVerifyMembersRefusesDuplicateDevice(t *testing.T) {
	green := newCA(t, "green.example")
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	members := map[mls.LeafIndex]*mls.LeafNode{}
	for _, i := range []mls.LeafIndex{0, 2, 5} {
		device := "phone"
		if i == 2 {
			device = "laptop"
		}
		k := signer(t, s)
		members[i] = &mls.LeafNode{SignatureKey: k.PublicKey(), Credential: issue(t, green, s, k.PublicKey(), "alice", device)}
	}
	_, err := verifier(t, green).VerifyMembers(s, members, time.Now())
	wantErr(t, err, identity.ErrDuplicateDevice, "leaves 0 and 5 are both mimi://green.example/d/alice/phone")
}

func TestCheckSuccessor(t *testing.T) {
	green := newCA(t, "green.example")
	v := verifier(t, green)
	s := suite(t, mls.X25519AES128GCMSHA256Ed25519)
	verified := func(user, device string) identity.Device {
		k := signer(t, s)
		d, err := v.Verify(s, issue(t, green, s, k.PublicKey(), user, device), k.PublicKey(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	phone := verified("alice", "phone")
	if err := identity.CheckSuccessor(phone, verified("alice", "phone")); err != nil {
		t.Errorf("renewed credential with a new key: %v", err)
	}
	err := identity.CheckSuccessor(phone, verified("alice", "laptop"))
	wantErr(t, err, identity.ErrNotSuccessor,
		"credential for mimi://green.example/d/alice/laptop cannot replace the credential of mimi://green.example/d/alice/phone")
}

func BenchmarkVerifyMembers(b *testing.B) {
	for _, id := range []mls.CipherSuite{mls.X25519AES128GCMSHA256Ed25519, mls.P256AES128GCMSHA256P256} {
		b.Run(id.String(), func(b *testing.B) {
			green := newCA(b, "green.example")
			v := verifier(b, green)
			s := suite(b, id)
			members := map[mls.LeafIndex]*mls.LeafNode{}
			for i := range 100 {
				k := signer(b, s)
				members[mls.LeafIndex(i)] = &mls.LeafNode{SignatureKey: k.PublicKey(),
					Credential: issue(b, green, s, k.PublicKey(), fmt.Sprintf("user%d", i), "phone")}
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.VerifyMembers(s, members, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/100, "µs/member")
		})
	}
}

package mls

import (
	"fmt"
	"testing"
)

// Benchmarks of whole group operations at group sizes from 10 to 10,000.
// Run them with:
//
//	go test -run '^$' -bench 'Group|Commit|AddMember' -benchtime 20x ./mls
//
// Figures measured on the project's 2-core machine are in docs/mls.md.

var benchSizes = []int{10, 100, 1000, 10000}

// benchGroup is a group of n members in which alice (leaf 0) and bob
// (leaf 1) are real members; the others exist only in the tree.
type benchGroup struct {
	s          *Suite
	alice, bob *Group
}

var benchGroups = map[int]*benchGroup{}

func newBenchGroup(b *testing.B, n int) *benchGroup {
	b.Helper()
	if bg, ok := benchGroups[n]; ok {
		return bg
	}
	s, _ := SuiteFor(X25519AES128GCMSHA256Ed25519)
	sig, _ := s.GenerateSignatureKey()
	alice, err := CreateGroup(s, []byte("bench"), Identity{Signer: sig, Credential: Credential{Type: CredentialBasic, Identity: []byte("alice")}}, nil, GroupConfig{})
	if err != nil {
		b.Fatal(err)
	}
	kps := make([]*KeyPackagePrivate, n-1)
	var props []*Proposal
	for i := range kps {
		sig, _ := s.GenerateSignatureKey()
		kps[i], err = NewKeyPackage(s, sig, Credential{Type: CredentialBasic, Identity: fmt.Appendf(nil, "member-%d", i)}, KeyPackageOptions{})
		if err != nil {
			b.Fatal(err)
		}
		props = append(props, &Proposal{Type: ProposalAdd, Add: kps[i].KeyPackage})
	}
	res, err := alice.Commit(CommitOptions{Proposals: props})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := alice.MergePendingCommit(); err != nil {
		b.Fatal(err)
	}
	bob, err := JoinFromWelcome(res.Welcome.Welcome, kps[0], alice.Tree().TreeNodes(), GroupConfig{})
	if err != nil {
		b.Fatal(err)
	}
	bg := &benchGroup{s: s, alice: alice, bob: bob}
	benchGroups[n] = bg
	return bg
}

// fullTreeGroups holds the groups of fillParents, by size.
var fullTreeGroups = map[int]*benchGroup{}

// newFullTreeGroup returns a group of n members whose parent nodes all hold
// keys, as in a group where every member has committed once: the steady
// state, where a path is encrypted to about log2(n) nodes. (A group just
// built by one big add has only blank parents, so a path is encrypted to
// every member: the worst case, measured separately.) The keys are derived
// from each node's index so that alice and bob hold the private keys of
// their own direct paths; parent hashes are not valid, which no measured
// operation checks.
func newFullTreeGroup(b *testing.B, n int) *benchGroup {
	b.Helper()
	if bg, ok := fullTreeGroups[n]; ok {
		return bg
	}
	base := newBenchGroup(b, n)
	bg := &benchGroup{s: base.s, alice: snapshot(base.alice), bob: snapshot(base.bob)}
	bg.alice.tree, bg.bob.tree = base.alice.tree.Clone(), base.bob.tree.Clone()
	bg.alice.priv, bg.bob.priv = base.alice.priv.Clone(), base.bob.priv.Clone()
	for x := NodeIndex(1); uint32(x) < bg.alice.tree.Width(); x += 2 {
		priv, pub, err := bg.s.DeriveHPKEKey(fmt.Appendf(nil, "bench-node-%d", x))
		if err != nil {
			b.Fatal(err)
		}
		for _, g := range []*Group{bg.alice, bg.bob} {
			g.tree.setParent(x, &ParentNode{EncryptionKey: pub, ParentHash: []byte{}})
			if isAncestor(x, g.self.Node()) {
				g.priv.keys[x] = priv
			}
		}
	}
	for _, g := range []*Group{bg.alice, bg.bob} {
		g.ctx.TreeHash = g.tree.TreeHash() // as a real group caches after its merge
	}
	fullTreeGroups[n] = bg
	return bg
}

// snapshot copies a group so that processing a commit on the copy leaves
// the original as it was (the copy's secret tree is its own).
func snapshot(g *Group) *Group {
	h := *g
	h.keys = g.keys.Clone()
	h.resumption = map[uint64][]byte{}
	return &h
}

func BenchmarkBuildGroup(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for b.Loop() {
				delete(benchGroups, n)
				newBenchGroup(b, n)
			}
		})
	}
}

// BenchmarkCommitWithPath measures an empty commit, which refreshes the
// committer's path, and its processing by another member, in a group whose
// parent nodes are all set (steady state) and in one whose parents are all
// blank (right after the group was built: the path goes to every member).
func BenchmarkCommitWithPath(b *testing.B) {
	for _, tree := range []string{"full-tree", "blank-parents"} {
		build := newFullTreeGroup
		if tree == "blank-parents" {
			build = newBenchGroup
		}
		for _, n := range benchSizes {
			benchCommitWithPath(b, fmt.Sprintf("%s/N=%d", tree, n), func() *benchGroup { return build(b, n) })
		}
	}
}

func benchCommitWithPath(b *testing.B, name string, build func() *benchGroup) {
	{
		n := name
		b.Run(n+"/create", func(b *testing.B) {
			bg := build()
			for b.Loop() {
				if _, err := bg.alice.Commit(CommitOptions{ForcePath: true}); err != nil {
					b.Fatal(err)
				}
				bg.alice.ClearPendingCommit()
			}
		})
		b.Run(n+"/process", func(b *testing.B) {
			bg := build()
			res, err := bg.alice.Commit(CommitOptions{ForcePath: true})
			if err != nil {
				b.Fatal(err)
			}
			bg.alice.ClearPendingCommit()
			for b.Loop() {
				b.StopTimer()
				bob := snapshot(bg.bob)
				b.StartTimer()
				if _, err := bob.ProcessMessage(res.Commit); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAddMember measures a commit that adds one member (with its
// Welcome) and its processing by another member.
func BenchmarkAddMember(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d/create", n), func(b *testing.B) {
			bg := newBenchGroup(b, n)
			for b.Loop() {
				b.StopTimer()
				sig, _ := bg.s.GenerateSignatureKey()
				kp, _ := NewKeyPackage(bg.s, sig, Credential{Type: CredentialBasic, Identity: []byte("newcomer")}, KeyPackageOptions{})
				b.StartTimer()
				if _, err := bg.alice.Commit(CommitOptions{Proposals: []*Proposal{{Type: ProposalAdd, Add: kp.KeyPackage}}}); err != nil {
					b.Fatal(err)
				}
				bg.alice.ClearPendingCommit()
			}
		})
		b.Run(fmt.Sprintf("N=%d/process", n), func(b *testing.B) {
			bg := newBenchGroup(b, n)
			sig, _ := bg.s.GenerateSignatureKey()
			kp, _ := NewKeyPackage(bg.s, sig, Credential{Type: CredentialBasic, Identity: []byte("newcomer")}, KeyPackageOptions{})
			res, err := bg.alice.Commit(CommitOptions{Proposals: []*Proposal{{Type: ProposalAdd, Add: kp.KeyPackage}}})
			if err != nil {
				b.Fatal(err)
			}
			bg.alice.ClearPendingCommit()
			for b.Loop() {
				b.StopTimer()
				bob := snapshot(bg.bob)
				b.StartTimer()
				if _, err := bob.ProcessMessage(res.Commit); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package mls

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// treeTestSuite is the suite of the scenario tests and benchmarks: X25519 and
// Ed25519 keep key generation cheap.
func treeTestSuite(tb testing.TB) *Suite {
	s, err := SuiteFor(X25519AES128GCMSHA256Ed25519)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// newTreeTestLeaf makes a real KeyPackage leaf with fresh keys.
func newTreeTestLeaf(tb testing.TB, s *Suite, name string) (*LeafNode, HPKEPrivateKey, *SignaturePrivateKey) {
	tb.Helper()
	priv, pub, err := s.GenerateHPKEKey()
	if err != nil {
		tb.Fatal(err)
	}
	sig, err := s.GenerateSignatureKey()
	if err != nil {
		tb.Fatal(err)
	}
	leaf := &LeafNode{
		EncryptionKey: pub,
		SignatureKey:  sig.PublicKey(),
		Credential:    Credential{Type: CredentialBasic, Identity: []byte(name)},
		Capabilities: Capabilities{
			Versions:     []ProtocolVersion{MLS10},
			CipherSuites: []CipherSuite{s.ID},
			Credentials:  []CredentialType{CredentialBasic},
		},
		Source:   SourceKeyPackage,
		Lifetime: Lifetime{NotBefore: 0, NotAfter: math.MaxUint64},
	}
	if err := leaf.Sign(s, sig, nil, 0); err != nil {
		tb.Fatal(err)
	}
	return leaf, priv, sig
}

type treeTestMember struct {
	sig   *SignaturePrivateKey
	tree  *RatchetTree
	state *TreePrivateState
}

// treeTestGroup drives real commits between members who each keep their own
// tree and private state, checking after every commit that all agree.
type treeTestGroup struct {
	s       *Suite
	groupID []byte
	epoch   uint64
	members map[LeafIndex]*treeTestMember
	names   int
}

func newTreeTestGroup(t testing.TB) *treeTestGroup {
	s := treeTestSuite(t)
	leaf, priv, sig := newTreeTestLeaf(t, s, "m0")
	g := &treeTestGroup{s: s, groupID: []byte("test group"), members: map[LeafIndex]*treeTestMember{}, names: 1}
	g.members[0] = &treeTestMember{sig: sig, tree: NewRatchetTreeWithLeaf(s, leaf), state: NewTreePrivateState(0, priv)}
	return g
}

// commit has committer remove some members and add n new ones, with a path.
func (g *treeTestGroup) commit(t testing.TB, committer LeafIndex, add int, remove ...LeafIndex) []LeafIndex {
	t.Helper()
	cm := g.members[committer]
	prov := cm.tree.Clone()
	for _, r := range remove {
		if err := prov.RemoveLeaf(r); err != nil {
			t.Fatal(err)
		}
	}
	type newcomer struct {
		leaf *LeafNode
		priv HPKEPrivateKey
		sig  *SignaturePrivateKey
	}
	var added []LeafIndex
	var fresh []newcomer
	for k := 0; k < add; k++ {
		leaf, priv, sig := newTreeTestLeaf(t, g.s, fmt.Sprintf("m%d", g.names))
		g.names++
		l, err := prov.AddLeaf(leaf)
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, l)
		fresh = append(fresh, newcomer{leaf, priv, sig})
	}
	gen, err := prov.GeneratePath(committer, PathOptions{GroupID: g.groupID, Signer: cm.sig})
	if err != nil {
		t.Fatal(err)
	}
	gc := &GroupContext{Version: MLS10, CipherSuite: g.s.ID, GroupID: g.groupID, Epoch: g.epoch + 1, TreeHash: prov.TreeHash()}
	up, err := gen.Encrypt(prov, gc, added)
	if err != nil {
		t.Fatal(err)
	}
	var sent UpdatePath
	if err := Unmarshal(Marshal(up), &sent); err != nil {
		t.Fatal(err)
	}
	for _, r := range remove {
		delete(g.members, r)
	}
	for l, m := range g.members {
		if l == committer {
			continue
		}
		mt := m.tree.Clone()
		for _, r := range remove {
			if err := mt.RemoveLeaf(r); err != nil {
				t.Fatal(err)
			}
		}
		for k, f := range fresh {
			if got, err := mt.AddLeaf(f.leaf); err != nil || got != added[k] {
				t.Fatalf("member %d placed new leaf at %d (%v), committer at %d", l, got, err, added[k])
			}
		}
		if err := mt.ApplyUpdatePath(committer, &sent, added, LeafNodeCheck{GroupID: g.groupID}); err != nil {
			t.Fatalf("member %d: %v", l, err)
		}
		if !bytes.Equal(mt.TreeHash(), gc.TreeHash) {
			t.Fatalf("member %d: tree hash differs from the committer's", l)
		}
		next, _, cs, err := m.state.DecryptPath(mt, committer, &sent, gc, added)
		if err != nil {
			t.Fatalf("member %d: %v", l, err)
		}
		if !bytes.Equal(cs, gen.CommitSecret) {
			t.Fatalf("member %d: commit secret differs", l)
		}
		m.tree, m.state = mt, next
	}
	cm.tree, cm.state = prov, gen.State
	for k, f := range fresh {
		l := added[k]
		jt, err := ParseRatchetTree(g.s, Marshal(prov))
		if err != nil {
			t.Fatal(err)
		}
		if err := jt.VerifyParentHashes(); err != nil {
			t.Fatalf("joiner %d: %v", l, err)
		}
		if err := jt.ValidateLeaves(LeafNodeCheck{GroupID: g.groupID}); err != nil {
			t.Fatalf("joiner %d: %v", l, err)
		}
		if !bytes.Equal(jt.TreeHash(), gc.TreeHash) {
			t.Fatalf("joiner %d: tree hash differs", l)
		}
		_, ps, ok := gen.PathSecretFor(l)
		if !ok {
			t.Fatalf("no path secret for joiner %d", l)
		}
		st, cs, err := NewTreePrivateState(l, f.priv).ImplantPathSecret(jt, committer, ps)
		if err != nil {
			t.Fatalf("joiner %d: %v", l, err)
		}
		if !bytes.Equal(cs, gen.CommitSecret) {
			t.Fatalf("joiner %d: commit secret differs", l)
		}
		g.members[l] = &treeTestMember{sig: f.sig, tree: jt, state: st}
	}
	g.epoch++
	for l, m := range g.members {
		if err := m.state.CheckConsistent(m.tree); err != nil {
			t.Fatalf("member %d after commit: %v", l, err)
		}
	}
	return added
}

// addWithoutPath adds n members by a commit without a path: they stay
// unmerged at every non-blank node above them, and get only their leaf keys.
func (g *treeTestGroup) addWithoutPath(t testing.TB, n int) []LeafIndex {
	t.Helper()
	var added []LeafIndex
	for k := 0; k < n; k++ {
		leaf, priv, sig := newTreeTestLeaf(t, g.s, fmt.Sprintf("m%d", g.names))
		g.names++
		var at LeafIndex
		first := true
		for l, m := range g.members {
			got, err := m.tree.AddLeaf(leaf)
			if err != nil {
				t.Fatal(err)
			}
			if !first && got != at {
				t.Fatalf("member %d placed the new leaf at %d, others at %d", l, got, at)
			}
			at, first = got, false
		}
		var any *treeTestMember
		for _, m := range g.members {
			any = m
			break
		}
		jt, err := ParseRatchetTree(g.s, Marshal(any.tree))
		if err != nil {
			t.Fatal(err)
		}
		if err := jt.VerifyParentHashes(); err != nil {
			t.Fatalf("joiner %d: %v", at, err)
		}
		g.members[at] = &treeTestMember{sig: sig, tree: jt, state: NewTreePrivateState(at, priv)}
		added = append(added, at)
	}
	return added
}

// update replaces member l's leaf by an Update proposal, applied by all.
func (g *treeTestGroup) update(t testing.TB, l LeafIndex) {
	t.Helper()
	m := g.members[l]
	leaf := cloneLeafNode(m.tree.Leaf(l))
	priv, pub, err := g.s.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf.EncryptionKey, leaf.Source, leaf.ParentHash = pub, SourceUpdate, nil
	if err := leaf.Sign(g.s, m.sig, g.groupID, l); err != nil {
		t.Fatal(err)
	}
	for k, o := range g.members {
		check := LeafNodeCheck{GroupID: g.groupID, Leaf: l, Source: SourceUpdate, Tree: o.tree}
		if err := ValidateLeafNode(g.s, leaf, &check); err != nil {
			t.Fatalf("member %d: %v", k, err)
		}
		if err := o.tree.UpdateLeaf(l, leaf); err != nil {
			t.Fatal(err)
		}
		o.state = o.state.Pruned(o.tree)
	}
	m.state = NewTreePrivateState(l, priv).Pruned(m.tree)
}

func TestTreeUnmergedLeavesAndUpdates(t *testing.T) {
	g := newTreeTestGroup(t)
	g.commit(t, 0, 5) // leaves 0..5, all parents on paths set
	added := g.addWithoutPath(t, 2)
	if fmt.Sprint(added) != "[6 7]" {
		t.Fatalf("added at %v", added)
	}
	tr := g.members[0].tree
	if root := tr.Parent(7); root == nil || fmt.Sprint(root.UnmergedLeaves) != "[6 7]" {
		t.Fatalf("root unmerged leaves: %+v", root)
	}
	// Leaf 1 commits: its copath at the root is node 11, whose resolution
	// includes the unmerged leaves 6 and 7; they decrypt with leaf keys.
	g.commit(t, 1, 0)
	if n := len(g.members[0].tree.Parent(7).UnmergedLeaves); n != 0 {
		t.Fatalf("root still has %d unmerged leaves after a path through it", n)
	}
	if err := g.members[6].tree.VerifyParentHashes(); err != nil {
		t.Fatal(err)
	}
	// Member 4 updates, blanking its direct path; member 7 commits.
	g.update(t, 4)
	if g.members[0].tree.Parent(9) != nil {
		t.Fatal("update did not blank the direct path")
	}
	g.commit(t, 7, 1)
	g.commit(t, 4, 0, 1)
	if err := g.members[0].tree.VerifyParentHashes(); err != nil {
		t.Fatal(err)
	}
}

func TestTreeGroupGrowsToEight(t *testing.T) {
	g := newTreeTestGroup(t)
	// As the vectors' get_tree(n): leaf i commits adding leaf i+1.
	for i := 0; i < 7; i++ {
		added := g.commit(t, LeafIndex(i), 1)
		if len(added) != 1 || added[0] != LeafIndex(i+1) {
			t.Fatalf("step %d: added %v", i, added)
		}
	}
	tr := g.members[0].tree
	if tr.LeafCount() != 8 || tr.MemberCount() != 8 || tr.Width() != 15 {
		t.Fatalf("leaf count %d, members %d, width %d", tr.LeafCount(), tr.MemberCount(), tr.Width())
	}
	if err := tr.VerifyParentHashes(); err != nil {
		t.Fatal(err)
	}
	// Several members commit at once in a commit that also adds two.
	g.commit(t, 3, 2)
	if n := g.members[0].tree.MemberCount(); n != 10 {
		t.Fatalf("%d members after adding two", n)
	}
}

func TestTreeRemoveTruncates(t *testing.T) {
	g := newTreeTestGroup(t)
	g.commit(t, 0, 7)
	if w := g.members[0].tree.Width(); w != 15 {
		t.Fatalf("width %d", w)
	}
	// Removing a middle member leaves a hole that the next add fills.
	g.commit(t, 0, 0, 2)
	tr := g.members[0].tree
	if tr.Leaf(2) != nil || tr.Width() != 15 {
		t.Fatalf("leaf 2 not blanked or tree resized (width %d)", tr.Width())
	}
	if added := g.commit(t, 1, 1); added[0] != 2 {
		t.Fatalf("new member placed at %d, want the hole at 2", added[0])
	}
	// Removing the last four leaves lets the tree shrink to four leaves.
	g.commit(t, 1, 0, 7)
	if w := g.members[1].tree.Width(); w != 15 {
		t.Fatalf("width %d after removing 7", w)
	}
	if n := len(g.members[1].tree.TreeNodes()); n != 13 {
		t.Fatalf("%d serialized nodes, want 13 (trailing blanks dropped)", n)
	}
	g.commit(t, 0, 0, 4, 5, 6)
	for l, m := range g.members {
		if m.tree.LeafCount() != 4 || m.tree.Width() != 7 {
			t.Fatalf("member %d: %d leaves after truncation", l, m.tree.LeafCount())
		}
	}
	g.commit(t, 3, 1)
	if w := g.members[0].tree.Width(); w != 15 {
		t.Fatalf("width %d after growing again", w)
	}
}

func TestTreeTamperedParentHash(t *testing.T) {
	g := newTreeTestGroup(t)
	for i := 0; i < 7; i++ {
		g.commit(t, LeafIndex(i), 1)
	}
	s := g.s
	good := Marshal(g.members[0].tree)
	tamper := func(x NodeIndex) error {
		var nodes TreeNodes
		if err := Unmarshal(good, &nodes); err != nil {
			t.Fatal(err)
		}
		if p := nodes[x].Parent; p != nil {
			p.ParentHash[0] ^= 1
		} else {
			nodes[x].Leaf.ParentHash[0] ^= 1
		}
		tr, err := NewRatchetTree(s, nodes)
		if err != nil {
			t.Fatal(err)
		}
		return tr.VerifyParentHashes()
	}
	// Leaf 6 (node 12) committed last, setting nodes 13, 11 and 7.
	err := tamper(12)
	if !errors.Is(err, ErrParentHash) || !strings.Contains(err.Error(), "at node 13") || !strings.Contains(err.Error(), "node 12") {
		t.Fatalf("tampered leaf parent hash: %v", err)
	}
	err = tamper(13)
	if !errors.Is(err, ErrParentHash) || !strings.Contains(err.Error(), "at node 11") || !strings.Contains(err.Error(), "13") {
		t.Fatalf("tampered parent node parent hash: %v", err)
	}
	t.Log(err)

	// A received path whose keys were changed after signing fails the
	// parent-hash check, and leaves the tree as it was.
	m := g.members[2]
	prov := g.members[5].tree.Clone()
	gen, err := prov.GeneratePath(5, PathOptions{GroupID: g.groupID, Signer: g.members[5].sig})
	if err != nil {
		t.Fatal(err)
	}
	up, err := gen.Encrypt(prov, &GroupContext{Version: MLS10, CipherSuite: s.ID, GroupID: g.groupID, TreeHash: prov.TreeHash()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := s.GenerateHPKEKey()
	up.Nodes[1].EncryptionKey = other
	before := m.tree.TreeHash()
	err = m.tree.ApplyUpdatePath(5, up, nil, LeafNodeCheck{GroupID: g.groupID})
	if !errors.Is(err, ErrParentHash) || !strings.Contains(err.Error(), "leaf 5") {
		t.Fatalf("tampered path: %v", err)
	}
	if !bytes.Equal(before, m.tree.TreeHash()) {
		t.Fatal("a rejected path changed the tree")
	}
}

func TestTreeMalformed(t *testing.T) {
	s := treeTestSuite(t)
	leaf, _, _ := newTreeTestLeaf(t, s, "a")
	l := &Node{Leaf: leaf}
	p := &Node{Parent: &ParentNode{EncryptionKey: leaf.EncryptionKey}}
	cases := map[string]TreeNodes{
		"empty":               {},
		"trailing blank":      {l, nil, nil},
		"even length":         {l, p},
		"parent at leaf":      {p, nil, l},
		"leaf at parent":      {l, l, l},
		"empty node":          {l, &Node{}, l},
		"unmerged not below":  {l, &Node{Parent: &ParentNode{UnmergedLeaves: []LeafIndex{2}}}, l, nil, l},
		"unmerged unsorted":   {l, &Node{Parent: &ParentNode{UnmergedLeaves: []LeafIndex{1, 0}}}, l},
		"unmerged blank leaf": {nil, &Node{Parent: &ParentNode{UnmergedLeaves: []LeafIndex{0}}}, l},
	}
	for name, nodes := range cases {
		if _, err := NewRatchetTree(s, nodes); !errors.Is(err, ErrInvalidTree) {
			t.Errorf("%s: got %v, want ErrInvalidTree", name, err)
		}
	}
	// Trailing blank leaves are padded: three leaves make a four-leaf tree.
	tr, err := NewRatchetTree(s, TreeNodes{l, nil, nil, nil, l})
	if err != nil || tr.LeafCount() != 4 || tr.Width() != 7 {
		t.Fatalf("padding: %v", err)
	}
}

func TestTreeLeafValidation(t *testing.T) {
	g := newTreeTestGroup(t)
	g.commit(t, 0, 4)
	tr := g.members[0].tree
	s := g.s
	dup, _, sig := newTreeTestLeaf(t, s, "dup")
	dup.EncryptionKey = tr.Leaf(3).EncryptionKey
	if err := dup.Sign(s, sig, nil, 0); err != nil {
		t.Fatal(err)
	}
	err := ValidateLeafNode(s, dup, &LeafNodeCheck{Leaf: 5, Source: SourceKeyPackage, Tree: tr})
	if !errors.Is(err, ErrInvalidLeafNode) || !strings.Contains(err.Error(), "leaf 5: encryption key already in the tree at leaf 3") {
		t.Fatalf("duplicate encryption key: %v", err)
	}
	ok, _, _ := newTreeTestLeaf(t, s, "ok")
	if err := ValidateLeafNode(s, ok, &LeafNodeCheck{Leaf: 5, Source: SourceKeyPackage, Tree: tr, Now: 1}); err != nil {
		t.Fatal(err)
	}
	if err := ValidateLeafNode(s, ok, &LeafNodeCheck{Leaf: 5, Source: SourceUpdate, Tree: tr}); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("wrong source: %v", err)
	}
	if err := ValidateLeafNode(s, ok, &LeafNodeCheck{Leaf: 5, RequiredCredentials: []CredentialType{CredentialX509}}); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("missing required credential: %v", err)
	}
	// An update may keep the member's signature key but not its
	// encryption key.
	upd := cloneLeafNode(tr.Leaf(3))
	upd.Source = SourceUpdate
	if err := upd.Sign(s, g.members[3].sig, g.groupID, 3); err != nil {
		t.Fatal(err)
	}
	err = ValidateLeafNode(s, upd, &LeafNodeCheck{GroupID: g.groupID, Leaf: 3, Source: SourceUpdate, Tree: tr})
	if !errors.Is(err, ErrInvalidLeafNode) || !strings.Contains(err.Error(), "leaf 3: encryption key is not new") {
		t.Fatalf("reused encryption key: %v", err)
	}
	_, pub, _ := s.GenerateHPKEKey()
	upd.EncryptionKey = pub
	if err := upd.Sign(s, g.members[3].sig, g.groupID, 3); err != nil {
		t.Fatal(err)
	}
	if err := ValidateLeafNode(s, upd, &LeafNodeCheck{GroupID: g.groupID, Leaf: 3, Source: SourceUpdate, Tree: tr}); err != nil {
		t.Fatalf("valid update: %v", err)
	}
	if err := ValidateLeafNode(s, upd, &LeafNodeCheck{GroupID: g.groupID, Leaf: 2, Source: SourceUpdate, Tree: tr}); err == nil {
		t.Fatal("leaf signed for position 3 accepted at 2")
	}
	ok.Signature[0] ^= 1
	if err := ValidateLeafNode(s, ok, &LeafNodeCheck{Leaf: 5}); !errors.Is(err, ErrInvalidLeafNode) || !errors.Is(err, ErrSignature) {
		t.Fatalf("bad signature: %v", err)
	}
}

// TestTreeCaches checks that incremental hashing and the member index after
// each kind of change agree with a fresh copy of the tree.
func TestTreeCaches(t *testing.T) {
	g := newTreeTestGroup(t)
	for i := 0; i < 5; i++ {
		g.commit(t, LeafIndex(i), 1)
	}
	tr := g.members[0].tree
	check := func(what string) {
		t.Helper()
		fresh, err := ParseRatchetTree(tr.Suite(), Marshal(tr))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !bytes.Equal(fresh.TreeHash(), tr.TreeHash()) {
			t.Fatalf("%s: cached tree hash is stale", what)
		}
		for x := NodeIndex(0); x < NodeIndex(tr.Width()); x++ {
			if got, want := tr.Resolution(x), fresh.Resolution(x); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: resolution of node %d is %v, want %v", what, x, got, want)
			}
		}
		if got, want := *tr.index(), *fresh.index(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: member index %v, want %v", what, got, want)
		}
	}
	tr.index()
	check("start")
	leaf, _, _ := newTreeTestLeaf(t, g.s, "x")
	if _, err := tr.AddLeaf(leaf); err != nil {
		t.Fatal(err)
	}
	check("add")
	leaf2, _, _ := newTreeTestLeaf(t, g.s, "y")
	if err := tr.UpdateLeaf(1, leaf2); err != nil {
		t.Fatal(err)
	}
	check("update")
	if err := tr.RemoveLeaf(6); err != nil {
		t.Fatal(err)
	}
	check("remove")
	for _, l := range []LeafIndex{1, 2, 3} {
		if err := tr.RemoveLeaf(l); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprint("remove ", l))
	}
	for _, name := range []string{"p", "q", "r", "s"} {
		leaf, _, _ := newTreeTestLeaf(t, g.s, name)
		if _, err := tr.AddLeaf(leaf); err != nil {
			t.Fatal(err)
		}
		check("add " + name)
	}
	c := tr.Clone()
	if err := c.RemoveLeaf(0); err != nil {
		t.Fatal(err)
	}
	check("clone is independent")
	sh := tr.CloneShared()
	if err := sh.RemoveLeaf(0); err != nil {
		t.Fatal(err)
	}
	leaf3, _, _ := newTreeTestLeaf(t, g.s, "z")
	if _, err := sh.AddLeaf(leaf3); err != nil {
		t.Fatal(err)
	}
	check("shared clone is independent")
}

// FuzzParseRatchetTree checks that no input makes tree parsing, hashing or
// verification panic.
func FuzzParseRatchetTree(f *testing.F) {
	s := treeTestSuite(f)
	leaf, _, _ := newTreeTestLeaf(f, s, "a")
	tr := NewRatchetTreeWithLeaf(s, leaf)
	if _, err := tr.AddLeaf(leaf); err != nil {
		f.Fatal(err)
	}
	f.Add(Marshal(tr))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := ParseRatchetTree(s, data)
		if err != nil {
			return
		}
		tr.TreeHash()
		_ = tr.VerifyParentHashes()
		_ = tr.ValidateLeaves(LeafNodeCheck{})
		for x := NodeIndex(0); x < NodeIndex(tr.Width()); x++ {
			tr.Resolution(x)
		}
	})
}

// FuzzApplyUpdatePath checks that no UpdatePath, however malformed, makes
// merging or decrypting panic, and that a rejected path leaves the tree as
// it was.
func FuzzApplyUpdatePath(f *testing.F) {
	g := newTreeTestGroup(f)
	g.commit(f, 0, 4)
	sender := g.members[1]
	prov := sender.tree.Clone()
	gen, err := prov.GeneratePath(1, PathOptions{GroupID: g.groupID, Signer: sender.sig})
	if err != nil {
		f.Fatal(err)
	}
	gc := &GroupContext{Version: MLS10, CipherSuite: g.s.ID, GroupID: g.groupID, TreeHash: prov.TreeHash()}
	up, err := gen.Encrypt(prov, gc, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(Marshal(up), uint32(1))
	receiver := g.members[3]
	f.Fuzz(func(t *testing.T, data []byte, from uint32) {
		var up UpdatePath
		if Unmarshal(data, &up) != nil {
			return
		}
		tr := receiver.tree.Clone()
		before := tr.TreeHash()
		if err := tr.ApplyUpdatePath(LeafIndex(from), &up, nil, LeafNodeCheck{GroupID: g.groupID}); err != nil {
			if !bytes.Equal(before, tr.TreeHash()) {
				t.Fatal("rejected path changed the tree")
			}
			return
		}
		_, _, _, _ = receiver.state.DecryptPath(tr, LeafIndex(from), &up, gc, nil)
	})
}

// Benchmarks. Big trees are built directly rather than by commits: every
// parent node holds one shared real HPKE key, other members' leaves carry
// distinct pseudo-random keys (any 32 bytes is an X25519 public key), and
// only the committer's and the receiver's leaves have real keys.

type treeBench struct {
	tree       *RatchetTree
	committer  LeafIndex
	signer     *SignaturePrivateKey
	receiver   *TreePrivateState
	parentPriv HPKEPrivateKey
}

func treeBenchKey(tag string, i int) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	h := sha256.Sum256(append([]byte(tag), b[:]...))
	return h[:]
}

func buildTreeBench(tb testing.TB, n int) *treeBench {
	s := treeTestSuite(tb)
	parentPriv, parentPub, err := s.DeriveHPKEKey([]byte("benchmark parent key seed......."))
	if err != nil {
		tb.Fatal(err)
	}
	committerLeaf, _, signer := newTreeTestLeaf(tb, s, "committer")
	receiverLeaf, receiverPriv, _ := newTreeTestLeaf(tb, s, "receiver")
	template, _, _ := newTreeTestLeaf(tb, s, "member")
	leaves := uint32(1)
	for leaves < uint32(n) {
		leaves *= 2
	}
	nodes := make(TreeNodes, 2*n-1)
	last := LeafIndex(n - 1)
	for i := 0; i < n; i++ {
		var leaf *LeafNode
		switch LeafIndex(i) {
		case 0:
			leaf = committerLeaf
		case last:
			leaf = receiverLeaf
		default:
			c := *template
			c.EncryptionKey = treeBenchKey("enc", i)
			c.SignatureKey = treeBenchKey("sig", i)
			leaf = &c
		}
		nodes[2*i] = &Node{Leaf: leaf}
	}
	// Every parent in the array has a member in its right subtree (whose
	// first leaf is the node just after it), so commits by every member
	// would have set them all.
	for x := 1; x < len(nodes); x += 2 {
		nodes[x] = &Node{Parent: &ParentNode{EncryptionKey: parentPub}}
	}
	tree, err := NewRatchetTree(s, nodes)
	if err != nil {
		tb.Fatal(err)
	}
	recv := NewTreePrivateState(last, receiverPriv)
	for _, x := range directPath(last.Node(), tree.LeafCount()) {
		if tree.Parent(x) != nil {
			recv.keys[x] = parentPriv
		}
	}
	return &treeBench{tree: tree, committer: 0, signer: signer, receiver: recv, parentPriv: parentPriv}
}

var treeBenchSizes = []int{10, 100, 1000, 10000}

func BenchmarkTreeHash(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		bt := buildTreeBench(b, n)
		tr := bt.tree
		b.Run(fmt.Sprintf("full/%d", n), func(b *testing.B) {
			for b.Loop() {
				tr.invalidateHashes()
				tr.TreeHash()
			}
		})
		b.Run(fmt.Sprintf("one-leaf-changed/%d", n), func(b *testing.B) {
			l := LeafIndex(n / 2)
			a := tr.Leaf(l)
			c := cloneLeafNode(a)
			c.Signature = append(c.Signature, 0)
			tr.TreeHash()
			k := 0
			for b.Loop() {
				if k++; k%2 == 0 {
					tr.setLeaf(l, a)
				} else {
					tr.setLeaf(l, c)
				}
				tr.TreeHash()
			}
		})
	}
}

// BenchmarkCreateUpdatePath measures a committer refreshing its path: new
// keys and parent hashes, the new tree hash, and encryption to the copath.
func BenchmarkCreateUpdatePath(b *testing.B) {
	for _, n := range treeBenchSizes {
		bt := buildTreeBench(b, n)
		s := bt.tree.Suite()
		gid := []byte("bench")
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				gen, err := bt.tree.GeneratePath(bt.committer, PathOptions{GroupID: gid, Signer: bt.signer})
				if err != nil {
					b.Fatal(err)
				}
				gc := &GroupContext{Version: MLS10, CipherSuite: s.ID, GroupID: gid, TreeHash: bt.tree.TreeHash()}
				if _, err := gen.Encrypt(bt.tree, gc, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApplyUpdatePath measures a receiver: checking and merging the
// path, the new tree hash, and decrypting its path secret. Two paths made
// from the same tree alternate, so each one replaces the other.
func BenchmarkApplyUpdatePath(b *testing.B) {
	for _, n := range treeBenchSizes {
		bt := buildTreeBench(b, n)
		s := bt.tree.Suite()
		gid := []byte("bench")
		gc := &GroupContext{Version: MLS10, CipherSuite: s.ID, GroupID: gid, TreeHash: []byte("fixed for the benchmark")}
		var paths [2]*UpdatePath
		for k := range paths {
			c := bt.tree.Clone()
			gen, err := c.GeneratePath(bt.committer, PathOptions{GroupID: gid, Signer: bt.signer})
			if err != nil {
				b.Fatal(err)
			}
			if paths[k], err = gen.Encrypt(c, gc, nil); err != nil {
				b.Fatal(err)
			}
		}
		tr := bt.tree.Clone()
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			k := 0
			for b.Loop() {
				up := paths[k%2]
				k++
				if err := tr.ApplyUpdatePath(bt.committer, up, nil, LeafNodeCheck{GroupID: gid}); err != nil {
					b.Fatal(err)
				}
				tr.TreeHash()
				if _, _, _, err := bt.receiver.DecryptPath(tr, bt.committer, up, gc, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAddMemberCommit measures the whole tree part of a commit adding
// one member: on the committer's side the provisional copy of the tree,
// adding the leaf, the path, the tree hash and the encryption; on a
// receiver's side the copy, adding the leaf, checking and merging the path,
// the tree hash and decryption.
func BenchmarkAddMemberCommit(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		bt := buildTreeBench(b, n)
		s := bt.tree.Suite()
		gid := []byte("bench")
		newcomer, _, _ := newTreeTestLeaf(b, s, "newcomer")
		// The group's tree has its hashes, blank-region flags and member
		// index from earlier epochs; each commit's copy inherits them.
		bt.tree.TreeHash()
		bt.tree.Resolution(bt.tree.Root())
		bt.tree.index()
		create := func() (*UpdatePath, *GroupContext, []LeafIndex) {
			tr := bt.tree.Clone()
			l, err := tr.AddLeaf(newcomer)
			if err != nil {
				b.Fatal(err)
			}
			gen, err := tr.GeneratePath(bt.committer, PathOptions{GroupID: gid, Signer: bt.signer})
			if err != nil {
				b.Fatal(err)
			}
			gc := &GroupContext{Version: MLS10, CipherSuite: s.ID, GroupID: gid, TreeHash: tr.TreeHash()}
			up, err := gen.Encrypt(tr, gc, []LeafIndex{l})
			if err != nil {
				b.Fatal(err)
			}
			return up, gc, []LeafIndex{l}
		}
		up, gc, added := create()
		b.Run(fmt.Sprintf("create/%d", n), func(b *testing.B) {
			for b.Loop() {
				tr := bt.tree.CloneShared()
				l, err := tr.AddLeaf(newcomer)
				if err != nil {
					b.Fatal(err)
				}
				gen, err := tr.GeneratePath(bt.committer, PathOptions{GroupID: gid, Signer: bt.signer})
				if err != nil {
					b.Fatal(err)
				}
				gc := &GroupContext{Version: MLS10, CipherSuite: s.ID, GroupID: gid, TreeHash: tr.TreeHash()}
				if _, err = gen.Encrypt(tr, gc, []LeafIndex{l}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("process/%d", n), func(b *testing.B) {
			for b.Loop() {
				tr := bt.tree.CloneShared()
				if _, err := tr.AddLeaf(newcomer); err != nil {
					b.Fatal(err)
				}
				if err := tr.ApplyUpdatePath(bt.committer, up, added, LeafNodeCheck{GroupID: gid}); err != nil {
					b.Fatal(err)
				}
				if !bytes.Equal(tr.TreeHash(), gc.TreeHash) {
					b.Fatal("tree hash differs")
				}
				if _, _, _, err := bt.receiver.DecryptPath(tr, bt.committer, up, gc, added); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTreeClone(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		bt := buildTreeBench(b, n)
		bt.tree.index()
		b.Run(fmt.Sprintf("deep/%d", n), func(b *testing.B) {
			for b.Loop() {
				bt.tree.Clone()
			}
		})
		b.Run(fmt.Sprintf("shared/%d", n), func(b *testing.B) {
			for b.Loop() {
				bt.tree.CloneShared()
			}
		})
	}
}

package mls

import (
	"hash/maphash"
	"maps"
	"slices"
)

// memberIndex summarizes the members' leaves so that validating one new leaf
// against the whole group (§7.3: unique keys, mutually supported credential
// types) costs O(1) map look-ups instead of a pass over every member. It is
// updated on every leaf change. Keys are counted by a 64-bit hash, which
// keeps the maps free of pointers so that copying them for each commit's
// provisional tree is a cheap block copy; a hit is confirmed by an exact
// scan (off the common path), so a hash collision cannot reject a leaf.
type memberIndex struct {
	members      int
	encKeys      map[uint64]int
	sigKeys      map[uint64]int
	credInUse    map[CredentialType]int // members whose credential has the type
	credSupports map[CredentialType]int // members whose capabilities list the type
}

func newMemberIndex() *memberIndex {
	return &memberIndex{
		encKeys:      map[uint64]int{},
		sigKeys:      map[uint64]int{},
		credInUse:    map[CredentialType]int{},
		credSupports: map[CredentialType]int{},
	}
}

func (m *memberIndex) clone() *memberIndex {
	return &memberIndex{
		members:      m.members,
		encKeys:      maps.Clone(m.encKeys),
		sigKeys:      maps.Clone(m.sigKeys),
		credInUse:    maps.Clone(m.credInUse),
		credSupports: maps.Clone(m.credSupports),
	}
}

func treeIndexBump[K comparable](m map[K]int, k K, d int) {
	if n := m[k] + d; n > 0 {
		m[k] = n
	} else {
		delete(m, k)
	}
}

// account adds (d = 1) or removes (d = -1) a leaf's contributions.
func (m *memberIndex) account(leaf *LeafNode, d int) {
	if leaf == nil {
		return
	}
	m.members += d
	treeIndexBump(m.encKeys, treeKeyHash(leaf.EncryptionKey), d)
	treeIndexBump(m.sigKeys, treeKeyHash(leaf.SignatureKey), d)
	treeIndexBump(m.credInUse, leaf.Credential.Type, d)
	for i, ct := range leaf.Capabilities.Credentials {
		// A type listed twice still counts once for this member.
		if !slices.Contains(leaf.Capabilities.Credentials[:i], ct) {
			treeIndexBump(m.credSupports, ct, d)
		}
	}
}

// treeKeySeed seeds treeKeyHash; the hashes never leave the process.
var treeKeySeed = maphash.MakeSeed()

func treeKeyHash(key []byte) uint64 { return maphash.Bytes(treeKeySeed, key) }

// treeSupportsCredential reports whether a leaf's capabilities list credential type ct.
func treeSupportsCredential(leaf *LeafNode, ct CredentialType) bool {
	return slices.Contains(leaf.Capabilities.Credentials, ct)
}

// index returns the tree's member index, building it on first use.
func (t *RatchetTree) index() *memberIndex {
	if t.members == nil {
		m := newMemberIndex()
		for i := 0; i < len(t.nodes); i += 2 {
			m.account(t.nodes[i].leaf, 1)
		}
		t.members = m
	}
	return t.members
}

// findLeaf returns the first member other than skip for which match holds.
func (t *RatchetTree) findLeaf(skip LeafIndex, match func(*LeafNode) bool) (LeafIndex, bool) {
	for i := 0; i < len(t.nodes); i += 2 {
		l := NodeIndex(i).Leaf()
		if leaf := t.nodes[i].leaf; leaf != nil && l != skip && match(leaf) {
			return l, true
		}
	}
	return 0, false
}
